# Two entry points (README): `make smoke` and `make test`. Both create .venv with Python 3.11 and
# install this package (pinned dependencies from pyproject.toml) into it first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
CORES ?= 2
PROFILE ?= smoke
SNAKEMAKE_ARGS ?= --quiet rules
# ENVS="Acrobot-v1 Pendulum-v1": run and analyse only these environments of the profile (passed last, as
# --config only_envs=...; do not add another --config to SNAKEMAKE_ARGS with it).
ENVS ?=
# The report `make report` fills: STUDY.md for the study profile, else REPRODUCTION.md.
REPORT ?= $(if $(filter study,$(PROFILE)),STUDY.md,REPRODUCTION.md)
PYTEST_ARGS ?=

.PHONY: install smoke reduced paper workflow interim report dryrun test lint clean-smoke help

help:
	@echo "make smoke    - install into $(VENV), run the smoke workflow (all six envs, tiny budgets)"
	@echo "make test     - install into $(VENV), ruff check, pytest (+ nbval on the analysis notebooks)"
	@echo "make workflow PROFILE=reduced|paper|study CORES=N - run another profile locally"
	@echo "make dryrun PROFILE=...                       - list the jobs a profile would run"
	@echo "make interim PROFILE=...                      - Table 1 and figures from the runs finished so far"
	@echo "make report PROFILE=reduced|study             - fill REPRODUCTION.md's (STUDY.md's) tables from figures/<profile>/"
	@echo "  ENVS=\"Acrobot-v1 Pendulum-v1\" (workflow, dryrun): only these environments of the profile"

$(BIN)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python >= 3.11 needed, got " + sys.version' \
		|| { echo "Set PYTHON=/path/to/python3.11"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -e .
	touch $@

install: $(BIN)/.installed

workflow: install
	$(BIN)/snakemake --cores $(CORES) --rerun-incomplete --configfile workflow/config/$(PROFILE).yaml \
		$(SNAKEMAKE_ARGS) $(if $(ENVS),--config only_envs="$(ENVS)")
	@echo
	@echo "Done. Results: data/$(PROFILE)/{curves,final,sharing}.csv (one folder per run in data/$(PROFILE)/runs/)"
	@echo "      Table 1 and Figures 1-3: figures/$(PROFILE)/"
	@echo "      Executed notebooks and logs: runs/$(PROFILE)/"

# The smoke results are not committed (git-ignored: their digits depend on the CPU's kernels, see
# collab/numerics.py): `make smoke` removes any earlier ones and reruns the whole grid.
smoke: clean-smoke
	$(MAKE) workflow PROFILE=smoke

reduced:
	$(MAKE) workflow PROFILE=reduced

paper:
	$(MAKE) workflow PROFILE=paper

# While a long grid runs: analyse the finished runs into runs/$(PROFILE)/interim/ (git-ignored).
interim: install
	$(BIN)/python workflow/scripts/interim.py $(PROFILE)

# Fill the generated blocks of $(REPORT) (REPRODUCTION.md; STUDY.md for the study) from figures/$(PROFILE)/.
report: install
	$(BIN)/python workflow/scripts/report.py $(PROFILE) $(REPORT)

dryrun: install
	$(BIN)/snakemake -n --configfile workflow/config/$(PROFILE).yaml $(if $(ENVS),--config only_envs="$(ENVS)")

lint: install
	$(BIN)/ruff check .

test: install
	$(BIN)/ruff check .
	$(BIN)/python -m pytest $(PYTEST_ARGS) tests --nbval notebooks/table1.ipynb notebooks/figures.ipynb

clean-smoke:
	rm -rf data/smoke figures/smoke runs/smoke
