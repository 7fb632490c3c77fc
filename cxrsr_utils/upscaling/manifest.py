"""``manifest.json`` beside a batch's outputs: one row per output, safe for re-runs and for two
runs on one folder at once.

Rows are keyed by the output's path *relative to the output folder*, so a re-run that spells
``-o`` another way (absolute, relative, through a link) updates the same rows. Every write
reads the rows on disk, replaces those this run has, and writes the whole file atomically,
under an exclusive lock on ``.manifest.lock``, so concurrent runs never drop each other's rows.
Every row ends in a final state: ``done``, ``skipped``, ``failed`` or ``interrupted``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from cxrsr_utils.core import atomic
from cxrsr_utils.core.errors import CxrsrError

MANIFEST = "manifest.json"
LOCK = ".manifest.lock"
FINAL = ("done", "skipped", "failed", "interrupted")


@dataclass
class Row:
    """One input's outcome, one row of ``manifest.json``.

    ``input`` is the path as given (a pseudonym when anonymizing); ``output`` is relative to
    the output folder.
    """

    input: str
    output: str = ""
    status: str = "pending"  # until it ends in one of FINAL
    seconds: float = 0.0
    error: str = ""
    size_in: str = ""
    size_out: str = ""
    note: str = ""
    input_sha256: str = ""
    model: dict[str, object] = field(default_factory=dict)
    audit: dict[str, float] = field(default_factory=dict)


class ManifestError(CxrsrError, OSError):
    """The manifest cannot be written (a full disk): the batch stops; the message names it."""


@contextlib.contextmanager
def _locked(outdir: Path) -> Iterator[None]:
    fd = os.open(outdir / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def read_rows(outdir: Path) -> dict[str, dict]:
    """The rows on disk by key (empty when there is no readable manifest)."""
    try:
        rows = json.loads((outdir / MANIFEST).read_text())["rows"]
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    return {
        _key(r.get("output", ""), r.get("input", "")): r
        for r in rows
        if isinstance(r, dict) and (r.get("output") or r.get("input"))
    }


def _key(output: str, input_: str) -> str:
    """A row's key: its output; an input that failed before its output was named, by input."""
    return output or f"input:{input_}"


def write_manifest(outdir: Path, rows: list[Row], described: dict[str, object]) -> Path:
    """Merge ``rows`` into ``manifest.json`` (see module doc); :class:`ManifestError` when it
    cannot be written."""
    target = outdir / MANIFEST
    try:
        with _locked(outdir):
            merged = read_rows(outdir)
            for row in rows:
                merged[_key(row.output, row.input)] = asdict(row)
            body = {"model": described, "rows": list(merged.values())}
            return atomic.write_text(target, json.dumps(body, indent=1, default=str))
    except OSError as exc:
        raise ManifestError(
            f"{target}: cannot be written ({exc.strerror or exc}); the batch stops here. Free "
            "space (or fix the folder) and run the same command again: finished outputs are "
            "kept and skipped."
        ) from exc
