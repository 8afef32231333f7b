"""Notebook ergonomics: short model repr, molecule grids, report plots over both ranges with distances
in the titles, training curves, and examples/quickstart.ipynb (outputs cleared; executes on a tiny budget)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from molgen.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "examples" / "quickstart.ipynb"
# a warning raised inside Lightning, torch or numpy (molgen's own, e.g. a VAE collapse warning, may show)
LEAK = re.compile(r"site-packages/(lightning|pytorch_lightning|torch|numpy)/\S+:\d+: ")


def test_model_repr_is_short_and_says_what_it_is(trained_transformer):
    text = repr(trained_transformer)
    assert "\n" not in text and len(text) < 400
    for part in ("family=transformer", "parameters=0.0", "representation=smiles (vocabulary",
                 "likelihood=exact log p(canonical-smiles)", "trained on=<list> ("):
        assert part in text, text
    assert "<table>" in trained_transformer._repr_html_()


def test_molecule_grids(trained_transformer):
    import molgen

    scores = pd.DataFrame({"compound_id": ["A", "B", "C"]}).join(
        trained_transformer.score(["CCO", "not a smiles", "c1ccccc1"]))
    grid = molgen.draw(scores, n=2, legend=["compound_id", "log_likelihood", "status"])
    html = grid._repr_html_()
    assert html.count("<svg") == 1 and "invalid: not a smiles" in html  # an invalid row is a cell, not a gap
    assert "<b>compound_id</b> A" in html and "invalid_smiles" in html and "showing 2 of 3 rows" in html
    with pytest.raises(ConfigError, match="no column"):
        molgen.draw(scores, legend=["qed"])
    res = trained_transformer.sample(5, seed=0)
    page = res._repr_html_()
    assert page.startswith("<div>SampleResult: 5 samples, validity") and page.count("<b>log_likelihood</b>") == 5
    assert len(res.draw(n=3)) == 3


def test_plots_use_both_ranges_and_carry_distances(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    from molgen.metrics.plots import shared_bins
    from molgen.metrics.report import EvaluationReport

    rng = np.random.default_rng(0)
    ref = np.c_[rng.normal(2, 1, 3000), rng.normal(3, .5, 3000), rng.uniform(.3, .9, 3000), rng.normal(320, 30, 3000)]
    gen = np.c_[rng.normal(6, 1, 200), rng.normal(5, .5, 200), rng.uniform(.1, .5, 200), rng.normal(480, 30, 200)]
    bins = shared_bins(gen[:, 0], ref[:, 0])
    assert bins[0] < np.percentile(ref[:, 0], 1) and bins[-1] > np.percentile(gen[:, 0], 99)
    assert len(bins) - 1 == int(2 * np.sqrt(200))  # sized by the smaller sample
    ints = shared_bins(np.array([0, 1, 1, 2, 5]), np.array([1, 2, 3]))
    assert np.allclose(np.diff(ints), 1) and ints[0] == -0.5  # one bin per integer: no comb
    report = EvaluationReport(metrics={"logP": 4.0, "SA": 2.0, "QED": 0.3, "weight": 160.0, "FCD/Test": 9.0,
                                       "FCDfloor/Test": 0.6, "SNN/Test": 0.3},
                              properties=gen, reference_properties=ref)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing leaks into a notebook cell
        fig = report.plot()
    axes = fig.axes
    assert axes[0].get_title() == "logP: Wasserstein distance 4"
    assert axes[0].get_xlim()[1] > np.percentile(gen[:, 0], 99)  # generated bars are not clipped away
    assert [t.get_text() for t in axes[-1].get_yticklabels()] == ["FCD/Test", "SNN/Test"]
    paths = report.plot(tmp_path / "plots")
    assert len(paths) == 4 and all(p.stat().st_size > 1000 for p in paths)


def test_training_curves_from_the_csv_log(tmp_path):
    from molgen.training.curves import read_curves, write_curves

    log = tmp_path / "logs"
    log.mkdir()
    pd.DataFrame({"epoch": [0, 0, 0, 1], "step": [9, 19, 19, 29], "lr": [1e-3, 2e-3, None, 1e-3],
                  "molecules_seen": [320, 640, None, 960], "train/loss": [3.0, 2.5, None, 2.0],
                  "val/nll": [None, None, 40.0, None], "train/kl": [0.1, 0.2, None, 0.3]}).to_csv(
        log / "metrics.csv", index=False)
    df = read_curves(log)
    assert df["step"].tolist() == [9, 19, 29]  # a step's training and validation rows are one row
    assert df.loc[1, "val/nll"] == 40.0 and df.loc[1, "molecules_seen"] == 640
    csv, png = write_curves(tmp_path)
    assert set(pd.read_csv(csv).columns) >= {"lr", "molecules_seen", "train/loss", "val/nll", "train/kl"}
    assert png.stat().st_size > 1000
    assert write_curves(tmp_path / "missing") is None  # never fails a finished run


def test_notebook_is_committed_without_outputs():
    nb = json.loads(NOTEBOOK.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert code and all(not c["outputs"] and c["execution_count"] is None for c in code)
    text = "".join("".join(c["source"]) for c in code)
    for step in ("molgen.train(", ".sample(", "molgen.draw(", ".filter(", ".score(", "report.plot()",
                 "vae.encode(", "vae.interpolate(", "molgen.finetune("):
        assert step in text, step


@pytest.mark.slow
def test_quickstart_notebook_executes(tmp_path):
    """With nbclient (a kernel) when installed; else the code cells run in order in one Python process."""
    env = {**os.environ, "MOLGEN_NOTEBOOK_STEPS": "20", "MOLGEN_NOTEBOOK_THREADS": "1",
           "MOLGEN_NOTEBOOK_DIR": str(tmp_path), "MPLBACKEND": "Agg"}
    try:
        import nbclient
        import nbformat
    except ImportError:
        runner = ("import json, sys\nnb = json.load(open(sys.argv[1]))\ng = {'__name__': '__main__'}\n"
                  "for i, c in enumerate(nb['cells']):\n    if c['cell_type'] == 'code':\n"
                  "        exec(compile(''.join(c['source']), f'<cell {i}>', 'exec'), g)\n")
        proc = subprocess.run([sys.executable, "-c", runner, str(NOTEBOOK)], env=env, cwd=tmp_path,
                              capture_output=True, text=True, timeout=900)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert not LEAK.search(proc.stderr), proc.stderr[-3000:]
        return
    nb = nbformat.read(NOTEBOOK, as_version=4)
    old = dict(os.environ)
    os.environ.update(env)
    try:
        nbclient.NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
                                ).execute()
    finally:
        os.environ.clear()
        os.environ.update(old)
    leaked = [o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs
              if o.get("output_type") == "stream" and o.get("name") == "stderr" and LEAK.search(o.get("text", ""))]
    assert not leaked, leaked
