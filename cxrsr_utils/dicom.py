"""DICOM in and out: stored values to the network's range and back, and a derived series.

Reading (:func:`read`): the modality LUT (RescaleSlope/Intercept or a Modality LUT Sequence,
via pydicom's ``apply_modality_lut``) turns stored values into modality values; the range the
stored bits can hold (``BitsStored``, signed when ``PixelRepresentation`` is 1) is mapped
linearly onto ``[0, 2**BitsStored - 1]`` for the network, so signed data keeps its negative
values and 12-bit data the network's whole input range. MONOCHROME1 is inverted so bone is
bright, as in every other image. The mapping is kept in ``Radiograph.meta`` and written into
the note.

Writing (:func:`write`): the mapping is undone (MONOCHROME1 inverted back, modality values back
to stored values of the input's signedness and BitsStored), and the input's header is copied
with what a derived image must change: Rows/Columns, PixelSpacing and ImagerPixelSpacing
divided by the scale, new SOPInstanceUID and SeriesInstanceUID (StudyInstanceUID kept),
ImageType DERIVED\\SECONDARY, a DerivationDescription naming the model and its SHA-256, and an
uncompressed (Explicit VR Little Endian) transfer syntax. ``anonymize`` blanks the patient
and study identifying tags.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from cxrsr_utils.atomic import atomic_path
from cxrsr_utils.radiographs import ImageReadError, Radiograph

if TYPE_CHECKING:  # pydicom itself is imported where a DICOM is read or written
    from pydicom import Dataset

# Decoders pydicom can use for each compressed family, for the error message.
_DECODERS = {
    "JPEG 2000": "pylibjpeg-openjpeg (or gdcm)",
    "JPEG-LS": "pylibjpeg-libjpeg (or gdcm)",
    "JPEG Lossless": "pylibjpeg-libjpeg (or gdcm)",
    "JPEG": "pylibjpeg-libjpeg (or gdcm, pillow for 8-bit baseline)",
    "RLE": "pylibjpeg-rle (or gdcm)",
    "Deflate": "pydicom itself (the file is damaged)",
}
COLOUR = ("RGB", "YBR_FULL", "YBR_FULL_422", "YBR_ICT", "YBR_RCT", "PALETTE COLOR")

# Tags blanked by anonymize: patient identity and study identifiers a reader could trace.
ANONYMIZED = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "PatientAge",
    "OtherPatientIDs",
    "OtherPatientNames",
    "PatientAddress",
    "AccessionNumber",
    "InstitutionName",
    "InstitutionAddress",
    "ReferringPhysicianName",
    "PerformingPhysicianName",
    "OperatorsName",
    "StudyID",
)


def _decoder_for(syntax_name: str) -> str:
    for family, package in _DECODERS.items():
        if family.lower() in syntax_name.lower():
            return package
    return "pylibjpeg with its plugins, or gdcm"


def _pixels(path: Path, ds: Dataset) -> np.ndarray:
    syntax = ds.file_meta.get("TransferSyntaxUID") if hasattr(ds, "file_meta") else None
    if "PixelData" not in ds and "FloatPixelData" not in ds:
        raise ImageReadError(f"{path}: DICOM without pixel data (a report or a header only).")
    try:
        return ds.pixel_array
    except Exception as exc:  # pydicom raises several types for undecodable data
        if syntax is not None and syntax.is_compressed:
            raise ImageReadError(
                f"{path}: DICOM transfer syntax {syntax.name} ({syntax}) cannot be decoded with "
                f"the installed handlers; install {_decoder_for(syntax.name)}."
            ) from exc
        raise ImageReadError(
            f"{path}: DICOM pixel data cannot be read ({exc}); the file is damaged or truncated."
        ) from exc


def read(path: str | os.PathLike[str]) -> Radiograph:
    """Read a single-frame gray DICOM (see module doc); refuses everything else with a reason."""
    import pydicom
    from pydicom.pixels import apply_modality_lut

    path = Path(path)
    try:
        ds = pydicom.dcmread(path)
    except Exception as exc:  # pydicom raises many types for broken files
        raise ImageReadError(f"{path}: not a readable DICOM file ({exc}).") from exc
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2"))
    if photometric in COLOUR or int(ds.get("SamplesPerPixel", 1)) != 1:
        raise ImageReadError(
            f"{path}: DICOM photometric interpretation {photometric} is colour; only gray "
            "radiographs (MONOCHROME1/2) are supported."
        )
    if photometric not in ("MONOCHROME1", "MONOCHROME2"):
        raise ImageReadError(f"{path}: unknown photometric interpretation {photometric!r}.")
    stored = _pixels(path, ds)
    if stored.ndim != 2:
        raise ImageReadError(
            f"{path}: DICOM holds {stored.shape[0]} frames; only single-frame radiographs are "
            "supported. Save the frame you want as its own file."
        )
    bits = int(ds.get("BitsStored", 8 * stored.dtype.itemsize))
    signed = int(ds.get("PixelRepresentation", 0)) == 1
    smin = -(1 << (bits - 1)) if signed else 0
    smax = smin + (1 << bits) - 1
    if stored.size and (stored.min() < smin or stored.max() > smax):
        raise ImageReadError(
            f"{path}: stored values {stored.min()}..{stored.max()} exceed BitsStored {bits} "
            f"({smin}..{smax}); the header is inconsistent."
        )
    ends = apply_modality_lut(np.array([smin, smax]), ds).astype(np.float64)
    lo, hi = float(ends.min()), float(ends.max())
    if hi == lo:
        raise ImageReadError(f"{path}: the modality LUT maps every stored value to {lo}.")
    max_value = (1 << bits) - 1
    values = apply_modality_lut(stored, ds).astype(np.float64)
    pixels = np.clip(np.rint((values - lo) / (hi - lo) * max_value), 0, max_value)
    note = (
        f"DICOM {bits}-bit {'signed' if signed else 'unsigned'}, modality LUT applied, "
        f"values {lo:g}..{hi:g} mapped to 0..{max_value}"
    )
    if photometric == "MONOCHROME1":
        # MONOCHROME1 shows low values as white; invert so bone is bright like everywhere else.
        pixels = max_value - pixels
        note += ", MONOCHROME1 inverted"
    meta = {
        "format": "dicom",
        "bits_stored": bits,
        "signed": signed,
        "modality_range": (lo, hi),
        "monochrome1": photometric == "MONOCHROME1",
        "lut_sequence": "ModalityLUTSequence" in ds,
    }
    dtype = np.uint8 if max_value <= 255 else np.uint16
    return Radiograph(pixels.astype(dtype), max_value, path, note, meta)


def stored_values(rad: Radiograph) -> np.ndarray:
    """Undo :func:`read`'s mapping: network-range pixels back to the DICOM's stored values."""
    import pydicom

    meta = rad.meta
    if meta.get("lut_sequence"):
        raise ValueError(
            f"{rad.path}: a Modality LUT Sequence cannot be inverted exactly; write PNG instead."
        )
    ds = pydicom.dcmread(meta.get("source", rad.path), stop_before_pixels=True)
    slope = float(ds.get("RescaleSlope", 1.0))
    intercept = float(ds.get("RescaleIntercept", 0.0))
    pixels = rad.pixels.astype(np.float64)
    if meta["monochrome1"]:
        pixels = rad.max_value - pixels
    lo, hi = meta["modality_range"]
    values = lo + pixels / rad.max_value * (hi - lo)
    bits, signed = meta["bits_stored"], meta["signed"]
    smin = -(1 << (bits - 1)) if signed else 0
    stored = np.clip(np.rint((values - intercept) / slope), smin, smin + (1 << bits) - 1)
    return stored.astype(np.int16 if signed else np.uint16)


def write(
    target: str | os.PathLike[str],
    rad: Radiograph,
    source: str | os.PathLike[str],
    *,
    scale: int,
    description: str,
    anonymize: bool = False,
) -> Path:
    """Write ``rad`` (the upscaled image of the DICOM ``source``) as a derived DICOM, atomically."""
    import pydicom
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    ds = pydicom.dcmread(source)
    stored = stored_values(replace(rad, meta={**rad.meta, "source": source}))
    for tag in ("ModalityLUTSequence", "FloatPixelData", "DoubleFloatPixelData"):
        if tag in ds:
            delattr(ds, tag)
    ds.Rows, ds.Columns = stored.shape
    ds.BitsAllocated = 16
    ds.SamplesPerPixel = 1
    ds.PixelData = stored.tobytes()
    ds["PixelData"].VR = "OW"
    ds["PixelData"].is_undefined_length = False  # the source may have been encapsulated
    for name in ("PixelSpacing", "ImagerPixelSpacing"):
        if name in ds:
            ds[name].value = [f"{float(v) / scale:.6g}" for v in ds[name].value]
    ds.SOPInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.ImageType = ["DERIVED", "SECONDARY"]
    ds.DerivationDescription = description[:1024]
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    if anonymize:
        for name in ANONYMIZED:
            if name in ds:
                ds[name].value = "ANONYMOUS" if name == "PatientName" else ""
        ds.remove_private_tags()
        ds.PatientIdentityRemoved = "YES"
    with atomic_path(target) as tmp:
        ds.save_as(tmp, enforce_file_format=True)
    return Path(target)
