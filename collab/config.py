"""Typed configuration: PPO hyperparameters per environment and one experiment (paper section 4.2).

Every value a run depends on lives in :class:`ExperimentConfig`; results depend only on
(config, seed). Bad values raise :class:`ConfigError` naming the field, its value and what is
allowed, before anything is written.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BACKENDS = ("auto", "envpool", "gymnasium")
NUMERICS = ("native", "portable")
#: Setup names are folder names: letters, digits, '_', '.', '-', not starting with '.'.
SETUP_NAME = r"[A-Za-z0-9_-][A-Za-z0-9_.-]*"
#: Fields earlier versions wrote into config.json, with the only value this version can reproduce.
RETIRED_FIELDS = {"compile_loss": False}
#: PPO settings earlier versions had (no configuration used them), with the value they reproduce.
RETIRED_PPO_FIELDS = {"anneal_lr": False}


class ConfigError(ValueError):
    """A configuration value is not allowed; the message names the field, value and what is allowed."""


def _fail(name: str, value: Any, allowed: str) -> None:
    raise ConfigError(f"{name}={value!r} is not allowed: {allowed}")


def _check_positive_int(name: str, value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        _fail(name, value, "an integer >= 1")


def check_choice(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    """Raise ConfigError unless ``value`` is one of ``allowed``."""
    if value not in allowed:
        _fail(name, value, f"one of {', '.join(allowed)}")


def check_sharing(c: Any, lam: Any) -> None:
    """Raise ConfigError unless c >= 0 and lambda >= 1 (paper eq. 1-2)."""
    if not isinstance(c, (int, float)) or not c >= 0:
        _fail("c", c, "a number >= 0")
    if not isinstance(lam, (int, float)) or not lam >= 1:
        _fail("lam", lam, "a number >= 1")


@dataclass(frozen=True)
class PPOConfig:
    """PPO hyperparameters of one agent (CleanRL names). lr and gamma default to the paper's values."""

    learning_rate: float = 5e-4
    """Adam step size (paper section 4.2: 0.0005)."""
    gamma: float = 0.99
    """Discount factor (paper section 4.2: 0.99)."""
    gae_lambda: float = 0.95
    """GAE lambda."""
    num_envs: int = 4
    """Environments per agent, stepped together."""
    num_steps: int = 128
    """Rollout length per environment between updates."""
    num_minibatches: int = 4
    """Minibatches per epoch (per agent)."""
    update_epochs: int = 4
    """Passes over each rollout."""
    clip_coef: float = 0.2
    """PPO ratio clip."""
    ent_coef: float = 0.0
    """Entropy bonus coefficient."""
    vf_coef: float = 0.5
    """Value loss coefficient."""
    max_grad_norm: float = 0.5
    """Per-agent gradient-norm clip."""
    norm_obs: bool = False
    """Running per-agent observation normalisation."""
    norm_reward: bool = False
    """Per-agent reward scaling by the running std of the discounted return."""
    hidden: int = 64
    """Width of the two hidden layers of actor and critic."""
    log_std_init: float = 0.0
    """Initial log standard deviation of the Gaussian policy (continuous actions)."""
    frame_skip: int = 1
    """Repeat each action this many times (CarRacing: 2, as rl-zoo)."""
    frame_stack: int = 1
    """Stack this many preprocessed frames (pixel observations)."""
    image_size: int = 64
    """Side of the grayscale square frames fed to the CNN (pixel observations)."""
    mask_actions: bool = False
    """Sample only legal actions where the environment defines them (Taxi: ``action_mask``)."""

    def validate(self) -> None:
        """Raise ConfigError on a value PPO cannot use."""
        for name in ("learning_rate", "gamma", "clip_coef", "max_grad_norm"):
            if not getattr(self, name) > 0:
                _fail(f"ppo.{name}", getattr(self, name), "a number > 0")
        if not 0 < self.gamma <= 1:
            _fail("ppo.gamma", self.gamma, "a number in (0, 1]")
        if not 0 <= self.gae_lambda <= 1:
            _fail("ppo.gae_lambda", self.gae_lambda, "a number in [0, 1]")
        for name in (
            "num_envs",
            "num_steps",
            "num_minibatches",
            "update_epochs",
            "hidden",
            "frame_skip",
            "frame_stack",
            "image_size",
        ):
            _check_positive_int(f"ppo.{name}", getattr(self, name))
        if (self.num_envs * self.num_steps) % self.num_minibatches:
            _fail(
                "ppo.num_minibatches",
                self.num_minibatches,
                f"a divisor of num_envs*num_steps={self.num_envs * self.num_steps}",
            )
        for name in ("ent_coef", "vf_coef"):
            if getattr(self, name) < 0:
                _fail(f"ppo.{name}", getattr(self, name), "a number >= 0")
        for name in ("norm_obs", "norm_reward", "mask_actions"):
            if not isinstance(getattr(self, name), bool):
                _fail(f"ppo.{name}", getattr(self, name), "True or False")


#: Per-environment PPO settings. Start: rl-zoo hyperparams/ppo.yml; lr and gamma: the paper's.
#: Deviations from the zoo are listed (with reasons) in the README's method section.
ENV_PPO: dict[str, PPOConfig] = {
    "Acrobot-v1": PPOConfig(
        gae_lambda=0.94, num_envs=4, num_steps=128, num_minibatches=4, update_epochs=4, norm_obs=True
    ),
    "Pendulum-v1": PPOConfig(
        gae_lambda=0.95,
        num_envs=4,
        num_steps=256,
        num_minibatches=8,
        update_epochs=10,
        norm_obs=True,
        norm_reward=True,
    ),
    "BipedalWalker-v3": PPOConfig(
        gae_lambda=0.95,
        num_envs=8,
        num_steps=256,
        num_minibatches=16,
        update_epochs=10,
        clip_coef=0.18,
        norm_obs=True,
        norm_reward=True,
    ),
    "LunarLander-v3": PPOConfig(
        gae_lambda=0.98, num_envs=4, num_steps=256, num_minibatches=8, update_epochs=4, ent_coef=0.01
    ),
    "CarRacing-v3": PPOConfig(
        gae_lambda=0.95,
        num_envs=4,
        num_steps=128,
        num_minibatches=4,
        update_epochs=4,
        norm_reward=True,
        log_std_init=-1.0,
        frame_skip=2,
        frame_stack=2,
        image_size=64,
    ),
    "Taxi-v4": PPOConfig(
        gae_lambda=0.95,
        num_envs=4,
        num_steps=256,
        num_minibatches=4,
        update_epochs=4,
        ent_coef=0.01,
        mask_actions=True,
    ),
}


def ppo_config_for(env_id: str, overrides: Mapping[str, Any] | None = None) -> PPOConfig:
    """PPO settings for ``env_id``: the tuned entry if there is one, else defaults.

    ``overrides`` (field name -> value) replace single settings; an unknown field or a value PPO
    cannot use raises ConfigError.
    """
    cfg = ENV_PPO.get(env_id, PPOConfig())
    if overrides is not None and not isinstance(overrides, Mapping):
        _fail("ppo", overrides, "a mapping of PPOConfig field -> value, e.g. {'ent_coef': 0.01}")
    if not overrides:
        return cfg
    check_ppo_fields(overrides)
    cfg = dataclasses.replace(cfg, **overrides)
    cfg.validate()
    return cfg


def ppo_from_dict(d: Mapping[str, Any]) -> PPOConfig:
    """A PPOConfig from its dict form (config.json, a checkpoint's metadata), earlier versions' too:
    retired settings (:data:`RETIRED_PPO_FIELDS`) are dropped when they hold the value this version
    reproduces and refused otherwise; an unknown key raises ConfigError."""
    d = dict(d)
    for key, value in RETIRED_PPO_FIELDS.items():
        if key in d:
            if d[key] != value:
                _fail(f"ppo.{key}", d[key], f"{value!r}: this version of collab no longer has it")
            del d[key]
    check_ppo_fields(d)
    return PPOConfig(**d)


def check_ppo_fields(d: Mapping[str, Any]) -> None:
    """Raise ConfigError unless every key of ``d`` is a PPOConfig field."""
    names = [f.name for f in dataclasses.fields(PPOConfig)]
    unknown = sorted(set(d) - set(names))
    if unknown:
        _fail("ppo settings", unknown, f"PPOConfig fields: {', '.join(names)}")


def parse_overrides(items: Iterable[str], prefix: str = "") -> dict[str, Any]:
    """Command-line overrides to a dict: ``["num_envs=16", "norm_obs=true"]`` -> ``{"num_envs": 16,
    "norm_obs": True}``. Values are JSON (numbers, true/false, quoted strings); every item must be
    ``{prefix}FIELD=VALUE``. Bad items raise ConfigError; field names are checked by ppo_config_for.
    """
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.startswith(prefix) or len(key) == len(prefix):
            _fail("override", item, f"{prefix}FIELD=VALUE, e.g. {prefix}num_envs=16")
        low = value.lower()
        try:
            out[key[len(prefix) :]] = json.loads(low if low in ("true", "false") else value)
        except json.JSONDecodeError:
            _fail(key, value, "a number, true/false or a quoted string")
    return out


@dataclass(frozen=True)
class ExperimentConfig:
    """One experiment: one environment, one strategy, one population size, one seed.

    The budget unit is the *training episode*: every agent of the run completes exactly
    ``episodes_per_agent`` training episodes (sequential: one agent, ``n_agents *
    episodes_per_agent``). Validation and (collaborative) sharing happen every
    ``validate_every`` episodes of each agent: one *round*.
    """

    env_id: str = "Acrobot-v1"
    """Gymnasium environment id (paper's six or any Box/Discrete environment)."""
    strategy: str = "collaborative"
    """A registered strategy (:mod:`collab.strategies`): the paper's independent, sequential and
    collaborative (section 4.2), Population Based Training (a baseline), or any plug-in."""
    n_agents: int = 2
    """Population size n (sequential: the budget multiplier, one agent trains n*k episodes)."""
    seed: int = 0
    """Master seed; agents, environments and evaluation derive their seeds from it."""
    episodes_per_agent: int = 20
    """k: training episodes per agent (paper: 5000)."""
    validate_every: int = 10
    """V: episodes between validations and sharing rounds (paper: 100)."""
    eval_episodes: int = 10
    """Final evaluation episodes of the selected policy (paper, Table 1: 10)."""
    val_episodes: int = 5
    """Episodes per validation of each agent."""
    reeval_episodes: int = 0
    """After training, evaluate every final agent and the selected checkpoint on this many episodes
    (seeded apart from training, validation and the final evaluation) into ``population_eval.csv``;
    0: off."""
    reselect_top: int = 0
    """0: select the checkpoint (agent, round) with the best validation return (the paper). k >= 2:
    keep the k best by validation return and select the one with the best mean return on
    ``reselect_episodes`` fresh episodes (seeded apart), which ``reselection.csv`` records; this
    corrects the winner's curse of picking the best of many noisy validations."""
    reselect_episodes: int = 0
    """Episodes of each candidate's re-validation (>= 1 with ``reselect_top``, else 0)."""
    c: float = 1.5
    """UCB exploration constant (eq. 1; paper: 1.5)."""
    lam: float = 1.0
    """Sharing threshold lambda (eq. 2; paper: 1)."""
    settings: Mapping[str, Any] | None = None
    """The strategy's own settings (:mod:`collab.strategies`): None for its defaults, or a mapping
    of some of them, e.g. ``{"rule": "sign_robust"}`` for collaborative training.
    Each can also be given as a keyword of its own, as earlier versions had them:
    ``ExperimentConfig(rule="sign_robust")`` (a keyword set to None is not given)."""
    checkpoint_every: int | None = None
    """None: no checkpoints (the paper). K >= 1: every K rounds the run saves its state to
    ``<out_dir>/resume.ckpt`` and its training environments start anew, so that a rerun continues it
    bit for bit; results depend on K (:mod:`collab.resume`)."""
    setup: str | None = None
    """Name of the setup (Table 1 column, run folder) this run belongs to; None: derived from
    ``strategy`` and ``n_agents`` (``independent``, ``collaborative_4``, ...)."""
    max_episode_steps: int | None = None
    """Episode time limit in frames (None: the environment's registered one; small values make smoke
    runs cheap). Required for an environment that registers none (e.g. CliffWalking-v1): ConfigError."""
    backend: str = "auto"
    """auto (envpool where installed, for the ids whose equivalence with Gymnasium is tested,
    ``collab.envpool_backend.ENVPOOL_TESTED``; Gymnasium otherwise) | envpool | gymnasium."""
    device: str = "cpu"
    """torch device: cpu, or cuda where one is present."""
    torch_threads: int = 1
    """torch intra-op threads (1 is fastest for small networks)."""
    env_threads: int = 1
    """envpool worker threads stepping the environments (results do not depend on it; more helps
    environments that are slow to step, such as CarRacing, where cores are free)."""
    numerics: str = "native"
    """native (PyTorch picks its kernels per CPU: fastest, bit-identical on the same machine) |
    portable (pinned, vendor-independent kernels; one mode per process).
    See :mod:`collab.numerics`."""
    out_dir: str = "runs/example"
    """Folder for curves.csv, final.csv, sharing.csv and config.json."""
    ppo: PPOConfig | Mapping[str, Any] | None = field(default=None)
    """PPO settings; None takes the per-environment defaults (collab.config.ENV_PPO), a mapping
    overrides some of them (e.g. ``{"ent_coef": 0.01}``)."""

    def resolved(self) -> ExperimentConfig:
        """A copy with ``ppo`` filled in from the per-environment table (a mapping of overrides is
        applied to it) and ``settings`` with every setting of the strategy (the given ones over its
        defaults); a bad key or value raises ConfigError."""
        from collab.strategies import resolve_settings, settings_dict

        ppo = self.ppo if isinstance(self.ppo, PPOConfig) else ppo_config_for(self.env_id, self.ppo)
        settings = settings_dict(resolve_settings(self.strategy, self.settings))
        return dataclasses.replace(self, ppo=ppo, settings=settings)

    def setting(self, name: str) -> Any:
        """The strategy setting ``name``: as given, else the strategy's default."""
        from collab.strategies import resolve_settings

        return getattr(resolve_settings(self.strategy, self.settings), name)

    def __getattr__(self, name: str) -> Any:
        # Earlier versions had the strategies' settings as fields (cfg.rule, cfg.stats_after_copy, ...):
        # the value given (in ``settings`` or as a keyword), else the strategy's default. No check here.
        if name.startswith("_"):
            raise AttributeError(name)
        from collab.strategies import setting_owners

        owners = setting_owners(name)
        if not owners:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        given = self.__dict__.get("settings") or {}
        if name in given:
            return given[name]
        own = [o for o in owners if o.name == self.__dict__.get("strategy")] or owners
        return next(f.default for f in dataclasses.fields(own[0].Settings) if f.name == name)

    def validate(self, check_out_dir: bool = True) -> ExperimentConfig:
        """Check every field; raise ConfigError naming the first bad one. Returns ``self.resolved()``.

        Field checks only: whether the environment exists, has a time limit and supports action
        masks is checked by :func:`collab.spaces.check_experiment`, which :func:`collab.run_experiment`
        calls after this."""
        from collab.strategies import get_strategy, resolve_settings

        strategy = get_strategy(self.strategy)
        for name in ("n_agents", "episodes_per_agent", "validate_every", "eval_episodes", "val_episodes"):
            _check_positive_int(name, getattr(self, name))
        r = self.reeval_episodes
        if not isinstance(r, int) or isinstance(r, bool) or r < 0:
            _fail("reeval_episodes", r, "an integer >= 0 (0: no re-evaluation)")
        k, m = self.reselect_top, self.reselect_episodes
        if not isinstance(k, int) or isinstance(k, bool) or k < 0 or k == 1:
            _fail("reselect_top", k, "0 (the paper's selection) or an integer >= 2")
        if not isinstance(m, int) or isinstance(m, bool) or (m < 1 if k else m != 0):
            _fail("reselect_episodes", m, "an integer >= 1 with reselect_top >= 2, else 0")
        ce = self.checkpoint_every
        if ce is not None and (not isinstance(ce, int) or isinstance(ce, bool) or ce < 1):
            _fail(
                "checkpoint_every",
                ce,
                "None (no checkpoints) or an integer >= 1 (rounds between checkpoints)",
            )
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or self.seed < 0:
            _fail("seed", self.seed, "an integer >= 0")
        check_sharing(self.c, self.lam)
        if self.max_episode_steps is not None and (
            not isinstance(self.max_episode_steps, int) or self.max_episode_steps < 1
        ):
            _fail("max_episode_steps", self.max_episode_steps, "None or an integer >= 1")
        check_choice("backend", self.backend, BACKENDS)
        check_choice("numerics", self.numerics, NUMERICS)
        for name in ("torch_threads", "env_threads"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                _fail(name, v, "an integer >= 1")
        if not (self.device == "cpu" or str(self.device).startswith("cuda")):
            _fail("device", self.device, "'cpu' or 'cuda[:N]'")
        if self.setup is not None and not (
            isinstance(self.setup, str) and re.fullmatch(SETUP_NAME, self.setup)
        ):
            _fail(
                "setup",
                self.setup,
                "None or a name of letters, digits, '_', '.', '-' (not starting with '.')",
            )
        if check_out_dir:
            check_writable(self.out_dir)
        cfg = self.resolved()
        assert cfg.ppo is not None
        cfg.ppo.validate()
        strategy.check(cfg, resolve_settings(cfg.strategy, cfg.settings))
        return cfg

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form (for config.json); ``checkpoint_every`` only where set (as earlier versions)."""
        d = dataclasses.asdict(self.resolved())
        if d["checkpoint_every"] is None:
            del d["checkpoint_every"]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ExperimentConfig:
        """Inverse of :meth:`to_dict` (whose configuration is resolved: ``ppo`` and ``settings`` in
        full); unknown keys raise ConfigError.

        Loads the config.json files of earlier versions too: their strategy settings as top-level
        keys (``rule``, ``stats_after_copy``, ...), and retired fields (:data:`RETIRED_FIELDS`,
        :data:`RETIRED_PPO_FIELDS`) dropped when they hold the value this version reproduces
        (refused otherwise).
        """
        from collab.strategies import setting_owners

        names = {f.name for f in dataclasses.fields(cls)}
        d = dict(d)
        for key, value in RETIRED_FIELDS.items():
            if key in d:
                if d[key] != value:
                    _fail(key, d[key], f"{value!r}: this version of collab no longer offers {key}")
                del d[key]
        unknown = sorted(k for k in set(d) - names if not setting_owners(k))
        if unknown:
            _fail("config keys", unknown, f"names among {sorted(names)} or a strategy's settings")
        if isinstance(d.get("ppo"), dict):
            d["ppo"] = ppo_from_dict(d["ppo"])
        return cls(**d)


_FIELD_NAMES = frozenset(f.name for f in dataclasses.fields(ExperimentConfig))
_fields_init = ExperimentConfig.__init__


def _init_with_setting_keywords(self: ExperimentConfig, *args: Any, **kwargs: Any) -> None:
    """ExperimentConfig's constructor: the fields, and any strategy setting as a keyword of its own
    (the form earlier versions had: ``rule=...``, ``stats_after_copy=...``), moved into ``settings``.

    A keyword set to None is not given, and a keyword overrides the same key of ``settings`` (so
    ``dataclasses.replace(cfg, rule=...)`` changes one setting). A setting of another strategy than
    the run's is dropped when it holds that strategy's default (older config.json files pass them
    all) and otherwise kept, so that validation names it."""
    extra = {k: kwargs.pop(k) for k in list(kwargs) if k not in _FIELD_NAMES}
    _fields_init(self, *args, **kwargs)
    if isinstance(self.settings, Mapping):
        object.__setattr__(self, "settings", dict(self.settings))  # a copy: the config stays as made
    extra = {k: v for k, v in extra.items() if v is not None}
    if not extra:
        return
    from collab.strategies import _REGISTRY, at_defaults, setting_owners

    own = _REGISTRY.get(self.strategy)
    own_names = {f.name for f in dataclasses.fields(own.Settings)} if own else set()
    settings = dict(self.settings or {})
    for key, value in extra.items():
        owners = setting_owners(key)
        if not owners:
            raise TypeError(
                f"ExperimentConfig() got an unexpected keyword argument {key!r} (not a field, nor a "
                "setting of a registered strategy: import the module that registers it first)"
            )
        if key not in own_names and own is not None and at_defaults(key, value):
            settings.pop(key, None)  # another strategy's setting at its default: not this run's business
            continue
        settings[key] = value  # a keyword overrides the same key of ``settings``
    object.__setattr__(self, "settings", settings)


_init_with_setting_keywords.__wrapped__ = _fields_init  # type: ignore[attr-defined]
ExperimentConfig.__init__ = _init_with_setting_keywords  # type: ignore[method-assign]


def check_writable(out_dir: str | os.PathLike) -> None:
    """Raise ConfigError unless ``out_dir`` exists as a writable folder or can be created.

    Creates nothing: walks up to the first existing ancestor and checks it.
    """
    p = Path(out_dir)
    if str(out_dir) == "":
        _fail("out_dir", out_dir, "a non-empty path to a writable folder")
    probe = p
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        _fail("out_dir", str(out_dir), f"a folder path ({probe} is a file)")
    if not os.access(probe, os.W_OK | os.X_OK):
        _fail("out_dir", str(out_dir), f"a writable folder ({probe} is not writable)")
