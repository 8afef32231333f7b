"""LatentGAN vs the prior of the VAE it decodes with: same decoder, same n, measured in the same run.

    python benchmarks/gan.py [--vae DIR] [--molecules 1000000] [--max-time 4] [--threads 1]
                             [--vae-molecules 100000] [--vae-max-time 6] [--subset 50000] [--n 1000]

Without ``--vae`` it first trains a VAE (``molgen/configs/vae.yaml`` architecture: SELFIES, MoG-8, d_z 32) on a
MOSES train subset for ``--vae-molecules`` molecules seen (``--vae-max-time`` minutes at most), then the
GAN on the latent means of the same subset for ``--molecules`` molecules seen (``--max-time`` minutes at
most). Both generators are sampled ``--n`` times at temperature 1 (x ~ p(x|z) from the same decoder:
z = G(eps) for the GAN, z ~ p(z) for the VAE) and evaluated with one Evaluator against ``moses:test``
(novelty and the FCD floor against ``moses:train``): validity, unique@1k, novelty, FCD/Test with its
real-vs-real floor at the same n, recall / coverage with their real-vs-real values at the same n,
fingerprint k-means bin occupancy, and latent-bin occupancy over the training latents; sampling
throughput beside them. The published MOSES LatentGAN row (GPU scale, 30k samples) is printed as a
reference, not a comparison.

Writes ``benchmarks/results/gan.{json,md}``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_results

#: MOSES README, LatentGAN row (moses/latentgan, GPU, 30,000 samples; unique@10k, FCD/Test)
MOSES_LATENTGAN = {"valid": 0.897, "unique@10k": 0.997, "FCD/Test": 0.297, "Novelty": 0.950}

VAE_ARGS = {"encoder": {"name": "sequence", "args": {"hidden": 128}},
            "prior": {"name": "mog", "args": {"n_components": 8, "learn_weights": False}},
            "d_z": 32, "emb_dim": 64, "dec_hidden": 256, "free_bits": 8.0}


def main() -> None:
    import torch

    from molgen.api import load
    from molgen.metrics import Evaluator
    from molgen.training.train import train

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vae", default=None, help="a trained molgen vae directory (default: train one here)")
    ap.add_argument("--out", default="runs/bench-gan")
    ap.add_argument("--molecules", type=int, default=1_000_000, help="GAN budget: molecules (latents) seen")
    ap.add_argument("--max-time", type=float, default=4.0, metavar="MINUTES", help="GAN training time cap")
    ap.add_argument("--vae-molecules", type=int, default=100_000, help="VAE budget: molecules seen")
    ap.add_argument("--vae-max-time", type=float, default=6.0, metavar="MINUTES", help="VAE training time cap")
    ap.add_argument("--subset", type=int, default=50_000, help="MOSES train subset (VAE and GAN)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    ap.add_argument("--n", type=int, default=1000, help="samples per generator")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n-jobs", type=int, default=1, help="evaluation worker processes")
    ap.add_argument("--name", default="gan")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    common = dict(data="moses", subset=args.subset, seed=args.seed, progress=False, num_threads=args.threads,
                  precision="32-true", n_jobs=args.n_jobs)

    t0 = time.perf_counter()
    if args.vae:
        vae_dir = Path(args.vae)
        vae = load(vae_dir)
    else:
        vae_dir = out / "vae"
        vae = train("vae", out=vae_dir, representation="selfies", max_molecules=args.vae_molecules,
                    max_time=args.vae_max_time, batch_size=128, lr=2e-3, warmup_steps=50, val_every=300,
                    val_size=500, model_args=VAE_ARGS, **common)
    gan = train("gan", out=out / "gan", autoencoder=str(vae_dir), max_molecules=args.molecules,
                max_time=args.max_time, batch_size=64, val_size=200,
                model_args={"occupancy_every": 500, "occupancy_n": args.n}, **common)
    train_wall = time.perf_counter() - t0
    vae = gan.autoencoder  # the very decoder the GAN samples with

    def timed(fn):
        t = time.perf_counter()
        res = fn()
        return res, args.n / (time.perf_counter() - t)

    gan_samples, gan_rate = timed(lambda: gan.sample(args.n, seed=args.seed))
    vae_samples, vae_rate = timed(lambda: vae.sample(args.n, seed=args.seed))
    from molgen.rowrandom import RowRandom

    z_prior = vae.prior.sample(args.n, RowRandom(args.seed, range(args.n), vae.device))
    bins = {"gan": gan.latent_bin_stats(args.n, seed=args.seed), "vae prior": gan.latent_bin_stats_of(z_prior)}

    ev = Evaluator(reference="moses:test", train="moses:train", n_jobs=args.n_jobs, guacamol=False)
    reports = {"gan": ev.evaluate(gan_samples.smiles, name="LatentGAN samples"),
               "vae prior": ev.evaluate(vae_samples.smiles, name="VAE prior samples")}
    rates = {"gan": gan_rate, "vae prior": vae_rate}
    gt, vt = gan.metadata["training"], vae.metadata.get("training", {})
    rows = []
    for name, rep in reports.items():
        m, b = rep.metrics, bins[name]
        rows.append({
            "generator": "LatentGAN (this run)" if name == "gan" else "VAE prior, same decoder (this run)",
            "n": args.n, "valid": m["valid"], "unique@1k": m["unique@1000"], "Novelty": m.get("Novelty"),
            "FCD/Test": m["FCD/Test"], "FCD floor (real, same n)": m.get("FCDfloor/Test"),
            "FCD mean / cov terms": f"{m.get('FCD/Test/mean', float('nan')):.2f} / {m.get('FCD/Test/cov', float('nan')):.2f}",
            "recall (real)": f"{m.get('recall', float('nan')):.3f} ({m.get('recall/real', float('nan')):.3f})",
            "coverage (real)": f"{m.get('coverage', float('nan')):.3f} ({m.get('coverage/real', float('nan')):.3f})",
            "top-100 scaffolds (real)": f"{m.get('scaffolds/top100_coverage', float('nan')):.2f} "
                                        f"({m.get('scaffolds/top100_coverage/real', float('nan')):.2f})",
            "fp bins occupied (real)": f"{m.get('modes/bins_occupied', float('nan')):.3f} "
                                       f"({m.get('modes/bins_occupied/real', float('nan')):.3f}) of "
                                       f"{int(m.get('modes/n_bins', 0))}",
            "latent bins occupied, JS (real)": f"{b['occupied']:.3f}, {b['js']:.3f} "
                                               f"({b['occupied_real']:.3f}, {b['js_real']:.3f}) of {b['n_bins']}",
            "sampling mol/s": rates[name]})
    rows.append({"generator": "MOSES LatentGAN (published, GPU, 30k samples; reference only)", "n": 30000,
                 "valid": MOSES_LATENTGAN["valid"], "unique@1k": f"{MOSES_LATENTGAN['unique@10k']} (@10k)",
                 "Novelty": MOSES_LATENTGAN["Novelty"], "FCD/Test": MOSES_LATENTGAN["FCD/Test"]})
    budget = (f"GAN: {gt.get('molecules_seen'):,} molecules (latents) seen in {gt.get('train_seconds', 0) / 60:.1f} min "
              f"({gt.get('molecules_per_s')} molecules/s, budget {args.molecules:,} molecules / {args.max_time} min, "
              f"batch 64, {gt.get('steps')} batches); VAE: "
              + (f"{vt.get('molecules_seen'):,} molecules seen in {vt.get('train_seconds', 0) / 60:.1f} min "
                 f"({vt.get('molecules_per_s')} molecules/s, budget {args.vae_molecules:,} molecules / "
                 f"{args.vae_max_time} min)" if vt else f"given ({vae_dir})")
              + f"; MOSES train subset {args.subset:,}, seed {args.seed}, {args.threads} torch thread(s), "
                f"total training wall {train_wall / 60:.1f} min.")
    latent_info = gan.latent_info
    notes = [
        "Budget (reduced, shared 2-core machine): " + budget,
        f"Latents: {latent_info.get('n_encoded')} training molecules encoded once by the VAE "
        f"({latent_info.get('n_nan')} NaN rows left out); featurize refusals by status: "
        f"{gan.metadata.get('dropped')}.",
        "Both generators decode with the same VAE decoder by sampling x ~ p(x|z) at temperature 1. Values in "
        "parentheses are the real-vs-real values at the same n (MOSES test molecules for fingerprint "
        "metrics, training latents for latent bins); FCD floor: held-out MOSES train molecules at the same n.",
        "The published MOSES LatentGAN row is GPU scale (heteroencoder trained for days, 30k samples, "
        "deterministic decoding); it is printed as a reference point, not a like-for-like comparison.",
        "Command: python benchmarks/gan.py " + " ".join(sys.argv[1:]),
    ]
    payload = {"args": vars(args), "rows": rows, "latent_bins": bins, "latent_info": latent_info,
               "latent_bins_history": gan.latent_history, "gan_training": gt, "vae_training": vt,
               "reports": {k: r.to_dict() for k, r in reports.items()}, "moses_latentgan": MOSES_LATENTGAN}
    _, md = write_results(args.name, payload, rows, "LatentGAN vs the VAE prior it decodes with", notes)
    print(md.read_text())


if __name__ == "__main__":
    main()
