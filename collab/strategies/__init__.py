"""Training strategies as plug-ins, and their registry.

A strategy is one module: a subclass of :class:`Strategy` registered with :func:`register`. It says

* its **budget rule**: how many agents train (:meth:`Strategy.population`) and how many training
  episodes each of them gets (:meth:`Strategy.budget`);
* its **settings**: a frozen dataclass ``Settings`` whose fields are typed, have defaults and are
  checked by its ``validate()`` (raising :class:`collab.ConfigError`). They reach it as one mapping,
  ``ExperimentConfig(settings={...})``, the notebook's ``settings`` parameter or the workflow's
  ``settings`` key, validated like the ``ppo`` mapping;
* its **decision** at the end of every round (:meth:`Strategy.decide`): who copies whom, new
  per-agent hyperparameters, and the events ``sharing.csv`` records;
* what the analysis needs to know: whether it copies parameters between agents (``shares``) and its
  ``role`` in the comparisons (``"independent"``: the matched-compute baseline of the same number of
  agents; ``"sequential"``: one agent with the whole budget; ``"sharing_baseline"``: a sharing
  method every other one is also compared with; ``"method"``: anything else).

Setting names share one namespace (each can be given as a keyword of ``ExperimentConfig``), so a
strategy's own settings best carry its name (``pbt_quantile``) unless they mean the same thing as
another strategy's; none may be named like an ExperimentConfig field.

The experiment runner (:mod:`collab.experiment`) knows no strategy by name: it asks the registry.
The built-in strategies are ``independent``, ``sequential``, ``collaborative`` (the paper's UCB
sharing, :mod:`collab.strategies.collaborative`) and ``pbt`` (Population Based Training, a baseline,
:mod:`collab.strategies.pbt`). ``docs/method.md`` shows how to add one.

Nothing here imports torch or the environments: the analysis code asks the registry too.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from collab.config import ConfigError

ROLES = ("independent", "sequential", "method", "sharing_baseline")


@dataclass(frozen=True)
class NoSettings:
    """The settings of a strategy that has none."""

    def validate(self) -> None:
        """Nothing to check."""


@dataclass(frozen=True)
class RoundInfo:
    """What a strategy sees at the end of a round, after validation."""

    round: int
    """k, the round that just ended (1-based)."""
    episode: int
    """Training episodes of the agent that has the fewest so far (``sharing.csv``'s ``episode``)."""
    train_returns: list[list[float]]
    """Every agent's training-episode returns of this round (an agent may have none)."""
    val_returns: np.ndarray
    """Every agent's mean validation return this round."""


@dataclass
class Decision:
    """A strategy's decision for one round.

    ``sources[j]`` is the agent whose state (parameters, optimiser, normalisation) agent j takes
    (``j`` itself: none); all copies read the states before any copy. ``hyperparameters``: new
    per-agent values by name (``lr``, ``ent_coef``), applied after the copies. ``events``: one
    ``sharing.csv`` row per copy (``round``, ``episode``, ``source``, ``target`` and the strategy's
    score columns)."""

    sources: np.ndarray
    events: list[dict[str, Any]] = field(default_factory=list)
    hyperparameters: dict[str, np.ndarray] | None = None

    @classmethod
    def none(cls, n: int) -> Decision:
        """No copy, no change."""
        return cls(np.arange(n))

    def copies(self) -> bool:
        """Whether some agent takes another's state."""
        return bool((np.asarray(self.sources) != np.arange(len(self.sources))).any())


class Strategy:
    """Base class of a strategy plug-in (see the module docstring). A subclass sets the class
    attributes, and overrides :meth:`decide` (and the budget rule where it differs)."""

    #: The name configs, notebooks and workflow configs use (``ExperimentConfig.strategy``).
    name: ClassVar[str] = ""
    #: Typed, validated settings (a frozen dataclass with defaults and ``validate()``).
    Settings: ClassVar[type] = NoSettings
    #: Whether the strategy copies parameters between agents (rows in ``sharing.csv``).
    shares: ClassVar[bool] = False
    #: Its part in the comparisons (:data:`ROLES`).
    role: ClassVar[str] = "method"
    #: ``sharing.csv`` columns of its own, after :data:`collab.results.SHARE_SCORE_COLUMNS`.
    score_columns: ClassVar[tuple[str, ...]] = ()
    #: The label its seed is derived from (``derive_seed(run seed, seed_label)``; default: its name),
    #: so that its random choices never share a stream with the agents' or the environments'.
    #: Collaborative training keeps the label it always had, ``"sharing"``.
    seed_label: ClassVar[str] = ""

    def __init__(
        self, cfg: Any, settings: Any, n_agents: int, hyperparameters: Mapping[str, float], seed: int
    ):
        """One run's state: ``cfg`` the resolved ExperimentConfig, ``settings`` a validated
        ``Settings``, ``n_agents`` the agents that train, ``hyperparameters`` the agents' starting
        ``lr`` and ``ent_coef``, ``seed`` this strategy's own seed for any random choice (e.g.
        ``np.random.default_rng(self.seed)``)."""
        self.cfg, self.settings, self.n = cfg, settings, n_agents
        self.hyperparameters, self.seed = dict(hyperparameters), seed

    @classmethod
    def population(cls, cfg: Any) -> int:
        """Agents that train (default: ``n_agents``)."""
        return int(cfg.n_agents)

    @classmethod
    def budget(cls, cfg: Any) -> int:
        """Training episodes of each agent that trains (default: ``episodes_per_agent``)."""
        return int(cfg.episodes_per_agent)

    @classmethod
    def check(cls, cfg: Any, settings: Any) -> None:
        """Checks that need more of the config than the settings (e.g. a population size)."""

    def curve_columns(self) -> list[dict[str, float]]:
        """Per agent, extra ``curves.csv`` columns for the round that just trained (default: none).
        Called before :meth:`decide` of the same round (e.g. the hyperparameters it trained with)."""
        return [{} for _ in range(self.n)]

    def decide(self, info: RoundInfo) -> Decision:
        """The round's copies and changes (default: none)."""
        return Decision.none(self.n)

    def state(self) -> dict[str, Any]:
        """What the rest of a run depends on, for a resumable run's checkpoint (:mod:`collab.resume`):
        by default every attribute but ``cfg`` and ``settings``, which must be picklable (NumPy
        arrays and generators are). Override together with :meth:`load_state` where that does not hold."""
        return {k: v for k, v in vars(self).items() if k not in ("cfg", "settings")}

    def load_state(self, state: dict[str, Any]) -> None:
        """Continue from a :meth:`state` of the same strategy with the same configuration."""
        vars(self).update(state)


_REGISTRY: dict[str, type[Strategy]] = {}


def register(cls: type[Strategy]) -> type[Strategy]:
    """Register a strategy class under ``cls.name`` (a decorator); a name registered twice by two
    different classes, a missing name, a bad role or settings that are not a dataclass raise."""
    if not (isinstance(cls, type) and issubclass(cls, Strategy)):
        raise TypeError(f"{cls!r} is not a collab.strategies.Strategy subclass")
    if not cls.name or not cls.name.replace("_", "").isalnum():
        raise ValueError(f"strategy name {cls.name!r}: letters, digits and '_'")
    if cls.role not in ROLES:
        raise ValueError(f"{cls.name}: role={cls.role!r} is not one of {', '.join(ROLES)}")
    if not dataclasses.is_dataclass(cls.Settings) or not hasattr(cls.Settings, "validate"):
        raise TypeError(f"{cls.name}: Settings must be a dataclass with a validate() method")
    from collab.config import ExperimentConfig

    fields = {f.name for f in dataclasses.fields(ExperimentConfig)}
    clash = sorted(fields & {f.name for f in dataclasses.fields(cls.Settings)})
    if clash:
        raise ValueError(f"{cls.name}: settings {clash} are ExperimentConfig fields; name them otherwise")
    known = _REGISTRY.get(cls.name)
    if known is not None and (known.__module__, known.__qualname__) != (cls.__module__, cls.__qualname__):
        where = f"{known.__module__}.{known.__qualname__}"
        raise ValueError(f"strategy {cls.name!r} is already registered ({where})")
    _REGISTRY[cls.name] = cls
    return cls


def strategy_names() -> tuple[str, ...]:
    """The registered strategies, in registration order."""
    return tuple(_REGISTRY)


def get_strategy(name: Any) -> type[Strategy]:
    """The strategy registered as ``name``; ConfigError naming the registered ones otherwise."""
    if not isinstance(name, str) or name not in _REGISTRY:
        raise ConfigError(f"strategy={name!r} is not allowed: one of {', '.join(_REGISTRY)}")
    return _REGISTRY[name]


def shares(name: str) -> bool:
    """Whether strategy ``name`` copies parameters between agents (unknown names: False)."""
    cls = _REGISTRY.get(name)
    return bool(cls and cls.shares)


def role(name: str) -> str:
    """Strategy ``name``'s role in the comparisons (unknown names: ``"method"``)."""
    cls = _REGISTRY.get(name)
    return cls.role if cls else "method"


def setting_names(name: str) -> list[str]:
    """The settings of strategy ``name`` (ConfigError for an unknown strategy)."""
    return [f.name for f in dataclasses.fields(get_strategy(name).Settings)]


def setting_owners(key: str) -> list[type[Strategy]]:
    """The registered strategies that have a setting ``key``."""
    return [cls for cls in _REGISTRY.values() if key in {f.name for f in dataclasses.fields(cls.Settings)}]


def resolve_settings(name: str, given: Mapping[str, Any] | None) -> Any:
    """Strategy ``name``'s validated ``Settings``: its defaults with ``given`` over them.

    An unknown key or a bad value raises ConfigError naming it and what is allowed."""
    cls = get_strategy(name)
    if given is not None and not isinstance(given, Mapping):
        raise ConfigError(f"settings={given!r} is not allowed: a mapping of {name}'s settings, or None")
    given = dict(given or {})
    names = setting_names(name)
    for key in [k for k in given if k not in names and setting_owners(k)]:
        if at_defaults(key, given[key]):
            del given[key]  # another strategy's setting at its default (e.g. after replace(strategy=...))
    unknown = sorted(set(given) - set(names))
    if unknown:
        owners = {k: [c.name for c in setting_owners(k)] for k in unknown}
        where = "; ".join(f"{k} is a setting of {', '.join(o)}" for k, o in owners.items() if o)
        raise ConfigError(
            f"settings={unknown} are not allowed with strategy={name!r}: its settings are "
            f"{', '.join(names) or 'none'}" + (f" ({where})" if where else "")
        )
    settings = cls.Settings(**given)
    settings.validate()
    return settings


def at_defaults(key: str, value: Any) -> bool:
    """Whether ``value`` is ``key``'s default in every registered strategy that has a setting ``key``."""
    defaults = [
        f.default for c in setting_owners(key) for f in dataclasses.fields(c.Settings) if f.name == key
    ]
    return all(value == d and type(value) is type(d) for d in defaults)


def settings_dict(settings: Any) -> dict[str, Any]:
    """A ``Settings`` instance as a plain dict (for config.json)."""
    return dataclasses.asdict(settings)


# The built-in strategies register themselves on import, in this order (the paper's, then PBT).
for _module in ("independent", "sequential", "collaborative", "pbt"):
    importlib.import_module(f"collab.strategies.{_module}")
