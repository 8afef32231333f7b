"""Notebook ergonomics: short model repr, molecule grids, report plots over both ranges with distances
in the titles and one axis per metric scale, training curves, one progress bar per call (in place in
a notebook, no TqdmWarning), and examples/quickstart.ipynb (outputs cleared; executed in the slow suite
with no warning and no error in any cell)."""

from __future__ import annotations

import io
import json
import os
import re
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from molgen.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "examples" / "quickstart.ipynb"
BAR = re.compile(r"\d+%\|")  # a tqdm bar line


def rendered(text: str) -> list[str]:
    """The lines a front end shows for a stream: each line is what follows its last carriage return."""
    return [line.rsplit("\r", 1)[-1] for line in text.split("\n") if line.rsplit("\r", 1)[-1].strip()]


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
    report = EvaluationReport(metrics={"logP": 4.0, "SA": 2.0, "QED": 0.3, "weight": 160.0, "FCD/Test": 55.0,
                                       "FCDfloor/Test": 0.6, "SNN/Test": 0.3, "Frag/Test": 0.9, "Scaf/Test": 0.1,
                                       "valid": 0.027, "unique@1000": 1.0, "IntDiv": 0.85, "NLL/Test": 79.9},
                              properties=gen, reference_properties=ref)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing leaks into a notebook cell
        fig = report.plot()
    axes = fig.axes
    assert axes[0].get_title() == "logP: Wasserstein distance 4"
    assert axes[0].get_xlim()[1] > np.percentile(gen[:, 0], 99)  # generated bars are not clipped away
    # one axis per scale: FCD (an unbounded distance), the 0-1 scores, the NLL (nats per molecule)
    labels = {i: [t.get_text() for t in ax.get_yticklabels()] for i, ax in enumerate(axes[4:], start=4)}
    assert len(labels) == 3, labels
    fcd, scores, nll = (axes[next(i for i, names in labels.items() if key in names)]
                        for key in ("FCD/Test", "SNN/Test", "NLL/Test"))
    assert len({id(fcd), id(scores), id(nll)}) == 3
    assert [t.get_text() for t in fcd.get_yticklabels()] == ["FCD/Test"]
    assert [t.get_text() for t in nll.get_yticklabels()] == ["NLL/Test"]
    assert [t.get_text() for t in scores.get_yticklabels()] == ["valid", "unique@1000", "IntDiv", "SNN/Test",
                                                                 "Frag/Test", "Scaf/Test"]
    assert scores.get_xlim() == (0.0, 1.0) and fcd.get_xlim()[1] > 55.0  # FCD 55 is not squeezed onto [0, 1]
    assert "distance" in fcd.get_title() and "nats/molecule" in nll.get_xlabel()
    fig = EvaluationReport(metrics={"FCD/Test": 3.0}, properties=gen, reference_properties=ref).plot()
    assert len(fig.axes) == 5  # panels without values are left out
    paths = report.plot(tmp_path / "plots")
    assert len(paths) == 4 and all(p.stat().st_size > 1000 for p in paths)


def test_progress_bars_in_a_notebook_without_widgets(monkeypatch):
    """ipykernel without ipywidgets: tqdm.auto would warn (TqdmWarning "IProgress not found") into the
    cell; molgen draws one text bar redrawn in place (carriage returns only), no warning."""
    from molgen import progress

    monkeypatch.setattr(progress, "in_notebook", lambda: True)
    monkeypatch.setattr(progress, "notebook_widgets", lambda: False)
    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    assert progress.bar_kind() == "notebook-text" and progress.interactive()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in progress.progress_bar(range(50), desc="scoring", mininterval=0):
            pass
        for _ in progress.progress_bar(range(1), desc="one batch"):  # a one-step bar says nothing: not drawn
            pass
    text = err.getvalue()
    assert "\x1b[" not in text and text.count("\n") == 1 and "one batch" not in text
    assert [line for line in rendered(text) if BAR.search(line)] == [rendered(text)[-1]]
    assert "50/50" in rendered(text)[-1]
    progress.set_quiet(True)
    try:
        assert progress.bar_kind() == "off"
    finally:
        progress.set_quiet(False)


def test_progress_bar_uses_widgets_when_ipywidgets_is_there(monkeypatch):
    pytest.importorskip("ipywidgets")
    from tqdm.notebook import tqdm as widget

    from molgen import progress

    monkeypatch.setattr(progress, "in_notebook", lambda: True)
    assert progress.notebook_widgets() and progress.bar_kind() == "widget"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        bar = progress.progress_bar(range(3), desc="x")
        assert isinstance(bar, widget)
        bar.close()


def test_training_bar_is_one_bar_per_run(monkeypatch, tmp_path):
    """Lightning's own bar draws a validation bar with cursor moves at every validation (dozens of
    chunks per notebook cell); TrainingBar is one bar over the budget, redrawn in place."""
    import lightning as L
    import torch

    from molgen import progress
    from molgen.training.progress import Budget, TrainingBar, TrainingProgress

    class Tiny(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Linear(4, 1)

        def training_step(self, batch, batch_idx):
            loss = self.w(batch[0]).pow(2).mean()
            self.log("train/loss", loss, prog_bar=True)
            return loss

        def validation_step(self, batch, batch_idx):
            self.log("val/nll", self.w(batch[0]).pow(2).mean(), prog_bar=True)

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.01)

    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.randn(64, 4)), batch_size=4)
    monkeypatch.setattr(progress, "in_notebook", lambda: True)
    monkeypatch.setattr(progress, "notebook_widgets", lambda: False)
    monkeypatch.setattr(progress, "NOTEBOOK_INTERVAL_S", 0.0)
    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    bar = TrainingBar(refresh_rate=2)
    trainer = L.Trainer(max_epochs=-1, max_steps=-1, callbacks=[TrainingProgress(Budget(max_steps=40)), bar],
                        val_check_interval=8, check_val_every_n_epoch=None, num_sanity_val_steps=0,
                        enable_model_summary=False, logger=False, enable_checkpointing=False,
                        default_root_dir=tmp_path, accelerator="cpu")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        warnings.filterwarnings("ignore", message=".*LeafSpec.*")
        trainer.fit(Tiny(), train_dataloaders=data, val_dataloaders=data)
    text = err.getvalue()
    lines = rendered(text)
    assert "\x1b[" not in text and "Validation" not in text and text.count("\n") == 1, text[-2000:]
    assert len(lines) == 1 and lines[0].startswith("training: 100%") and "step 40" in lines[0], lines
    assert "val/nll=" in lines[0] and "train/loss=" in lines[0]
    assert trainer.progress_bar_callback is bar and bar._bar is None  # closed


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
    for step in ('molgen.load("moses-transformer")', ".likelihood_label()", ".sample(", "seed=", "molgen.draw(",
                 ".filter(", ".score(", 'reference="moses:test"', "report.plot()", "molgen.finetune(",
                 "molgen.train("):
        assert step in text, step
    markdown = "".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")
    assert "Demo only" in markdown and "Quality is not the point" in markdown


@pytest.mark.slow
def test_quickstart_notebook_executes(tmp_path):
    """Runs every cell in a Jupyter kernel (nbclient, in the test extras) as a user would: no error, no
    warning in any cell's stderr, and at most one progress bar per call, redrawn in place (no cursor
    moves, no validation bars). Measured on 2 shared CPU cores with an empty cache (the SNN fingerprints
    of the MOSES test set are computed on first use, about a minute): under 2 minutes, 3.5 when busy."""
    nbclient = pytest.importorskip("nbclient", reason="pip install -e '.[test]'")
    nbformat = pytest.importorskip("nbformat", reason="pip install -e '.[test]'")
    pytest.importorskip("ipykernel", reason="pip install -e '.[test]'")
    env = {"MOLGEN_NOTEBOOK_STEPS": "20", "MOLGEN_NOTEBOOK_THREADS": "1", "MOLGEN_NOTEBOOK_DIR": str(tmp_path),
           "OMP_NUM_THREADS": "1"}
    nb = nbformat.read(NOTEBOOK, as_version=4)
    old = dict(os.environ)
    os.environ.update(env)  # the kernel inherits this environment (MOLGEN_CACHE: the tests' own)
    os.environ.pop("MPLBACKEND", None)  # the kernel's inline backend: figures are drawn as a user sees them
    try:
        nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                                resources={"metadata": {"path": str(tmp_path)}}).execute()
    finally:
        os.environ.clear()
        os.environ.update(old)
    problems = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        streams = {"stdout": "", "stderr": ""}
        for out in cell.outputs:
            if out.get("output_type") == "error":
                problems.append(f"cell {i}: {out.get('ename')}: {out.get('evalue')}")
            elif out.get("output_type") == "stream":
                streams[out.get("name", "stdout")] += out.get("text", "")
        if "Warning" in streams["stderr"]:
            problems.append(f"cell {i}: a warning in stderr: {streams['stderr'][-1500:]}")
        text = streams["stdout"] + streams["stderr"]
        if "\x1b[" in text:
            problems.append(f"cell {i}: terminal escape sequences (nested / validation bars): {text[-500:]!r}")
        bars = [line for line in rendered(text) if BAR.search(line)]
        if len(bars) > 3:  # one per call; the cell with the most calls (evaluate) makes two
            problems.append(f"cell {i}: {len(bars)} progress lines: {bars}")
    assert not problems, "\n".join(problems)
    plot = next(c for c in nb.cells if c.cell_type == "code" and "report.plot()" in c.source)
    assert any("image/png" in out.get("data", {}) for out in plot.outputs)  # the figure is shown inline
