"""A quiet, honest CLI: the drawn seed is printed, `evaluate --model` adds the NLL, a failed `train`
leaves no half-written folder, `--device cuda` without CUDA is one line, and progress bars do not
spam a log file."""

import sys

import pytest

from molgen.cli.main import main


@pytest.fixture(scope="module")
def model_dir(trained_transformer, tmp_path_factory):
    d = tmp_path_factory.mktemp("quiet") / "model"
    trained_transformer.save_pretrained(d)
    return d


def test_sample_prints_the_seed_it_drew(model_dir, tmp_path, capsys):
    out = tmp_path / "s.smi"
    assert main(["sample", "--model", str(model_dir), "-n", "5", "-o", str(out)]) == 0
    err = capsys.readouterr().err
    seed = int(err.split("seed ")[1].split()[0])
    assert "drawn; pass --seed to repeat it" in err
    first = out.read_text()
    assert main(["sample", "--model", str(model_dir), "-n", "5", "-o", str(out), "--seed", str(seed)]) == 0
    assert out.read_text() == first  # the printed seed reproduces the run
    assert "(drawn" not in capsys.readouterr().err


def test_device_cuda_without_cuda_is_one_line(model_dir, tmp_path, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert main(["sample", "--model", str(model_dir), "-n", "2", "-o", str(tmp_path / "s.smi"),
                 "--device", "cuda"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no CUDA device" in err and "Traceback" not in err
    assert main(["train", "--out", str(tmp_path / "m"), "--accelerator", "gpu", "--max-steps", "1"]) == 2
    assert "no CUDA device" in capsys.readouterr().err and not (tmp_path / "m").exists()


def test_failed_train_leaves_no_output_folder(tmp_path, capsys, monkeypatch):
    import molgen.training.train as T

    data = tmp_path / "bad.smi"
    data.write_text("not a molecule\nxx(\n" * 5)
    out = tmp_path / "run"
    assert main(["train", "--data", str(data), "--out", str(out), "--max-steps", "1", "-q"]) == 2
    assert not out.exists() and list(tmp_path.iterdir()) == [data]
    # a failure after the folder was written to (here: while reading the data)
    seen = []

    def boom(opts, policy):
        (out / "half-written.json").write_text("{}")
        seen.append(out.exists())
        raise ValueError("boom")

    monkeypatch.setattr(T, "split_data", boom)
    assert main(["train", "--data", str(data), "--out", str(out), "--max-steps", "1", "-q"]) == 2
    assert seen == [True] and not out.exists() and "boom" in capsys.readouterr().err
    monkeypatch.undo()
    # an existing folder (the user's) is left alone
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert main(["train", "--data", str(data), "--out", str(out), "--max-steps", "1", "-q"]) == 2
    assert (out / "keep.txt").read_text() == "mine"


def test_evaluate_with_model_adds_the_nll(model_dir, tmp_path, moses_test_smiles, capsys):
    gen, ref = tmp_path / "gen.smi", tmp_path / "ref.smi"
    gen.write_text("\n".join(moses_test_smiles[300:340]) + "\n")
    ref.write_text("\n".join(moses_test_smiles[:120]) + "\n")
    assert main(["evaluate", str(gen), "--reference", str(ref), "--model", str(model_dir), "--no-extras",
                 "--no-guacamol"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("NLL/Test ") and "| NLL/Test |" in out and "nats/molecule" in out


def test_progress_bars_write_a_few_lines_to_a_log_not_one_per_step(capsys):
    from molgen.progress import progress_bar, set_quiet

    assert not sys.stderr.isatty()
    for _ in progress_bar(range(20_000), desc="steps"):
        pass
    err = capsys.readouterr().err
    assert "\r" not in err and 1 <= err.count("\n") <= 3 and "20000/20000" in err
    set_quiet(True)
    try:
        for _ in progress_bar(range(100), desc="steps"):
            pass
        assert capsys.readouterr().err == ""
    finally:
        set_quiet(False)
