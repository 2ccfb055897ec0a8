"""Setups: the paper's five and any others a workflow config names, their order, kind and baselines.

A setup is a name plus the ``ExperimentConfig`` fields it sets (at least ``strategy`` and
``n_agents``). A profile's setups come from ``data/<profile>/setups.json`` where the workflow wrote
it (a JSON list, in the config's order, of objects ``{"name", "strategy", "n_agents", ...}``, read by
:func:`collab.analysis.io.load_setups`); otherwise from the result frames' key columns (setup,
strategy, n_agents), ordered by :func:`default_order`: the paper's five in the paper's order where
present, then the others in order of first appearance. Every table and figure is ordered by
:func:`setup_order`; the paper's facts (its Table 1, its claims) apply to its five setups by name.

Sharing setups are those whose strategy copies agents' parameters (:func:`sharing_strategy`: the
registry says so, :mod:`collab.strategies`). A setup's *matched-compute baseline* is the setup of the
independent role (:func:`collab.strategies.role`) with the same number of agents
(:func:`matched_baselines`): its agents train the same episodes in total.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pandas as pd

from collab.paper import SETUP_LABELS, SETUPS
from collab.strategies import role, shares


def sharing_strategy(strategy: Any) -> bool:
    """Whether ``strategy`` (a name) copies parameters between agents, as its plug-in declares."""
    return isinstance(strategy, str) and shares(strategy)


def independent_strategy(strategy: Any) -> bool:
    """Whether ``strategy`` is a matched-compute baseline (the role of independent training)."""
    return isinstance(strategy, str) and role(strategy) == "independent"


def sharing_strategies(names: Iterable[Any]) -> list[str]:
    """Those of ``names`` that share (for ``isin`` on a frame's ``strategy`` column)."""
    return [n for n in dict.fromkeys(names) if sharing_strategy(n)]


#: The paper's setting, the second reference every setup is compared with.
PAPER_SETTING = "collaborative_8"

#: One setup: {"name", "strategy", "n_agents", plus any other ExperimentConfig field it sets}.
Setup = dict[str, Any]


def default_order(names: Iterable[str]) -> list[str]:
    """The paper's five in the paper's order where present, then the others in order of first appearance."""
    found = list(dict.fromkeys(str(n) for n in names))
    return [s for s in SETUPS if s in found] + [s for s in found if s not in SETUPS]


def setup_order(names: Iterable[str], setups: Sequence[str] | None = None) -> list[str]:
    """``setups`` in its order (all of them), then the rest of ``names`` in :func:`default_order`.

    Without ``setups``: :func:`default_order` of ``names``.
    """
    first = list(dict.fromkeys(setups or ()))
    return first + [s for s in default_order(names) if s not in first]


def present_setups(df: pd.DataFrame, setups: Sequence[str] | None = None) -> list[str]:
    """The setups of ``df["setup"]`` in :func:`setup_order` (given ones absent from ``df`` left out)."""
    found = list(dict.fromkeys(df["setup"])) if "setup" in df.columns and len(df) else []
    return [s for s in setup_order(found, setups) if s in found]


def setup_label(name: str) -> str:
    """The label a table or figure prints: the paper's (``SETUP_LABELS``) for its five, else the name."""
    return SETUP_LABELS.get(name, name)


def setups_from_frames(*frames: pd.DataFrame) -> list[Setup]:
    """{"name", "strategy", "n_agents"} of every setup in ``frames`` (first row of each), in
    :func:`default_order` of first appearance (``frames`` in the order given)."""
    found: dict[str, Setup] = {}
    for df in frames:
        if df is None or df.empty or "setup" not in df.columns:
            continue
        cols = [c for c in ("setup", "strategy", "n_agents") if c in df.columns]
        for rec in df[cols].drop_duplicates("setup").to_dict("records"):
            name = str(rec["setup"])
            if name in found:
                continue
            info: Setup = {"name": name}
            if "strategy" in rec:
                info["strategy"] = str(rec["strategy"])
            if "n_agents" in rec and pd.notna(rec["n_agents"]):
                info["n_agents"] = int(rec["n_agents"])
            found[name] = info
    return [found[n] for n in default_order(found)]


def merge_setups(
    declared: Sequence[Mapping[str, Any]] | None, found: Sequence[Mapping[str, Any]]
) -> list[Setup]:
    """The declared setups in their order (strategy, n_agents filled from ``found`` where missing), then the
    setups found in the data but not declared, in the order of ``found``."""
    by_name = {s["name"]: dict(s) for s in found}
    out: list[Setup] = []
    for s in declared or ():
        out.append(by_name.get(s["name"], {}) | dict(s))
    names = {s["name"] for s in out}
    return out + [dict(s) for s in found if s["name"] not in names]


def shares_agents(setup: str, baseline: str) -> bool:
    """Whether ``setup`` trains a subset of ``baseline``'s agents, so that the two are not independent
    samples: ``independent_<k>`` against ``independent`` (the same seeds train their first k agents
    identically)."""
    return baseline == "independent" and setup.startswith("independent_")


def setup_names(setups: Sequence[Mapping[str, Any]]) -> list[str]:
    """The names of ``setups``, in order."""
    return [str(s["name"]) for s in setups]


def sharing_setups(setups: Sequence[Mapping[str, Any]]) -> list[str]:
    """The names of the setups whose strategy shares parameters (:func:`sharing_strategy`), in order."""
    return [str(s["name"]) for s in setups if sharing_strategy(s.get("strategy"))]


def sharing_setups_in(df: pd.DataFrame, setups: Sequence[str] | None = None) -> list[str]:
    """The setups of a frame with a ``strategy`` column whose strategy shares parameters, in order."""
    if df.empty or "strategy" not in df.columns:
        return []
    found = df.loc[df["strategy"].isin(sharing_strategies(df["strategy"])), "setup"]
    return present_setups(pd.DataFrame({"setup": found}), setups)


def matched_baselines(setups: Sequence[Mapping[str, Any]]) -> dict[str, str | None]:
    """Per setup that is not independent: the first independent setup with the same ``n_agents`` (None: none).

    Its agents train as many episodes in total as the setup's (sequential: one agent, n x k episodes).
    """
    indep = [s for s in setups if independent_strategy(s.get("strategy"))]
    out: dict[str, str | None] = {}
    for s in setups:
        if independent_strategy(s.get("strategy")):
            continue
        n = s.get("n_agents")
        same = [b["name"] for b in indep if n is not None and b.get("n_agents") == n]
        out[str(s["name"])] = same[0] if same else None
    return out


def setups_frame(setups: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """The setups as a table: setup, label, strategy, n_agents, matched_baseline, then every other field
    any setup sets (in order of first appearance; blank where a setup leaves it at its default)."""
    base = matched_baselines(setups)
    extra = list(dict.fromkeys(k for s in setups for k in s if k not in ("name", "strategy", "n_agents")))
    rows = []
    for s in setups:
        row = {
            "setup": s["name"],
            "label": setup_label(s["name"]),
            "strategy": s.get("strategy", ""),
            "n_agents": s.get("n_agents"),
            "matched_baseline": base.get(s["name"]) or "",
        }
        rows.append(row | {k: s.get(k, "") for k in extra})
    cols = ["setup", "label", "strategy", "n_agents", "matched_baseline", *extra]
    return pd.DataFrame(rows, columns=cols)
