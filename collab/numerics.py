"""Which floating-point code a run executes, and the machine it ran on.

PyTorch picks its CPU kernels by what the processor offers, so the same seed can give results that
differ in the last bits from one CPU to another, and training amplifies such differences until whole
runs diverge (``benchmarks/portability.py`` finds where). Four pieces of code decide:

* ATen's vectorised kernels (``sigmoid``, ``exp2``, reductions), chosen by ``ATEN_CPU_CAPABILITY``
  (``default``, ``avx2``, ``avx512``);
* Intel MKL's matrix products, whose code path depends on the CPU's vendor and instruction set;
* Intel MKL's vector math (VML), to which PyTorch hands ``sqrt``, ``exp``, ``log``, ``tanh`` and the
  other transcendental functions (:data:`VML_OPS`). VML runs one code path on Intel CPUs and another
  on other vendors', whatever MKL is told: on an AMD EPYC its float ``sqrt`` is off by one unit in
  the last place in about 15% of cases, and an Intel Xeon computed the first square root of a
  portable Pendulum run's reward statistics differently, where the two runs parted;
* oneDNN's convolutions (the CarRacing network), whose JIT code depends on the instruction set.

``numerics="native"`` (the default) lets every library choose: fastest, bit-identical on the same
machine. ``numerics="portable"`` pins them before the process's first PyTorch operation: ATen runs
its AVX2 kernels, MKL runs its conditional-numerical-reproducibility ``COMPATIBLE`` branch (the one
MKL documents as giving the same results on Intel and non-Intel processors), convolutions run
through ATen and MKL instead of oneDNN, and the package computes the few transcendental functions it
needs without VML (:func:`sqrt`, :func:`exp`, :func:`log`, :func:`tanh`). No kernel left in a
portable run then picks its code by the CPU's vendor, so portable runs are meant to be bit-identical
on x86-64 CPUs with AVX2 and FMA of either vendor. What the tests check, on the machine they run on:
the same cells under every dispatch level it offers, that no VML operator runs
(``tests/test_trace.py``), and a per-operator trace against our committed one (:mod:`collab.trace`).
The pins are process-wide and cannot be undone, so one process runs one mode.
"""

from __future__ import annotations

import ctypes
import math
import os
import platform
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

from collab.config import ConfigError

#: MKL's named constants for conditional numerical reproducibility (mkl_cbwr.h).
_MKL_CBWR_BRANCH = 1
_MKL_CBWR_COMPATIBLE = 3
_MKL_BRANCH_NAMES = {0: "off", 1: "off", 2: "auto", 3: "compatible", 4: "sse2", 8: "sse4_2", 10: "avx2"}

_pinned = False


class NumericsError(ConfigError):
    """The process cannot run the requested numerics mode (it already ran PyTorch code in another)."""


@cache
def _mkl() -> ctypes.CDLL | None:
    """PyTorch's own MKL (linked into libtorch_cpu), or None where the build has none."""
    lib = Path(torch.__file__).parent / "lib" / "libtorch_cpu.so"
    try:
        dll = ctypes.CDLL(str(lib))
        dll.mkl_serv_cbwr_get  # noqa: B018 - raises AttributeError without MKL
    except (OSError, AttributeError):
        return None
    return dll


def mkl_branch() -> str:
    """MKL's reproducibility branch in this process: ``off`` (MKL chooses per CPU), ``compatible``, ...

    ``none`` where PyTorch was built without MKL.
    """
    dll = _mkl()
    if dll is None:
        return "none"
    code = dll.mkl_serv_cbwr_get(_MKL_CBWR_BRANCH)
    return _MKL_BRANCH_NAMES.get(code, str(code))


def _cpu_flags() -> set[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def _cpuinfo(key: str) -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(key):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def use_portable() -> None:
    """Pin this process to portable numerics (see the module docstring); idempotent.

    Raises :class:`NumericsError` naming what could not be pinned: the process already ran PyTorch
    operations with other kernels, the CPU lacks AVX2, or PyTorch has no MKL.
    """
    global _pinned
    if _pinned:
        return
    if "avx2" not in _cpu_flags() or platform.machine() not in ("x86_64", "AMD64"):
        raise NumericsError(
            f"numerics='portable' is not allowed on this CPU ({platform.machine()}, "
            f"{_cpuinfo('model name')}): an x86-64 CPU with AVX2"
        )
    before = os.environ.get("ATEN_CPU_CAPABILITY")
    os.environ["ATEN_CPU_CAPABILITY"] = "avx2"  # read once, at the first vectorised kernel
    dll = _mkl()
    if dll is None:
        raise NumericsError("numerics='portable' is not allowed: PyTorch built with Intel MKL")
    if dll.mkl_serv_cbwr_get(_MKL_CBWR_BRANCH) != _MKL_CBWR_COMPATIBLE:
        dll.mkl_serv_cbwr_set(_MKL_CBWR_COMPATIBLE)  # fails once MKL has run: checked below
    capability = torch.backends.cpu.get_cpu_capability()
    branch = mkl_branch()
    if capability != "AVX2" or branch != "compatible":
        if before is None:  # leave the environment as it was (child processes inherit it)
            del os.environ["ATEN_CPU_CAPABILITY"]
        else:
            os.environ["ATEN_CPU_CAPABILITY"] = before
        raise NumericsError(
            f"numerics='portable' is not allowed in this process: it already ran PyTorch code with "
            f"native kernels (ATen {capability}, MKL branch {branch}). Start a new Python process "
            "(restart the kernel) and run the portable experiment before any other PyTorch work, "
            "or use numerics='native'"
        )
    torch.backends.mkldnn.enabled = False
    _pinned = True


def check_native() -> None:
    """Raise :class:`NumericsError` if this process was pinned to portable numerics."""
    if _pinned:
        raise NumericsError(
            "numerics='native' is not allowed in this process: it was pinned to portable numerics "
            "by an earlier experiment. Start a new Python process, or use numerics='portable'"
        )


def apply(mode: str) -> None:
    """Put this process in numerics ``mode`` (``native`` or ``portable``) before a run."""
    if mode == "portable":
        use_portable()
    else:
        check_native()


def fingerprint() -> dict[str, Any]:
    """The machine and the numerical libraries a run executed on (recorded in ``config.json``)."""
    try:
        from numpy._core._multiarray_umath import __cpu_baseline__, __cpu_dispatch__, __cpu_features__

        simd = [f for f in __cpu_dispatch__ if __cpu_features__.get(f)]
        baseline = list(__cpu_baseline__)
    except ImportError:  # a NumPy without these internals
        simd, baseline = [], []
    flags = _cpu_flags()
    return {
        "cpu_model": _cpuinfo("model name"),
        "cpu_vendor": _cpuinfo("vendor_id"),
        "machine": platform.machine(),
        "cpu_isa": [f for f in ("avx2", "fma", "avx512f", "avx512_bf16", "amx_tile") if f in flags],
        "numerics": "portable" if _pinned else "native",
        "torch": torch.__version__,
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch_threads": torch.get_num_threads(),
        "mkl": _mkl_version(),
        "mkl_branch": mkl_branch(),
        "mkldnn_enabled": bool(torch.backends.mkldnn.enabled),
        "numpy": np.__version__,
        "numpy_simd_baseline": baseline,
        "numpy_simd": simd,
    }


def _mkl_version() -> str:
    dll = _mkl()
    if dll is None:
        return "none"
    buf = ctypes.create_string_buffer(256)
    dll.MKL_Get_Version_String(buf, len(buf))
    return buf.value.decode(errors="replace").split(" for ")[0]


#: Fingerprint fields that decide which kernels native numerics run; runs with equal values
#: reproduce each other bit for bit (same library versions assumed).
NATIVE_KEY = ("cpu_vendor", "cpu_model", "cpu_isa", "torch_cpu_capability", "mkl", "torch")


def same_native_kernels(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two fingerprints run the same native kernels (see :data:`NATIVE_KEY`)."""
    return all(a.get(k) == b.get(k) for k in NATIVE_KEY)


#: Environment variables under which one machine's libraries pick the kernels of a lesser CPU
#: (used by ``benchmarks/portability.py`` and the tests to imitate other machines).
LESSER_CPUS: dict[str, dict[str, str]] = {
    "ATen avx2": {"ATEN_CPU_CAPABILITY": "avx2"},
    "ATen default": {"ATEN_CPU_CAPABILITY": "default"},
    "MKL AVX2": {"MKL_ENABLE_INSTRUCTIONS": "AVX2"},
    "MKL SSE4.2": {"MKL_ENABLE_INSTRUCTIONS": "SSE4_2"},
    "oneDNN AVX2": {"ONEDNN_MAX_CPU_ISA": "AVX2"},
    "NumPy AVX2": {"NPY_DISABLE_CPU_FEATURES": "X86_V4 AVX512_ICL AVX512_SPR"},
    "all AVX2": {
        "ATEN_CPU_CAPABILITY": "avx2",
        "MKL_ENABLE_INSTRUCTIONS": "AVX2",
        "ONEDNN_MAX_CPU_ISA": "AVX2",
        "NPY_DISABLE_CPU_FEATURES": "X86_V4 AVX512_ICL AVX512_SPR",
    },
}


# -- vendor-independent transcendental functions ---------------------------------------------------
#: ATen operators that PyTorch's CPU build computes with MKL's vector math (VML), whose results
#: depend on the CPU's vendor (found by breaking on MKL's ``vms*``/``vmd*`` entry points; ``pow``
#: with exponent 0.5 and ``xlogy``/``logit`` reach VML too). Portable runs call none of them.
VML_OPS = frozenset(
    {
        "sqrt",
        "exp",
        "log",
        "log2",
        "log10",
        "tanh",
        "sin",
        "cos",
        "tan",
        "asin",
        "acos",
        "atan",
        "erf",
        "erfc",
        "erfinv",
        "xlogy",
        "logit",
    }
)
_LOG2E = math.log2(math.e)
_LN2 = math.log(2.0)


def _no_grad(name: str, x: torch.Tensor) -> None:
    if x.requires_grad:
        raise ValueError(
            f"collab.numerics.{name} of a tensor that requires grad is not allowed in portable mode"
        )


def sqrt(x: torch.Tensor) -> torch.Tensor:
    """``x.sqrt()``; in portable mode the correctly rounded square root (IEEE 754's, as NumPy's).

    Not differentiable in portable mode (ValueError): the package takes square roots of statistics.
    """
    if _pinned and x.device.type == "cpu":
        _no_grad("sqrt", x)
        a = x.numpy()
        return torch.from_numpy(np.sqrt(a, out=np.empty_like(a)))
    return x.sqrt()


def exp(x: torch.Tensor) -> torch.Tensor:
    """``x.exp()``; in portable mode ``exp2(x * log2(e))`` (ATen's own vectorised kernel, differentiable)."""
    if _pinned:
        return torch.exp2(x * _LOG2E)
    return x.exp()


def tanh(x: torch.Tensor) -> torch.Tensor:
    """``x.tanh()``; in portable mode ``2 * sigmoid(2x) - 1`` (ATen's own kernel, differentiable)."""
    if _pinned:
        return torch.sigmoid(x * 2.0) * 2.0 - 1.0
    return x.tanh()


def log(x: torch.Tensor) -> torch.Tensor:
    """``x.log()`` of positive ``x``; in portable mode ``log1p(m - 1) + e * ln 2`` with ``x = m * 2**e``
    (``m`` in [0.5, 1), so ``m - 1`` is exact). Not differentiable in portable mode (ValueError)."""
    if _pinned:
        _no_grad("log", x)
        m, e = torch.frexp(x)
        return torch.log1p(m - 1.0) + e.to(x.dtype) * _LN2
    return x.log()
