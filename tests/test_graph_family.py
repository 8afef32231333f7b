"""A graph-space family goes through the unchanged pipeline: ``molgen.train`` fits the ``graph``
representation, the family trains, samples and scores (row-aligned, bad rows with statuses), and the model
directory saves and loads, all without a token in sight.

The family is defined here and registered only for this module: independent categorical factors over a
canvas of ``max_len`` atoms, p(G) = p(n) prod_i p(a_i | i) prod_{i<j} p(b_ij | i, j) with n the number of
atoms, a_i the atom types and b_ij "no bond" or a bond type. It is a proper distribution over labelled
graphs with at most ``max_len`` atoms, so its log-likelihood is exact (object: ``labelled-graph``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import torch
from torch import Tensor, nn

import molgen
from molgen.chem import DEFAULT_POLICY, STANDARDIZATIONS, Policy
from molgen.errors import ConfigError, TooLongError
from molgen.featurizers.graph import BOND_LABELS, GraphRepresentation
from molgen.likelihood import row_seeds
from molgen.models.base import GenerativeModel
from molgen.models.config import ModelConfig
from molgen.registry import MODELS
from molgen.rowrandom import RowRandom
from molgen.scoring import COLUMNS, like_training
from molgen.training.progress import log_due


@dataclass
class TinyGraphConfig(ModelConfig):
    """``max_len``: the atom canvas (``molgen.train`` sets it from the largest training molecule)."""


class TinyGraphModel(GenerativeModel):
    """Independent atom-count, atom-type and bond categoricals over a fixed canvas (exact likelihood)."""

    name = "tiny-graph"
    capabilities = frozenset({"sample", "log_likelihood"})
    config_class = TinyGraphConfig
    representation_kinds = frozenset({"graph"})
    featurize_cacheable = False  # items are PyG graphs, not id lists
    optim_options = ("lr",)

    def __init__(self, config: TinyGraphConfig, *, representation: Any, policy: Policy = DEFAULT_POLICY) -> None:
        super().__init__(config, representation=representation, policy=policy)
        if not isinstance(representation, GraphRepresentation):
            raise ConfigError("the tiny graph family needs the graph representation")
        n, sizes = config.max_len, representation.sizes()
        self.n_logits = nn.Parameter(torch.zeros(n))  # p(number of atoms = 1..n)
        self.atom_logits = nn.Parameter(torch.zeros(n, sizes["atom_types"]))
        self.bond_logits = nn.Parameter(torch.zeros(n, n, sizes["bond_types"] + 1))  # 0: no bond
        self.register_buffer("upper", torch.ones(n, n, dtype=torch.bool).triu(1), persistent=False)

    # --- data ----------------------------------------------------------------------------------
    def featurize(self, canonical_smiles: str) -> Any:
        item = self.representation.encode(canonical_smiles)
        if int(item.num_nodes) > self.max_len:
            raise TooLongError(int(item.num_nodes), self.max_len)
        return item

    def collate(self, items):
        return self.representation.collate(items)

    def item_length(self, item: Any) -> int:
        return self.representation.item_length(item)

    # --- likelihood ----------------------------------------------------------------------------
    @classmethod
    def likelihood_kind(cls, config: ModelConfig, kind: str | None = None) -> str:
        if kind not in (None, "exact"):
            raise ConfigError(f"the tiny graph family reports one likelihood kind: exact; got {kind!r}")
        return "exact"

    def _log_p(self, n: Tensor, atoms: Tensor, bonds: Tensor, temperature: float = 1.0) -> Tensor:
        """[B] log p of graphs with ``n`` atoms, types ``atoms`` [B, M] (-1 past n), bonds [B, M, M]."""
        M = atoms.shape[1]
        lp_n = torch.log_softmax(self.n_logits / temperature, -1)[n - 1]
        lp_a = torch.log_softmax(self.atom_logits[:M] / temperature, -1)  # [M, A]
        lp_b = torch.log_softmax(self.bond_logits[:M, :M] / temperature, -1)  # [M, M, K]
        present = atoms >= 0
        a = lp_a.unsqueeze(0).expand(atoms.shape[0], -1, -1).gather(-1, atoms.clamp(min=0).unsqueeze(-1))
        b = lp_b.unsqueeze(0).expand(bonds.shape[0], -1, -1, -1).gather(-1, bonds.unsqueeze(-1))
        pair = self.upper[:M, :M] & present[:, :, None] & present[:, None, :]
        return lp_n + (a.squeeze(-1) * present).sum(-1) + (b.squeeze(-1) * pair).sum((-1, -2))

    def log_likelihood(self, batch: dict[str, Any], *, kind: str | None = None) -> Tensor:
        self.likelihood_kind(self.config, kind)
        return self._log_p(batch["n_atoms"], batch["atoms"], batch["bonds"])

    # --- training ------------------------------------------------------------------------------
    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.optim.lr)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        loss = -self.log_likelihood(batch).mean() / self.max_len
        if log_due(self):
            self.log("train/nll", loss.detach(), batch_size=batch["atoms"].shape[0])
        return loss

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        ll = self.log_likelihood(batch)
        self.log("val/nll", -ll.mean(), batch_size=ll.shape[0])

    # --- sampling ------------------------------------------------------------------------------
    def _sample(self, n: int, *, temperature: float, rng: RowRandom, condition=None, guidance=None,
                constrain=None) -> tuple[list[Any], Tensor]:
        self._refuse_constrain(constrain)
        N = self.max_len
        sizes = 1 + rng.categorical_logits(self.n_logits.expand(n, N), 0, temperature)  # [n]
        atoms = rng.categorical_logits(self.atom_logits.expand(n, N, -1), 1, temperature)  # [n, N]
        bonds = rng.categorical_logits(self.bond_logits.expand(n, N, N, -1), 2, temperature)  # [n, N, N]
        keep = torch.arange(N)[None, :] < sizes[:, None]
        atoms = atoms.masked_fill(~keep, -1)
        bonds = bonds * (self.upper & keep[:, :, None] & keep[:, None, :])
        ll = self._log_p(sizes, atoms, bonds)  # log p of the drawn labelled graph at temperature 1
        rep, mols = self.representation, []
        for r in range(n):
            i, j = torch.nonzero(bonds[r], as_tuple=True)
            item = rep.item(atoms[r, :int(sizes[r])].tolist(), zip(i.tolist(), j.tolist(), (bonds[r, i, j] - 1).tolist()))
            mols.append(rep.decode(item))  # an RDKit molecule, or None for a graph with no valid valences
        return mols, ll.double()


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_train_smiles):
    """The tiny graph family trained through ``molgen.train`` (registered for this module only)."""
    out = tmp_path_factory.mktemp("graph") / "model"
    with MODELS.temporarily("tiny-graph", TinyGraphModel):
        model = molgen.train("tiny-graph", data=tiny_train_smiles[:80], out=out, representation="graph",
                             max_steps=30, val_every=10, val_size=10, batch_size=16, lr=0.05,
                             progress=False, precision="32-true", num_threads=1)
        yield model, out


def test_train_fits_the_graph_representation_and_saves_it(trained, tiny_train_smiles):
    model, out = trained
    rep = model.representation
    assert isinstance(rep, GraphRepresentation) and rep.is_fitted and "[cH]" in rep.atom_types
    atoms = [rep.size(s) for s in tiny_train_smiles[:80]]  # the canvas: largest training molecule + 10 %
    assert max(atoms) < model.max_len <= int(max(atoms) * 1.1) + 1
    label = model.likelihood_label()
    assert (label.kind, label.object, label.unit) == ("exact", "labelled-graph", "nats/molecule")
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["model"] == "tiny-graph" and cfg["representation"] == "graph"
    assert cfg["likelihood"]["object"] == "labelled-graph"
    state = json.loads((out / "representation.json").read_text())
    assert state["format"] == "molgen-representation" and state["name"] == "graph"
    assert state["atom_types"] == rep.atom_types and state["bond_types"] == list(BOND_LABELS)
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["training"]["representation"] == "graph" and meta["training"]["steps"] == 30
    assert meta["final"]["likelihood"]["object"] == "labelled-graph" and meta["final"]["val_nll_nats_per_molecule"] > 0


def test_samples_are_molecules_drawn_per_row(trained):
    model, _ = trained
    res = model.sample(300, seed=0)
    assert len(res) == 300 and res.likelihood.object == "labelled-graph"
    assert np.isfinite(res.log_likelihood).all() and (res.log_likelihood < 0).all()
    # independent factors seldom give every atom its valence: a few drawn graphs are molecules (small ones),
    # the others are kept as invalid rows
    assert 0 < res.validity < 1
    assert all(s == "" for s, c in zip(res.smiles, res.canonical) if c is None)
    again = model.sample(8, seed=0, batch_size=3)  # molecule i comes from its own stream
    assert again.smiles == res.smiles[:8]
    np.testing.assert_allclose(again.log_likelihood, res.log_likelihood[:8])


def test_scores_are_row_aligned_with_statuses(trained, tiny_train_smiles):
    model, _ = trained
    good, other = tiny_train_smiles[0], tiny_train_smiles[1]
    rows = [good, "not a smiles", None, "CC[Se]CC", "CC/C=C/CC", good + ".[Na+]", "C" * 300, other, good]
    df = model.score(rows, batch_size=2)
    assert list(df.columns) == COLUMNS and len(df) == len(rows) and df.input.tolist()[:2] == rows[:2]
    assert df.status.tolist() == ["ok", "invalid_smiles", "invalid_smiles", "oov_token:[Se]", "oov_token:/",
                                  "ok", "too_long", "ok", "ok"]
    assert "element(s) Se never seen in training" in df.note[3]
    assert "--strip-stereo (strip_stereo=True) would score it" in df.note[4]
    ok = (df.status == "ok").to_numpy()
    assert np.isfinite(df.log_likelihood[ok]).all() and df.log_likelihood[~ok].isna().all()
    assert (df.likelihood_object == "labelled-graph").all() and (df.likelihood_kind == "exact").all()
    assert (df.n_tokens == 0).all() and df.nll_per_token.isna().all()  # graphs have no tokens
    # the salt is stripped by the policy: the parent's number; a molecule's number is its own anywhere
    assert df.log_likelihood[5] == df.log_likelihood[0] == df.log_likelihood[8]
    alone = model.score([other]).log_likelihood[0]
    assert alone == pytest.approx(df.log_likelihood[7], rel=1e-6)
    # strip_stereo scores the stereo-free graph; the vocabulary (MOSES: no stereo) says so too
    assert model.score(["CC/C=C/CC"], strip_stereo=True).status[0] == "ok"
    assert "stereo" in like_training(model) and set(like_training(model)) <= set(STANDARDIZATIONS)


def test_seed_material_is_the_molecule_alone(trained, tiny_train_smiles):
    rep = trained[0].representation
    a, b = (rep.encode(s) for s in tiny_train_smiles[2:4])
    seeds = row_seeds([a, b, rep.encode(tiny_train_smiles[2])], rep, salt=3)
    assert seeds[0] == seeds[2] != seeds[1]
    assert row_seeds([b], rep, salt=3) == [seeds[1]] and row_seeds([b], rep, salt=4) != [seeds[1]]


def test_the_model_directory_loads_with_the_same_numbers(trained, tiny_train_smiles):
    model, out = trained
    loaded = molgen.load(out)
    assert type(loaded) is TinyGraphModel and isinstance(loaded.representation, GraphRepresentation)
    assert loaded.representation.to_dict() == model.representation.to_dict() and loaded.max_len == model.max_len
    rows = [*tiny_train_smiles[:12], "CC[Se]CC", "garbage"]
    a, b = model.score(rows), loaded.score(rows)
    assert a.status.tolist() == b.status.tolist()
    np.testing.assert_array_equal(a.log_likelihood.to_numpy(), b.log_likelihood.to_numpy())
    assert loaded.sample(10, seed=5).smiles == model.sample(10, seed=5).smiles
