"""RDKit log control that restores the previous state (datamol's ``without_rdkit_log`` idea)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from rdkit import RDLogger, rdBase

_LEVELS = ("rdApp.debug", "rdApp.info", "rdApp.warning", "rdApp.error")


def _enabled() -> dict[str, bool]:
    # rdBase.LogStatus() returns lines such as "rdApp.error:enabled".
    state = {}
    for line in rdBase.LogStatus().splitlines():
        name, _, status = line.partition(":")
        if name in _LEVELS:
            state[name] = status.strip() == "enabled"
    return state


@contextlib.contextmanager
def quiet_rdkit() -> Iterator[None]:
    """Silence RDKit inside the block; afterwards each channel is as it was before."""
    before = _enabled()
    RDLogger.DisableLog("rdApp.*")
    try:
        yield
    finally:
        for name, on in before.items():
            (rdBase.EnableLog if on else rdBase.DisableLog)(name)
