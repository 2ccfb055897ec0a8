"""Agent checkpoints: a run's selected policy and final population, as safetensors files.

Every run folder holds two checkpoint files (written by :func:`collab.run_experiment`, before
``config.json``):

* ``selected.safetensors``: the selected checkpoint (agent, round) that ``final.csv`` evaluates;
* ``population.safetensors``: every agent at the end of training (after the last round's sharing).

A file holds what an agent needs to act, no optimiser state: the network's parameters
(``net.<name>``, float32) and, with ``norm_obs``, the observation-normalisation statistics
(``obs_rms.mean``, ``obs_rms.var``, ``obs_rms.count``, float64). Every tensor has the agent axis
first (one row per agent in the file). The header's metadata (key ``collab``, a JSON object) says
what the agents act in: the environment id, its time limit, the preprocessing (frame skip, frame
stack, image size), the action-mask setting and every PPO setting (:class:`collab.PPOConfig`), plus
which agents and rounds the rows are. safetensors files hold no code: loading one runs nothing.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from collab.config import PPOConfig, ppo_from_dict
from collab.ppo import PopulationPPO
from collab.results import CHECKPOINT_FILES
from collab.spaces import EnvSpec, env_spec

#: Version of the checkpoint layout (metadata key ``format``).
FORMAT = 1
SELECTED, POPULATION = CHECKPOINT_FILES
_META_KEY = "collab"
_OBS_RMS = ("obs_rms.mean", "obs_rms.var", "obs_rms.count")


class CheckpointError(ValueError):
    """A checkpoint is missing, unreadable, for another environment, or an agent is not in it; the
    message names the file or value and what is allowed."""


@dataclass
class Checkpoint:
    """The agents of one checkpoint file: ``tensors`` (agent axis first) and ``meta`` (see module doc)."""

    path: Path
    meta: dict[str, Any]
    tensors: dict[str, torch.Tensor]

    @property
    def n_agents(self) -> int:
        """Rows (agents) in the file."""
        return len(self.meta["agents"])

    @property
    def ppo(self) -> PPOConfig:
        """The agents' PPO settings."""
        return ppo_from_dict(self.meta["ppo"])

    @property
    def spec(self) -> EnvSpec:
        """The preprocessed observation and action layout the agents act on."""
        ppo = self.ppo
        return env_spec(self.meta["env_id"], ppo.frame_stack, ppo.image_size)


def agent_tensors(agents: PopulationPPO, rows: Sequence[int]) -> dict[str, torch.Tensor]:
    """What agents ``rows`` of ``agents`` need to act, each tensor with one row per agent (on the CPU)."""
    idx = torch.as_tensor(list(rows), dtype=torch.long)
    with torch.no_grad():
        out = {f"net.{name}": p.detach().cpu()[idx].contiguous() for name, p in agents.net.named_parameters()}
        state = agents.state_tensors()
        for key in _OBS_RMS:
            if key in state:
                out[key] = state[key].detach().cpu()[idx].contiguous()
    return out


def checkpoint_bytes(
    agents: PopulationPPO,
    rows: Sequence[int],
    *,
    kind: str,
    env_id: str,
    time_limit: int,
    max_episode_steps: int | None,
    agent_ids: Sequence[int],
    rounds: Sequence[int],
    val_returns: Sequence[float],
    run: dict[str, Any],
) -> bytes:
    """The safetensors file of agents ``rows`` of ``agents`` (``kind``: ``selected`` or ``population``).

    ``agent_ids``, ``rounds`` and ``val_returns`` describe each row (the agent's index in the run, the
    round its state comes from, its validation return); ``run`` holds the run's keys (strategy,
    n_agents, seed) for reference.
    """
    from collab import __version__

    meta = {
        "format": FORMAT,
        "kind": kind,
        "env_id": env_id,
        "time_limit": int(time_limit),
        "max_episode_steps": max_episode_steps,
        "ppo": dataclasses.asdict(agents.cfg),
        "obs_kind": agents.spec.obs_kind,
        "obs_shape": list(agents.spec.obs_shape),
        "discrete": agents.spec.discrete,
        "action_dim": agents.spec.action_dim,
        "agents": [int(a) for a in agent_ids],
        "rounds": [int(r) for r in rounds],
        "val_returns": [float(v) for v in val_returns],
        "run": run,
        "collab": __version__,
    }
    tensors = agent_tensors(agents, rows)
    return st_save(tensors, metadata={_META_KEY: json.dumps(meta, sort_keys=True)})


def _fail(path: Path, why: str) -> CheckpointError:
    return CheckpointError(f"{path}: {why}")


def read_checkpoint(path: str | os.PathLike, env_id: str | None = None) -> Checkpoint:
    """Read and check a checkpoint file; with ``env_id``, also that it is for that environment.

    Raises :class:`CheckpointError` naming the file: missing, truncated or not a safetensors file,
    written by something else, for another environment, or tensors that do not fit the network its
    settings describe.
    """
    path = Path(path)
    if not path.is_file():
        raise _fail(
            path,
            "not found: this run folder has no saved agents (runs made before checkpoints were saved "
            f"keep only their CSVs; rerun the cell to get {', '.join(CHECKPOINT_FILES)})",
        )
    return parse_checkpoint(path.read_bytes(), path, env_id)


def parse_checkpoint(data: bytes, path: str | os.PathLike, env_id: str | None = None) -> Checkpoint:
    """:func:`read_checkpoint` of a file's content ``data`` (``path`` names it in errors)."""
    path = Path(path)
    try:
        tensors = st_load(data)
        header_len = int.from_bytes(data[:8], "little")
        header = json.loads(data[8 : 8 + header_len])
    except (SafetensorError, ValueError, OverflowError, UnicodeDecodeError) as e:
        raise _fail(path, f"not a readable safetensors checkpoint (truncated or corrupt file: {e})") from None
    raw = (header.get("__metadata__") or {}).get(_META_KEY)
    try:
        meta = json.loads(raw) if raw is not None else None
    except json.JSONDecodeError:
        meta = None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise _fail(path, f"not a collab checkpoint (metadata '{_META_KEY}' with format {FORMAT} missing)")
    try:
        ppo_from_dict(meta["ppo"])
        ckpt = Checkpoint(path, meta, tensors)
        spec = ckpt.spec
        n = ckpt.n_agents
    except Exception as e:  # a field missing or of the wrong kind, an environment that cannot be built
        raise _fail(path, f"checkpoint metadata that this version of collab cannot use ({e})") from None
    if env_id is not None and meta["env_id"] != env_id:
        raise _fail(
            path,
            f"a checkpoint for env_id={meta['env_id']!r}, but the run is for env_id={env_id!r}: "
            "only that run's own checkpoints are allowed",
        )
    recorded = (meta["obs_kind"], tuple(meta["obs_shape"]), meta["discrete"], meta["action_dim"])
    here = (spec.obs_kind, spec.obs_shape, spec.discrete, spec.action_dim)
    if recorded != here:
        raise _fail(
            path,
            f"agents for observations/actions {recorded}, but {meta['env_id']} has {here} here "
            "(another Gymnasium version?)",
        )
    expected = agent_tensors(PopulationPPO(spec, ckpt.ppo, [0], "cpu"), [0])
    for name, t in expected.items():
        got = tensors.get(name)
        want = (n, *t.shape[1:])
        if got is None or tuple(got.shape) != want or got.dtype != t.dtype:
            have = "missing" if got is None else f"{tuple(got.shape)} {got.dtype}"
            raise _fail(path, f"tensor {name!r} is {have}; the network needs {want} {t.dtype}")
    return ckpt


def load_agent(ckpt: Checkpoint, row: int) -> PopulationPPO:
    """Row ``row`` of a checkpoint as a one-agent :class:`PopulationPPO` on the CPU (ready to act)."""
    agents = PopulationPPO(ckpt.spec, ckpt.ppo, [0], "cpu")
    with torch.no_grad():
        for name, p in agents.net.named_parameters():
            p.copy_(ckpt.tensors[f"net.{name}"][row : row + 1])
        snap = agents.snapshot(0)
        for key in _OBS_RMS:
            if key in snap:
                snap[key] = ckpt.tensors[key][row : row + 1].clone()
        agents.load_snapshot(0, snap)
    return agents


def run_checkpoints(
    selected: PopulationPPO,
    best: tuple[float, int, int],
    population: PopulationPPO,
    final_round: int,
    final_val: Sequence[float],
    *,
    env_id: str,
    time_limit: int,
    max_episode_steps: int | None,
    run: dict[str, Any],
) -> tuple[dict[str, bytes], dict[str, Any]]:
    """A run's checkpoint files (name -> bytes) and their ``config.json`` entry ``checkpoints``.

    ``selected``: a one-agent population holding the selected checkpoint, ``best`` its (validation
    return, agent, round); ``population``: the agents at the end of training, ``final_val[j]`` the
    validation return of agent j's final state (after the last round's sharing: its source's).
    """
    common = {"env_id": env_id, "time_limit": time_limit, "max_episode_steps": max_episode_steps, "run": run}
    val, agent, rnd = best
    n = population.n
    files = {
        SELECTED: checkpoint_bytes(
            selected, [0], kind="selected", agent_ids=[agent], rounds=[rnd], val_returns=[val], **common
        ),
        POPULATION: checkpoint_bytes(
            population,
            range(n),
            kind="population",
            agent_ids=range(n),
            rounds=[final_round] * n,
            val_returns=final_val,
            **common,
        ),
    }
    entry = {
        SELECTED: {"agent": int(agent), "round": int(rnd), "val_return": float(val)},
        POPULATION: {"agents": n, "round": int(final_round)},
    }
    return files, entry
