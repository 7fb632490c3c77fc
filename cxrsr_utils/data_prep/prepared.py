"""What a data-preparation step produced, and how its files are written and recorded.

:class:`Prepared` collects the manifest rows of the files written, the inputs read (with
their SHA-256) and the inputs excluded (with the reason). :func:`save_pixels` writes one PNG
(atomically, reusing a complete existing file, so an interrupted preparation resumes) and
returns its manifest row.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cxrsr_utils.external.sources import sha256_file
from cxrsr_utils.images import radiograph, radiographs

IMAGE_SUFFIXES = {".png", ".jpeg", ".jpg", ".tif", ".tiff", ".dcm"}


@dataclass
class Prepared:
    """What a preparation step produced: files (manifest rows) and the excluded inputs."""

    files: list[dict[str, object]] = field(default_factory=list)
    excluded: list[dict[str, str]] = field(default_factory=list)
    inputs: list[dict[str, str]] = field(default_factory=list)

    def extend(self, other: Prepared) -> None:
        self.files += other.files
        self.excluded += other.excluded
        self.inputs += other.inputs

    def exclude(self, path: Path, dataset: str, reason: str) -> None:
        """Record an input that is not used, and why."""
        self.excluded.append({"file": str(path), "dataset": dataset, "reason": reason})

    def read(self, path: Path, dataset: str) -> radiograph.Radiograph | None:
        """Read an input image; record it (with its SHA-256) or exclude it with the reason."""
        try:
            image = radiographs.read_radiograph(path)
        except radiograph.ImageReadError as exc:
            self.exclude(path, dataset, str(exc))
            return None
        self.inputs.append(
            {
                "dataset": dataset,
                "root": str(path.parent),
                "file": path.name,
                "sha256": sha256_file(path),
            }
        )
        return image


def list_images(folder: Path) -> list[Path]:
    """Image files directly in ``folder``, sorted by name (deterministic across machines)."""
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def save_pixels(
    pixels: np.ndarray, target: Path, root: Path, row: Mapping[str, object]
) -> dict[str, object]:
    """Write integer ``pixels`` as a PNG at ``target`` (unless a complete one is there) and
    return its manifest row: ``row`` with path (relative to ``root``), sha256, bytes, size."""
    if not target.is_file():
        radiographs.write_png(target, pixels)
    h, w = pixels.shape
    return {
        "path": target.relative_to(root).as_posix(),
        "sha256": sha256_file(target),
        "bytes": target.stat().st_size,
        "width": w,
        "height": h,
        **row,
    }
