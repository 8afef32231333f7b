"""Molecule -> PyG graph -> molecule round trip and feature layout."""

import pytest
import torch
from rdkit import Chem

from molgen.featurizers.graph import ATOM_DIM, EDGE_DIM, data_to_smiles, smiles_to_data
from molgen.registry import FEATURIZERS

EXTRA = ["C[N+](C)(C)C", "[O-][n+]1ccccc1", "O=[N+]([O-])c1ccccc1", "c1cc[nH]c1", "[2H]C(Cl)Br",
         "C/C=C/Cl", "F/C=C/C=C\\Br", "C[C@H](N)C(=O)O", "C[C@H]1CC[C@@H](O)CC1", "[NH3+]CC(=O)[O-]",
         "Cc1ccc2[nH]c(=O)sc2c1", "O=S(=O)(N)c1ccc(B(O)O)cc1", "[Se]1C=CC=C1"]


def test_round_trip_preserves_canonical_smiles_on_moses_molecules(moses_test_smiles):
    smiles = [Chem.MolToSmiles(Chem.MolFromSmiles(s)) for s in moses_test_smiles[:300]] + EXTRA
    canon = [Chem.MolToSmiles(Chem.MolFromSmiles(s)) for s in smiles]
    back = [data_to_smiles(smiles_to_data(c)) for c in canon]
    assert back == canon
    # the sample really covers charges and aromatic rings
    assert any("+" in c for c in canon) and any("c" in c for c in canon)


def test_features_have_the_documented_shapes():
    d = smiles_to_data("c1ccccc1C(=O)[O-]")
    assert d.x.shape == (9, ATOM_DIM) and d.edge_attr.shape == (2 * 9, EDGE_DIM)
    assert d.edge_index.shape == (2, 18)
    assert torch.all(d.x.sum(-1) > 0)
    aromatic_bonds = d.edge_attr[:, 3].sum()
    assert aromatic_bonds == 12  # 6 ring bonds, both directions


def test_single_atom_and_invalid_input():
    d = smiles_to_data("C")
    assert d.num_nodes == 1 and d.edge_index.shape == (2, 0)
    assert data_to_smiles(d) == "C"
    with pytest.raises(ValueError):
        smiles_to_data("C1CC")


def test_registered_as_a_featurizer():
    f = FEATURIZERS.get("graph")()
    assert f.inverse(f("OCC")) == "CCO"
