"""Dataset catalog: every entry is complete, downloads are verified against local files served from a
temporary directory (never the network), resumed after an interruption, refused when tampered with."""

import hashlib
import http.server
import threading
from pathlib import Path
from typing import ClassVar

import pytest

from molgen.cli.main import main
from molgen.data import catalog

PAYLOAD = b"SMILES\n" + b"".join(f"C{'C' * (i % 7)}O\n".encode() for i in range(20_000))


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves ``files`` with HTTP Range support; ``cut`` sends only the first bytes then drops the line."""

    files: ClassVar[dict[str, bytes]] = {}
    cut: ClassVar[dict[str, int]] = {}
    seen: ClassVar[list[tuple[str, str | None]]] = []

    def do_GET(self):
        body = self.files.get(self.path)
        self.seen.append((self.path, self.headers.get("Range")))
        if body is None:
            self.send_error(404)
            return
        start = 0
        rng = self.headers.get("Range")
        if rng:
            start = int(rng.split("=")[1].split("-")[0])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        n = self.cut.pop(self.path, None)
        self.wfile.write(body[start:] if n is None else body[start:start + n])
        if n is not None:
            self.wfile.flush()
            self.close_connection = True

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    _Handler.files, _Handler.cut, _Handler.seen = {}, {}, []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", _Handler
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MOLGEN_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("MOLGEN_OFFLINE", raising=False)
    catalog._verified.clear()
    return tmp_path / "cache"


def _entry(monkeypatch, url, sha256=None, md5=None, name="test:tiny"):
    e = catalog.DatasetEntry(name, "tiny/tiny.csv", sha256, url, "CC0", citation="nobody", md5=md5)
    monkeypatch.setitem(catalog.CATALOG, name, e)
    return e


def test_every_entry_has_source_checksum_licence_and_citation():
    for e in catalog.CATALOG.values():
        assert e.url.startswith("https://") and e.licence and e.citation, e.name
        assert e.sha256 or e.md5, f"{e.name}: no checksum at all"
        assert e.sha256 is None or len(e.sha256) == 64
    assert {"moses:train", "guacamol:train", "guacamol:test", "zinc250k"} <= set(catalog.CATALOG)


def test_download_verified_by_sha256(server, cache, monkeypatch):
    base, h = server
    h.files["/tiny.csv"] = PAYLOAD
    _entry(monkeypatch, base + "/tiny.csv", sha256=hashlib.sha256(PAYLOAD).hexdigest())
    with pytest.raises(FileNotFoundError, match="molgen data get test:tiny"):
        catalog.resolve("test:tiny")  # nothing downloads implicitly
    path = catalog.fetch("test:tiny")
    assert path.read_bytes() == PAYLOAD and path.parent.parent == cache / "datasets"
    assert catalog.resolve("test:tiny") == (path, "SMILES")
    assert [p.name for p in path.parent.iterdir()] == ["tiny.csv"]  # no .part left


def test_tampered_download_is_refused_and_not_kept(server, cache, monkeypatch):
    base, h = server
    h.files["/tiny.csv"] = PAYLOAD.replace(b"CCO", b"CCN", 1)
    _entry(monkeypatch, base + "/tiny.csv", sha256=hashlib.sha256(PAYLOAD).hexdigest())
    with pytest.raises(catalog.ChecksumError, match="does not match"):
        catalog.fetch("test:tiny")
    assert not (cache / "datasets" / "tiny").exists() or not any((cache / "datasets" / "tiny").iterdir())
    # a tampered file placed by hand is refused too
    dest = cache / "datasets" / "tiny" / "tiny.csv"
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(h.files["/tiny.csv"])
    with pytest.raises(catalog.ChecksumError):
        catalog.resolve("test:tiny")


def test_interrupted_download_resumes_with_a_range_request(server, cache, monkeypatch):
    base, h = server
    h.files["/tiny.csv"] = PAYLOAD
    h.cut["/tiny.csv"] = 50_000
    _entry(monkeypatch, base + "/tiny.csv", sha256=hashlib.sha256(PAYLOAD).hexdigest())
    with pytest.raises(catalog.DownloadError, match="interrupted after 50000 bytes"):
        catalog.fetch("test:tiny")
    part = cache / "datasets" / "tiny" / "tiny.csv.part"
    assert part.stat().st_size == 50_000
    path = catalog.fetch("test:tiny")
    assert path.read_bytes() == PAYLOAD and not part.exists()
    assert h.seen == [("/tiny.csv", None), ("/tiny.csv", "bytes=50000-")]


def test_unpinned_dataset_needs_the_flag_and_matches_the_published_md5(server, cache, monkeypatch, capsys):
    base, h = server
    h.files["/tiny.csv"] = PAYLOAD
    _entry(monkeypatch, base + "/tiny.csv", md5=hashlib.md5(PAYLOAD).hexdigest())
    assert main(["data", "get", "test:tiny"]) == 2
    assert "--allow-unpinned" in capsys.readouterr().err and h.seen == []
    assert main(["data", "get", "test:tiny", "--allow-unpinned", "-q"]) == 0
    path = cache / "datasets" / "tiny" / "tiny.csv"
    assert path.read_bytes() == PAYLOAD
    assert Path(str(path) + ".sha256").read_text().split()[0] == hashlib.sha256(PAYLOAD).hexdigest()
    assert catalog.resolve("test:tiny")[0] == path  # later uses verify the recorded sha256
    _entry(monkeypatch, base + "/tiny.csv", md5="0" * 32, name="test:bad")
    h.files["/tiny.csv"] = PAYLOAD
    with pytest.raises(catalog.ChecksumError, match="md5"):
        catalog.fetch("test:bad", allow_unpinned=True)


def test_offline_mode_names_the_file_to_place_by_hand(cache, monkeypatch, capsys):
    _entry(monkeypatch, "https://example.invalid/tiny.csv", sha256="a" * 64)
    assert main(["data", "get", "test:tiny", "--offline"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "MOLGEN_OFFLINE" in err
    assert str(cache / "datasets" / "tiny" / "tiny.csv") in err and "tiny.csv" in err


def test_unknown_names_list_the_valid_ones(tmp_path, capsys):
    from molgen.data.io import read_smiles

    with pytest.raises(KeyError, match="moses:test_scaffolds"):
        read_smiles("moses:nope")
    assert main(["data", "get", "nope"]) == 2
    assert "known: guacamol:all" in capsys.readouterr().err
    (tmp_path / "x.smi").write_text("CCO\n")
    assert main(["evaluate", str(tmp_path / "x.smi"), "--reference", "moses:nope", "--no-cache"]) == 2
    assert "unknown dataset 'moses:nope'" in capsys.readouterr().err


def test_data_list(capsys):
    assert main(["data", "list"]) == 0
    out = capsys.readouterr().out
    assert "moses:train" in out and "guacamol:train" in out and "zinc250k" in out
