"""A persistent, notebook-safe worker pool for RDKit work (metrics, data standardization).

RDKit holds the GIL for most descriptor calls, so threads do not scale; processes do. Workers are
started once and reused by every evaluation in the process (no pool per call). On Linux they are forked
(works in notebooks and in scripts without a ``__main__`` guard; the workers run RDKit and numpy only,
never torch/OpenMP, so forking after torch has started threads is safe); elsewhere they are spawned.
``n_jobs=1`` runs everything in-process, serially, with no pool at all.
"""

from __future__ import annotations

import atexit
import multiprocessing as mp
import os
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from functools import partial

from molgen.progress import progress_bar

_POOLS: dict[int, Executor] = {}


def resolve_n_jobs(n_jobs: int | None) -> int:
    """``None``/``0``/negative mean all CPU cores."""
    if not n_jobs or n_jobs < 0:
        return max(1, os.cpu_count() or 1)
    return int(n_jobs)


def get_pool(n_jobs: int) -> Executor | None:
    """The shared process pool for ``n_jobs`` workers (None for serial)."""
    if n_jobs <= 1:
        return None
    pool = _POOLS.get(n_jobs)
    if pool is None:
        method = 'fork' if 'fork' in mp.get_all_start_methods() and os.name == 'posix' else 'spawn'
        pool = ProcessPoolExecutor(max_workers=n_jobs, mp_context=mp.get_context(method))
        _POOLS[n_jobs] = pool
    return pool


def shutdown_pools() -> None:
    """Stop all worker pools (registered at exit; call it to free the workers early)."""
    for pool in _POOLS.values():
        pool.shutdown(wait=False, cancel_futures=True)
    _POOLS.clear()


atexit.register(shutdown_pools)


def map_chunks(fn: Callable, items: Sequence, n_jobs: int, chunk_size: int = 2000, *, desc: str | None = None,
               **kwargs) -> list:
    """``fn(chunk, **kwargs)`` over consecutive chunks of ``items``; results in order. With ``desc``, a
    progress bar over the chunks (when there are several; see :mod:`molgen.progress`)."""
    chunks = [items[i:i + chunk_size] for i in range(0, len(items), chunk_size)]
    if not chunks:
        return []
    pool = get_pool(n_jobs) if len(chunks) > 1 else None
    call = partial(fn, **kwargs)

    def bar(it):
        if desc is None or len(chunks) < 2:
            return it
        return progress_bar(it, desc=desc, total=len(chunks), unit="chunk")

    if pool is None:
        return [call(c) for c in bar(chunks)]
    try:
        return list(bar(pool.map(call, chunks)))
    except Exception as exc:  # a broken pool (worker killed): drop it so the next call starts fresh
        if type(exc).__name__ == 'BrokenProcessPool':
            _POOLS.pop(n_jobs, None)
        raise
