"""Chemistry: parsing, the standardization policy, canonical SMILES, RDKit log control."""

from molgen.chem.policy import (
    DEFAULT_POLICY,
    STANDARDIZATIONS,
    Policy,
    Status,
    canonicalize,
    canonicalize_many,
    mol_to_smiles,
    restandardize,
    standardize,
    standardize_mol,
    to_mol,
)
from molgen.chem.rdlog import quiet_rdkit

__all__ = [
    "DEFAULT_POLICY",
    "STANDARDIZATIONS",
    "Policy",
    "Status",
    "canonicalize",
    "canonicalize_many",
    "mol_to_smiles",
    "quiet_rdkit",
    "restandardize",
    "standardize",
    "standardize_mol",
    "to_mol",
]
