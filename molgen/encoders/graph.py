"""GNN over the PyG featurization (``molgen.featurizers.graph``) -> q(z|x).

n layers of ``GATv2Conv`` (or ``TransformerConv``) with edge features, each as a pre-norm residual
block ``h + GELU(conv(LayerNorm(h)))``; readout ``global_add_pool ⊕ global_mean_pool`` -> MLP (GELU).
No ReLU anywhere (PyG's GINEConv has one inside its message, hence not used).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.data import Batch
from torch_geometric.nn import GATv2Conv, TransformerConv, global_add_pool, global_mean_pool

from molgen.encoders.base import Encoder
from molgen.errors import TokenizeError, check_choice
from molgen.featurizers.graph import ATOM_DIM, EDGE_DIM, smiles_to_data
from molgen.registry import ENCODERS


@ENCODERS.register("graph")
class GraphEncoder(Encoder):
    """Graph attention encoder with edge features, residual + LayerNorm, GELU, sum+mean readout."""

    input_kind = "graph"

    def __init__(self, d_z: int, hidden: int = 128, n_layers: int = 3, heads: int = 4, conv: str = "gatv2",
                 atom_dim: int = ATOM_DIM, edge_dim: int = EDGE_DIM) -> None:
        super().__init__(hidden, d_z)
        if hidden % heads:
            raise ValueError(f"hidden {hidden} must be divisible by heads {heads}")
        convs = {"gatv2": GATv2Conv, "transformer": TransformerConv}
        check_choice("graph encoder conv", conv, sorted(convs))
        layer = convs[conv]
        self.inp = nn.Linear(atom_dim, hidden)
        self.norms = nn.ModuleList(nn.LayerNorm(hidden) for _ in range(n_layers))
        self.convs = nn.ModuleList(layer(hidden, hidden // heads, heads=heads, edge_dim=edge_dim)
                                   for _ in range(n_layers))
        self.out = nn.Sequential(nn.LayerNorm(2 * hidden), nn.Linear(2 * hidden, hidden), nn.GELU())

    def featurize(self, canonical_smiles: str) -> Any:
        """The molecule's PyG graph (:func:`molgen.featurizers.graph.smiles_to_data`); TokenizeError if RDKit
        cannot build it."""
        try:
            return smiles_to_data(canonical_smiles)
        except ValueError as e:
            raise TokenizeError(str(e)) from None

    def collate(self, items: Sequence[Any]) -> Batch:
        return Batch.from_data_list(list(items))

    def features(self, batch: dict) -> Tensor:
        g = batch["graph"]
        h = self.inp(g.x)
        for norm, conv in zip(self.norms, self.convs):
            h = h + F.gelu(conv(norm(h), g.edge_index, g.edge_attr))
        n_graphs = int(g.num_graphs)
        pooled = torch.cat([global_add_pool(h, g.batch, n_graphs), global_mean_pool(h, g.batch, n_graphs)], -1)
        return self.out(pooled)
