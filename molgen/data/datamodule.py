"""Lightning DataModule: standardize once, tokenize once, cache both on disk, batch by length.

Caches live in ``cache_dir()/datasets`` and are keyed by
- the source content hash + standardization policy + subset/seed (canonical SMILES), and
- that key + the tokenizer state hash + max_len (token ids),
so a changed policy or vocabulary never reuses a stale cache. Rows that cannot be used for training
(invalid SMILES, out-of-vocabulary tokens, too long) are counted per reason and reported, never
dropped silently.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import random
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import lightning as L
import numpy as np
from torch.utils.data import DataLoader, Dataset, Sampler

from molgen.chem import Policy, standardize
from molgen.data.catalog import cache_dir
from molgen.data.io import SmilesSource, read_smiles, source_hash

log = logging.getLogger(__name__)


def _key(*parts: Any) -> str:
    return hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:20]


def _standardize_chunk(args: tuple[list[str | None], Policy]) -> list[str | None]:
    smiles, policy = args
    return [standardize(s, policy)[0] for s in smiles]


def standardize_all(smiles: Sequence[str | None], policy: Policy, n_jobs: int = 1) -> list[str | None]:
    """Row-aligned canonical SMILES (None where invalid), optionally with a process pool."""
    if n_jobs <= 1 or len(smiles) < 20_000:
        return _standardize_chunk((list(smiles), policy))
    import concurrent.futures as cf
    import multiprocessing as mp

    step = 10_000
    chunks = [(list(smiles[i:i + step]), policy) for i in range(0, len(smiles), step)]
    # fork where available (Linux): works from scripts without a __main__ guard and from notebooks
    ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else None
    with cf.ProcessPoolExecutor(n_jobs, mp_context=ctx) as ex:
        out: list[str | None] = []
        for part in ex.map(_standardize_chunk, chunks):
            out.extend(part)
    return out


def load_canonical(source: SmilesSource, policy: Policy, *, smiles_col: str | None = None,
                   subset: int | None = None, seed: int = 0, n_jobs: int = 2,
                   use_cache: bool = True) -> tuple[list[str], dict[str, int]]:
    """Canonical, deduplicated SMILES of a source (optionally a random subset) and drop counts."""
    key = _key("canon", source_hash(source, smiles_col), policy.key, subset, seed)
    path = cache_dir() / "datasets" / f"{key}.smi.gz"
    if use_cache and path.exists():
        with gzip.open(path, "rt") as f:
            lines = f.read().splitlines()
        n_in, n_invalid, n_dup = (int(x) for x in lines[0].split())
        return lines[1:], {"rows": n_in, "invalid_smiles": n_invalid, "duplicates": n_dup}
    raw = read_smiles(source, smiles_col)
    n_in = len(raw)
    if subset is not None and subset < len(raw):
        raw = random.Random(seed).sample(raw, subset)
    canon = standardize_all(raw, policy, n_jobs)
    n_invalid = sum(c is None for c in canon)
    unique = list(dict.fromkeys(c for c in canon if c is not None))
    n_dup = len(canon) - n_invalid - len(unique)
    if use_cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        with gzip.open(tmp, "wt") as f:
            f.write(f"{n_in} {n_invalid} {n_dup}\n" + "\n".join(unique) + "\n")
        tmp.replace(path)
    return unique, {"rows": n_in, "invalid_smiles": n_invalid, "duplicates": n_dup}


def featurize_all(smiles: Sequence[str], featurize: Callable[[str], Any]) -> tuple[list[Any], Counter]:
    """Apply a model's featurizer; failures are counted by reason (status names as in scoring)."""
    from molgen.models.base import TooLongError
    from molgen.tokenizers.base import OOVError, TokenizeError

    items, dropped = [], Counter()
    for s in smiles:
        try:
            items.append(featurize(s))
        except OOVError as e:
            dropped[f"oov_token:{e.token}"] += 1
        except TooLongError:
            dropped["too_long"] += 1
        except TokenizeError:
            dropped["invalid_smiles"] += 1
    return items, dropped


class ListDataset(Dataset):
    def __init__(self, items: Sequence[Any]) -> None:
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> Any:
        return self.items[i]


class LengthBucketSampler(Sampler[list[int]]):
    """Shuffled batches of similar length: sort within pools of 50 batches, shuffle batch order.

    Cuts padding (and so compute) by roughly a third on MOSES without changing what is seen.
    """

    def __init__(self, lengths: Sequence[int], batch_size: int, seed: int = 0, pool: int = 50) -> None:
        self.lengths = np.asarray(lengths)
        self.batch_size = batch_size
        self.seed = seed
        self.pool = pool
        self.epoch = 0

    def __len__(self) -> int:
        return (len(self.lengths) + self.batch_size - 1) // self.batch_size

    def __iter__(self) -> Iterator[list[int]]:
        rng = np.random.default_rng(self.seed + self.epoch)
        self.epoch += 1
        idx = rng.permutation(len(self.lengths))
        span = self.batch_size * self.pool
        batches = []
        for s in range(0, len(idx), span):
            chunk = idx[s:s + span]
            chunk = chunk[np.argsort(self.lengths[chunk], kind="stable")]
            batches += [chunk[i:i + self.batch_size].tolist() for i in range(0, len(chunk), self.batch_size)]
        for j in rng.permutation(len(batches)):
            yield batches[j]


class MoleculeDataModule(L.LightningDataModule):
    """Train/validation molecules featurized by the model's own ``featurize``/``collate``."""

    def __init__(self, train: list[str], val: list[str], featurize: Callable[[str], Any],
                 collate: Callable[[Sequence[Any]], Any], *, batch_size: int = 128, seed: int = 0,
                 cache_key: str | None = None, eval_batch_size: int = 512,
                 length: Callable[[Any], int] = len) -> None:
        super().__init__()
        self.train_smiles, self.val_smiles = train, val
        self.featurize, self.collate = featurize, collate
        self.batch_size, self.eval_batch_size, self.seed = batch_size, eval_batch_size, seed
        self.cache_key = cache_key
        self._length = length  # size of one item, for length-bucketed batches
        self.train_items: list[Any] | None = None
        self.val_items: list[Any] | None = None
        self.dropped: dict[str, Counter] = {}

    def _featurize_cached(self, name: str, smiles: list[str]) -> list[Any]:
        path = cache_dir() / "datasets" / f"{self.cache_key}-{name}.npz" if self.cache_key else None
        if path is not None and path.exists():
            z = np.load(path, allow_pickle=False)
            flat, offsets = z["flat"], z["offsets"]
            self.dropped[name] = Counter(dict(zip(z["drop_keys"].tolist(), z["drop_counts"].tolist())))
            return [flat[offsets[i]:offsets[i + 1]].tolist() for i in range(len(offsets) - 1)]
        items, dropped = featurize_all(smiles, self.featurize)
        self.dropped[name] = dropped
        if path is not None and all(isinstance(x, list) for x in items[:10]):
            offsets = np.cumsum([0] + [len(x) for x in items]).astype(np.int64)
            flat = np.fromiter((t for x in items for t in x), dtype=np.int16, count=int(offsets[-1]))
            path.parent.mkdir(parents=True, exist_ok=True)
            np.savez(path.with_suffix(".tmp.npz"), flat=flat, offsets=offsets,
                     drop_keys=np.array(list(dropped), dtype=str), drop_counts=np.array(list(dropped.values())))
            path.with_suffix(".tmp.npz").replace(path)
        return items

    def setup(self, stage: str | None = None) -> None:
        if self.train_items is None:
            self.train_items = self._featurize_cached("train", self.train_smiles)
            self.val_items = self._featurize_cached("val", self.val_smiles)
            for name, d in self.dropped.items():
                if d:
                    log.warning("%s: %d molecules cannot be represented and are left out of training: %s",
                                name, sum(d.values()), dict(d.most_common(5)))

    def train_dataloader(self) -> DataLoader:
        lengths = [self._length(x) for x in self.train_items]
        sampler = LengthBucketSampler(lengths, self.batch_size, self.seed)
        return DataLoader(ListDataset(self.train_items), batch_sampler=sampler, collate_fn=self.collate)

    def val_dataloader(self) -> DataLoader:
        order = sorted(range(len(self.val_items)), key=lambda i: self._length(self.val_items[i]))
        items = [self.val_items[i] for i in order]
        return DataLoader(ListDataset(items), batch_size=self.eval_batch_size, collate_fn=self.collate)


