"""The notebook API: lazy import, train/load/sample/score."""

import subprocess
import sys


def test_import_molgen_is_lazy_and_fast():
    code = ("import sys, time; t = time.perf_counter(); import molgen; dt = time.perf_counter() - t; "
            "heavy = [m for m in ('torch', 'lightning', 'rdkit', 'torch_geometric') if m in sys.modules]; "
            "print(dt, heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    dt, heavy = out.split(" ", 1)
    assert heavy.strip() == "[]"
    assert float(dt) < 0.5


def test_load_sample_score(trained_transformer, tmp_path):
    import molgen

    trained_transformer.save_pretrained(tmp_path / "m")
    model = molgen.load(tmp_path / "m")
    res = model.sample(10, seed=0)
    assert len(res.smiles) == 10 and 0.0 <= res.validity <= 1.0
    df = model.score(["CCO", "bad("])
    assert df.status.tolist()[1] == "invalid_smiles"
    assert [m["name"] for m in molgen.list_models()] == sorted(m["name"] for m in molgen.list_models())
