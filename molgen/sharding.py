"""Scoring and sampling split over processes and nodes, merged into one output in input order.

**Scoring.** A library is read in chunks of ``chunk_size`` rows; chunk ``i`` belongs to shard
``i % n_shards``. Every shard reads the whole input (reading is cheap next to scoring) and scores only
its chunks, each written atomically as ``OUT.parts/chunk-NNNNNNN.parquet``; a shard that finishes
writes ``done-K.json`` with the number of chunks. When every shard is done, the merge streams the
parts in chunk order into ``OUT`` (written under a temporary name, then renamed) and removes the parts.
A chunk is scored with exactly the same rows and batches whichever process scores it, so the output is
the file one process writes (byte for byte at the same number of threads per process). The parts are
also what ``--resume`` continues from: a chunk whose part exists is not scored again, and the
``run.json`` in the parts directory refuses a resume with another model, input or options.

Local processes (``devices``) are spawned (never forked after torch has started threads). Nodes
(``num_nodes`` with ``node_rank``, e.g. one ``srun`` task per node) share the parts directory on a
shared file system; the shard that completes the set does the merge (an exclusive lock file decides).

**Sampling.** ``n`` molecules split into ``n_shards`` shards of ``n // n_shards`` (+1 for the first
``n % n_shards``); shard ``k`` draws molecules ``start_k .. start_k + n_k - 1`` of the run
(:func:`shard_starts`) with the run's seed, each molecule from its own random stream keyed by
``(seed, global index)`` (:class:`~molgen.rowrandom.RowRandom`). So the table is the one
``model.sample(n, seed=seed)`` gives in one process: it depends on ``seed`` only, not on the number of
shards or of processes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing as mp
import os
import shutil
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
import torch

from molgen.api import load
from molgen.data.catalog import atomic_tmp
from molgen.data.io import arrow_table, row_ids
from molgen.errors import ConfigError
from molgen.scoring import iter_score_chunks, write_scores

log = logging.getLogger(__name__)
PART = "chunk-{:07d}.parquet"


# --- shards of a sampling run ---------------------------------------------------------------------
def shard_sizes(n: int, n_shards: int) -> list[int]:
    """Molecules per shard: ``n // n_shards``, one more for the first ``n % n_shards`` shards."""
    return [n // n_shards + (k < n % n_shards) for k in range(n_shards)]


def shard_starts(n: int, n_shards: int) -> list[int]:
    """The global index of each shard's first molecule (shards are consecutive ranges, in order)."""
    sizes = shard_sizes(n, n_shards)
    return [sum(sizes[:k]) for k in range(n_shards)]


# --- parts ---------------------------------------------------------------------------------------
def parts_dir(out: str | Path) -> Path:
    out = Path(out)
    return out.with_name(out.name + ".parts")


def _write_part(df: pd.DataFrame, path: Path) -> None:
    tmp = atomic_tmp(path)
    pq.write_table(arrow_table(df), tmp)
    os.replace(tmp, path)


def _atomic_json(path: Path, obj: Any) -> None:
    tmp = atomic_tmp(path)
    tmp.write_text(json.dumps(obj, indent=1))
    os.replace(tmp, path)


def run_key(model_path: str | Path, source: str | Path, options: dict[str, Any]) -> dict[str, Any]:
    """What a resumed run must share with the run it continues: model, input and options."""
    model_path, source = Path(model_path), Path(source)

    def stamp(p: Path) -> str:
        st = p.stat()
        return f"{st.st_size}:{int(st.st_mtime)}"

    model_stamp = hashlib.sha256(b"".join(
        (model_path / f).read_bytes() for f in ("config.json", "model.safetensors") if (model_path / f).exists()
    )).hexdigest()[:16] if model_path.is_dir() else str(model_path)
    return {"model": str(model_path.resolve()) if model_path.exists() else str(model_path), "model_sha": model_stamp,
            "input": str(source.resolve()) if source.exists() else str(source),
            "input_stamp": stamp(source) if source.is_file() else "", **options}


def prepare_parts(out: str | Path, key: dict[str, Any], *, resume: bool, join: bool = False) -> tuple[Path, int]:
    """The parts directory of ``out`` and the number of chunks already scored there (0 for a new run).

    Without ``resume`` a leftover parts directory is an error (it holds an interrupted run's work);
    with it, a parts directory written with another model, input or options is an error. ``join``:
    another node of this run may have made it (multi-node runs share it)."""
    d = parts_dir(out)
    run_file = d / "run.json"
    if d.exists() and run_file.exists():
        if not (resume or join):
            raise ConfigError(f"{d} holds an interrupted run: pass --resume to continue it, or delete it")
        old = json.loads(run_file.read_text())
        diff = sorted(k for k in set(old) | set(key) if old.get(k) != key.get(k))
        if diff:
            raise ConfigError(f"cannot resume {out}: the interrupted run differs in {', '.join(diff)} "
                              f"({', '.join(f'{k}={old.get(k)!r}' for k in diff)}); delete {d} to start afresh")
        return d, len(list(d.glob("chunk-*.parquet")))
    d.mkdir(parents=True, exist_ok=True)
    if not run_file.exists():
        try:
            _atomic_json(run_file, key)
        except FileExistsError:  # pragma: no cover
            pass
    return d, 0


def score_shard(model, source: str | Path, parts: Path, shard: int, n_shards: int, *, progress: Any = None,
                **options: Any) -> int:
    """Score the chunks of ``shard`` (those without a part yet) into ``parts``; returns rows scored."""
    def mine(i: int) -> bool:
        return i % n_shards == shard and not (parts / PART.format(i)).exists()

    n_rows, n_chunks = 0, 0
    for i, df in iter_score_chunks(model, source, select=mine, **options):
        n_chunks = i + 1
        if df is None:
            continue
        _write_part(df, parts / PART.format(i))
        n_rows += len(df)
        if progress is not None:
            progress(df)
    _atomic_json(parts / f"done-{shard}.json", {"chunks": n_chunks, "shard": shard, "n_shards": n_shards})
    return n_rows


def _worker(model_path: str, device: str, threads: int, source: str, parts: str, shard: int, n_shards: int,
            options: dict[str, Any]) -> None:
    """A spawned scoring process: load the model, score one shard."""
    torch.set_num_threads(threads)
    model = load(model_path, map_location=device).to(device)
    score_shard(model, source, Path(parts), shard, n_shards, **options)


def all_done(parts: Path, n_shards: int) -> int | None:
    """The number of chunks when every shard has written its ``done`` file, else None."""
    chunks = set()
    for k in range(n_shards):
        f = parts / f"done-{k}.json"
        if not f.exists():
            return None
        chunks.add(json.loads(f.read_text())["chunks"])
    if len(chunks) != 1:
        raise RuntimeError(f"{parts}: shards read different numbers of chunks {sorted(chunks)}: the input "
                           "changed while it was scored")
    return chunks.pop()


def iter_parts(parts: Path, n_chunks: int) -> Iterator[pd.DataFrame]:
    for i in range(n_chunks):
        p = parts / PART.format(i)
        if not p.exists():
            raise RuntimeError(f"{p} is missing: a shard did not finish; rerun with --resume")
        yield pq.read_table(p).to_pandas()


def merge(parts: Path, out: str | Path, n_chunks: int) -> int:
    """Stream the parts in chunk order into ``out`` (temporary name, then renamed); remove the parts."""
    out = Path(out)
    tmp = out.with_name(f".{out.stem}.{os.getpid()}.tmp{out.suffix}")
    try:
        n = write_scores(iter_parts(parts, n_chunks), tmp)
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            tmp.unlink()
    shutil.rmtree(parts, ignore_errors=True)
    return n


def score_file(model, model_path: str | Path, source: str | Path, out: str | Path, *, devices: int = 1,
               num_nodes: int = 1, node_rank: int = 0, resume: bool = False, device: str = "cpu",
               threads: int | None = None, progress: Any = None, wait_s: float = 5.0,
               **options: Any) -> int | None:
    """Score ``source`` into ``out`` with ``devices`` processes on each of ``num_nodes`` nodes.

    ``model`` is the loaded model (this process scores its first shard with it; None to load it);
    ``options`` go to :func:`molgen.scoring.iter_score_chunks` (``smiles_col``, ``chunk_size``,
    ``batch_size``, ``kind``, ``condition``, ``keep_cols``). Returns the rows written, or None on a
    node that finished its shards while another node's were still running (that node merges).
    """
    for name, v in (("devices", devices), ("num_nodes", num_nodes)):
        if not isinstance(v, int) or v < 1:
            raise ConfigError(f"{name} must be a positive integer, got {v!r}")
    if not 0 <= node_rank < num_nodes:
        raise ConfigError(f"node_rank must be in [0, {num_nodes}), got {node_rank}")
    n_shards = devices * num_nodes
    key = run_key(model_path, source, {**{k: v for k, v in options.items()}, "n_shards": n_shards})
    parts, n_done = prepare_parts(out, key, resume=resume, join=num_nodes > 1)
    if n_done:
        log.info("resuming: %d chunk(s) already scored in %s", n_done, parts)
    shards = [node_rank * devices + j for j in range(devices)]
    threads = threads or max(1, torch.get_num_threads() // devices)
    procs = []
    if devices > 1:
        ctx = mp.get_context("spawn")
        for k in shards[1:]:
            p = ctx.Process(target=_worker, args=(str(model_path), device, threads, str(source), str(parts), k,
                                                  n_shards, options), daemon=True)
            p.start()
            procs.append((k, p))
    if model is None:
        model = load(model_path, map_location=device).to(device)
    old_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        score_shard(model, source, parts, shards[0], n_shards, progress=progress, **options)
    finally:
        torch.set_num_threads(old_threads)
        for _, p in procs:
            p.join()
    failed = [k for k, p in procs if p.exitcode != 0]
    if failed:
        raise RuntimeError(f"scoring shard(s) {failed} failed (see their messages above); "
                           "rerun with --resume to score only what is missing")
    while True:
        n_chunks = all_done(parts, n_shards)
        if n_chunks is not None:
            break
        if num_nodes == 1:
            raise RuntimeError(f"{parts}: a shard did not finish")
        if node_rank != 0:
            return None  # rank zero waits for every node and merges
        time.sleep(wait_s)
    try:  # exactly one process merges
        fd = os.open(parts / "merge.lock", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        os.close(fd)
    except FileExistsError:
        return None
    return merge(parts, out, n_chunks)


# --- sampling ------------------------------------------------------------------------------------
def sample_shard(model, n: int, start: int, seed: int, **options: Any) -> pd.DataFrame:
    """Molecules ``start .. start + n - 1`` of a run seeded ``seed`` as a table (``SampleResult.to_frame``):
    the rows ``model.sample(start + n, seed=seed)`` has there."""
    res = model.sample(n, seed=seed, start=start, **options)
    df = res.to_frame()
    df.attrs = {}
    return df


def _with_run_ids(df: pd.DataFrame) -> pd.DataFrame:
    """The merged shards' ``id`` column numbered over the whole run (the ids of one unsharded draw)."""
    if "id" in df.columns:
        df["id"] = row_ids(len(df))
    return df


def sample_sharded(model, n: int, *, seed: int, n_shards: int, processes: int = 1,
                   model_path: str | Path | None = None, device: str = "cpu", threads: int | None = None,
                   **options: Any) -> pd.DataFrame:
    """``n`` samples drawn as ``n_shards`` shards (consecutive row ranges, :func:`shard_starts`) by
    ``processes`` processes; the table is ``model.sample(n, seed=seed)``'s for any number of shards and
    processes."""
    if not isinstance(n_shards, int) or n_shards < 1:
        raise ConfigError(f"the number of shards must be a positive integer, got {n_shards!r}")
    if not isinstance(processes, int) or not 1 <= processes <= n_shards:
        raise ConfigError(f"processes must be an integer in [1, {n_shards}] (the number of shards), got {processes!r}")
    sizes, starts = shard_sizes(n, n_shards), shard_starts(n, n_shards)
    if processes == 1:
        frames = [sample_shard(model, sizes[k], starts[k], seed, **options) for k in range(n_shards)]
        return _with_run_ids(pd.concat(frames, ignore_index=True))
    if model_path is None:
        raise ConfigError("sampling in several processes needs the model directory (model_path)")
    threads = threads or max(1, torch.get_num_threads() // processes)
    ctx = mp.get_context("spawn")
    with tempfile.TemporaryDirectory(prefix="molgen-sample-") as tmp:
        paths = [Path(tmp) / PART.format(k) for k in range(n_shards)]
        mine = list(range(0, n_shards, processes))  # this process takes shards 0, P, 2P, ...
        procs = []
        for j in range(1, processes):
            p = ctx.Process(target=_sample_group, args=(str(model_path), device, threads, sizes, j, processes,
                                                        seed, [str(x) for x in paths], options), daemon=True)
            p.start()
            procs.append(p)
        old = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            for k in mine:
                _write_part(sample_shard(model, sizes[k], starts[k], seed, **options), paths[k])
        finally:
            torch.set_num_threads(old)
            for p in procs:
                p.join()
        if any(p.exitcode != 0 for p in procs):
            raise RuntimeError("a sampling process failed (see its message above)")
        return _with_run_ids(pd.concat([pq.read_table(p).to_pandas() for p in paths], ignore_index=True))


def _sample_group(model_path: str, device: str, threads: int, sizes: Sequence[int], first: int, step: int,
                  seed: int, paths: Sequence[str], options: dict[str, Any]) -> None:
    torch.set_num_threads(threads)
    model = load(model_path, map_location=device).to(device)
    starts = [sum(sizes[:k]) for k in range(len(sizes))]
    for k in range(first, len(sizes), step):
        _write_part(sample_shard(model, sizes[k], starts[k], seed, **options), Path(paths[k]))
