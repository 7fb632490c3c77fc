"""NIH ChestX-ray14 for notebook 01: the fine-tune set and the validation and test pairs.

The files are split by patient (:func:`cxrsr_utils.data_prep.splits.split_nih`) into:

``finetune``
    Real-ESRGAN's recipe: the originals (longer side at most ``max_side``), multiscale
    copies (``scripts/generate_multiscale_DF2K.py``: scales 0.75, 0.5, 1/3 and a copy whose
    shortest edge is 400, named ``<stem>T<i>.png``), random crops of those copies, and the
    ``meta_info`` file ``RealESRGANDataset`` reads (paths relative to the fine-tune root).
    Every crop is smaller than the copy it comes from and differs from every other training
    file (:func:`draw_crops`).
``val`` / ``test``
    HR = the ``val_hr_size`` / ``eval_hr_size`` centre crop of the original's native pixels,
    LR = bicubic x4 of it; the test pairs also get the degraded LR (``lr_degraded``). An
    image smaller than the crop is excluded, with the reason.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from cxrsr_utils.core import atomic
from cxrsr_utils.core.layout import StudyLayout
from cxrsr_utils.core.params_data import NIHParams
from cxrsr_utils.core.repro import rng
from cxrsr_utils.data_prep.prepared import Prepared, list_images, save_pixels
from cxrsr_utils.data_prep.splits import split_nih
from cxrsr_utils.degradation.pairs import centre_crop, degradation_seed, pair_forms
from cxrsr_utils.external.sources import resolve_dataset
from cxrsr_utils.images import radiographs

# Draws allowed per requested crop before "too few distinct crops" is an error: a copy only a
# few pixels larger than the crop has only a few distinct crops, and a flat one fewer.
MAX_DRAWS_PER_CROP = 20


def limit_side(image: np.ndarray, max_side: int | None) -> np.ndarray:
    """``image`` resized (bicubic) so its longer side is at most ``max_side`` (None: as is)."""
    h, w = image.shape
    if max_side is None or max(h, w) <= max_side:
        return image
    s = max_side / max(h, w)
    return radiographs.resize(image, (max(1, round(w * s)), max(1, round(h * s))))


def multiscale_copies(image: np.ndarray, cfg: NIHParams) -> list[np.ndarray]:
    """Real-ESRGAN's multiscale copies: each scale in ``cfg.scales``, then shortest edge 400."""
    h, w = image.shape
    out = [radiographs.resize(image, (max(1, int(w * s)), max(1, int(h * s)))) for s in cfg.scales]
    s = cfg.shortest_edge / min(h, w)
    out.append(radiographs.resize(image, (max(1, int(w * s)), max(1, int(h * s)))))
    return [np.clip(x, 0.0, 1.0) for x in out]


def pixel_digest(pixels: np.ndarray) -> str:
    """SHA-256 of an integer image's type, shape and pixels: equal digests mean equal PNG files
    (the writer is deterministic), different ones different files (PNG is lossless)."""
    h = hashlib.sha256(f"{pixels.dtype.str}{pixels.shape}".encode())
    h.update(np.ascontiguousarray(pixels).tobytes())
    return h.hexdigest()


def draw_crops(
    copies: Sequence[tuple[str, np.ndarray]],
    n: int,
    size: int,
    seed: int,
    taken: set[str],
) -> list[tuple[str, np.ndarray]]:
    """``n`` random ``size`` x ``size`` crops of the integer images ``copies`` ((name, pixels)).

    Only a copy larger than the crop (at least ``size`` on both sides, more on one) is
    cropped, so no crop is a whole copy. A crop whose :func:`pixel_digest` is in ``taken`` (the
    other training files) or equals an earlier crop is drawn again, at most
    :data:`MAX_DRAWS_PER_CROP` draws per crop in all; then a ``ValueError`` names
    ``nih.n_crops``. Returns (copy name, crop pixels) in drawing order.
    """
    if n == 0:
        return []
    big = [(name, a) for name, a in copies if min(a.shape) >= size and a.shape != (size, size)]
    if not big:
        raise ValueError(
            f"No multiscale image is larger than a {size} x {size} crop; lower nih.crop_size "
            "or raise nih.max_side / nih.multiscale_originals."
        )
    gen = rng(seed, "nih-crops")
    seen = set(taken)
    out: list[tuple[str, np.ndarray]] = []
    budget = MAX_DRAWS_PER_CROP * n
    for _ in range(budget):
        name, arr = big[int(gen.integers(len(big)))]
        y = int(gen.integers(arr.shape[0] - size + 1))
        x = int(gen.integers(arr.shape[1] - size + 1))
        crop = arr[y : y + size, x : x + size]
        digest = pixel_digest(crop)
        if digest in seen:
            continue
        seen.add(digest)
        out.append((name, crop))
        if len(out) == n:
            return out
    raise ValueError(
        f"Only {len(out)} distinct {size} x {size} crops in {budget} draws from the "
        f"{len(big)} multiscale copies larger than the crop, but nih.n_crops={n}. Lower "
        "nih.n_crops (or nih.crop_size), or raise nih.multiscale_originals / nih.max_side."
    )


def prepare_nih(
    cfg: NIHParams,
    seed: int,
    scale: int,
    layout: StudyLayout,
    degradation: Mapping[str, Any],
) -> tuple[Prepared, pd.DataFrame]:
    """Build the NIH fine-tune set (+ meta_info), the validation pairs and the test pairs
    (with the ``degradation`` options' degraded LR) in ``layout``; return them and the split."""
    root = resolve_dataset("nih", cfg.root)
    split = split_nih(list_images(root / "images"), cfg, seed)
    result = Prepared()
    _finetune_set(split[split["split"] == "finetune"], cfg, seed, layout, result)
    for name, side in (("val", cfg.val_side), ("test", cfg.eval_hr_size)):
        options = degradation if name == "test" else None
        _pairs(split[split["split"] == name], name, side, scale, seed, options, layout, result)
    return result, split


def _finetune_set(
    rows: pd.DataFrame, cfg: NIHParams, seed: int, layout: StudyLayout, result: Prepared
) -> None:
    out, ft_root = layout.data, layout.nih_finetune
    copies: list[tuple[str, np.ndarray]] = []
    taken: set[str] = set()
    files: list[dict[str, object]] = []
    patient_of: dict[str, str] = {}
    n_originals = 0
    for src, patient in tqdm(
        zip(rows["file"], rows["patient"], strict=True),
        total=len(rows),
        desc="NIH fine-tune set",
        leave=False,
    ):
        img = result.read(src, "nih")
        if img is None:
            continue
        original = limit_side(img.as_float(), cfg.max_side)
        base = {"dataset": "nih", "split": "finetune", "source": src.name, "patient": patient}
        pixels = radiographs.to_pixels(original, img.max_value)
        taken.add(pixel_digest(pixels))
        target = ft_root / "originals" / f"{src.stem}.png"
        files.append(save_pixels(pixels, target, out, {**base, "role": "original"}))
        n_originals += 1
        if n_originals > cfg.multiscale_originals:
            continue
        for k, copy in enumerate(multiscale_copies(original, cfg)):
            name = f"{src.stem}T{k}"
            pixels = radiographs.to_pixels(copy, img.max_value)
            taken.add(pixel_digest(pixels))
            target = ft_root / "multiscale" / f"{name}.png"
            files.append(save_pixels(pixels, target, out, {**base, "role": "multiscale"}))
            copies.append((name, pixels))
            patient_of[name] = patient
    for k, (name, crop) in enumerate(draw_crops(copies, cfg.n_crops, cfg.crop_size, seed, taken)):
        row = {
            "dataset": "nih",
            "split": "finetune",
            "source": f"{name}.png",
            "patient": patient_of[name],
            "role": "crop",
        }
        files.append(save_pixels(crop, ft_root / "crops" / f"{name}_s{k:03d}.png", out, row))
    _write_meta_info(files, layout)
    result.files += files


def _pairs(
    rows: pd.DataFrame,
    split: str,
    side: int,
    scale: int,
    seed: int,
    degradation: Mapping[str, Any] | None,
    layout: StudyLayout,
    result: Prepared,
) -> None:
    """HR (native centre crop) / LR pairs of one split; the degraded LR where options given."""
    dataset = "nih" if split == "test" else "nih_val"
    parameter = "nih.eval_hr_size" if split == "test" else "nih.val_hr_size"
    for src, patient in tqdm(
        zip(rows["file"], rows["patient"], strict=True),
        total=len(rows),
        desc=f"NIH {split} pairs",
        leave=False,
    ):
        img = result.read(src, "nih")
        if img is None:
            continue
        hr_pixels = centre_crop(img.pixels, side)
        if hr_pixels is None:
            h, w = img.pixels.shape
            result.exclude(
                src,
                "nih",
                f"{w}x{h} is smaller than the {side}x{side} centre crop of the {split} HR "
                f"({parameter})",
            )
            continue
        image = f"{src.stem}.png"
        seed_of_image = degradation_seed(seed, "nih", image) if degradation is not None else None
        forms = pair_forms(hr_pixels, img.max_value, scale, degradation, seed_of_image)
        base = {"dataset": "nih", "split": split, "source": src.name, "patient": patient}
        for role, pixels in forms.items():
            target = layout.pair_folder(dataset, role) / image
            result.files.append(save_pixels(pixels, target, layout.data, {**base, "role": role}))


def _write_meta_info(rows: list[dict[str, object]], layout: StudyLayout) -> Path:
    prefix = layout.nih_finetune.relative_to(layout.data).as_posix() + "/"
    lines = [str(r["path"])[len(prefix) :] for r in rows if str(r["path"]).startswith(prefix)]
    return atomic.write_text(layout.meta_info, "\n".join(lines) + "\n")
