"""ChemNet activations for FCD, exact to ``fcd_torch`` and several times faster on CPU.

``fcd_torch`` one-hot encodes every SMILES to a fixed length of 350 symbols and runs two strided
convolutions and two LSTMs over the full padded length. Its convolutions have no bias and SELU(0) = 0,
so every position whose receptive field is all padding is exactly zero after the convolutions. The
first LSTM runs *backwards*, so it reads the all-zero tail first: its states and outputs over the tail
are the same for every molecule and are computed once. Per molecule we then only run

- the convolutions over the first ``4 P + 4`` symbols (``P`` = positions that can differ from zero),
- LSTM-1 over those ``P`` positions, starting from the precomputed tail state,
- LSTM-2 over all 88 positions, with the input projection of the shared tail precomputed.

Batches are grouped by ``P`` (sorted by length) and run under ``torch.inference_mode``. The weights are
fcd_torch's own ``ChemNet_v0.13_pretrained.pt``, loaded with ``weights_only=True``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from functools import lru_cache

import numpy as np

VOCAB = ['C', 'N', 'O', 'H', 'F', 'Cl', 'P', 'B', 'Br', 'S', 'I', 'Si', '#', '(', ')', '+', '-', '1',
         '2', '3', '4', '5', '6', '7', '8', '=', '[', ']', '@', 'c', 'n', 'o', 's', 'X', '.']
_C2I = {k: i for i, k in enumerate(VOCAB)}
_UNK = _C2I['X']
_END = _C2I['.']
_TWO = {'r', 'i', 'l'}
PAD_LEN = 350
N_POS = 88  # positions after the two stride-2 convolutions of a 350-long input


def tokenize(smiles: str) -> list[int]:
    """Symbol indices exactly as ``fcd_torch.utils.get_one_hot`` writes them (end symbol included)."""
    s = smiles + '.'
    out: list[int] = []
    src = 0
    while True:
        if s[src + 1] in _TWO:
            sym = s[src:src + 2]
            src += 2
        else:
            sym = s[src]
            src += 1
        out.append(_C2I.get(sym, _UNK))
        if s[src] == '.' or len(out) == PAD_LEN - 1:
            out.append(_END)
            break
    return out


def weights_path() -> str:
    import fcd_torch

    return os.path.join(os.path.dirname(fcd_torch.__file__), 'ChemNet_v0.13_pretrained.pt')


class ChemNet:
    """Fast exact ChemNet penultimate activations (512-d) for canonical SMILES."""

    ROW_CHUNK = 4096  # rows per gate-arithmetic chunk (smaller chunks help a quiet CPU, hurt a loaded one)

    profile: dict[str, float]  # seconds per phase, accumulated over calls (see benchmarks/evaluate.py)

    def __init__(self, device: str = 'cpu') -> None:
        import torch

        cfg = torch.load(weights_path(), weights_only=True, map_location='cpu')
        convs, lstms = [], []
        for layer_type, (state, kwargs, info) in cfg:
            if layer_type == 'Conv1d':
                assert info['activation'] == 'selu' and not kwargs.get('bias', True)
                convs.append(state['weight'].float())
            else:
                lstms.append(({k: v.float() for k, v in state.items()}, kwargs, info))
        assert len(convs) == 2 and len(lstms) == 2 and lstms[0][2]['reverse'] and lstms[1][2]['reverse']
        self.device = torch.device(device)
        self.profile = {}
        dev = self.device
        self.w1, self.w2 = convs[0].to(dev), convs[1].to(dev)
        self.lstm1 = torch.nn.LSTM(**lstms[0][1]).to(dev).eval()
        self.lstm1.load_state_dict(lstms[0][0])
        s2 = lstms[1][0]
        self.lstm2 = torch.nn.LSTM(**lstms[1][1]).to(dev).eval()
        self.lstm2.load_state_dict(s2)
        hs = self.lstm2.hidden_size
        # Gate rows reordered from (i, f, g, o) to (i, f, o, g): one sigmoid and one tanh per step.
        perm = torch.cat([torch.arange(0, 2 * hs), torch.arange(3 * hs, 4 * hs), torch.arange(2 * hs, 3 * hs)])
        self._perm = perm
        self.whh2 = s2['weight_hh_l0'][perm].contiguous().to(dev)
        self.whh2_t = self.whh2.t().contiguous()
        self._mkldnn_linear = None
        if self.device.type == 'cpu' and torch.backends.mkldnn.is_available():
            try:
                from torch.utils import mkldnn as mkldnn_utils

                lin = torch.nn.Linear(hs, 4 * hs, bias=False)
                lin.weight.data = self.whh2.clone()
                self._mkldnn_linear = mkldnn_utils.to_mkldnn(lin)
            except Exception:  # pragma: no cover - builds without oneDNN
                self._mkldnn_linear = None
        with torch.inference_mode():
            # LSTM-1 over the all-zero tail, read backwards from position 87: states after k steps.
            h = torch.zeros(1, 1, self.lstm1.hidden_size, device=dev)
            c = torch.zeros_like(h)
            zero = torch.zeros(1, 1, self.lstm1.input_size, device=dev)
            self.tail_h = [h[0, 0]]
            self.tail_c = [c[0, 0]]
            tail_out = []
            for _ in range(N_POS):
                o, (h, c) = self.lstm1(zero, (h, c))
                tail_out.append(o[0, 0])
                self.tail_h.append(h[0, 0])
                self.tail_c.append(c[0, 0])
            # tail_out[k] is LSTM-1's output at absolute position 87 - k.
            y1 = torch.stack(tail_out[::-1])  # [88, 128] in position order
            self.tail_y1 = y1
            # LSTM-2 input projection (+ both biases) of the shared tail outputs.
            gates2 = y1 @ s2['weight_ih_l0'].t().to(dev) + (s2['bias_ih_l0'] + s2['bias_hh_l0']).to(dev)
            self.tail_gates2 = gates2[:, perm].contiguous()

    @staticmethod
    def _n_positions(n_tokens: int) -> int:
        """Positions after the convolutions that can be non-zero for ``n_tokens`` input symbols."""
        return min(N_POS, (n_tokens + 2) // 4 + 1)

    def _conv(self, x):
        import torch.nn.functional as F

        # 'same' padding of fcd_torch for kernel 4 / stride 2 always pads 1 on the left.
        x = F.pad(x, (1, 2 if x.shape[2] % 2 else 1))
        x = F.selu(F.conv1d(x, self.w1, stride=2))
        x = F.pad(x, (1, 2 if x.shape[2] % 2 else 1))
        return F.selu(F.conv1d(x, self.w2, stride=2))

    def _forward_group(self, tokens: np.ndarray, p: int):
        """Activations for a batch of token rows that share the same number of content positions ``p``."""
        import torch

        b = tokens.shape[0]
        dev = self.device
        length = min(PAD_LEN, 4 * p + 4)
        length += length % 2
        x = torch.zeros(b, length, len(VOCAB), device=dev)
        t = torch.from_numpy(tokens[:, :length].astype(np.int64)).to(dev)
        valid = t >= 0
        rows = torch.arange(b, device=dev)[:, None].expand_as(t)
        x[rows[valid], torch.arange(length, device=dev)[None, :].expand_as(t)[valid], t[valid]] = 1.0 / len(VOCAB)
        prof = self.profile
        t0 = time.perf_counter()
        z = self._conv(x.transpose(1, 2))[:, :, :p].transpose(1, 2)  # [b, p, 32]
        # LSTM-1 backwards over positions p-1..0, from the tail state after 88 - p zero steps.
        h0 = self.tail_h[N_POS - p].expand(1, b, -1).contiguous()
        c0 = self.tail_c[N_POS - p].expand(1, b, -1).contiguous()
        o1, _ = self.lstm1(torch.flip(z, [1]), (h0, c0))
        y1 = torch.flip(o1, [1])  # [b, p, 128], position order
        # LSTM-2 forwards: content positions with the module, then the shared tail step by step.
        t1 = time.perf_counter()
        _, (h, c) = self.lstm2(y1)
        h, c = h[0], c[0]
        t2 = time.perf_counter()
        prof['conv+lstm1'] = prof.get('conv+lstm1', 0.0) + t1 - t0
        prof['lstm2 content'] = prof.get('lstm2 content', 0.0) + t2 - t1
        t_mm = t_gate = 0.0
        hs = self.lstm2.hidden_size
        c = c.contiguous()
        h = h.contiguous()
        tmp = torch.empty_like(c)
        h_next = torch.empty_like(h)
        rows = self.ROW_CHUNK
        for pos in range(p, N_POS):
            g0 = self.tail_gates2[pos]
            # row chunks keep each chunk's gates in cache between the matmul and the gate arithmetic
            for r in range(0, b, rows):
                hr, cr, tr = h[r:r + rows], c[r:r + rows], tmp[r:r + rows]
                ta = time.perf_counter()
                if self._mkldnn_linear is not None:
                    gates = self._mkldnn_linear(hr.to_mkldnn()).to_dense()
                    gates += g0
                else:
                    gates = torch.addmm(g0, hr, self.whh2_t)
                tb = time.perf_counter()
                t_mm += tb - ta
                torch.sigmoid_(gates[:, :3 * hs])
                torch.tanh_(gates[:, 3 * hs:])
                cr.mul_(gates[:, hs:2 * hs]).addcmul_(gates[:, :hs], gates[:, 3 * hs:])
                torch.tanh(cr, out=tr)
                torch.mul(gates[:, 2 * hs:3 * hs], tr, out=h_next[r:r + rows])
                t_gate += time.perf_counter() - tb
            h, h_next = h_next, h
        prof['lstm2 tail matmul'] = prof.get('lstm2 tail matmul', 0.0) + t_mm
        prof['lstm2 tail gates'] = prof.get('lstm2 tail gates', 0.0) + t_gate
        return h

    def activations(self, smiles: Sequence[str], batch_size: int = 4096, n_threads: int | None = None) -> np.ndarray:
        """[n, 512] float32 activations of ``smiles`` (used as given: pass canonical SMILES)."""
        import torch

        n = len(smiles)
        out = np.zeros((n, 512), dtype=np.float32)
        if n == 0:
            return out
        t0 = time.perf_counter()
        toks = [tokenize(s) for s in smiles]
        self.profile['tokenize'] = self.profile.get('tokenize', 0.0) + time.perf_counter() - t0
        lens = np.array([len(t) for t in toks])
        ps = np.array([self._n_positions(k) for k in lens])
        order = np.argsort(ps, kind='stable')
        old_threads = torch.get_num_threads()
        if n_threads:
            torch.set_num_threads(n_threads)
        try:
            with torch.inference_mode():
                for start in range(0, n, batch_size):
                    idx = order[start:start + batch_size]
                    p = int(ps[idx].max())
                    width = max(int(lens[idx].max()), min(PAD_LEN, 4 * p + 5))
                    arr = np.full((len(idx), width), -1, dtype=np.int16)
                    for r, j in enumerate(idx):
                        arr[r, :lens[j]] = toks[j]
                    out[idx] = self._forward_group(arr, p).cpu().numpy()
        finally:
            if n_threads:
                torch.set_num_threads(old_threads)
        return out


@lru_cache(maxsize=2)
def get_chemnet(device: str = 'cpu') -> ChemNet:
    """One ChemNet per device and process (loading and the tail precomputation take ~0.3 s)."""
    return ChemNet(device)


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """Fréchet distance of two Gaussians, ``|mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2))``.

    fcd_torch takes ``tr((S1 S2)^(1/2))`` from ``scipy.linalg.sqrtm``, which needs ~12 s for 512 x 512
    with scipy 1.17 here. For symmetric PSD ``S1, S2`` the same trace is the sum of square roots of the
    eigenvalues of the symmetric ``S1^(1/2) S2 S1^(1/2)``: two ``eigh`` calls, ~0.1 s, equal to
    sqrtm's trace to ~1e-9 relative (tested).
    """
    from scipy import linalg

    mu1, mu2 = np.atleast_1d(mu1).astype(np.float64), np.atleast_1d(mu2).astype(np.float64)
    sigma1, sigma2 = np.atleast_2d(sigma1).astype(np.float64), np.atleast_2d(sigma2).astype(np.float64)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise ValueError('mean vectors / covariances have different shapes')
    diff = mu1 - mu2
    w, v = linalg.eigh(sigma1)
    root1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    lam = linalg.eigvalsh(root1 @ sigma2 @ root1)
    tr_covmean = float(np.sqrt(np.clip(lam, 0, None)).sum())
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * tr_covmean)


def gaussian_stats(act: np.ndarray) -> dict[str, np.ndarray]:
    """Mean and covariance of activations (as fcd_torch's ``precalc``)."""
    return {'mu': act.mean(0), 'sigma': np.cov(act.T)}
