"""The SLURM workflow profile (workflow/slurm) against a real SLURM scheduler.

The tests marked ``slurm`` need SLURM's client commands, job accounting (``sacct``: the executor plugin
watches jobs with it), the executor plugin (``pip install -e ".[slurm]"``) and a node that shares this
machine's file system, e.g. the one-node cluster of ``workflow/slurm/local_cluster.sh start`` (root,
Debian/Ubuntu). Without one they are skipped; with ``COLLAB_REQUIRE_SLURM=1`` (set by .ci/run once it has
started that cluster) they fail instead.
"""

from __future__ import annotations

import getpass
import hashlib
import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from test_workflow import (
    CELLS,
    GATE,
    SNAKEMAKE,
    TINY_WORKFLOW,
    _mtimes,
    _run_dir,
    gated,
    job_counts,
    snakemake,
    wait_until,
    write_config,
)

from collab.results import RESULT_FILES, VOLATILE_COLUMNS, is_complete_run

ROOT = Path(__file__).resolve().parent.parent
PROFILE = ROOT / "workflow" / "slurm"
CLUSTER_SCRIPT = PROFILE / "local_cluster.sh"
REQUIRE = "COLLAB_REQUIRE_SLURM"
CSVS = ["curves.csv", "final.csv", "sharing.csv"]
SACCT_FIELDS = ["JobID", "State", "Timelimit", "ReqMem", "ReqCPUS", "Partition", "WorkDir"]


GATED = "GateCartPole-v1"  # CartPole whose runs start when the test says so (tests/gate/sitecustomize.py)


def _tiny(runtime_min: int, mem_mb: int, env_id: str = "CartPole-v1") -> dict:
    """The tiny CartPole grid of test_workflow (2 setups x 2 seeds) with these SLURM resources."""
    return {
        **TINY_WORKFLOW,
        "defaults": {**TINY_WORKFLOW["defaults"], "runtime_min": runtime_min, "mem_mb": mem_mb},
        "envs": {env_id: {}},
    }


def _cmd(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, timeout=60)


@dataclass
class Cluster:
    partition: str
    account: str | None

    def default_resources(self) -> list[str]:
        """``--default-resources`` values, as docs/workflow.md tells users to pass them."""
        account = [f"slurm_account={self.account}"] if self.account else []
        return [*account, f"slurm_partition={self.partition}"]


def find_cluster() -> Cluster | str:
    """The SLURM cluster these tests can use, or why there is none."""
    hint = f"(on Debian/Ubuntu as root: {CLUSTER_SCRIPT.relative_to(ROOT)} start)"
    missing = [
        c for c in ("sinfo", "sbatch", "squeue", "scancel", "scontrol", "sacct") if not shutil.which(c)
    ]
    if missing:
        return f"no SLURM cluster: {', '.join(missing)} not found {hint}"
    if importlib.util.find_spec("snakemake_executor_plugin_slurm") is None:
        return 'the SLURM executor plugin is not installed: pip install -e ".[slurm]"'
    r = _cmd("sinfo", "--noheader", "--format=%P|%a|%t")
    if r.returncode != 0:
        return f"no SLURM cluster answers: sinfo: {(r.stderr or r.stdout).strip()} {hint}"
    usable = [
        p
        for p, avail, state in (line.split("|") for line in r.stdout.split())
        if avail == "up" and state in ("idle", "mix")
    ]
    if not usable:
        return f"no SLURM partition with an idle node: sinfo says {r.stdout.split()}"
    partition = next((p for p in usable if p.endswith("*")), usable[0]).rstrip("*")
    r = _cmd("sacct", "--noheader", "-X", "--starttime=now-1hours", "--format=JobID")
    if r.returncode != 0:
        return f"SLURM job accounting is not available (Snakemake's executor needs sacct): {r.stderr.strip()}"
    r = _cmd(
        "sacctmgr", "--noheader", "--parsable2", "show", "user", getpass.getuser(), "format=defaultaccount"
    )
    account = r.stdout.strip() if r.returncode == 0 else ""
    return Cluster(partition=partition, account=account or None)


@pytest.fixture(scope="module")
def cluster() -> Cluster:
    found = find_cluster()
    if isinstance(found, str):
        if os.environ.get(REQUIRE) == "1":
            pytest.fail(f"{REQUIRE}=1 but {found}")
        pytest.skip(found)
    return found


def slurm_args(configfile: Path, cluster: Cluster) -> list[str]:
    """The documented SLURM command's options (first status check after 1 s instead of 40 s)."""
    return [
        "grid",
        "--workflow-profile",
        str(PROFILE),
        "--configfile",
        str(configfile),
        "--default-resources",
        *cluster.default_resources(),
        "--slurm-init-seconds-before-status-checks",
        "1",
    ]


def slurm_jobs(workdir: Path) -> list[dict[str, str]]:
    """Accounting records (sacct) of the jobs submitted from ``workdir``, oldest first."""
    r = _cmd(
        "sacct",
        "--noheader",
        "--parsable2",
        "-X",
        "--starttime=now-1days",
        f"--format={','.join(SACCT_FIELDS)}",
    )
    assert r.returncode == 0, r.stderr
    rows = [
        dict(zip(SACCT_FIELDS, line.split("|", len(SACCT_FIELDS) - 1), strict=True))
        for line in r.stdout.splitlines()
    ]
    return [row for row in rows if row["WorkDir"] and Path(row["WorkDir"]).resolve() == workdir.resolve()]


def queued_jobs(workdir: Path) -> dict[str, str]:
    """SLURM job id -> state of the jobs from ``workdir`` that are still queued or running (squeue)."""
    r = _cmd("squeue", "--noheader", "--format=%i|%T|%Z")
    assert r.returncode == 0, r.stderr
    rows = (line.split("|", 2) for line in r.stdout.splitlines())
    return {i: state for i, state, wd in rows if Path(wd).resolve() == workdir.resolve()}


def scontrol_job(job_id: str) -> dict[str, str]:
    """``scontrol show job`` as KEY -> value."""
    r = _cmd("scontrol", "--oneliner", "show", "job", job_id)
    assert r.returncode == 0, r.stderr
    return dict(tok.split("=", 1) for tok in r.stdout.split() if "=" in tok)


def minutes(limit: str) -> int:
    """A SLURM time limit ``[D-]HH:MM:SS`` in minutes."""
    days, _, hms = limit.rpartition("-")
    h, m, s = (int(x) for x in hms.split(":"))
    return int(days or 0) * 1440 + h * 60 + m + (s > 0)


def megabytes(mem: str) -> int:
    """A SLURM memory figure (``800M``, ``2G``) in MB."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([KMGT])n?", mem)
    assert m, f"unexpected memory figure {mem!r}"
    return round(float(m[1]) * {"K": 1 / 1024, "M": 1, "G": 1024, "T": 1024**2}[m[2]])


def read_results(d: Path, name: str) -> pd.DataFrame:
    return pd.read_csv(d / name).drop(columns=VOLATILE_COLUMNS, errors="ignore")


def assert_same_results(workdir: Path, reference: Path, env_id: str = "CartPole-v1") -> None:
    """Every run's CSVs and config.json, and the aggregated CSVs, as in ``reference`` (wall times aside)."""
    for setup, seed in CELLS:
        got, want = _run_dir(workdir, setup, seed, env_id), _run_dir(reference, setup, seed, env_id)
        for name in CSVS:
            pd.testing.assert_frame_equal(
                read_results(got, name), read_results(want, name), obj=f"{setup}/seed{seed}/{name}"
            )
        assert json.loads((got / "config.json").read_text()) == json.loads((want / "config.json").read_text())
    for name in CSVS:
        pd.testing.assert_frame_equal(
            read_results(workdir / "data" / "tiny", name),
            read_results(reference / "data" / "tiny", name),
            obj=name,
        )


def digests(d: Path) -> dict[str, str]:
    return {f: hashlib.sha256((d / f).read_bytes()).hexdigest() for f in RESULT_FILES}


@pytest.fixture(scope="module")
def local_grid(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny grid run locally (``--cores 2``): the reference results."""
    workdir = tmp_path_factory.mktemp("local")
    configfile = write_config(workdir / "tiny.yaml", _tiny(runtime_min=7, mem_mb=700))
    r = snakemake(workdir, "grid", "--cores", "2", "--configfile", str(configfile))
    assert r.returncode == 0, r.stderr[-4000:]
    return workdir


@pytest.fixture(scope="module")
def slurm_grid(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The same grid through the SLURM profile: (working directory, Snakemake's output)."""
    workdir = tmp_path_factory.mktemp("slurm")
    configfile = write_config(workdir / "tiny.yaml", _tiny(runtime_min=7, mem_mb=700))
    r = snakemake(workdir, *slurm_args(configfile, cluster))
    assert r.returncode == 0, (r.stdout + r.stderr)[-6000:]
    return workdir, r.stdout + r.stderr


@pytest.mark.slurm
def test_slurm_grid_gives_the_local_results(
    cluster: Cluster, slurm_grid: tuple[Path, str], local_grid: Path
) -> None:
    workdir, output = slurm_grid
    assert job_counts(output)["train"] == len(CELLS)
    jobs = slurm_jobs(workdir)  # every training run was a SLURM job, and it completed
    assert [j["State"] for j in jobs] == ["COMPLETED"] * len(CELLS), jobs
    assert {j["Partition"] for j in jobs} == {cluster.partition}
    assert_same_results(workdir, local_grid)


@pytest.mark.slurm
def test_slurm_jobs_request_the_configs_resources(slurm_grid: tuple[Path, str]) -> None:
    """runtime_min and mem_mb (7 and 700 here, not the profile's defaults) become each job's limits."""
    jobs = slurm_jobs(slurm_grid[0])
    assert len(jobs) == len(CELLS)
    for job in jobs:
        assert minutes(job["Timelimit"]) == 7, job
        assert megabytes(job["ReqMem"]) == 700, job
        assert job["ReqCPUS"] == "1", job


def wait_for_second_job(
    workdir: Path, controller: subprocess.Popen, log: Path, gate: Path
) -> tuple[list[tuple[str, int]], tuple[str, int], str]:
    """Wait until one run is finished and the next run's job is blocked at its gate (one ticket let the
    first through): (finished runs, the cell whose training notebook has started, its SLURM job id)."""
    found: dict[str, object] = {}

    def second_job_blocked() -> bool:
        assert controller.poll() is None, f"the controller ended early:\n{log.read_text()[-4000:]}"
        done = [c for c in CELLS if is_complete_run(_run_dir(workdir, *c, GATED))]
        logs = workdir / "runs" / "tiny" / "logs" / "train" / GATED
        started = [c for c in CELLS if c not in done and (logs / c[0] / f"seed{c[1]}.log").exists()]
        running = [i for i, state in queued_jobs(workdir).items() if state == "RUNNING"]
        found.update(done=done, started=started, running=running)
        return bool(done and started and running and any(gate.glob("waiting-*")))

    wait_until(second_job_blocked, lambda: f"finished run and blocked job:\n{log.read_text()[-4000:]}")
    done, started, running = found["done"], found["started"], found["running"]
    assert len(done) == 1 and len(started) == 1 and len(running) == 1, found
    return done, started[0], running[0]


@pytest.mark.slurm
def test_preempted_grid_resumes(cluster: Cluster, tmp_path: Path) -> None:
    """A SLURM job cancelled mid-run and the Snakemake controller killed, then the same command again.

    The runs are gated (GateCartPole-v1): one ticket lets the first run through, so the kill comes when
    one run is finished (and recorded: ``--jobs 1``) and the next run's job is blocked, whatever the
    machine's speed. The cancelled run's folder is then given the CSVs a run killed while writing its
    results would leave (another run's, without config.json): the restart must recompute it, and the
    grid must equal the same gated grid run locally without interruption.
    """
    gate, reference = tmp_path / "gate", tmp_path / "local"
    env = gated(gate)
    reference.mkdir()
    (gate / "open").touch()
    configfile = write_config(tmp_path / "tiny.yaml", _tiny(runtime_min=9, mem_mb=800, env_id=GATED))
    r = snakemake(reference, "grid", "--cores", "2", "--configfile", str(configfile), env=env)
    assert r.returncode == 0, r.stderr[-4000:]
    (gate / "open").unlink()
    (gate / "ticket-0").touch()

    work = tmp_path / "work"
    work.mkdir()
    args = slurm_args(configfile, cluster)
    log = tmp_path / "controller.log"
    with log.open("w") as out:
        controller = subprocess.Popen(
            [*SNAKEMAKE, "--directory", str(work), *args, "--jobs", "1"],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
        )
    try:
        done, started, running = wait_for_second_job(work, controller, log, gate)
        job = scontrol_job(running)  # the resources of a running job, read back from the scheduler
        assert minutes(job["TimeLimit"]) == 9 and megabytes(job["MinMemoryNode"]) == 800, job
        assert Path(job["WorkDir"]).resolve() == work.resolve()
        run = {cell: _run_dir(work, *cell, GATED) for cell in CELLS}
        kept = {cell: (_mtimes(run[cell]), digests(run[cell])) for cell in done}
        os.killpg(controller.pid, signal.SIGKILL)  # the login node goes away ...
        controller.wait(timeout=60)
        assert _cmd("scancel", running).returncode == 0  # ... and the job is preempted
        wait_until(lambda: not queued_jobs(work), "empty queue after scancel")
    finally:
        if controller.poll() is None:
            os.killpg(controller.pid, signal.SIGKILL)
            controller.wait(timeout=60)
        for leftover in queued_jobs(work):
            _cmd("scancel", leftover)

    cancelled = run[started]
    assert not is_complete_run(cancelled), "the cancelled job finished its run first"
    cancelled.mkdir(parents=True, exist_ok=True)
    for f in CSVS:  # half-written: a run writes config.json last
        shutil.copy2(run[done[0]] / f, cancelled / f)

    (gate / "open").touch()
    r = snakemake(work, "--unlock", *args, env=env)  # a killed controller leaves its lock behind
    assert r.returncode == 0, r.stderr[-4000:]
    r = snakemake(work, *args, env=env)
    assert r.returncode == 0, (r.stdout + r.stderr)[-6000:]
    assert job_counts(r.stdout + r.stderr)["train"] == len(CELLS) - 1  # all but the finished run
    for cell, (mtimes, sums) in kept.items():
        assert _mtimes(run[cell]) == mtimes and digests(run[cell]) == sums, f"finished run {cell} was touched"
    assert_same_results(work, reference, GATED)  # the cancelled run among them, recomputed
    states = [j["State"].split()[0] for j in slurm_jobs(work)]
    assert sorted(states) == ["CANCELLED"] + ["COMPLETED"] * len(CELLS), states


def test_cluster_script_refuses_unknown_commands_and_non_root() -> None:
    """No cluster needed: a wrong command is a usage error; only root may start, stop or query it."""
    script = CLUSTER_SCRIPT.read_text()
    r = subprocess.run(["bash", "-s", "restart"], input=script, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and r.stderr
    as_user = ["bash", "-s", "status"]
    if os.geteuid() == 0:
        if not shutil.which("runuser"):
            pytest.skip("runuser not found: cannot run the script as another user")
        as_user = ["runuser", "-u", "nobody", "--", *as_user]
    r = subprocess.run(as_user, input=script, capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "root" in r.stderr


@pytest.mark.slurm
def test_jobs_longer_than_their_time_limit_finish_through_retries(cluster: Cluster, tmp_path: Path) -> None:
    """Jobs of 1 minute whose runs take longer: SLURM ends each first attempt at its time limit
    (TIMEOUT), Snakemake retries it (the profile's ``retries``), and the retry continues the run from
    its checkpoint; the results equal the same grid run locally without interruption.

    The runs use the test plug-in ``hold_once`` (tests/gate/hold_strategy.py): a first attempt waits
    for ever after its first checkpoint, so the time limit ends it whatever the machine's speed, and a
    resumed run never waits."""
    hold = tmp_path / "held"
    hold.mkdir()
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(p for p in (str(GATE), os.environ.get("PYTHONPATH")) if p),
    }
    grid = {
        **_tiny(runtime_min=1, mem_mb=700),
        "seeds": [0, 1],
        "setups": {"hold": {"strategy": "hold_once", "n_agents": 2}},
        "plugins": ["hold_strategy"],
    }
    grid["defaults"] = {**grid["defaults"], "episodes_per_agent": 6, "checkpoint_every": 1}
    reference, work = tmp_path / "local", tmp_path / "work"
    reference.mkdir()
    work.mkdir()
    configfile = write_config(tmp_path / "tiny.yaml", grid)
    r = snakemake(reference, "grid", "--cores", "2", "--configfile", str(configfile), env=env)
    assert r.returncode == 0, r.stderr[-4000:]

    r = snakemake(work, *slurm_args(configfile, cluster), env={**env, "COLLAB_TEST_HOLD": str(hold)})
    assert r.returncode == 0, (r.stdout + r.stderr)[-6000:]
    assert len(list(hold.glob("held-*"))) == 2  # both first attempts waited past their limit
    states = sorted(j["State"].split()[0] for j in slurm_jobs(work))
    assert states == ["COMPLETED", "COMPLETED", "TIMEOUT", "TIMEOUT"], states
    for seed in (0, 1):
        got, want = _run_dir(work, "hold", seed), _run_dir(reference, "hold", seed)
        for name in CSVS:
            pd.testing.assert_frame_equal(read_results(got, name), read_results(want, name), obj=name)
        assert (got / "population.safetensors").read_bytes() == (want / "population.safetensors").read_bytes()
        assert not (got / "resume.ckpt").exists()


@pytest.mark.slurm
def test_a_run_inside_a_job_knows_its_time_limit(cluster: Cluster, tmp_path: Path) -> None:
    """slurm_deadline() in a job of 3 minutes: the time left from squeue, less a tenth of it (< 60 s)."""
    out = tmp_path / "left.txt"
    code = "import time; from collab.resume import slurm_deadline; print(slurm_deadline() - time.time())"
    account = [f"--account={cluster.account}"] if cluster.account else []
    r = _cmd(
        "sbatch", "--wait", "--time=3", f"--partition={cluster.partition}", *account, f"--output={out}",
        "--wrap", f"{sys.executable} -c '{code}'",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr + out.read_text() if out.exists() else r.stderr
    left = float(out.read_text().strip().splitlines()[-1])
    assert 120 < left <= 180 * 0.9, left
