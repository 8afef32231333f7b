"""Fragment-constrained generation on MOSES fragments: scaffold decoration and linker design.

    python benchmarks/fragments.py [--models moses-transformer moses-diffusion moses-mdlm-selfies] [--scaffolds 100]
                                   [--pairs 50] [--per 10] [--seed 0] [--threads 1] [--name fragments]

* **Scaffold decoration**: ``--scaffolds`` distinct Bemis-Murcko scaffolds of molecules of the MOSES
  scaffold test split (``moses:test_scaffolds``: scaffolds never seen in training), bare (decorated at
  any free hydrogen), ``--per`` samples each (``model.sample(per, scaffold=S)``).
* **Linker design**: ``--pairs`` fragment pairs cut from MOSES test molecules (``moses:test``): two
  acyclic single bonds between heavy atoms whose cut leaves a linker of 1-5 heavy atoms and two end
  fragments of >= 5 heavy atoms each holding a ring; the end fragments keep a ``*`` where they were cut
  (``model.sample(per, linker="F1.F2")``).

Metrics per model and task: validity (valid rows / rows), uniqueness (unique valid / valid, per fragment,
then averaged over fragments as GenMol does), the share of valid rows that contain the fragment(s) (pooled;
must be 1.0), novelty (valid unique outputs not in the MOSES training set / valid unique), quality (valid,
QED >= 0.6 and SA <= 4 / rows, GenMol's definition), the mean NLL of the valid outputs under the model
(labelled with its kind: exact for the transformer, exact-ltr-b2 for the block diffusion model sampled left
to right, the ELBO bound for the SELFIES MDLM), rows redrawn (valid without the
fragments, drawn again), and molecules per second (sampling only; scoring timed apart). GenMol's
published numbers sit beside ours, labelled: a different model (89M parameters, SAFE, trained on
1.1B molecules), different fragments (10 drugs) and 100 samples each.
"""

from __future__ import annotations

import argparse
import gzip
import math
import os
import random
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_results

ROOT = Path(__file__).resolve().parents[1]

#: GenMol README (github.com/NVIDIA-Digital-Bio/genmol, commit aeb203b995ef140da4da7eb86fddb3f9f3a653b4),
#: "Table. Fragment-constrained Generation": published by the authors, not measured here. Validity,
#: uniqueness and quality in %, over 10 drugs (SAFE-DRUGS) x 100 samples.
GENMOL_PUBLISHED = [
    {"model": "GenMol (published)", "task": "linker design", "valid": 100.0, "unique": 83.7, "quality": 21.9},
    {"model": "GenMol (published)", "task": "linker design (1-step)", "valid": 16.7, "unique": 93.9, "quality": 4.3},
    {"model": "GenMol (published)", "task": "scaffold decoration", "valid": 96.6, "unique": 82.7, "quality": 31.8},
    {"model": "GenMol (published)", "task": "motif extension", "valid": 82.9, "unique": 77.5, "quality": 30.1},
    {"model": "GenMol V2 (published)", "task": "linker design", "valid": 100.0, "unique": 76.6, "quality": 18.4},
    {"model": "GenMol V2 (published)", "task": "linker design (1-step)", "valid": 81.8, "unique": 87.1,
     "quality": 28.6},
    {"model": "GenMol V2 (published)", "task": "scaffold decoration", "valid": 99.2, "unique": 90.5, "quality": 39.7},
    {"model": "GenMol V2 (published)", "task": "motif extension", "valid": 99.4, "unique": 84.5, "quality": 49.0},
]
GENMOL_SOURCE = ("GenMol README, github.com/NVIDIA-Digital-Bio/genmol @ aeb203b995ef (Table. Fragment-constrained "
                 "Generation): 10 drugs from SAFE-DRUGS, 100 samples each, softmax temperature 1.2 and randomness "
                 "1.2-3 (scripts/exps/frag/hparams.yaml); 'linker design' is their two-step linking, '(1-step)' one "
                 "sequence with both fragments (ours is one step).")


def _read_smiles(name: str) -> list[str]:
    path = ROOT / "data" / "moses" / f"{name}.csv.gz"
    with gzip.open(path, "rt") as f:
        return [line.split(",")[0] for line in f.read().splitlines()[1:]]


def scaffolds(n: int, seed: int, split: str = "test_scaffolds") -> list[str]:
    """``n`` distinct Bemis-Murcko scaffolds of ``moses:<split>`` molecules (seeded order)."""
    from rdkit import Chem
    from rdkit.Chem.Scaffolds import MurckoScaffold

    mols = _read_smiles(split)
    random.Random(seed).shuffle(mols)
    out: list[str] = []
    seen: set[str] = set()
    for s in mols:
        m = Chem.MolFromSmiles(s)
        if m is None:
            continue
        sc = Chem.MolToSmiles(MurckoScaffold.GetScaffoldForMol(m))
        if sc and sc not in seen and Chem.MolFromSmiles(sc) is not None:
            seen.add(sc)
            out.append(sc)
            if len(out) == n:
                break
    return out


def cut_pair(smiles: str, rng: random.Random | None = None) -> tuple[str, str, str] | None:
    """(FRAG1, FRAG2, linker) from two acyclic single bonds of ``smiles``: a linker of 1-5 heavy atoms
    between two end fragments of >= 5 heavy atoms with a ring each (one of the qualifying cuts, drawn
    with ``rng``; the first without), or None."""
    from rdkit import Chem

    mol = Chem.MolFromSmiles(smiles)
    if mol is None:
        return None
    bonds = [b.GetIdx() for b in mol.GetBonds() if not b.IsInRing() and b.GetBondType() == Chem.BondType.SINGLE
             and b.GetBeginAtom().GetDegree() > 1 and b.GetEndAtom().GetDegree() > 1]
    found: list[tuple[str, str, str]] = []
    for i in range(len(bonds)):
        for j in range(i + 1, len(bonds)):
            frag = Chem.FragmentOnBonds(mol, [bonds[i], bonds[j]], addDummies=True)
            pieces = Chem.GetMolFrags(frag, asMols=True, sanitizeFrags=False)
            if len(pieces) != 3:
                continue
            ends = [p for p in pieces if sum(a.GetAtomicNum() == 0 for a in p.GetAtoms()) == 1]
            mids = [p for p in pieces if sum(a.GetAtomicNum() == 0 for a in p.GetAtoms()) == 2]
            if len(ends) != 2 or len(mids) != 1:
                continue
            heavy = [sum(a.GetAtomicNum() > 0 for a in p.GetAtoms()) for p in pieces]
            n_mid = sum(a.GetAtomicNum() > 0 for a in mids[0].GetAtoms())
            if not 1 <= n_mid <= 5 or min(h for h, p in zip(heavy, pieces) if p in ends) < 5:
                continue
            texts = []
            for p in ends:
                for a in p.GetAtoms():
                    if a.GetAtomicNum() == 0:
                        a.SetIsotope(0)
                try:
                    Chem.SanitizeMol(p)
                except Exception:
                    break
                if p.GetRingInfo().NumRings():
                    texts.append(Chem.MolToSmiles(p))
            if len(texts) == 2:
                for a in mids[0].GetAtoms():
                    a.SetIsotope(0)
                found.append((texts[0], texts[1], Chem.MolToSmiles(mids[0])))
                if rng is None:
                    return found[0]
    return rng.choice(found) if found else None


def linker_pairs(n: int, seed: int, split: str = "test") -> list[tuple[str, str, str, str]]:
    """``n`` (FRAG1, FRAG2, linker, source molecule) cut from ``moses:<split>`` molecules (seeded order)."""
    mols = _read_smiles(split)
    rng = random.Random(seed + 1)
    rng.shuffle(mols)
    out = []
    for s in mols:
        c = cut_pair(s, rng)
        if c is not None:
            out.append((*c, s))
            if len(out) == n:
                break
    return out


def _quality(canonical: list[str | None]) -> float:
    """GenMol's quality: share of rows that are valid with QED >= 0.6 and SA <= 4."""
    from rdkit import Chem
    from rdkit.Chem import QED

    from molgen.metrics.featurize import sascorer

    sa = sascorer()
    good = 0
    for c in canonical:
        if c is None:
            continue
        m = Chem.MolFromSmiles(c)
        if m is not None and QED.qed(m) >= 0.6 and sa.calculateScore(m) <= 4:
            good += 1
    return good / max(1, len(canonical))


def run_task(model, task: str, fragments: list[str], per: int, seed: int, train: set[str]) -> dict:
    """Sample ``per`` molecules for each fragment spec; pooled and per-fragment metrics."""
    rows, uniq, t_sample, t_score = [], [], 0.0, 0.0
    canon_all: list[str | None] = []
    lls: list[float] = []
    redrawn = 0
    label = None
    from molgen.fragments import constrained_sample, score_outputs

    for k, frag in enumerate(fragments):
        t0 = time.perf_counter()
        res = constrained_sample(model, per, seed=seed + k, score=False, **{task: frag})
        t1 = time.perf_counter()
        ll = score_outputs(model, res.canonical)
        t_score += time.perf_counter() - t1
        t_sample += t1 - t0
        label = str(model.likelihood_label())
        valid = [c for c in res.canonical if c is not None]
        uniq.append(len(set(valid)) / len(valid) if valid else 0.0)
        s = res.info["summary"]
        redrawn += s["redrawn_rows"]
        rows.append(s)
        canon_all += res.canonical
        lls += [x for x in ll if np.isfinite(x)]
    n = sum(r["n"] for r in rows)
    valid = sum(r["valid"] for r in rows)
    contains = sum(r["contains"] for r in rows)
    vu = {c for c in canon_all if c is not None}
    return {"fragments": len(fragments), "samples": n, "valid": valid / n, "unique": float(np.mean(uniq)),
            "contains_of_valid": contains / valid if valid else math.nan,
            "missing_fragments": sum(r["missing_fragments"] for r in rows),
            "novelty": len(vu - train) / len(vu) if vu else math.nan, "quality": _quality(canon_all),
            "mean_nll": float(-np.mean(lls)) if lls else math.nan, "nll_label": label, "redrawn_rows": redrawn,
            "mol_per_s": n / t_sample, "score_s": t_score, "sample_s": t_sample}


def select(args: argparse.Namespace) -> None:
    """``--select``: the template-completion defaults of molgen.fragments (a head before small scaffolds,
    the linker hand-over) measured on fragments of ``moses:train`` molecules only, so no reported
    fragment chose them. Writes ``results/fragments_selection.{json,md}``."""
    from rdkit import Chem

    from molgen.api import load
    from molgen.fragments import HEAD_MAX_ATOMS, constrained_sample

    model = load("moses-transformer")
    rows, per = [], args.per[0]
    pool = [(sc, Chem.MolFromSmiles(sc).GetNumHeavyAtoms()) for sc in scaffolds(2000, args.seed + 7, split="train")]
    half = args.scaffolds // 2  # training scaffolds are mostly large: half of them small, where the head matters
    chosen = [p for p in pool if p[1] <= HEAD_MAX_ATOMS][:half] + [p for p in pool if p[1] > HEAD_MAX_ATOMS][:half]
    for sc, atoms in chosen:
        for head in (True, False):
            res = constrained_sample(model, per, scaffold=sc, seed=args.seed, score=False, options={"head": head})
            rows.append({"task": "scaffold", "atoms": atoms, "head": head, "valid": res.validity})
    for a, b, _, _ in linker_pairs(args.pairs, args.seed + 7, split="train"):
        for handover in ("force", "match"):
            res = constrained_sample(model, per, linker=f"{a}.{b}", seed=args.seed, score=False,
                                     options={"handover": handover})
            uniq = len({c for c in res.canonical if c}) / max(1, sum(c is not None for c in res.canonical))
            rows.append({"task": "linker", "handover": handover, "valid": res.validity, "unique": uniq})
    table = []
    buckets = [(0, 7), (8, HEAD_MAX_ATOMS), (HEAD_MAX_ATOMS + 1, 13), (14, 19), (20, 999)]
    for lo, hi in buckets:
        for head in (True, False):
            v = [r["valid"] for r in rows if r["task"] == "scaffold" and r["head"] is head and lo <= r["atoms"] <= hi]
            if v:
                table.append({"choice": f"head={head}", "scaffold heavy atoms": f"{lo}-{hi}", "fragments": len(v),
                              "valid": sum(v) / len(v)})
    for handover in ("force", "match"):
        rs = [r for r in rows if r["task"] == "linker" and r["handover"] == handover]
        table.append({"choice": f"linker handover={handover}", "fragments": len(rs),
                      "valid": sum(r["valid"] for r in rs) / len(rs), "unique": sum(r["unique"] for r in rs) / len(rs)})
    notes = [f"moses-transformer, {per} samples per fragment and setting, scaffolds (half of <= {HEAD_MAX_ATOMS} heavy "
             "atoms) and linker pairs from moses:train molecules (not the reported test fragments). Defaults: head for scaffolds of <= "
             f"{HEAD_MAX_ATOMS} heavy atoms, linker hand-over 'force'.",
             "Command: python benchmarks/fragments.py --select " + " ".join(sys.argv[2:])]
    _, md = write_results("fragments_selection", {"args": vars(args), "rows": rows}, table,
                          "Fragment template defaults, chosen on training fragments", notes)
    print(md.read_text())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="+", default=["moses-transformer", "moses-diffusion", "moses-mdlm-selfies"])
    ap.add_argument("--scaffolds", type=int, default=100)
    ap.add_argument("--pairs", type=int, default=50)
    ap.add_argument("--per", type=int, nargs="+", default=[10],
                   help="samples per fragment (one value, or one per model)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--name", default="fragments")
    ap.add_argument("--select", action="store_true",
                    help="measure the template defaults on moses:train fragments instead (fragments_selection.*)")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    if args.select:
        return select(args)
    import molgen
    from molgen.chem import quiet_rdkit

    t_all = time.perf_counter()
    scaffold_list = scaffolds(args.scaffolds, args.seed)
    pairs = linker_pairs(args.pairs, args.seed)
    train = set(_read_smiles("train"))
    pers = args.per if len(args.per) == len(args.models) else [args.per[0]] * len(args.models)
    table, details = [], {}
    with quiet_rdkit():
        for name, per in zip(args.models, pers):
            model = molgen.load(name)
            for task, frags in (("scaffold", scaffold_list), ("linker", [f"{a}.{b}" for a, b, _, _ in pairs])):
                r = run_task(model, task, frags, per, args.seed, train)
                details[f"{name}/{task}"] = r
                table.append({"model": name, "task": {"scaffold": "scaffold decoration", "linker": "linker design"}[task],
                              "fragments": r["fragments"], "samples": r["samples"], "valid": 100 * r["valid"],
                              "unique": 100 * r["unique"], "contains (of valid)": 100 * r["contains_of_valid"],
                              "novelty": 100 * r["novelty"], "quality": 100 * r["quality"],
                              "mean NLL (nats)": r["mean_nll"], "NLL kind": r["nll_label"],
                              "redrawn rows": r["redrawn_rows"], "missing after redraws": r["missing_fragments"],
                              "mol/s": r["mol_per_s"]})
                print(table[-1], flush=True)
    for g in GENMOL_PUBLISHED:
        table.append({"model": g["model"], "task": g["task"], "fragments": 10, "samples": 1000, "valid": g["valid"],
                      "unique": g["unique"], "contains (of valid)": "n/a", "novelty": "n/a",
                      "quality": g["quality"], "mean NLL (nats)": "n/a", "NLL kind": "n/a", "redrawn rows": "n/a",
                      "missing after redraws": "n/a", "mol/s": "n/a"})
    notes = [
        "Percentages: valid = valid rows / rows; unique = unique valid / valid per fragment, averaged over fragments; "
        "contains = valid rows containing the fragment(s) / valid rows (pooled); novelty = valid unique outputs "
        "not in moses:train / valid unique; quality = rows valid with QED >= 0.6 and SA <= 4 / rows (GenMol's).",
        "Mean NLL: -log p of each valid output's canonical string under the unconstrained model, nats/molecule, "
        "labelled with its kind (exact: the transformer; exact-ltr-b2: block diffusion sampled left to right, "
        "the exact likelihood of that sampler; elbo-16: the MDLM's bound, an upper bound on the NLL); not "
        "comparable across representations. mol/s: sampling (template building, the draws, redraws, "
        "canonicalisation and the substructure check), one torch thread; scoring timed apart.",
        "Redrawn rows: valid outputs without the fragment(s), drawn again from a fresh stream of the same row "
        "(at most 16 draws, each also drawing the writing of the template). Missing after redraws: rows whose "
        "molecule still lacks the fragment(s), kept with their string, constraint_status 'missing_fragments', "
        "and counted invalid (so 'contains (of valid)' is 100 by construction; this column is the evidence).",
        f"Fragments: {len(scaffold_list)} Bemis-Murcko scaffolds of moses:test_scaffolds molecules (bare: decorated "
        f"at any free hydrogen) and {len(pairs)} linker pairs cut from moses:test molecules (two acyclic single "
        "bonds, linker 1-5 heavy atoms, end fragments >= 5 heavy atoms with a ring); seed "
        f"{args.seed}; samples per fragment: {dict(zip(args.models, pers))}.",
        "GenMol rows: published, not measured here. " + GENMOL_SOURCE,
        f"Total wall time {time.perf_counter() - t_all:.0f} s. Command: python benchmarks/fragments.py "
        + " ".join(sys.argv[1:]),
    ]
    payload = {"args": vars(args), "results": details, "scaffolds": scaffold_list,
               "pairs": [{"frag1": a, "frag2": b, "linker": c, "source": s} for a, b, c, s in pairs],
               "genmol_published": {"source": GENMOL_SOURCE, "rows": GENMOL_PUBLISHED}}
    j, m = write_results(args.name, payload, table, "Fragment-constrained generation (MOSES fragments)", notes)
    print(f"wrote {j} and {m}")


if __name__ == "__main__":
    main()
