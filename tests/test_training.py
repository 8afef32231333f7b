"""The training pipeline: families own their optimisation (two optimizers, manual optimisation),
one progress object that survives resume, budgets, the honest split, the distributed sampler and the
measured precision choice. Test-only families are passed as classes, not registered globally."""

from __future__ import annotations

import json
from dataclasses import dataclass

import lightning as L
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from molgen.chem import DEFAULT_POLICY
from molgen.errors import ConfigError, TooLongError
from molgen.models.base import GenerativeModel
from molgen.training.optim import adamw_warmup_cosine, warmup_cosine
from molgen.training.train import choose_precision, split_data, train


@dataclass
class _Config:
    max_len: int = 100
    d: int = 16


class _TinyFamily(GenerativeModel):
    """A test double of a family: embeddings -> next-token head; ``manual`` adds a critic with its own
    optimizer and steps both by hand (the shape of adversarial training)."""

    name = "test-tiny"
    capabilities = frozenset({"sample"})
    featurize_cacheable = False
    manual = False

    def __init__(self, config: _Config, *, representation, policy=DEFAULT_POLICY) -> None:
        L.LightningModule.__init__(self)  # independent of the base constructor: a test double
        self.config, self.representation, self.policy = config, representation, policy
        self.metadata: dict = {}
        self.automatic_optimization = not self.manual
        vocab = representation.vocab_size
        self.emb = nn.Embedding(vocab, config.d)
        self.head = nn.Linear(config.d, vocab)
        self.critic = nn.Linear(config.d, 1)
        self.lrs: list[tuple[float, ...]] = []
        self.first_ids: list[list[int]] = []

    @classmethod
    def build(cls, options, *, representation, policy=DEFAULT_POLICY):
        return cls(_Config(**options), representation=representation, policy=policy)

    def featurize(self, s: str) -> list[int]:
        ids = self.representation.encode(s)
        if len(ids) > self.config.max_len:
            raise TooLongError(len(ids), self.config.max_len)
        return ids

    def item_length(self, item) -> int:
        return len(item)

    def collate(self, items):
        T = max(len(x) for x in items) + 1
        ids = torch.zeros(len(items), T, dtype=torch.long)
        for i, x in enumerate(items):
            ids[i, :len(x)] = torch.as_tensor(x)
        return {"ids": ids}

    def _gen_loss(self, ids):
        h = self.emb(ids[:, :-1])
        return F.cross_entropy(self.head(h).transpose(1, 2), ids[:, 1:]), h

    def training_step(self, batch, batch_idx):
        ids = batch["ids"]
        self.first_ids.append(ids[0].tolist())
        if not self.manual:
            loss, _ = self._gen_loss(ids)
            return loss
        opt_g, opt_c = self.optimizers()
        sch_g, sch_c = self.lr_schedulers()
        loss_g, h = self._gen_loss(ids)
        opt_g.zero_grad()
        self.manual_backward(loss_g)
        opt_g.step()
        sch_g.step()
        loss_c = self.critic(h.detach()).pow(2).mean()
        opt_c.zero_grad()
        self.manual_backward(loss_c)
        opt_c.step()
        sch_c.step()
        self.lrs.append((opt_g.param_groups[0]["lr"], opt_c.param_groups[0]["lr"]))

    def validation_step(self, batch, batch_idx):
        loss, _ = self._gen_loss(batch["ids"])
        self.log("val/loss", loss, batch_size=batch["ids"].shape[0])

    def configure_optimizers(self):
        gen = [(n, p) for n, p in self.named_parameters() if not n.startswith("critic")]
        if not self.manual:
            return adamw_warmup_cosine(self, self.optim, gen)
        return [adamw_warmup_cosine(self, self.optim, gen),
                adamw_warmup_cosine(self, self.optim, list(self.critic.named_parameters()))]

    def save_pretrained(self, path) -> None:
        from safetensors.torch import save_file

        path.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in self.state_dict().items()}, str(path / "model.safetensors"))
        (path / "metadata.json").write_text(json.dumps(self.metadata, default=str))


class _TwoOptimizers(_TinyFamily):
    name = "test-two-optimizers"
    manual = True


class _StopAt(L.Callback):
    def __init__(self, steps: int) -> None:
        self.steps = steps

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if pl_module.progress.steps >= self.steps:
            trainer.should_stop = True


class _Spy(L.Callback):
    """What the progress object holds when training (re)starts."""

    def __init__(self) -> None:
        self.at_start: dict | None = None

    def on_train_start(self, trainer, pl_module):
        p = pl_module.progress
        self.at_start = {"steps": p.steps, "molecules": p.molecules, "seconds": p.seconds,
                         "sched_steps": [c.scheduler.last_epoch for c in trainer.lr_scheduler_configs]}


# 200 molecules - 8 for validation = 12 full batches of 16
COMMON = dict(batch_size=16, val_size=8, val_every=1000, warmup_steps=2, lr=1e-2, precision="32-true",
              num_threads=1, progress=False, model_args={"d": 8})


def test_two_optimizers_manual_optimisation_and_resume_continue_progress(tmp_path, tiny_train_smiles):
    data = tiny_train_smiles[:200]
    # one uninterrupted run of 8 steps
    full = train(_TwoOptimizers, data, tmp_path / "full", max_steps=8, **COMMON)
    assert full.progress.steps == 8 and full.progress.molecules == 8 * 16
    assert len(full.lrs) == 8 and full.metadata["training"]["optimizer_steps"] == 16  # two per batch
    assert full.metadata["training"]["molecules_seen"] == 8 * 16

    # the same run interrupted after 4 steps (as by a crash or Ctrl-C), then resumed
    out = tmp_path / "m"
    first = train(_TwoOptimizers, data, out, max_steps=8, callbacks=[_StopAt(4)], **COMMON)
    assert first.progress.steps == 4
    np.testing.assert_allclose(first.lrs, full.lrs[:4], rtol=1e-6)
    seconds_before = first.progress.seconds
    assert seconds_before > 0
    spy = _Spy()
    resumed = train(_TwoOptimizers, data, out, max_steps=8, resume=out / "checkpoints" / "last.ckpt",
                    callbacks=[spy], **COMMON)
    # the counters were restored, not reset ...
    assert spy.at_start["steps"] == 4 and spy.at_start["molecules"] == 4 * 16
    assert spy.at_start["seconds"] == pytest.approx(seconds_before)
    assert spy.at_start["sched_steps"] == [4, 4]
    # ... and continued
    p = resumed.progress
    assert p.steps == 8 and p.molecules == 8 * 16 and p.seconds > seconds_before
    assert resumed.metadata["training"]["steps"] == 8
    # the learning rates continue where they were: those of the uninterrupted run's last 4 steps
    assert len(resumed.lrs) == 4
    np.testing.assert_allclose(resumed.lrs, full.lrs[4:], rtol=1e-6)
    assert resumed.lrs[0] != pytest.approx(full.lrs[0])  # not restarted at warm-up
    # the data stream continues too (not the start of an epoch again): the same model as without a stop
    assert resumed.first_ids == full.first_ids[4:]
    for k, v in full.state_dict().items():
        torch.testing.assert_close(resumed.state_dict()[k], v, rtol=1e-5, atol=1e-6)


def test_molecule_budget_stops_the_run_and_schedules_read_it(tmp_path, tiny_train_smiles):
    m = train(_TinyFamily, tiny_train_smiles[:200], tmp_path / "m", max_molecules=50, **COMMON)
    assert m.progress.steps == 4 and m.progress.molecules == 64  # the first batch that reaches 50
    assert m.progress.fraction() == 1.0
    # the last step ran at the schedule's value after 3 steps (48 of 50 molecules): near the cosine's end
    lr = m.trainer.optimizers[0].param_groups[0]["lr"]
    assert lr == pytest.approx(COMMON["lr"] * warmup_cosine(3, 48 / 50, 2, 0.05))
    assert lr < 0.06 * COMMON["lr"]
    t = m.metadata["training"]
    assert t["max_molecules"] == 50 and t["molecules_seen"] == 64 and t["molecules_per_s"] > 0


def test_validation_is_carved_from_train_seeded_and_recorded(tmp_path, tiny_train_smiles):
    opts = {"data": tiny_train_smiles[:300], "val_data": None, "smiles_col": None, "subset": None, "seed": 3,
            "n_jobs": 1, "val_size": 25}
    train_a, val_a, info = split_data(dict(opts), DEFAULT_POLICY)
    train_b, val_b, _ = split_data(dict(opts), DEFAULT_POLICY)
    assert val_a == val_b and train_a == train_b and len(val_a) == 25
    assert not set(val_a) & set(train_a) and len(train_a) + len(val_a) == 300
    v = info["validation"]
    assert v["from_training_data"] is True and v["n"] == 25 and v["seed"] == 3 and len(v["sha256"]) == 64
    _, val_c, _ = split_data({**opts, "seed": 4}, DEFAULT_POLICY)
    assert val_c != val_a

    # a user file is deduplicated against train
    f = tmp_path / "val.smi"
    f.write_text("\n".join(tiny_train_smiles[:10] + tiny_train_smiles[400:420]) + "\n")
    tr, val, info = split_data({**opts, "val_data": str(f)}, DEFAULT_POLICY)
    assert len(val) == 20 and not set(val) & set(tr) and len(tr) == 300
    assert info["validation"]["from_training_data"] is False and info["validation"]["removed_as_in_train"] == 10


@pytest.mark.parametrize("name", ["moses:test", "moses:test_scaffolds", "moses:testsf"])
def test_test_sets_are_never_validation(name):
    opts = {"data": ["CCO"], "val_data": name, "smiles_col": None, "subset": None, "seed": 0, "n_jobs": 1,
            "val_size": 10}
    with pytest.raises(ConfigError, match="test sets are for reported metrics only"):
        split_data(opts, DEFAULT_POLICY)


def test_test_set_file_is_refused_by_content(tmp_path):
    from molgen.data import catalog

    path, _ = catalog.resolve("moses:test")
    opts = {"data": ["CCO"], "val_data": str(path), "smiles_col": None, "subset": None, "seed": 0,
            "n_jobs": 1, "val_size": 10}
    with pytest.raises(ConfigError, match="moses:test"):
        split_data(opts, DEFAULT_POLICY)


def test_precision_is_measured_once_and_cached(tmp_path, tiny_train_smiles, smiles_tokenizer, monkeypatch):
    from molgen.data import catalog
    from molgen.data.datamodule import MoleculeDataModule

    monkeypatch.setenv("MOLGEN_CACHE", str(tmp_path))
    monkeypatch.delenv("MOLGEN_PRECISION_TRIAL", raising=False)
    torch.set_num_threads(1)
    class Noisy(_TinyFamily):  # its steps draw random numbers (like dropout)
        def training_step(self, batch, batch_idx):
            torch.rand(1)
            return super().training_step(batch, batch_idx)

    model = Noisy.build({"d": 8}, representation=smiles_tokenizer)
    dm = MoleculeDataModule(tiny_train_smiles[:64], tiny_train_smiles[64:80], model.featurize, model.collate,
                            batch_size=16)
    opts = {"precision": None, "accelerator": "cpu", "batch_size": 16, "seed": 0}
    torch.manual_seed(5)
    choice, rec = choose_precision(model, dm, opts, budget_s=0.2)
    after_trial = torch.rand(2)
    torch.manual_seed(5)
    torch.testing.assert_close(torch.rand(2), after_trial)  # the trial leaves the random stream alone
    assert choice in ("32-true", "bf16-mixed") and rec["how"] == "measured"
    rates = rec["molecules_per_s"]
    assert choice == max(rates, key=rates.get) and min(rates.values()) > 0
    cache = json.loads((catalog.cache_dir() / "precision.json").read_text())
    assert [r["choice"] for r in cache.values()] == [choice]
    monkeypatch.delenv("MOLGEN_PRECISION_TRIAL")
    choice2, rec2 = choose_precision(model, dm, opts, budget_s=0.2)
    assert choice2 == choice and rec2["how"] == "measured earlier (cached)"
    assert choose_precision(model, dm, {**opts, "precision": "bf16-mixed"})[0] == "bf16-mixed"


def test_a_misspelt_option_lists_model_and_training_options(tiny_train_smiles, tmp_path):
    import molgen
    from molgen.errors import ConfigError

    with pytest.raises(ConfigError, match=r"unknown option\(s\) max_molcules.*training options: .*max_molecules"):
        molgen.train("transformer", data=tiny_train_smiles[:50], out=tmp_path / "m", max_molcules=5, progress=False)
