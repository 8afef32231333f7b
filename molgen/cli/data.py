"""``molgen data list`` / ``molgen data get NAME``: the dataset catalog and verified downloads."""

from __future__ import annotations

import argparse
import json
import sys


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    ls = sub.add_parser("list", help="the catalog: name, size, verification, licence, local status")
    ls.add_argument("--json", action="store_true", help="every field (URL, checksums, citation) as JSON")
    get = sub.add_parser("get", help="download a dataset into $MOLGEN_CACHE/datasets and verify it "
                                     "(or verify a file placed there by hand)")
    get.add_argument("names", nargs="+", metavar="NAME", help="catalog name(s), e.g. guacamol:train")
    get.add_argument("--allow-unpinned", action="store_true",
                     help="accept a dataset whose sha256 the catalog does not pin, checked against the md5 "
                          "its source publishes (its sha256 is then recorded next to the file)")
    get.add_argument("--offline", action="store_true", help="never use the network (same as MOLGEN_OFFLINE=1)")
    for q in (ls, get):  # also after the action (`molgen data get NAME -q`); unset ones keep the outer value
        q.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS, help="no progress bar")
        q.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS, help="more log output")


def _size(n: int | None) -> str:
    return "?" if n is None else f"{n / 1e6:.1f} MB"


def run(args: argparse.Namespace) -> int:
    from molgen.data import catalog

    if args.action == "list":
        rows = [{**e.to_dict(), "path": str(catalog.local_path(e)), "status": catalog.status(e)}
                for e in catalog.CATALOG.values()]
        if args.json:
            print(json.dumps(rows, indent=1))
            return 0
        print(f"{'name':<22}{'size':>10}  {'status':<11}{'verification':<26}licence")
        for r in rows:
            ver = "sha256" if r["sha256"] else ("md5 (unpinned)" if r["md5"] else "none (unpinned)")
            print(f"{r['name']:<22}{_size(r['size']):>10}  {r['status']:<11}{ver:<26}{r['licence']}")
        print(f"\ncache: {catalog.cache_dir() / 'datasets'}  (molgen data list --json: URLs, checksums, "
              "citations)")
        return 0
    if args.offline:
        import os

        os.environ["MOLGEN_OFFLINE"] = "1"
    for name in args.names:  # unknown names first, before any download starts
        catalog.entry(name)
    for name in args.names:
        e = catalog.entry(name)
        path = catalog.fetch(name, allow_unpinned=args.allow_unpinned, progress=not args.quiet)
        how = "sha256" if e.sha256 else f"md5 {e.md5}; sha256 recorded in {path.name}.sha256"
        print(f"{e.name}: {path} (verified: {how})")
        if not e.sha256 and not args.quiet:
            print(f"  sha256 {catalog.sha256_file(path)} (not pinned in the catalog)", file=sys.stderr)
    return 0
