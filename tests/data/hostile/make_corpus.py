"""Writes the hostile-input corpus (committed; rerun only to change it): ``python tests/data/hostile/make_corpus.py``.

``corpus.jsonl``: one row per hostile string, ``{"id", "category", "smiles", "status"}``, where
``status`` is what ``model.score`` says for the test suite's tiny transformer (trained on the first
600 MOSES test molecules): ``ok``, ``invalid_smiles``, ``too_long``, ``unrepresentable`` or a status
prefix ``oov_token``. JSON keeps every string exactly (empty, tabs, Unicode, NUL).
The file formats (``*.smi``, ``*.csv``, a truncated gzip, UTF-16, CRLF) are written from it.
"""

from __future__ import annotations

import codecs
import gzip
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent

ROWS: list[tuple[str, str, str]] = [  # (category, smiles, expected status for the tiny transformer)
    ("reference", "CCOC(=O)c1ccccc1", "ok"),
    ("empty", "", "invalid_smiles"),
    ("whitespace", "   ", "invalid_smiles"),
    ("whitespace", "\t", "invalid_smiles"),
    ("whitespace", "  CCO", "ok"),
    ("whitespace", "CCO   ", "ok"),
    ("garbage", "not a smiles", "invalid_smiles"),
    ("garbage", "C1CC", "invalid_smiles"),
    ("garbage", "C(C", "invalid_smiles"),
    ("garbage", "))((", "invalid_smiles"),
    ("garbage", "c1cccc1", "invalid_smiles"),
    ("garbage", "C(C)(C)(C)(C)C", "invalid_smiles"),
    ("garbage", "12345", "invalid_smiles"),
    ("garbage", "[", "invalid_smiles"),
    ("garbage", "None", "invalid_smiles"),
    ("garbage", "NaN", "invalid_smiles"),
    ("garbage", "<html><body>", "invalid_smiles"),
    ("garbage", "'; DROP TABLE molecules; --", "invalid_smiles"),
    ("garbage", "C" * 10_001, "too_long"),  # over the policy's character limit: refused before RDKit
    ("long_chain", "C" * 400, "too_long"),
    ("long_chain", "CCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCC"
                   "CCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCC"
                   "CCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCC"
                   "CCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCO",
     "too_long"),
    ("heavy_150", "OCC" * 50, "too_long"),
    ("heavy_150", "".join("c1ccc(cc1)" for _ in range(24)) + "C", "oov_token"),  # 145 heavy atoms, ring bonds 6..24
    ("salt", "CC(=O)Oc1ccccc1C(=O)O.[Na+]", "ok"),
    ("salt", "CN.Cl", "ok"),
    ("mixture", "CCO.O", "ok"),
    ("mixture", "CCOC(=O)c1ccccc1.CCOC(=O)c1ccccc1", "ok"),
    ("charged", "C[N+](C)(C)C", "oov_token"),
    ("charged", "O=[N+]([O-])c1ccccc1", "oov_token"),
    ("charged", "CC(=O)[O-]", "oov_token"),
    ("isotope", "[13CH3]O", "oov_token"),
    ("isotope", "[2H]OC", "oov_token"),
    ("stereo", "C[C@H](N)C(=O)O", "oov_token"),
    ("stereo", "F/C=C/F", "oov_token"),
    ("explicit_h", "[CH3][CH2][OH]", "ok"),
    ("explicit_h", "[H]OC([H])([H])[H]", "ok"),
    ("wildcard", "*CC", "oov_token"),
    ("wildcard", "[*]C(=O)O", "oov_token"),
    ("unknown_element", "[Xx]", "invalid_smiles"),
    ("unknown_element", "[Uue]", "invalid_smiles"),
    ("unknown_element", "CC[Se]CC", "oov_token"),
    ("unknown_element", "C[Si](C)(C)C", "oov_token"),
    ("unknown_element", "[Te]", "oov_token"),
    ("metal", "[NH3]->[Pt](<-[NH3])(Cl)Cl", "oov_token"),
    ("metal", "N->[Pt](<-N)(Cl)Cl", "oov_token"),
    ("metal", "[NH3][Pt]([NH3])(Cl)Cl", "oov_token"),
    ("metal", "[Fe+2].[O-]C(=O)C", "oov_token"),
    ("metal", "C[Hg]Cl", "oov_token"),
    ("metal", "[Na]Cl", "oov_token"),
    ("unicode", "CCO\u200b", "invalid_smiles"),
    ("unicode", "\ufeffCCO", "invalid_smiles"),
    ("unicode", "\uff23\uff23\uff2f", "invalid_smiles"),
    ("unicode", "C\u2013C", "invalid_smiles"),
    ("unicode", "CC\u00d6", "invalid_smiles"),  # RDKit alone reads "CC" here
    ("garbage", "C C", "invalid_smiles"),  # RDKit alone reads "C" (the rest as a name)
    ("garbage", "CCO\tethanol", "invalid_smiles"),
    ("unicode", "\U0001f600", "invalid_smiles"),
    ("control", "\x00CC", "invalid_smiles"),
    ("control", "C\x7fC", "invalid_smiles"),
    ("reference", "Cc1ccccc1", "ok"),
]


def main() -> None:
    rows = [{"id": f"h{i:03d}", "category": c, "smiles": s, "status": st} for i, (c, s, st) in enumerate(ROWS)]
    with open(HERE / "corpus.jsonl", "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    # a .smi with name columns (space, tab, names with spaces, a header, a line with only a name-less SMILES)
    (HERE / "names.smi").write_text("smiles name\nCCO ethanol\nc1ccccc1\tbenzene ring\nCC(=O)O acetic acid 99%\n"
                                    "CCN\n\nnot_a_smiles junk\nCCCl  chloropropane\n", encoding="utf-8")
    # CSV with quoting problems: quoted commas, an embedded newline, a doubled quote, a row with too many
    # fields, a row with too few, an empty SMILES field
    (HERE / "quoting.csv").write_text(
        'id,smiles,note\n'
        'a1,CCO,"plain"\n'
        'a2,"CC(C)O","quoted, with comma"\n'
        'a3,c1ccccc1,"two\nlines"\n'
        'a4,CC(=O)O,"he said ""hi"""\n'
        'a5,CCN,extra,fields,here\n'
        'a6,CCCl\n'
        'a7,,empty smiles\n'
        'a8,"C C",space inside\n', encoding="utf-8")
    good = "\n".join(["CCO", "c1ccccc1", "CC(=O)O", "CCN", "CCCl"] * 40) + "\n"
    data = gzip.compress(good.encode(), mtime=0)  # reproducible bytes
    (HERE / "truncated.smi.gz").write_bytes(data[: len(data) // 2])
    (HERE / "utf16.smi").write_bytes(codecs.BOM_UTF16_LE + "CCO\nc1ccccc1\nCC(=O)O\n".encode("utf-16-le"))
    (HERE / "utf8_bom.smi").write_bytes(codecs.BOM_UTF8 + b"CCO\nc1ccccc1\nCC(=O)O\n")
    (HERE / "crlf.smi").write_bytes(b"CCO\r\nc1ccccc1\r\n\r\nCC(=O)O\r\n")
    (HERE / "empty.smi").write_bytes(b"")
    (HERE / "binary.smi").write_bytes(bytes(range(256)) * 4)


if __name__ == "__main__":
    main()
