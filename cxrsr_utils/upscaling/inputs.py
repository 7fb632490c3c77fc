"""What ``cxrsr upscale`` is given: files, folders and globs expanded into the inputs of a batch.

A folder contributes, recursively and by relative path, its image files (by suffix) and its
DICOM files of any name (by the ``DICM`` magic: archives often name them by UID, without a
suffix); hidden files and folders are left out, and every other file is counted as skipped so
the command can say so. A FIFO, device or socket is never opened here: it becomes an input
that fails with its reason. The same file named twice (another spelling, a link) is one input,
and the duplicate is reported.
"""

from __future__ import annotations

import glob
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from cxrsr_utils.images import outputs, radiograph


@dataclass(frozen=True)
class Input:
    """One input: the file as named, and its output path relative to the output folder."""

    source: Path
    rel: Path


@dataclass
class Inputs:
    """The batch's inputs, what folder scans skipped, and the duplicates dropped."""

    items: list[Input] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    duplicates: list[tuple[Path, Path]] = field(default_factory=list)  # (dropped, kept)

    def notes(self) -> list[str]:
        """One line each for what the user should know before the batch starts."""
        lines = [f"{dup}: the same file as {kept}; upscaled once." for dup, kept in self.duplicates]
        if self.skipped:
            names = ", ".join(p.name for p in self.skipped[:5])
            more = f" and {len(self.skipped) - 5} more" if len(self.skipped) > 5 else ""
            lines.append(
                f"{len(self.skipped)} file(s) in the folders given are not images and were "
                f"skipped: {names}{more}."
            )
        return lines


def _identity(path: Path) -> tuple[int, int] | str:
    """What makes two names the same file: (device, inode), else the resolved path."""
    try:
        status = path.stat()
        return status.st_dev, status.st_ino
    except OSError:
        return os.path.realpath(path)


def _is_image(path: Path) -> bool:
    """A folder entry to upscale: an image suffix, a non-regular file named like one (refused
    later with its reason), or a regular file with the DICOM magic."""
    if path.suffix.lower() in outputs.INPUT_SUFFIXES:
        return True
    try:
        return stat.S_ISREG(path.stat().st_mode) and radiograph.has_dicom_magic(path)
    except OSError:
        return False


def _scan(folder: Path, found: Inputs) -> list[Input]:
    items = []
    for entry in sorted(folder.rglob("*")):
        rel = entry.relative_to(folder)
        if any(part.startswith(".") for part in rel.parts) or entry.is_dir():
            continue
        if _is_image(entry):
            items.append(Input(entry, rel))
        else:
            found.skipped.append(entry)
    return items


def collect_inputs(args: Iterable[str]) -> Inputs:
    """The inputs of ``args`` (files, folders, globs; see module doc). An argument matching
    nothing is kept, so it fails as its own row with its reason."""
    found = Inputs()
    seen: dict[tuple[int, int] | str, Path] = {}
    for arg in args:
        path = Path(arg)
        if path.is_dir():
            items = _scan(path, found)
        elif glob.has_magic(arg) and not path.exists():
            matches = [Path(m) for m in sorted(glob.glob(arg)) if not Path(m).is_dir()]
            items = [Input(m, Path(m.name)) for m in matches] or [Input(path, Path(path.name))]
        else:
            items = [Input(path, Path(path.name))]
        for item in items:
            key = _identity(item.source)
            if key in seen and item.source.exists():
                found.duplicates.append((item.source, seen[key]))
                continue
            seen[key] = item.source
            found.items.append(item)
    return found
