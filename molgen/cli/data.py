"""``molgen data list`` / ``molgen data get NAME``: the dataset catalog and verified downloads."""

from __future__ import annotations

import argparse
import json
import os
import sys

from molgen.data import catalog


def _size(n: int | None) -> str:
    return "?" if n is None else f"{n / 1e6:.1f} MB"


def run(args: argparse.Namespace) -> int:
    """``list``: print the catalog; ``get``: download (or find) each dataset and verify it."""
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
