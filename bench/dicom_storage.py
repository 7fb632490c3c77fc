"""Does a radiograph's DICOM storage change what ``cxrsr upscale`` makes of it?

The same real radiograph (the first NIH image of the mirror, whole: 1024 x 1024) is written as
DICOM in two ways that hold identical modality values ``v`` (its 8-bit pixels times 16, a
12-bit image of 0..4080):

- ``unsigned12``: BitsStored 12, PixelRepresentation 0, stored = v;
- ``signed16``: BitsStored 16, PixelRepresentation 1, stored = v - 2048 (negative values),
  RescaleIntercept 2048, so the modality values are the same ``v``.

Each goes through the command's batch (:func:`cxrsr_utils.upscaling.batch.run_batch`, pretrained
x4plus,
the command's default tiling, fp32 so that rounding is not what differs, ``--audit``). The
outputs are read back as modality values and compared with the same network run on the float
image ``v / 4095`` (the 12-bit image as the network should see it): mean, 99.9th-percentile
and largest absolute difference in % of the image's value range, and PSNR over that range;
the two storages' outputs are also compared with each other. The audit's LR-consistency PSNR
is reported beside them. bicubic (no network) is the control: storage must not matter for it.

Output: ``reports/bench/dicom_storage.{md,json}``. Run: ``python bench/dicom_storage.py``
(about 25 minutes on 2 cores; ``--model bicubic`` for the control only, in seconds).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
from _common import REPORTS, nih_images

from cxrsr_utils.core.cpu import isa_label
from cxrsr_utils.images import radiographs
from cxrsr_utils.sr import infer, upscaler
from cxrsr_utils.upscaling import batch
from tests.test_dicom import make_dicom  # the one synthetic DX DICOM of tests and benches

STORAGES = {"unsigned12": (12, False, 0), "signed16": (16, True, 2048)}


def modality_values(path: Path) -> np.ndarray:
    import pydicom
    from pydicom.pixels import apply_modality_lut

    ds = pydicom.dcmread(path)
    return apply_modality_lut(ds.pixel_array, ds).astype(np.float64)


def compare(out: np.ndarray, reference: np.ndarray, span: float) -> dict[str, float]:
    err = np.abs(out - reference) / span
    mse = float(np.mean(err**2))
    return {
        "mean_abs_pct": round(100 * float(err.mean()), 3),
        "p999_abs_pct": round(100 * float(np.quantile(err, 0.999)), 3),
        "max_abs_pct": round(100 * float(err.max()), 3),
        "psnr_db": round(10 * np.log10(1 / mse), 2) if mse > 0 else float("inf"),
    }


def measure(model_name: str, folder: Path) -> list[dict]:
    image = nih_images()[0]
    values = radiographs.read_radiograph(image).pixels.astype(np.int64) * 16
    span = float(values.max() - values.min())
    options = infer.InferOptions(
        tile=upscaler.DEFAULT_TILE,
        tile_pad=upscaler.DEFAULT_TILE_PAD,
        precision="fp32",
        progress=False,
    )
    model = upscaler.load_model(model_name, options)
    reference = model.upscale_float(values.astype(np.float32) / 4095) * 4095
    folder.mkdir(parents=True)
    rows: list[dict] = []
    first: np.ndarray | None = None
    for storage, (bits, signed, offset) in STORAGES.items():
        stored = values - offset
        source = Path(
            make_dicom(
                folder / f"{storage}.dcm",
                stored,
                bits=bits,
                signed=signed,
                slope=1,
                intercept=offset,
            )
        )
        [row] = batch.run_batch([str(source)], folder / "out", model, audit=0.05)
        if row.status != "done":
            raise SystemExit(f"{storage}: {row.error}")
        out = modality_values(folder / "out" / source.name)
        between = compare(out, first, span) if first is not None else {}
        first = out if first is None else first
        rows.append(
            {
                "model": model.name,
                "precision": model.describe()["precision"],
                "storage": storage,
                "input": f"{image.name} x16 ({values.shape[1]}x{values.shape[0]})",
                **compare(out, reference, span),
                "vs_unsigned12_mean_abs_pct": between.get("mean_abs_pct", ""),
                "vs_unsigned12_max_abs_pct": between.get("max_abs_pct", ""),
                "audit_lr_psnr_db": row.audit["lr_consistency_psnr_db"],
                "reader_note": row.note,
            }
        )
    return rows


def markdown(rows: list[dict]) -> str:
    head = (
        "| model | precision | storage | mean abs % | 99.9th pct % | max % | PSNR dB | "
        "vs unsigned12: mean / max % | audit LR PSNR dB |\n|---|---|---|---|---|---|---|---|---|\n"
    )
    body = "".join(
        f"| {r['model']} | {r['precision']} | {r['storage']} | {r['mean_abs_pct']} | "
        f"{r['p999_abs_pct']} | {r['max_abs_pct']} | {r['psnr_db']} | "
        f"{r['vs_unsigned12_mean_abs_pct']} / {r['vs_unsigned12_max_abs_pct']} | "
        f"{r['audit_lr_psnr_db']} |\n"
        for r in rows
    )
    notes = "".join(f"- {r['storage']}: reader note '{r['reader_note']}'\n" for r in rows[:2])
    return (
        "# DICOM storage: the same radiograph as unsigned 12-bit and as signed 16-bit\n\n"
        f"CPU: {isa_label()} (2 cores). Written by `bench/dicom_storage.py` (see its docstring "
        "for the method). Differences are against the network run on the float image "
        "v/4095, and between the two storages' outputs, in % of the image's value range.\n\n"
        + head
        + body
        + "\n"
        + notes
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", nargs="+", default=["bicubic", "pretrained"])
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rows = [row for name in args.model for row in measure(name, Path(tmp) / name)]
    REPORTS.mkdir(parents=True, exist_ok=True)
    (REPORTS / "dicom_storage.json").write_text(json.dumps(rows, indent=1))
    (REPORTS / "dicom_storage.md").write_text(markdown(rows))
    print(markdown(rows))


if __name__ == "__main__":
    sys.exit(main())
