"""The categorical flow (issue 9) next to a SELFIES transformer trained at the same budget in the same run.

    python benchmarks/flow.py [--molecules 300000] [--max-time 15] [--threads 1] [--transformer DIR] [--flow DIR]
                              [--n 1000] [--nll-n 1000] [--speed-n 2000] [--out runs/bench-flow]

Both models are trained through ``molgen.train`` on the embedded MOSES data at the same budget in
molecules seen (``--molecules``; ``--max-time`` minutes is a per-model safety cap), the flow with
``molgen/configs/flow.yaml``, the peer with the quick-start recipe (``molgen/configs/quickstart.yaml``) on SELFIES so
that both likelihoods are of the same object (the canonical SELFIES string). ``--transformer DIR``
takes an already trained SELFIES transformer instead, ``--flow DIR`` an already trained flow.

Reported per model: NLL on the same first ``--nll-n`` MOSES test molecules (the flow: its iw-16
lower bound, so its number is an *upper* bound on its NLL; the transformer: exact), validity,
uniqueness, novelty, FCD/Test with the real-vs-real floor at the same n (the ``Evaluator``), and
sampling throughput: ``_sample`` (the sampler alone: flow one-shot vs the transformer's KV-cache loop)
and ``sample`` (with canonicalisation) in molecules/s, same threads, same batch size, alternating
rounds in the same process (the median round is reported). Targets: flow sampling >= 10x the
transformer's molecules/s; flow uniqueness >= 0.95.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_results

ROOT = Path(__file__).resolve().parents[1]
TARGETS = {"sampling_speedup": 10.0, "unique@1000": 0.95}


def time_sampler(model, n: int, batch_size: int, public: bool) -> float:
    """Seconds to draw ``n`` molecules at temperature 1 (``public``: ``sample`` incl. canonicalisation)."""
    t = time.perf_counter()
    if public:
        model.sample(n, seed=0, batch_size=batch_size)
    else:
        from molgen.rowrandom import RowRandom

        with torch.no_grad():
            for s in range(0, n, batch_size):
                b = min(batch_size, n - s)
                model._sample(b, temperature=1.0, rng=RowRandom(0, range(s, s + b), model.device))
    return time.perf_counter() - t


def decode_seconds(flow, n: int, batch_size: int) -> float:
    """Seconds the flow's sampler spends turning ``n`` sampled token strings into SMILES (the SELFIES
    decoder, pure Python): a floor under its sampling time that no faster network can remove."""
    from molgen.rowrandom import RowRandom

    g = torch.Generator().manual_seed(1)
    total = 0.0
    with torch.no_grad():
        for s in range(0, n, batch_size):
            b = min(batch_size, n - s)
            z = torch.randn((b, flow.length, flow.config.dim), generator=g)
            ids = flow.decode_base(z, RowRandom(1, range(s, s + b)))
            t = time.perf_counter()
            flow.strings.decode(ids)
            total += time.perf_counter() - t
    return total


def main() -> None:
    from molgen.api import load
    from molgen.metrics import Evaluator
    from molgen.training.train import train

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--molecules", type=int, default=300_000, help="training budget per model, molecules seen")
    ap.add_argument("--max-time", type=float, default=15.0, metavar="MINUTES", help="safety cap per model")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (training and timing)")
    ap.add_argument("--subset", type=int, default=None,
                    help="MOSES training subset (default: max(2 x molecules, 100k), at most 600k)")
    ap.add_argument("--transformer", default=None, help="a trained SELFIES transformer directory (skip training it)")
    ap.add_argument("--flow", default=None, help="a trained flow directory (skip training it)")
    ap.add_argument("--flow-config", default=str(ROOT / "molgen" / "configs" / "flow.yaml"))
    ap.add_argument("--transformer-config", default=str(ROOT / "molgen" / "configs" / "quickstart.yaml"))
    ap.add_argument("--n", type=int, default=1000, help="samples evaluated per model")
    ap.add_argument("--nll-n", type=int, default=1000, help="test molecules for the NLL (the same for both)")
    ap.add_argument("--speed-n", type=int, default=2000, help="molecules per sampling-speed round")
    ap.add_argument("--speed-batch", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="runs/bench-flow")
    ap.add_argument("--name", default="flow")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    subset = args.subset or min(600_000, max(100_000, 2 * args.molecules))
    out = Path(args.out)
    common = dict(max_molecules=args.molecules, max_time=args.max_time, num_threads=threads, progress=False,
                  seed=args.seed, subset=subset, n_jobs=2)

    if args.flow:
        flow, flow_what = load(args.flow), f"given: {args.flow}"
        if flow.name != "flow":
            raise SystemExit(f"--flow {args.flow} is a {flow.name} model, not a flow")
    else:
        flow = train(config=args.flow_config, out=out / "flow", **common)
        flow_what = f"trained here: {args.flow_config}"
    if args.transformer:
        peer, peer_what = load(args.transformer), f"given: {args.transformer}"
        if peer.likelihood_object != flow.likelihood_object:
            raise SystemExit(f"--transformer models {peer.likelihood_object}, the flow {flow.likelihood_object}: "
                             "give a SELFIES transformer")
    else:
        peer = train(config=args.transformer_config, out=out / "transformer", representation="selfies", **common)
        peer_what = f"trained here: {args.transformer_config} on SELFIES, same budget"
    models = {"flow": flow, "transformer": peer}
    for m in models.values():
        m.eval()

    # sampling throughput, alternating rounds in this process (a noisy machine affects both alike)
    speed = {k: {"sampler": [], "sample": []} for k in models}
    for m in models.values():  # warm-up
        time_sampler(m, min(200, args.speed_n), args.speed_batch, False)
    for _ in range(args.rounds):
        for k, m in models.items():
            speed[k]["sampler"].append(args.speed_n / time_sampler(m, args.speed_n, args.speed_batch, False))
            speed[k]["sample"].append(args.speed_n / time_sampler(m, args.speed_n, args.speed_batch, True))
    rate = {k: {w: statistics.median(v) for w, v in d.items()} for k, d in speed.items()}
    speedup = rate["flow"]["sampler"] / rate["transformer"]["sampler"]
    decode_ms = 1000 * decode_seconds(flow, args.speed_n, args.speed_batch) / args.speed_n
    ceiling = (1000 / decode_ms) / rate["transformer"]["sampler"]  # flow network at zero cost

    ev = Evaluator(reference="moses:test", train="moses:train", n_jobs=2, nll_n=args.nll_n)
    rows, reports = [], {}
    for k, m in models.items():
        samples = m.sample(args.n, seed=args.seed, temperature=1.0)
        rep = ev.evaluate(samples.smiles, model=m, name=f"{k}: {args.n} samples at temperature 1")
        reports[k] = rep.to_dict()
        x = rep.metrics
        t = m.metadata.get("training", {})
        label = m.likelihood_label()
        rows.append({
            "model": k, "parameters": m.n_parameters(), "molecules_seen": t.get("molecules_seen"),
            "train_molecules_per_s": t.get("molecules_per_s"), "train_minutes": (t.get("train_seconds") or 0) / 60,
            "NLL/Test (nats/mol)": x.get("NLL/Test"), "likelihood": f"{label.kind} ({label.object})",
            "valid": x["valid"], "unique@1000": x["unique@1000"], "Novelty": x.get("Novelty"),
            "FCD/Test": x.get("FCD/Test"), "FCDfloor/Test": x.get("FCDfloor/Test"),
            "sampler molecules/s": rate[k]["sampler"], "sample() molecules/s": rate[k]["sample"]})
    fl = rows[0]
    verdict = {"sampling_speedup": speedup, "unique@1000": fl["unique@1000"]}
    verdict = {k: {"target": TARGETS[k], "measured": v, "met": bool(v >= TARGETS[k])} for k, v in verdict.items()}
    notes = [
        ("Budget: the given models' own (molecules seen, training minutes and molecules/s in the table)"
         if args.flow and args.transformer else
         f"Budget: {args.molecules} molecules seen per model (at most {args.max_time:g} min each), MOSES subset "
         f"{subset}") + f"; torch threads {threads}. Flow: {flow_what}. Peer: {peer_what}.",
        f"NLL on the same first {args.nll_n} MOSES test molecules: the flow's number is -(iw-16 bound), an upper "
        "bound on its NLL of the padded canonical SELFIES; the transformer's is exact (canonical SELFIES + <eos>).",
        f"Sampling: flow one-shot sampler {rate['flow']['sampler']:.0f} vs transformer KV-cache sampler "
        f"{rate['transformer']['sampler']:.0f} molecules/s = {speedup:.2f}x (median of {args.rounds} alternating "
        f"rounds of {args.speed_n}, batch {args.speed_batch}); with canonicalisation (`sample()`): "
        f"{rate['flow']['sample']:.0f} vs {rate['transformer']['sample']:.0f}.",
        f"Decoding floor: turning the flow's sampled tokens into SMILES (the SELFIES decoder) takes {decode_ms:.2f} ms "
        f"per molecule by itself, so even a flow network that cost nothing would sample at most {ceiling:.1f}x "
        "the transformer here (on one thread; a GPU changes the network costs, not this one).",
        "Targets: " + "; ".join(f"{k} >= {v['target']} -> {v['measured']:.3f} ({'met' if v['met'] else 'missed'})"
                               for k, v in verdict.items()),
        "Command: python benchmarks/flow.py " + " ".join(sys.argv[1:]),
    ]
    payload = {"budget_molecules": args.molecules, "max_time_min": args.max_time, "subset": subset,
               "threads": threads, "peer": peer_what, "speed_rounds": speed, "speed": rate,
               "sampling_speedup": speedup, "decode_ms_per_molecule": decode_ms,
               "speedup_ceiling_decode": ceiling, "targets": verdict, "reports": reports,
               "training": {k: m.metadata.get("training") for k, m in models.items()},
               "flow_config": flow.config.to_dict()}
    _j, md = write_results(args.name, payload, rows, "Categorical flow vs SELFIES transformer, same budget", notes)
    print(md.read_text())


if __name__ == "__main__":
    main()
