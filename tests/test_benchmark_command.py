"""``molgen benchmark`` end to end on tiny data: the real training, sampling, scoring, evaluation and
writing code (``molgen.benchmark``), three rows including the GAN (no likelihood) that reuses the
VAE row's model; the GPU recipe's configs through the real config loader."""

from __future__ import annotations

import gzip
import json
import math
from pathlib import Path

import pytest

from tests.conftest import ROOT, TINY_MODEL_ARGS

GPU = ROOT / "benchmarks" / "gpu"

TINY = {
    "*": {"batch_size": 32, "val_every": 8, "warmup_steps": 2, "log_every": 2, "precision": "32-true",
          "num_threads": 1, "n_jobs": 1},
    "transformer": {"model_args": TINY_MODEL_ARGS["transformer"]},
    "vae": {"model_args": TINY_MODEL_ARGS["vae"]},
    "gan": {"model_args": {**TINY_MODEL_ARGS["gan"], "occupancy_every": 4}},
}


def _head(path: Path, n: int) -> list[str]:
    with gzip.open(path, "rt") as f:
        next(f)
        return [next(f).strip().split(",")[0] for _ in range(n)]


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    """One tiny run: transformer-smiles, flow (made to fail), gan (its VAE row added as a dependency)."""
    from molgen.benchmark.runner import run_benchmark

    tmp = tmp_path_factory.mktemp("bench")
    lines: list[str] = []
    bad_flow = {**TINY, "flow": {"model_args": {"no_such_option": 1}}}  # rejected when the model is built
    payload = run_benchmark(
        "transformer-smiles,flow,gan", budget_molecules=256, n=40, nll_n=30, seeds=[0], subset=None,
        val_size=40, data=_head(ROOT / "data" / "moses" / "train.csv.gz", 400),
        reference=_head(ROOT / "data" / "moses" / "test.csv.gz", 300), scaffold_reference=None,
        out=tmp / "runs", results=tmp / "results", name="cmp", n_jobs=1, overrides=bad_flow,
        command="molgen benchmark (test)", log=lines.append)
    return payload, lines, tmp


def test_every_row_same_n_and_the_budget_recorded(bench):
    payload, lines, _ = bench
    rows = {r["row"]: r for r in payload["rows"]}
    assert list(rows) == ["transformer-smiles", "vae", "flow", "gan"]  # the GAN's VAE row added, table order
    assert any("adding the vae row" in m for m in lines)
    for name in ("transformer-smiles", "vae", "gan"):
        r = rows[name]
        assert not r["errors"], r["errors"]
        assert r["n"] == 40 and r["n_valid"] <= 40
        assert r["molecules_seen"] >= 256 and r["train_seconds"] >= 0 and r["train_molecules_per_s"] > 0
        assert r["parameters"] > 0 and r["precision"] == "32-true"
        assert r["sampler"].startswith("ancestral")
        assert r["sample_molecules_per_s"] > 0
        for key in ("valid", "unique", "Novelty", "FCD/Test", "FCDfloor/Test", "IntDiv", "Filters", "recall",
                    "recall/real", "coverage", "coverage/real"):
            assert key in r
    for name in ("vae", "gan"):  # valid samples: the distribution metrics and their real-vs-real values
        r = rows[name]
        assert math.isfinite(r["FCD/Test"]) and math.isfinite(r["FCDfloor/Test"]) and r["recall/real"] > 0
    gan_run = next(x for x in payload["runs"] if x["row"] == "gan")
    vae_run = next(x for x in payload["runs"] if x["row"] == "vae")
    assert gan_run["autoencoder"] == vae_run["model_dir"]  # the vae row's model, reused
    # progress: one line per stage
    assert any(m.startswith("[benchmark] vae seed 0: training") for m in lines)
    assert any("gan seed 0: evaluating 40 samples" in m for m in lines)


def test_likelihood_columns_carry_kind_and_object_and_the_gan_says_why(bench):
    payload, _, _ = bench
    rows = {r["row"]: r for r in payload["rows"]}
    tf, vae, gan = rows["transformer-smiles"], rows["vae"], rows["gan"]
    assert tf["likelihood"] == {"kind": "exact", "object": "canonical-smiles", "unit": "nats/molecule"}
    assert vae["likelihood"]["kind"].startswith("iwae-") and vae["likelihood"]["object"] == "canonical-kekule-smiles"
    nll = payload["nll"]
    assert nll["n_test"] == 30 and 0 < nll["n_common"] <= 30
    for r in (tf, vae):
        assert math.isfinite(r["nll"]) and r["nll"] > 0 and r["nll_common_n"] == nll["n_common"]
        assert r["nll_scored"] + r["nll_unscored"] == 30
    assert gan["nll"] is None and gan["likelihood"] is None
    assert "no likelihood" in gan["no_likelihood"]
    md = Path(payload["files"]["markdown"]).read_text()
    gan_line = next(line for line in md.splitlines() if line.startswith("| gan |"))
    assert "no likelihood" in gan_line
    assert "| exact / canonical-smiles |" in md and "/ canonical-kekule-smiles |" in md
    assert "gan: no NLL: model 'gan' has no likelihood" in md


def test_files_table_and_published_rows_apart(bench):
    payload, _, tmp = bench
    from molgen.benchmark.rows import PUBLISHED_LABEL

    files = payload["files"]
    md = Path(files["markdown"]).read_text()
    assert Path(files["markdown"]) == tmp / "results" / "cmp.md"
    for model in ("CharRNN", "VAE", "AAE", "JT-VAE", "LatentGAN", "Training set"):
        line = next(x for x in md.splitlines() if x.startswith(f"| {model} |"))
        assert PUBLISHED_LABEL in line
    assert "| LatentGAN | " + PUBLISHED_LABEL + " |" in md and "0.297" in md
    assert "unique@40 (n < 10k)" in md and "Command: `molgen benchmark (test)`" in md
    data = json.loads(Path(files["json"]).read_text())
    assert data["machine"]["cores"] and data["command"] == "molgen benchmark (test)"
    assert data["published"]["label"] == PUBLISHED_LABEL
    assert all(r["row"] not in {p["model"] for p in data["published"]["rows"]} for r in data["rows"])
    manifest = json.loads(Path(files["manifest"]).read_text())
    assert [m["row"] for m in manifest["rows"]] == ["transformer-smiles", "vae", "flow", "gan"]
    for m in manifest["rows"]:
        if m["error"]:
            continue
        d = Path(m["model_dir"])
        assert (d / "config.json").is_file() and (d / "evaluation.json").is_file() and (d / "curves.csv").is_file()
        assert len((d / "samples.smi").read_text().splitlines()) == 40
    assert (Path(manifest["rows"][0]["model_dir"]) / "nll_test.csv").is_file()
    names = {Path(p).name for p in files["plots"]}
    assert {"cmp_fcd_test.png", "cmp_valid.png", "cmp_nll.png", "cmp_nll_vs_time.png"} <= names
    assert all(Path(p).stat().st_size > 1000 for p in files["plots"])


def test_a_failing_row_records_its_error_in_one_line_and_the_rest_continue(bench, tmp_path):
    from molgen.benchmark.runner import run_benchmark

    payload, lines, _ = bench
    flow = next(r for r in payload["rows"] if r["row"] == "flow")
    assert flow["errors"] == [flow["errors"][0]] and "seed 0: train: ConfigError" in flow["errors"][0]
    assert "\n" not in flow["errors"][0] and any("flow seed 0: FAILED at train" in m for m in lines)
    md = Path(payload["files"]["markdown"]).read_text()
    assert "| flow | this run |" in md and "FAILED: seed 0: train: ConfigError" in md
    assert payload["rows"][-1]["row"] == "gan" and not payload["rows"][-1]["errors"]  # later rows ran
    # a row whose dependency failed says so
    out = run_benchmark("gan", budget_minutes=0.05, n=5, nll_n=5, subset=None, val_size=40,
                        data=_head(ROOT / "data" / "moses" / "train.csv.gz", 100), reference=["CCO", "c1ccccc1"],
                        scaffold_reference=None, out=tmp_path / "r", results=tmp_path / "res", name="x",
                        overrides={**TINY, "vae": {"model_args": {"no_such_option": 1}}}, plots=False,
                        log=lambda m: None)
    errors = {r["row"]: r["errors"] for r in out["rows"]}
    assert "train: ConfigError" in errors["vae"][0] and "needs the vae row's model, which failed" in errors["gan"][0]


def test_unknown_rows_and_options_are_errors_listing_the_accepted(capsys, tmp_path):
    from molgen.benchmark.runner import run_benchmark
    from molgen.cli.benchmark import main
    from molgen.errors import ConfigError

    with pytest.raises(ConfigError, match="accepted: transformer-smiles, transformer-selfies, vae"):
        run_benchmark("transformer,vae", out=tmp_path)
    with pytest.raises(ConfigError, match="one budget"):
        run_benchmark("vae", budget_minutes=1, budget_molecules=10, out=tmp_path)
    with pytest.raises(ConfigError, match="unknown training option"):
        run_benchmark("flow", overrides={"flow": {"max_tokens": 3}}, out=tmp_path)
    with pytest.raises(ConfigError, match="diffusion-steps"):
        run_benchmark("flow", diffusion_steps="all", out=tmp_path)
    assert main(["--families", "vae,nope", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown benchmark row 'nope'" in err and "diffusion-selfies" in err
    with pytest.raises(SystemExit):
        main(["--budget-minutes", "1", "--budget-molecules", "5"])
    assert "not allowed with argument" in capsys.readouterr().err


def test_as_a_molgen_subcommand(monkeypatch, capsys, tmp_path):
    """Registered as ``molgen benchmark`` (molgen/cli/main.py COMMANDS), the same options and errors."""
    from molgen.cli import main as cli

    monkeypatch.setitem(cli.COMMANDS, "benchmark", ("molgen.cli.benchmark", "compare every family"))
    assert cli.main(["benchmark", "--families", "gan,nope", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("molgen benchmark: error: unknown benchmark row 'nope'") and err.count("\n") == 1


def test_the_command_builds_without_heavy_imports():
    import subprocess
    import sys

    code = ("import argparse, sys\nfrom molgen.options.benchmark import add_arguments\n"
            "p = argparse.ArgumentParser(); add_arguments(p)\n"
            "a = p.parse_args(['--families', 'vae,gan', '--seeds', '0', '1', '--n', '5'])\n"
            "assert a.seeds == [0, 1] and a.n == 5 and a.families == ['vae,gan']\n"
            "print(' '.join(m for m in ('torch', 'lightning', 'rdkit', 'pandas') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == []


def test_every_row_has_a_valid_cpu_config():
    from molgen.benchmark.rows import DEFAULT_ROWS, ROW_NAMES, ROWS, resolve_row_config
    from molgen.registry import MODELS
    from molgen.training.train import load_config

    assert set(DEFAULT_ROWS) < set(ROW_NAMES) and "transformer-smiles-qed" not in DEFAULT_ROWS
    assert {r.family for r in ROWS} == set(MODELS.declared_names())  # every registered family has a row
    for row in ROWS:
        cfg = load_config(resolve_row_config(row))
        assert cfg["model"] == row.family and cfg.get("representation", row.representation) == row.representation


# --- the GPU recipe -----------------------------------------------------------------------------
def test_gpu_recipe_configs_are_valid_full_scale_and_cover_every_row():
    from molgen.benchmark.rows import DEFAULT_ROWS, ROWS, resolve_row_config
    from molgen.chem import DEFAULT_POLICY
    from molgen.registry import MODELS, REPRESENTATIONS
    from molgen.training.train import build_model, load_config, resolve_options

    smiles = _head(ROOT / "data" / "moses" / "train.csv.gz", 50)
    for row in ROWS:
        path = resolve_row_config(row, GPU)
        cfg = load_config(path)  # unknown training keys are an error here
        opts = resolve_options(cfg)
        assert opts["model"] == row.family
        cls = MODELS.get(row.family)
        if row.family != "gan":  # the real model, built from the config (component arguments checked too)
            rep = REPRESENTATIONS.get(opts["representation"])().fit(smiles)
            build_model(cls, rep, DEFAULT_POLICY, 80, dict(opts["model_args"]))
        else:  # the GAN holds the vae row's model: its own options only
            cls.config_class.from_dict({**opts["model_args"], "max_len": 80})
        assert opts["precision"] == "bf16-mixed"
        assert opts["subset"] is None  # all of MOSES train
        if row.name in DEFAULT_ROWS:
            assert path.name == f"{row.name}.yaml"
        if row.family != "gan":
            assert opts["representation"] == row.representation
    run = (GPU / "run.sh").read_text()
    assert "--config-dir" in run and "compare_gpu" in run and "--resume" in run
    assert (GPU / "README.md").is_file()


@pytest.mark.slow
def test_gpu_recipe_runs_on_cpu_with_a_tiny_budget(tmp_path):
    """``benchmarks/gpu/run.sh`` end to end on CPU: the full-size configs, seconds of training, tiny n."""
    import os
    import subprocess

    env = {**os.environ, "FAMILIES": "transformer-smiles,flow", "BUDGET_MINUTES": "0.05", "N": "20", "NLL_N": "10",
           "SUBSET": "3000", "ACCELERATOR": "cpu", "PRECISION": "32-true", "OUT": str(tmp_path / "runs"),
           "RESULTS": str(tmp_path / "res"), "PYTHON": os.environ.get("PYTHON", str(ROOT / ".venv/bin/python"))}
    out = subprocess.run(["bash", str(GPU / "run.sh"), "--no-plots"], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=1800)
    assert out.returncode == 0, out.stderr[-2000:]
    md = (tmp_path / "res" / "compare_gpu.md").read_text()
    assert "| transformer-smiles | this run |" in md and "| flow | this run |" in md
    # resume: the finished models are reused, not retrained
    out = subprocess.run(["bash", str(GPU / "run.sh"), "--no-plots"], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=1800)
    assert out.returncode == 0 and "reused (finished earlier)" in out.stderr


def test_main_rejects_an_unknown_default():
    from molgen.cli.benchmark import main
    from molgen.errors import ConfigError

    with pytest.raises(ConfigError, match=r"resultz.*accepted.*results"):
        main([], resultz="/tmp/x")
