"""The experiment grid of one workflow profile: read, check and expand ``workflow/config/<profile>.yaml``.

Used by ``workflow/Snakefile`` when it loads: every cell's :class:`collab.ExperimentConfig` is
validated up front (``check_out_dir=False``: nothing exists yet), so a bad config fails before any
job starts, with one message naming the config key, the bad value and what is allowed.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from collab.config import SETUP_NAME, ConfigError, ExperimentConfig
from collab.results import setup_name
from collab.spaces import check_experiment

#: Keys an environment's budget may set (the train notebook's parameters) ...
BUDGET_KEYS = (
    "episodes_per_agent",
    "validate_every",
    "val_episodes",
    "eval_episodes",
    "max_episode_steps",
    "c",
    "lam",
    "backend",
    "numerics",
    "reeval_episodes",
    "reselect_top",
    "reselect_episodes",
    "checkpoint_every",
)
#: The notebook every cell runs; a budget key it has no parameter for is refused (it would be ignored).
TRAIN_NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "train.ipynb"
#: ... and the cluster resources of its jobs (ignored by local runs).
RESOURCE_KEYS = ("runtime_min", "mem_mb")


def setup_keys() -> set[str]:
    """Keys a named setup may set: ExperimentConfig fields, and the settings of the registered
    strategies (as keywords of their own, or as one ``settings`` mapping), except those the grid sets
    itself."""
    from collab.strategies import get_strategy, strategy_names

    fields = {f.name for f in dataclasses.fields(ExperimentConfig)}
    settings = {f.name for name in strategy_names() for f in dataclasses.fields(get_strategy(name).Settings)}
    return (fields | settings) - {"env_id", "seed", "out_dir", "setup"}


#: ``agent_gifs``: after the grid, GIFs of selected agents in ``figures/<profile>/agents/``: ``true``,
#: each environment's first run (``<env>.gif``); ``best_worst``, the runs whose selected agent scored
#: highest and lowest in the final evaluation (``<env>_best.gif``, ``<env>_worst.gif``).
#: ``agent_gif_envs``: the environments that get them (default: all; a run folder needs its checkpoints).
#: ``only_envs``: run and analyse only these of the config's environments (a list, or one id, or ids
#: separated by commas or spaces): ``snakemake ... --config only_envs=Acrobot-v1,Pendulum-v1``.
#: ``plugins``: modules (on PYTHONPATH) imported before the grid is checked and in every run, which
#: register strategies of one's own (:mod:`collab.strategies`).
TOP_KEYS = (
    "profile", "seeds", "setups", "defaults", "envs", "agent_gifs", "agent_gif_envs", "only_envs", "plugins",
)  # fmt: skip
PAPER_SETUPS = (
    ("independent", 8),
    ("sequential", 8),
    ("collaborative", 2),
    ("collaborative", 4),
    ("collaborative", 8),
)


class WorkflowConfigError(ValueError):
    """The workflow config is malformed; the message names the key and the bad value."""


@dataclass(frozen=True)
class Cell:
    """One training run of the grid: a Papermill run of notebooks/train.ipynb."""

    env_id: str
    setup: str
    strategy: str
    n_agents: int
    seed: int
    params: dict[str, Any]
    resources: dict[str, int]
    plugins: list[str] = field(default_factory=list)

    def papermill_args(self, out_dir: str) -> str:
        """``-p NAME VALUE`` options (``-r`` for strings) for this cell's train notebook run."""
        values: dict[str, Any] = {
            "env_id": self.env_id,
            "strategy": self.strategy,
            "n_agents": self.n_agents,
            "seed": self.seed,
            **self.params,
            "out_dir": out_dir,
        }
        if self.plugins:
            values["plugins"] = self.plugins
        args = []
        for name, value in values.items():
            if isinstance(value, dict | list):  # a mapping (ppo, settings) or a list (plugins) goes as YAML
                args += ["-y", yaml.safe_dump({name: value}, default_flow_style=True).strip()]
                continue
            flag = "-r" if isinstance(value, str) else "-p"
            args += [flag, name, "None" if value is None else str(value)]
        return shlex.join(args)


@dataclass
class Grid:
    profile: str
    seeds: list[int]
    setups: dict[str, dict[str, Any]]  # setup name -> its ExperimentConfig fields (strategy, n_agents, ...)
    envs: list[str]
    cells: list[Cell] = field(default_factory=list)
    agent_gifs: bool | str = False
    agent_gif_envs: list[str] = field(default_factory=list)  # the envs agent_gifs records

    def setups_json(self) -> str:
        """The setups in config order as JSON (``data/<profile>/setups.json``, read by the analysis)."""
        return json.dumps([{"name": k, **v} for k, v in self.setups.items()], indent=1) + "\n"

    def cell(self, env_id: str, setup: str, seed: int | str) -> Cell:
        for c in self.cells:
            if c.env_id == env_id and c.setup == setup and c.seed == int(seed):
                return c
        raise KeyError((env_id, setup, seed))


@functools.cache
def train_parameters() -> frozenset[str]:
    """The names the train notebook's ``parameters`` cell assigns."""
    nb = json.loads(TRAIN_NOTEBOOK.read_text())
    cell = next(c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", []))
    return frozenset(re.findall(r"^(\w+)\s*(?::[^=]*)?=", "".join(cell["source"]), re.M))


def _load_setups(raw: Any) -> dict[str, dict[str, Any]]:
    """The config's ``setups``: a mapping name -> ExperimentConfig fields (strategy and n_agents
    required), or the short form, a list of {strategy, n_agents} named by ``setup_name``; missing:
    the paper's five. Names are unique and safe as folder names."""
    if raw is None:
        raw = [{"strategy": s, "n_agents": n} for s, n in PAPER_SETUPS]
    if isinstance(raw, list) and raw:
        named: dict[str, Any] = {}
        for i, s in enumerate(raw):
            if not isinstance(s, dict) or set(s) != {"strategy", "n_agents"}:
                raise _bad(f"setups[{i}]", s, "a mapping with exactly the keys strategy and n_agents")
            name = setup_name(str(s["strategy"]), s["n_agents"])
            if name in named:
                raise _bad(f"setups[{i}]", s, f"a setup not listed before (Table 1 column {name!r} repeats)")
            named[name] = s
        raw = named
    if not isinstance(raw, dict) or not raw:
        raise _bad(
            "setups", raw, "a non-empty mapping of name -> fields, or a list of {strategy, n_agents} mappings"
        )
    allowed = sorted(setup_keys() & train_parameters())
    setups: dict[str, dict[str, Any]] = {}
    for name, fields in raw.items():
        if not isinstance(name, str) or not re.fullmatch(SETUP_NAME, name):
            raise _bad("setup name", name, "letters, digits, '_', '.', '-' (no leading '.'): a folder name")
        if not isinstance(fields, dict) or not {"strategy", "n_agents"} <= set(fields):
            raise _bad(f"setups.{name}", fields, "a mapping with at least strategy and n_agents")
        unknown = sorted(set(fields) - set(allowed))
        if unknown:
            raise _bad(f"setups.{name} keys", unknown, "ExperimentConfig fields among " + ", ".join(allowed))
        setups[name] = dict(fields)
    return setups


def _bad(where: str, value: Any, allowed: str) -> WorkflowConfigError:
    return WorkflowConfigError(f"{where}={value!r} is not allowed: {allowed}")


def _env_list(key: str, envs: dict[str, Any], value: Any) -> list[str]:
    """The environments of ``envs`` that ``value`` names (None: all), in the config's order: a list of
    ids, or one string of ids separated by commas or spaces."""
    if value is None:
        return list(envs)
    names = [n for n in re.split(r"[\s,]+", value) if n] if isinstance(value, str) else value
    allowed = "environments of this config (" + ", ".join(envs) + "), as a list or one string"
    if not isinstance(names, list) or not names or not all(isinstance(n, str) and n in envs for n in names):
        raise _bad(key, value, allowed)
    return [e for e in envs if e in names]


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def load_grid(config: dict[str, Any], source: str = "config", check_env: bool = True) -> Grid:
    """Check ``config`` (a parsed workflow/config/<profile>.yaml) and expand its grid.

    Raises WorkflowConfigError (structure) or ConfigError (a cell's experiment config) with a
    message that starts with ``source`` and names the offending key and value.
    """
    try:
        return _load_grid(config, check_env)
    except (WorkflowConfigError, ConfigError) as err:
        raise type(err)(f"{source}: {err}") from None


def _load_grid(config: dict[str, Any], check_env: bool) -> Grid:
    if not isinstance(config, dict) or not config:
        raise _bad("config", config, "a mapping with keys " + ", ".join(TOP_KEYS))
    unknown = sorted(set(config) - set(TOP_KEYS))
    if unknown:
        raise _bad("config keys", unknown, "keys among " + ", ".join(TOP_KEYS))
    for key in ("profile", "seeds", "envs"):
        if key not in config:
            raise _bad(key, None, "a value (missing key)")

    profile = config["profile"]
    if not isinstance(profile, str) or not re.fullmatch(r"[A-Za-z0-9_.-]+", profile):
        raise _bad("profile", profile, "a name of letters, digits, '_', '.', '-'")

    seeds = config["seeds"]
    if (
        not isinstance(seeds, list)
        or not seeds
        or not all(_is_int(s) and s >= 0 for s in seeds)
        or len(set(seeds)) != len(seeds)
    ):
        raise _bad("seeds", seeds, "a non-empty list of distinct integers >= 0")

    plugins = config.get("plugins") or []
    if not isinstance(plugins, list) or not all(isinstance(m, str) and m for m in plugins):
        raise _bad("plugins", plugins, "a list of module names (each registers strategies when imported)")
    for module in plugins:
        try:
            importlib.import_module(module)
        except ImportError as err:
            raise _bad("plugins", module, f"an importable module ({err})") from None
    setups = _load_setups(config.get("setups"))

    defaults = config.get("defaults") or {}
    envs = config["envs"]
    if not isinstance(envs, dict) or not envs:
        raise _bad("envs", envs, "a non-empty mapping of environment id -> budget overrides")
    for where, mapping in [("defaults", defaults)] + [(f"envs.{e}", v or {}) for e, v in envs.items()]:
        if not isinstance(mapping, dict):
            raise _bad(where, mapping, "a mapping of budget keys")
        unknown = sorted(set(mapping) - set(BUDGET_KEYS) - set(RESOURCE_KEYS))
        if unknown:
            raise _bad(f"{where} keys", unknown, "keys among " + ", ".join(BUDGET_KEYS + RESOURCE_KEYS))
        for key in RESOURCE_KEYS:
            if key in mapping and not (_is_int(mapping[key]) and mapping[key] >= 1):
                raise _bad(f"{where}.{key}", mapping[key], "an integer >= 1")
        for key in sorted(set(mapping) & set(BUDGET_KEYS) - train_parameters()):
            raise _bad(f"{where}.{key}", mapping[key], f"unset: {TRAIN_NOTEBOOK.name} has no parameter {key}")

    agent_gifs = config.get("agent_gifs", False)
    if not (isinstance(agent_gifs, bool) or agent_gifs == "best_worst"):
        raise _bad("agent_gifs", agent_gifs, "true, false or best_worst")
    gif_envs = _env_list("agent_gif_envs", envs, config.get("agent_gif_envs"))
    envs = {e: v for e, v in envs.items() if e in _env_list("only_envs", envs, config.get("only_envs"))}

    grid = Grid(profile=profile, seeds=list(seeds), setups=setups, envs=list(envs), agent_gifs=agent_gifs)
    grid.agent_gif_envs = [e for e in gif_envs if e in envs]
    for env_id, overrides in envs.items():
        merged = {**defaults, **(overrides or {})}
        params = {k: merged[k] for k in BUDGET_KEYS if k in merged}
        resources = {k: merged[k] for k in RESOURCE_KEYS if k in merged}
        for k in ("episodes_per_agent", "validate_every", "val_episodes", "eval_episodes"):
            if k not in params:
                raise _bad(f"envs.{env_id}.{k}", None, "a value here or in defaults (missing key)")
        for n, (setup, fields) in enumerate(setups.items()):
            extra = {k: v for k, v in fields.items() if k not in ("strategy", "n_agents")}
            if setup != setup_name(fields["strategy"], fields["n_agents"]):
                extra["setup"] = setup
            strategy, n_agents = fields["strategy"], fields["n_agents"]
            for seed in seeds:
                cell = Cell(env_id, setup, strategy, n_agents, seed, {**params, **extra}, resources, plugins)
                cfg = ExperimentConfig(
                    env_id=env_id, strategy=strategy, n_agents=n_agents, seed=seed, **{**params, **extra}
                )
                try:
                    # The environment is checked once per environment (it builds one instance).
                    checked = cfg.validate(check_out_dir=False)
                    if check_env and n == 0 and seed == seeds[0]:
                        check_experiment(checked)
                except ConfigError as err:
                    raise ConfigError(f"envs.{env_id} (setup {setup}, seed {seed}): {err}") from None
                except TypeError as err:  # a value of a type the dataclass cannot take
                    raise _bad(f"envs.{env_id}", overrides, str(err)) from None
                grid.cells.append(cell)
    return grid
