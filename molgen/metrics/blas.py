"""One BLAS thread for the small dense linear algebra of the metrics (FCD, k-means bins).

numpy and scipy each bring an OpenBLAS with one thread per core. For a 512 x 512 ``eigh`` that buys
nothing and costs a great deal on a busy machine: the tridiagonal reduction is hundreds of threaded
matrix-vector products, each a rendezvous of the threads, and one descheduled thread stalls them all
(measured on 2 shared cores: the four ``eigh`` of an evaluation took 20 s with two threads, under 1 s
with one). The thread count also moves the last bits of the result (FCD ~1e-11 relative), so one
thread everywhere makes the values the same on every machine.

:func:`single_threaded` sets the thread count of every OpenBLAS loaded in the process to 1 for the
duration of a block (as ``threadpoolctl`` would, through the library's own ``set_num_threads``) and
restores it after; where no OpenBLAS is found (MKL or Accelerate builds) it does nothing.
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache

import numpy  # noqa: F401  (numpy's and scipy's OpenBLAS must be loaded before they are looked for)
import scipy.linalg  # noqa: F401

_LOCK = threading.RLock()
_PREFIXES = ("scipy_openblas", "openblas")
_SUFFIXES = ("64_", "")


@lru_cache(maxsize=1)
def openblas_controls() -> tuple[tuple[ctypes._CFuncPtr, ctypes._CFuncPtr], ...]:
    """(get, set) thread-count functions of every OpenBLAS mapped into this process (Linux)."""
    try:
        with open("/proc/self/maps") as f:
            paths = sorted({line.split()[-1] for line in f if "openblas" in line.split()[-1].rsplit("/", 1)[-1]})
    except (OSError, IndexError):
        return ()
    out = []
    for path in paths:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix in _PREFIXES:
            for suffix in _SUFFIXES:
                get = getattr(lib, f"{prefix}_get_num_threads{suffix}", None)
                set_ = getattr(lib, f"{prefix}_set_num_threads{suffix}", None)
                if get is not None and set_ is not None:
                    get.restype = ctypes.c_int
                    set_.argtypes = [ctypes.c_int]
                    out.append((get, set_))
                    break
            else:
                continue
            break
    return tuple(out)


@contextmanager
def single_threaded() -> Iterator[None]:
    """Run the block with one OpenBLAS thread (numpy's and scipy's), then restore the counts."""
    with _LOCK:
        libs = openblas_controls()
        old = [get() for get, _ in libs]
        for _, set_ in libs:
            set_(1)
        try:
            yield
        finally:
            for (_, set_), n in zip(libs, old):
                set_(n)
