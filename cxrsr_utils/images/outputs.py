"""Writing an upscaled radiograph in its input's format, with what made it, and reading that back.

- PNG 8/16-bit (gray, RGB-stored gray, RGB) and GIF -> PNG of the same bit depth (``sBIT`` for
  12-bit), the provenance in tEXt chunks;
- JPEG -> PNG (lossless: a second JPEG compression would add artefacts of its own), tEXt;
- TIFF -> TIFF of the same bit depth, the provenance in ImageDescription (JSON);
- DICOM -> DICOM, uncompressed, a derived series (:mod:`cxrsr_utils.images.dicom`), the provenance
in
  DerivationDescription.

The provenance names the model, its SHA-256, scale, precision, tiling and the input file's
SHA-256; :func:`made_by` reads it back, so a re-run recognises an output it made from the same
input with the same model wherever the output folder is and however it is spelled. Colour input
is written gray (the network's output is gray, see :mod:`cxrsr_utils.sr.infer`). Every write is
atomic (:func:`cxrsr_utils.core.atomic.atomic_path`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image

from cxrsr_utils import __version__
from cxrsr_utils.core import atomic
from cxrsr_utils.images import dicom, radiograph, radiographs
from cxrsr_utils.images.radiograph import Radiograph

if TYPE_CHECKING:
    from cxrsr_utils.images.deidentify import Deidentifier

# Input suffix -> output suffix; anything else (a suffix-less DICOM found by its magic) keeps
# its name.
OUTPUT_SUFFIX = {
    ".png": ".png",
    ".jpg": ".png",
    ".jpeg": ".png",
    ".gif": ".png",
    ".tif": ".tif",
    ".tiff": ".tiff",
    ".dcm": ".dcm",
    ".dicom": ".dicom",
}
INPUT_SUFFIXES = frozenset(OUTPUT_SUFFIX)
# What identifies the pixels an output holds: an output whose provenance has these values
# (and the same input SHA-256) was made by this model from this input.
IDENTITY_KEYS = ("model", "model_sha256", "scale", "precision", "tiling")


def output_name(path: Path, is_dicom: bool, pseudonym: str = "") -> str:
    """The output file name of the input ``path`` (JPEG becomes PNG; DICOM keeps its name);
    ``pseudonym`` replaces the input's stem (``--anonymize``: names often hold the patient's)."""
    if is_dicom:
        suffix = path.suffix if path.suffix.lower() in radiograph.DICOM_SUFFIXES else ".dcm"
        return f"{pseudonym}{suffix}" if pseudonym else path.name
    return (pseudonym or path.stem) + OUTPUT_SUFFIX.get(path.suffix.lower(), ".png")


def identity(described: dict[str, object], input_sha256: str) -> dict[str, str]:
    """The provenance values that identify an output (see :data:`IDENTITY_KEYS`)."""
    return {**{k: str(described[k]) for k in IDENTITY_KEYS}, "input_sha256": input_sha256}


def model_key(described: dict[str, object]) -> str:
    """What made the pixels, as one string (derived DICOM UIDs are keyed by it)."""
    return "|".join(str(described[k]) for k in IDENTITY_KEYS)


def provenance_text(
    described: dict[str, object], rad_in: Radiograph, input_sha256: str, input_name: str
) -> dict[str, str]:
    """Key/value provenance for text chunks: model, SHA-256, scale, precision, tiling, input."""
    text = {f"cxrsr:{key}": str(value) for key, value in described.items()}
    text["cxrsr:input"] = input_name
    text["cxrsr:input_sha256"] = input_sha256
    text["cxrsr:input_note"] = rad_in.note
    text["Software"] = f"cxrsr {__version__}"
    return text


def derivation(described: dict[str, object], input_sha256: str) -> str:
    """One line for DICOM's DerivationDescription (its start identifies the output)."""
    return (
        f"Super-resolved x{described['scale']} by {described['model']} (sha256 "
        f"{described['model_sha256']}), {described['precision']}, tiling "
        f"{described['tiling']}, {described.get('backend', 'torch')} (>= "
        f"{described.get('agreement_db_min', '?')} dB of torch fp32); input sha256 "
        f"{input_sha256}; cxrsr {__version__}"
    )


def _stored_provenance(target: Path) -> dict[str, str] | str | None:
    """The provenance ``target`` holds: text chunks, TIFF JSON or the DerivationDescription."""
    if radiograph.is_dicom(target):
        import pydicom

        ds = pydicom.dcmread(target, stop_before_pixels=True, force=True)
        return str(ds.get("DerivationDescription", ""))
    with Image.open(target) as img:
        if img.format == "TIFF":
            return dict(json.loads(getattr(img, "tag_v2", {}).get(270, "{}")))
        return dict(getattr(img, "text", {}))


def made_by(target: Path, described: dict[str, object], input_sha256: str) -> bool:
    """True when the existing ``target`` records that this model made it from this input."""
    try:
        stored = _stored_provenance(target)
    except Exception:  # unreadable, foreign or half-foreign: not ours
        return False
    if isinstance(stored, str):
        ours = derivation(described, input_sha256)
        return stored.rsplit("; cxrsr ", 1)[0] == ours.rsplit("; cxrsr ", 1)[0]
    if not stored:
        return False
    want = identity(described, input_sha256)
    return all(stored.get(f"cxrsr:{k}") == v for k, v in want.items())


def write(
    target: Path,
    rad_out: Radiograph,
    rad_in: Radiograph,
    described: dict[str, Any],
    *,
    input_sha256: str,
    input_name: str,
    deidentifier: Deidentifier | None = None,
) -> Path:
    """Write ``rad_out`` (upscaled from ``rad_in``) to ``target`` in the format its suffix says.

    ``input_name`` is what the provenance calls the input (a pseudonym when anonymizing);
    ``deidentifier`` de-identifies a DICOM output (:mod:`cxrsr_utils.images.deidentify`).
    """
    suffix = target.suffix.lower()
    text = provenance_text(described, rad_in, input_sha256, input_name)
    if rad_in.meta.get("format") == "dicom":
        return dicom.write(
            target,
            rad_out,
            rad_in.path,
            scale=int(described["scale"]),
            description=derivation(described, input_sha256),
            model_key=model_key(described),
            deidentifier=deidentifier,
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
