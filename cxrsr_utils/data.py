"""Data preparation (notebook 01): NIH fine-tune/evaluation sets and Kermany HR/LR pairs.

NIH ChestX-ray14
    Split by patient (the patient id is the part of the file name before ``_``) into a
    fine-tune set and a held-out "same dataset" evaluation set, so no patient is in both.
    The fine-tune set follows Real-ESRGAN's recipe: originals, multiscale copies
    (``scripts/generate_multiscale_DF2K.py``: scales 0.75, 0.5, 1/3 and a copy whose shortest
    edge is 400, named ``<stem>T<i>.png``), random crops of the multiscale images, and the
    ``meta_info`` file that ``RealESRGANDataset`` reads (paths relative to the data root).
    Held-out images become HR (square, ``eval_hr_size``) / LR (bicubic x4) pairs.

Kermany pneumonia
    A class-balanced subset, a fixed stratified train/test split for the classifier (the
    mirror only has official-train images, so the test part is held out of them), HR at a
    fixed square size (the classifier squashes to 300 x 300 anyway) and LR by bicubic x4.

Every step is deterministic from the seed. A corrupt or truncated image is reported with the
reason and excluded, never silently dropped. Existing outputs are reused (writes are atomic,
so an existing file is complete), which makes an interrupted preparation resumable.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from cxrsr_utils import atomic, radiographs, report, stamps
from cxrsr_utils.layout import StudyLayout, as_layout
from cxrsr_utils.params import KermanyParams, NIHParams, Params
from cxrsr_utils.repro import rng
from cxrsr_utils.sources import resolve_dataset, sha256_file

KERMANY_CLASSES = ("NORMAL", "PNEUMONIA")  # label 0, 1 (the reference CNN's order)
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

    def read(self, path: Path, dataset: str) -> radiographs.Radiograph | None:
        """Read an input image; record it (with its SHA-256) or exclude it with the reason."""
        try:
            image = radiographs.read_radiograph(path)
        except radiographs.ImageReadError as exc:
            self.excluded.append({"file": str(path), "reason": str(exc)})
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


def patient_id(path: str | Path) -> str:
    """NIH patient id: the part of the file name before the first underscore."""
    return Path(path).name.split("_")[0]


def _limit_side(image: np.ndarray, max_side: int | None) -> np.ndarray:
    h, w = image.shape
    if max_side is None or max(h, w) <= max_side:
        return image
    s = max_side / max(h, w)
    return radiographs.resize(image, (max(1, round(w * s)), max(1, round(h * s))))


def _save(
    image: np.ndarray, max_value: int, target: Path, root: Path, row: dict[str, object]
) -> dict[str, object]:
    if not target.is_file():
        radiographs.write_png(target, radiographs.to_pixels(image, max_value))
    h, w = image.shape
    return {
        "path": target.relative_to(root).as_posix(),
        "sha256": sha256_file(target),
        "bytes": target.stat().st_size,
        "width": w,
        "height": h,
        **row,
    }


def _hr_lr(image: np.ndarray, size: int, scale: int) -> tuple[np.ndarray, np.ndarray]:
    hr = np.clip(radiographs.resize(image, (size, size)), 0.0, 1.0)
    lr = np.clip(radiographs.resize(hr, (size // scale, size // scale)), 0.0, 1.0)
    return hr, lr


# --- NIH -----------------------------------------------------------------------------------


def split_nih(files: Iterable[Path], cfg: NIHParams, seed: int) -> pd.DataFrame:
    """Patient-level split: a shuffled share ``eval_fraction`` of patients is held out.

    Returns one row per kept file with columns file, patient, split (``finetune``/``eval``)
    and order (the seeded position used to cap ``n_finetune``/``n_eval``).
    """
    table = pd.DataFrame({"file": [Path(f) for f in files]})
    if table.empty:
        raise ValueError("No NIH images to split.")
    table["patient"] = table["file"].map(patient_id)
    patients = np.array(sorted(table["patient"].unique()))
    order = rng(seed, "nih-split").permutation(len(patients))
    n_eval_patients = max(1, round(cfg.eval_fraction * len(patients)))
    eval_patients = set(patients[order[:n_eval_patients]])
    table["split"] = np.where(table["patient"].isin(eval_patients), "eval", "finetune")
    table["order"] = rng(seed, "nih-order").permutation(len(table))
    table = table.sort_values("order", kind="stable")
    caps = {"finetune": cfg.n_finetune, "eval": cfg.n_eval}
    kept = [
        part.head(caps[name]) if caps[name] is not None else part
        for name, part in table.groupby("split", sort=True)
    ]
    return pd.concat(kept).sort_values(["split", "order"]).reset_index(drop=True)


def multiscale_copies(image: np.ndarray, cfg: NIHParams) -> list[np.ndarray]:
    """Real-ESRGAN's multiscale copies: each scale in ``cfg.scales``, then shortest edge 400."""
    h, w = image.shape
    out = [radiographs.resize(image, (max(1, int(w * s)), max(1, int(h * s)))) for s in cfg.scales]
    s = cfg.shortest_edge / min(h, w)
    out.append(radiographs.resize(image, (max(1, int(w * s)), max(1, int(h * s)))))
    return [np.clip(x, 0.0, 1.0) for x in out]


def prepare_nih(
    cfg: NIHParams, seed: int, scale: int, layout: StudyLayout
) -> tuple[Prepared, pd.DataFrame]:
    """Build the NIH fine-tune set (+ meta_info) and the held-out HR/LR pairs in ``layout``."""
    root = resolve_dataset("nih", cfg.root)
    split = split_nih(list_images(root / "images"), cfg, seed)
    result = Prepared()
    out, ft_root = layout.data, layout.nih_finetune
    multiscale: list[tuple[str, np.ndarray, int]] = []
    finetune = split[split["split"] == "finetune"]
    for i, src in enumerate(tqdm(finetune["file"], desc="NIH fine-tune set", leave=False)):
        img = result.read(src, "nih")
        if img is None:
            continue
        original = _limit_side(img.as_float(), cfg.max_side)
        base = {"dataset": "nih", "split": "finetune", "source": src.name}
        result.files.append(
            _save(
                original,
                img.max_value,
                ft_root / "originals" / f"{src.stem}.png",
                out,
                {**base, "role": "original"},
            )
        )
        if i < cfg.multiscale_originals:
            for k, copy in enumerate(multiscale_copies(original, cfg)):
                name = f"{src.stem}T{k}"
                result.files.append(
                    _save(
                        copy,
                        img.max_value,
                        ft_root / "multiscale" / f"{name}.png",
                        out,
                        {**base, "role": "multiscale"},
                    )
                )
                multiscale.append((name, copy, img.max_value))
    result.files += _crops(multiscale, cfg, seed, ft_root, out)
    _write_meta_info(result.files, layout)

    evaluation = split[split["split"] == "eval"]
    for src in tqdm(evaluation["file"], desc="NIH held-out pairs", leave=False):
        img = result.read(src, "nih")
        if img is None:
            continue
        hr, lr = _hr_lr(img.as_float(), cfg.eval_hr_size, scale)
        base = {"dataset": "nih", "split": "eval", "source": src.name}
        for role, arr in (("hr", hr), ("lr", lr)):
            result.files.append(
                _save(
                    arr,
                    img.max_value,
                    layout.pair_folder("nih", role) / f"{src.stem}.png",
                    out,
                    {**base, "role": role},
                )
            )
    return result, split


def _crops(
    images: list[tuple[str, np.ndarray, int]], cfg: NIHParams, seed: int, ft_root: Path, out: Path
) -> list[dict[str, object]]:
    if cfg.n_crops == 0:
        return []
    big = [(n, a, m) for n, a, m in images if min(a.shape) >= cfg.crop_size]
    if not big:
        raise ValueError(
            f"No multiscale image is at least {cfg.crop_size} px on both sides; lower "
            "nih.crop_size or raise nih.max_side / nih.multiscale_originals."
        )
    gen = rng(seed, "nih-crops")
    rows = []
    for k in range(cfg.n_crops):
        name, arr, max_value = big[int(gen.integers(len(big)))]
        y = int(gen.integers(arr.shape[0] - cfg.crop_size + 1))
        x = int(gen.integers(arr.shape[1] - cfg.crop_size + 1))
        crop = arr[y : y + cfg.crop_size, x : x + cfg.crop_size]
        rows.append(
            _save(
                crop,
                max_value,
                ft_root / "crops" / f"{name}_s{k:03d}.png",
                out,
                {"dataset": "nih", "split": "finetune", "source": f"{name}.png", "role": "crop"},
            )
        )
    return rows


def _write_meta_info(rows: list[dict[str, object]], layout: StudyLayout) -> Path:
    prefix = layout.nih_finetune.relative_to(layout.data).as_posix() + "/"
    lines = [str(r["path"])[len(prefix) :] for r in rows if str(r["path"]).startswith(prefix)]
    return atomic.write_text(layout.meta_info, "\n".join(lines) + "\n")


# --- Kermany -------------------------------------------------------------------------------


def select_kermany(root: Path, cfg: KermanyParams, seed: int) -> pd.DataFrame:
    """Balanced subset and stratified split; columns file, label, class_name, split."""
    rows = []
    for label, name in enumerate(KERMANY_CLASSES):
        files = list_images(root / "train" / name)
        if len(files) < cfg.n_per_class:
            raise ValueError(
                f"{root / 'train' / name} has {len(files)} images; kermany.n_per_class asks for "
                f"{cfg.n_per_class}. Lower it or use the full data set."
            )
        chosen = [
            files[i]
            for i in sorted(rng(seed, "kermany", name).permutation(len(files))[: cfg.n_per_class])
        ]
        n_test = max(1, round(cfg.test_fraction * len(chosen)))
        test = set(rng(seed, "kermany-split", name).permutation(len(chosen))[:n_test])
        rows += [
            {
                "file": f,
                "label": label,
                "class_name": name,
                "split": "test" if i in test else "train",
            }
            for i, f in enumerate(chosen)
        ]
    return pd.DataFrame(rows)


def prepare_kermany(
    cfg: KermanyParams, seed: int, scale: int, layout: StudyLayout
) -> tuple[Prepared, pd.DataFrame]:
    """HR/LR pairs of the balanced Kermany subset in ``layout`` (``kermany/{hr,lr}/<CLASS>/``)."""
    root = resolve_dataset("kermany", cfg.root)
    table = select_kermany(root, cfg, seed)
    result = Prepared()
    notes = []
    for row in tqdm(table.itertuples(), total=len(table), desc="Kermany pairs", leave=False):
        img = result.read(row.file, "kermany")
        notes.append(img.note if img else "excluded")
        if img is None:
            continue
        hr, lr = _hr_lr(img.as_float(), cfg.hr_size, scale)
        base = {
            "dataset": "kermany",
            "split": row.split,
            "source": row.file.name,
            "label": row.label,
        }
        for role, arr in (("hr", hr), ("lr", lr)):
            target = layout.pair_folder("kermany", role) / row.class_name / f"{row.file.stem}.png"
            result.files.append(
                _save(arr, img.max_value, target, layout.data, {**base, "role": role})
            )
    table["note"] = notes
    return result, table


# --- the whole step ------------------------------------------------------------------------


def prepare_all(params: Params, work: StudyLayout | Path) -> dict[str, pd.DataFrame]:
    """Run notebook 01's preparation into the run's data folder (``work/data``); return its
    tables.

    Tables: ``manifest`` (every produced file with SHA-256), ``excluded`` (file, reason),
    ``inputs`` (every source image read, with SHA-256), ``nih_split``, ``kermany_split`` and
    ``counts`` (the paper's form).
    """
    layout = as_layout(work)
    settings = {
        "nih": params.nih.model_dump(mode="json"),
        "kermany": params.kermany.model_dump(mode="json"),
        "seed": params.seed,
        "scale": params.scale,
    }
    if layout.prepared_stamp.is_file() and stamps.done(layout.prepared_stamp, settings) is None:
        shutil.rmtree(layout.data)  # prepared with other settings: start afresh rather than mix
    layout.data.mkdir(parents=True, exist_ok=True)
    nih, nih_split = prepare_nih(params.nih, params.seed, params.scale, layout)
    kermany, kermany_split = prepare_kermany(params.kermany, params.seed, params.scale, layout)
    nih.extend(kermany)
    stamps.write(layout.prepared_stamp, settings)

    manifest = pd.DataFrame(nih.files).sort_values("path").reset_index(drop=True)
    manifest["label"] = manifest["label"].astype("Int64")
    excluded = pd.DataFrame(nih.excluded, columns=["file", "reason"])
    return {
        "manifest": manifest,
        "excluded": excluded,
        "inputs": pd.DataFrame(nih.inputs).sort_values(["dataset", "file"], ignore_index=True),
        "nih_split": nih_split.assign(file=nih_split["file"].map(lambda p: p.name)),
        "kermany_split": kermany_split.assign(file=kermany_split["file"].map(lambda p: p.name)),
        "counts": counts_table(manifest),
    }


# Notebook 01's tables in the run's tables folder (file name, with a Markdown copy?).
TABLES = {
    "counts": ("01_counts", True),
    "excluded": ("01_excluded", True),
    "kermany_split": ("01_kermany_split", False),
    "nih_split": ("01_nih_split", False),
}


def save_tables(tables: dict[str, pd.DataFrame], work: StudyLayout | Path) -> None:
    """Write :func:`prepare_all`'s tables: the data manifest where the other notebooks read it
    (``reports/data_manifest.csv``), the others as :data:`TABLES` names them."""
    layout = as_layout(work)
    manifest = layout.data_manifest
    report.save_table(tables["manifest"], manifest.parent, manifest.stem, markdown=False)
    for key, (name, markdown) in TABLES.items():
        report.save_table(tables[key], layout.tables, name, markdown=markdown)


def counts_table(manifest: pd.DataFrame) -> pd.DataFrame:
    """Image counts in the paper's form: originals + multiscale + crops = fine-tune total."""
    nih_ft = manifest[(manifest["dataset"] == "nih") & (manifest["split"] == "finetune")]
    role_counts = nih_ft["role"].value_counts()
    rows = [
        ("NIH fine-tune", "originals", int(role_counts.get("original", 0))),
        ("NIH fine-tune", "multiscale", int(role_counts.get("multiscale", 0))),
        ("NIH fine-tune", "multiscale crops", int(role_counts.get("crop", 0))),
        ("NIH fine-tune", "total", int(len(nih_ft))),
    ]
    nih_eval = manifest[(manifest["dataset"] == "nih") & (manifest["role"] == "hr")]
    rows.append(("NIH held-out (same dataset)", "HR/LR pairs", int(len(nih_eval))))
    kermany = manifest[(manifest["dataset"] == "kermany") & (manifest["role"] == "hr")]
    for (split, label), n in kermany.groupby(["split", "label"]).size().items():
        rows.append((f"Kermany {split} (unseen)", KERMANY_CLASSES[int(label)], int(n)))
    return pd.DataFrame(rows, columns=["set", "part", "images"])


def manifest_digest(manifest: pd.DataFrame, key: str = "path") -> str:
    """SHA-256 over a manifest's (``key``, sha256) pairs: one number for a whole set of files."""
    import hashlib

    h = hashlib.sha256()
    for path, digest in sorted(zip(manifest[key], manifest["sha256"], strict=True)):
        h.update(f"{path}\t{digest}\n".encode())
    return h.hexdigest()


def source_record(inputs: pd.DataFrame) -> dict[str, dict[str, object]]:
    """Per data set: the folders read, how many files, and one SHA-256 over their hashes."""
    return {
        f"dataset:{name}": {
            "folders": sorted(part["root"].unique()),
            "files_read": int(len(part)),
            "sha256": manifest_digest(part, key="file"),
        }
        for name, part in inputs.groupby("dataset")
    }


def sample_images(manifest: pd.DataFrame, work: StudyLayout | Path) -> list[tuple[str, np.ndarray]]:
    """One example of each produced kind (for notebook 01's sample figure); ``work`` is the
    run (its folder or :class:`~cxrsr_utils.layout.StudyLayout`)."""
    data_root = as_layout(work).data
    picks = [
        ("NIH original", (manifest["role"] == "original")),
        ("NIH multiscale", (manifest["role"] == "multiscale")),
        ("NIH crop", (manifest["role"] == "crop")),
        ("NIH held-out HR", (manifest["dataset"] == "nih") & (manifest["role"] == "hr")),
        ("NIH held-out LR", (manifest["dataset"] == "nih") & (manifest["role"] == "lr")),
    ]
    for label, name in enumerate(KERMANY_CLASSES):
        for role in ("hr", "lr"):
            picks.append(
                (
                    f"Kermany {name} {role.upper()}",
                    (manifest["dataset"] == "kermany")
                    & (manifest["label"] == label)
                    & (manifest["role"] == role),
                )
            )
    out = []
    for title, mask in picks:
        rows = manifest[mask]
        if len(rows):
            out.append(
                (title, radiographs.read_radiograph(data_root / rows.iloc[0]["path"]).as_float())
            )
    return out
