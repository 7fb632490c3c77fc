"""Writing an upscaled radiograph in its input's format, with what made it.

- PNG 8/16-bit (gray, RGB-stored gray, RGB) -> PNG of the same bit depth (``sBIT`` for
  12-bit), the model in tEXt chunks;
- JPEG -> PNG (lossless: a second JPEG compression would add artefacts of its own), tEXt;
- TIFF -> TIFF of the same bit depth, the model in ImageDescription (JSON);
- DICOM -> DICOM, uncompressed, a derived series (:mod:`cxrsr_utils.dicom`), the model in
  DerivationDescription.

Colour input is written gray (the network's output is gray, see :mod:`cxrsr_utils.infer`).
Every write is atomic (:func:`cxrsr_utils.atomic.atomic_path`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from PIL import Image

from cxrsr_utils import __version__, atomic, dicom, radiographs
from cxrsr_utils.radiographs import Radiograph

# Input suffix -> output suffix; anything else is written as PNG.
OUTPUT_SUFFIX = {
    ".png": ".png",
    ".jpg": ".png",
    ".jpeg": ".png",
    ".tif": ".tif",
    ".tiff": ".tiff",
    ".dcm": ".dcm",
    ".dicom": ".dicom",
}
INPUT_SUFFIXES = frozenset(OUTPUT_SUFFIX)


def output_name(path: Path, is_dicom: bool) -> str:
    """The output file name of the input ``path`` (JPEG becomes PNG; DICOM keeps its name)."""
    if is_dicom:
        return path.name
    return path.stem + OUTPUT_SUFFIX.get(path.suffix.lower(), ".png")


def provenance_text(described: dict[str, object], rad_in: Radiograph) -> dict[str, str]:
    """Key/value provenance for text chunks: model, SHA-256, scale, precision, tiling, input."""
    text = {f"cxrsr:{key}": str(value) for key, value in described.items()}
    text["cxrsr:input"] = rad_in.path.name
    text["cxrsr:input_note"] = rad_in.note
    text["Software"] = f"cxrsr {__version__}"
    return text


def derivation(described: dict[str, object]) -> str:
    """One line for DICOM's DerivationDescription."""
    return (
        f"Super-resolved x{described['scale']} by {described['model']} (sha256 "
        f"{described['model_sha256']}), {described['precision']}, tiling "
        f"{described['tiling']}; cxrsr {__version__}"
    )


def write(
    target: Path,
    rad_out: Radiograph,
    rad_in: Radiograph,
    described: dict[str, Any],
    *,
    anonymize: bool = False,
) -> Path:
    """Write ``rad_out`` (upscaled from ``rad_in``) to ``target`` in the format its suffix says."""
    suffix = target.suffix.lower()
    text = provenance_text(described, rad_in)
    if rad_in.meta.get("format") == "dicom":
        return dicom.write(
            target,
            rad_out,
            rad_in.path,
            scale=int(described["scale"]),
            description=derivation(described),
            anonymize=anonymize,
        )
    if suffix in (".tif", ".tiff"):
        with atomic.atomic_path(target) as tmp:
            Image.fromarray(rad_out.pixels).save(
                tmp, format="TIFF", description=json.dumps(text, sort_keys=True)
            )
        return target
    bits = rad_out.max_value.bit_length()
    return radiographs.write_png(
        target, rad_out.pixels, text=text, significant_bits=bits if bits < 16 and bits > 8 else None
    )
