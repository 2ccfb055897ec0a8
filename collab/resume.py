"""Resumable runs: a run's whole state at a round boundary, saved into its folder and loaded again.

With ``checkpoint_every`` = K (:class:`collab.ExperimentConfig`), every K-th round ends at a
*segment boundary*, in uninterrupted runs too: after the round's validation and the strategy's
decision, everything the rest of the run depends on is written atomically to
``<out_dir>/resume.ckpt`` — every agent's parameters, Adam moments and step counts, observation and
return statistics, learning rates and entropy coefficients, random generator states; the strategy's
state (UCB statistics; perturbed hyperparameters and generators); the best checkpoint and the
re-selection candidates so far; episode and step counters; the curves and share events so far. Then
the episodes still running in the training environments are dropped (their steps were already
learned from, bootstrapped at the end of the last rollout, as at any rollout's end) and the
training environments are made anew, seeded from ``(seed, round)``. A run resumed from the file
therefore continues exactly as the uninterrupted run does, although neither envpool nor Box2D
environments can be saved: the boundary is part of the algorithm (which is why ``checkpoint_every``
is a setting that changes results, and is off by default).

The file: a magic line, the length of a JSON header, the header (format, the run's configuration,
round, the machine it was written on, payload size and SHA-256 of header and payload), then the
payload (a pickle). A file cut short or altered is refused with :class:`ResumeError`, as is one of
another configuration; nothing is overwritten then. Bit for bit holds on one machine (or, with
portable numerics, across x86-64 CPUs): a native-numerics run resumed on a machine with other
kernels continues with a warning, and ``config.json`` records where each part ran (``resumed``).
Pickle runs code when loaded: load only the run folders you made.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import subprocess
import time
import warnings
from pathlib import Path
from typing import Any

from collab import numerics
from collab.config import ConfigError
from collab.results import atomic_path

#: The checkpoint file in a run folder (not a result file: deleted once the run is complete).
CHECKPOINT_FILE = "resume.ckpt"
MAGIC = b"collab resume checkpoint\n"
FORMAT = 1
#: Settings that do not change a run's results: a run may be resumed or reused with others.
RESULT_NEUTRAL = ("env_threads", "out_dir")


class ResumeError(ConfigError):
    """A run folder's checkpoint cannot be resumed: damaged, or made with another configuration."""


class RunPaused(Exception):
    """The run stopped itself at a checkpoint, before its deadline (e.g. a SLURM job's time limit):
    running the same command again continues it from ``out_dir``'s checkpoint."""

    def __init__(self, out_dir: str, rnd: int, reason: str) -> None:
        super().__init__(
            f"paused after round {rnd} ({reason}); {out_dir}/{CHECKPOINT_FILE} holds the run: "
            "run the same command again to continue it"
        )
        self.out_dir, self.round = out_dir, rnd


def config_differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """``"key: old there, new here"`` for every setting that differs between two configurations in
    their JSON form (``ExperimentConfig.to_dict``), :data:`RESULT_NEUTRAL` settings aside."""
    old, new = json.loads(json.dumps(old)), json.loads(json.dumps(new))  # tuples become lists
    keys = sorted((set(old) | set(new)) - set(RESULT_NEUTRAL))
    return [f"{k}: {old.get(k)!r} there, {new.get(k)!r} here" for k in keys if old.get(k) != new.get(k)]


def _write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` (a temporary file of :func:`save_checkpoint`)."""
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def save_checkpoint(out_dir: str | os.PathLike, config: dict[str, Any], rnd: int, state: dict) -> Path:
    """Write ``state`` (anything pickle can hold) as the checkpoint of the run of ``config`` after
    round ``rnd``, atomically (an interrupted write leaves the previous checkpoint in place)."""
    payload = pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)
    fields = {"format": FORMAT, "round": rnd, "size": len(payload), "machine": numerics.fingerprint(),
              "config": config}  # fmt: skip
    header = json.dumps({**fields, "sha256": _digest(fields, payload)}).encode()
    path = Path(out_dir) / CHECKPOINT_FILE
    with atomic_path(path) as tmp:
        _write(tmp, MAGIC + len(header).to_bytes(8, "little") + header + payload)
    return path


def _digest(fields: dict[str, Any], payload: bytes) -> str:
    """SHA-256 of a checkpoint's header fields (its ``sha256`` aside) and payload."""
    h = hashlib.sha256(json.dumps(fields, sort_keys=True).encode())
    h.update(payload)
    return h.hexdigest()


#: The header's fields and their types.
HEADER = {"format": int, "round": int, "size": int, "machine": dict, "config": dict, "sha256": str}


def _damaged(path: Path, why: str) -> ResumeError:
    return ResumeError(
        f"{path} is not a usable checkpoint ({why}): delete it to train this run from the start"
    )


def _read(path: Path) -> tuple[dict[str, Any], bytes]:
    """The checkpoint's header and payload, checked (size and SHA-256)."""
    data = path.read_bytes()
    if not data.startswith(MAGIC):
        raise _damaged(path, "it does not start like a collab checkpoint")
    start = len(MAGIC) + 8
    size = int.from_bytes(data[len(MAGIC) : start], "little")
    try:
        header = json.loads(data[start : start + size])
    except (ValueError, UnicodeDecodeError):
        raise _damaged(path, "its header is cut short or damaged") from None
    if not isinstance(header, dict) or any(not isinstance(header.get(k), t) for k, t in HEADER.items()):
        raise _damaged(path, f"its header lacks fields among {sorted(HEADER)}")
    if header["format"] != FORMAT:
        raise _damaged(path, f"format {header['format']}, this version reads {FORMAT}")
    payload = data[start + size :]
    if len(payload) != header["size"]:
        raise _damaged(path, f"{len(payload)} of its {header['size']} payload bytes are there: cut short")
    fields = {k: v for k, v in header.items() if k != "sha256"}
    if _digest(fields, payload) != header["sha256"]:
        raise _damaged(path, "it does not match its SHA-256: altered or damaged")
    return header, payload


def checkpoint_round(out_dir: str | os.PathLike) -> int | None:
    """The round after which ``out_dir``'s checkpoint was written; None without one (or a damaged one)."""
    path = Path(out_dir) / CHECKPOINT_FILE
    if not path.is_file():
        return None
    try:
        return int(_read(path)[0]["round"])
    except ResumeError:
        return None


def load_checkpoint(out_dir: str | os.PathLike, config: dict[str, Any]) -> dict | None:
    """The state saved in ``out_dir``'s checkpoint, None without one. Raises :class:`ResumeError`
    when the file is damaged or was made with another configuration (naming the differences)."""
    path = Path(out_dir) / CHECKPOINT_FILE
    for stale in path.parent.glob(f".{CHECKPOINT_FILE}.*.tmp"):  # an interrupted write's leftovers
        stale.unlink(missing_ok=True)
    if not path.is_file():
        return None
    header, payload = _read(path)
    differ = config_differences(header["config"], config)
    if differ:
        raise ResumeError(
            f"{path} holds a run with other settings ({', '.join(differ)}): run it with those settings "
            "to continue it, or delete the file to train this configuration from the start"
        )
    here = numerics.fingerprint()
    if config.get("numerics") == "native" and not numerics.same_native_kernels(header["machine"], here):
        warnings.warn(
            f"{path} was written on {header['machine'].get('cpu_model')!r} with other native kernels than "
            f"this machine's ({here.get('cpu_model')!r}): the run continues, but will not equal an "
            "uninterrupted run of either machine bit for bit (portable numerics would)",
            stacklevel=2,
        )
    try:
        return pickle.loads(payload)
    except Exception as err:  # e.g. written by other versions of numpy or torch
        raise _damaged(path, f"its state cannot be read with these library versions: {err!r}") from None


def remove_checkpoint(out_dir: str | os.PathLike) -> None:
    """Delete ``out_dir``'s checkpoint (the run is complete)."""
    (Path(out_dir) / CHECKPOINT_FILE).unlink(missing_ok=True)


def _seconds(text: str) -> float | None:
    """SLURM's ``[days-][hours:]minutes:seconds`` as seconds; None for anything else (UNLIMITED, ...)."""
    days, _, hms = text.strip().rpartition("-")
    parts = hms.split(":")
    if not (1 <= len(parts) <= 3 and all(p.isdigit() for p in parts)) or (days and not days.isdigit()):
        return None
    secs = 0
    for p in parts:
        secs = secs * 60 + int(p)
    return secs + int(days or 0) * 86400


def slurm_deadline(margin_s: float = 60.0) -> float | None:
    """When this process runs inside a SLURM job: the Unix time ``margin_s`` before the job's time
    limit (from ``squeue``'s time left; the margin is at most a tenth of the time left, for short
    jobs); otherwise, or when SLURM does not tell, None."""
    job = os.environ.get("SLURM_JOB_ID")
    if not job:
        return None
    try:
        r = subprocess.run(
            ["squeue", "-h", "-j", job, "-o", "%L"], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.SubprocessError):
        return None
    left = _seconds(r.stdout) if r.returncode == 0 else None
    return None if left is None else time.time() + left - min(margin_s, left / 10)
