"""Data preparation (notebook 01): the study's data sets, their tables and their checks.

:func:`prepare_all` runs the whole step into a run's ``data/`` folder:

* NIH ChestX-ray14 (:mod:`cxrsr_utils.data_prep.nih`): split by patient into a fine-tune set
  (Real-ESRGAN's originals, multiscale copies, distinct crops and ``meta_info``), validation
  pairs and held-out test pairs (HR = native-pixel centre crop, LR = bicubic x4 of it, and on
  the test pairs the seeded two-stage degradation of it).
* Kermany pneumonia (:mod:`cxrsr_utils.data_prep.kermany`): every usable image (or a seeded
  subset) as HR / LR / degraded-LR pairs in patient-grouped, class-stratified folds.

Who is in which split is decided in :mod:`cxrsr_utils.data_prep.splits` (patient ids, the NIH split,
the Kermany folds); how a pair's images are made in :mod:`cxrsr_utils.degradation.pairs`.

Every step is deterministic from the seed. A corrupt or truncated image, or one smaller than
the evaluation crop, is reported with the reason and excluded, never silently dropped.
Existing outputs are reused (writes are atomic, so an existing file is complete), which makes
an interrupted preparation resumable; other settings start the data folder afresh.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from cxrsr_utils.core import stamps
from cxrsr_utils.core.layout import StudyLayout, as_layout
from cxrsr_utils.core.params import Params
from cxrsr_utils.core.vocabulary import KERMANY_CLASSES
from cxrsr_utils.data_prep.kermany import prepare_kermany
from cxrsr_utils.data_prep.nih import prepare_nih
from cxrsr_utils.data_prep.splits import kermany_patient, nih_patient, patients_per_split
from cxrsr_utils.degradation.options import degradation_options
from cxrsr_utils.degradation.pairs import check_degradable
from cxrsr_utils.images import radiographs
from cxrsr_utils.reporting import files as report

__all__ = [
    "TABLES",
    "counts_table",
    "kermany_patient",
    "manifest_digest",
    "nih_patient",
    "patient_table",
    "prepare_all",
    "sample_images",
    "save_tables",
    "source_record",
]

DATASET_NAMES = {"nih": "NIH", "kermany": "Kermany"}
MANIFEST_COLUMNS = (
    "dataset",
    "split",
    "role",
    "source",
    "path",
    "sha256",
    "bytes",
    "width",
    "height",
    "label",
    "fold",
    "patient",
)


def prepare_all(params: Params, work: StudyLayout | Path) -> dict[str, pd.DataFrame]:
    """Run notebook 01's preparation into the run's data folder (``work/data``); return its
    tables.

    Tables: ``manifest`` (every produced file with SHA-256, columns :data:`MANIFEST_COLUMNS`),
    ``excluded`` (file, dataset, reason), ``inputs`` (every source image read, with SHA-256),
    ``nih_split``, ``kermany_split``, ``counts`` (the paper's form, with patients) and
    ``patients`` (patients per NIH split and Kermany fold, and how many are in another).
    """
    layout = as_layout(work)
    options = degradation_options(**params.degradation.model_dump())
    check_degradable(params.nih.eval_hr_size, options, params.scale, "nih.eval_hr_size")
    check_degradable(params.kermany.hr_size, options, params.scale, "kermany.hr_size")
    settings = {
        "nih": params.nih.model_dump(mode="json"),
        "kermany": params.kermany.model_dump(mode="json"),
        "degradation": params.degradation.model_dump(mode="json"),
        "seed": params.seed,
        "scale": params.scale,
    }
    if layout.prepared_stamp.is_file() and stamps.done(layout.prepared_stamp, settings) is None:
        shutil.rmtree(layout.data)  # prepared with other settings: start afresh rather than mix
    layout.data.mkdir(parents=True, exist_ok=True)
    nih, nih_split = prepare_nih(params.nih, params.seed, params.scale, layout, options)
    kermany, kermany_split = prepare_kermany(
        params.kermany, params.seed, params.scale, layout, options
    )
    nih.extend(kermany)
    stamps.write(layout.prepared_stamp, settings)

    manifest = pd.DataFrame(nih.files).reindex(columns=list(MANIFEST_COLUMNS))
    manifest = manifest.sort_values("path").reset_index(drop=True)
    manifest["label"] = manifest["label"].astype("Int64")
    manifest["fold"] = manifest["fold"].astype("Int64")
    excluded = pd.DataFrame(nih.excluded, columns=["file", "dataset", "reason"])
    nih_split = nih_split.assign(file=nih_split["file"].map(lambda p: p.name))
    kermany_split = kermany_split.assign(file=kermany_split["file"].map(lambda p: p.name))
    return {
        "manifest": manifest,
        "excluded": excluded,
        "inputs": pd.DataFrame(nih.inputs).sort_values(["dataset", "file"], ignore_index=True),
        "nih_split": nih_split,
        "kermany_split": kermany_split,
        "counts": counts_table(manifest, excluded),
        "patients": patient_table(nih_split, kermany_split, excluded),
    }


# Notebook 01's tables in the run's tables folder (file name, with a Markdown copy?).
TABLES = {
    "counts": ("01_counts", True),
    "excluded": ("01_excluded", True),
    "kermany_split": ("01_kermany_split", False),
    "nih_split": ("01_nih_split", False),
    "patients": ("01_patients", True),
}


def save_tables(tables: dict[str, pd.DataFrame], work: StudyLayout | Path) -> None:
    """Write :func:`prepare_all`'s tables: the data manifest where the other notebooks read it
    (``reports/data_manifest.csv``), the others as :data:`TABLES` names them."""
    layout = as_layout(work)
    manifest = layout.data_manifest
    report.save_table(tables["manifest"], manifest.parent, manifest.stem, markdown=False)
    for key, (name, markdown) in TABLES.items():
        report.save_table(tables[key], layout.tables, name, markdown=markdown)


def counts_table(manifest: pd.DataFrame, excluded: pd.DataFrame | None = None) -> pd.DataFrame:
    """Image and patient counts: the NIH fine-tune set in the paper's form (originals +
    multiscale + crops = total), the NIH validation and test pairs, the Kermany pairs per
    fold and class, and the inputs excluded per data set."""
    rows = []
    nih = manifest[manifest["dataset"] == "nih"]
    finetune = nih[nih["split"] == "finetune"]
    for role, part in (("original", "originals"), ("multiscale", "multiscale")):
        rows.append(("NIH fine-tune", part, finetune[finetune["role"] == role]))
    rows.append(("NIH fine-tune", "multiscale crops", finetune[finetune["role"] == "crop"]))
    rows.append(("NIH fine-tune", "total", finetune))
    for split, name in (("val", "NIH validation"), ("test", "NIH test (same dataset)")):
        rows.append((name, "HR/LR pairs", nih[(nih["split"] == split) & (nih["role"] == "hr")]))
    kermany = manifest[(manifest["dataset"] == "kermany") & (manifest["role"] == "hr")]
    for (fold, label), part in kermany.groupby(["fold", "label"]):
        rows.append((f"Kermany fold {int(fold)} (unseen)", KERMANY_CLASSES[int(label)], part))
    rows.append(("Kermany (unseen)", "HR/LR pairs, all folds", kermany))
    out = [
        (name, part, len(table), int(table["patient"].nunique()) if "patient" in table else 0)
        for name, part, table in rows
    ]
    if excluded is not None:
        for dataset in ("nih", "kermany"):
            files = excluded.loc[excluded["dataset"] == dataset, "file"]
            patient = nih_patient if dataset == "nih" else kermany_patient
            n_patients = len({patient(f) for f in files})
            out.append(("Excluded", DATASET_NAMES[dataset], len(files), n_patients))
    return pd.DataFrame(out, columns=["set", "part", "images", "patients"])


def patient_table(
    nih_split: pd.DataFrame, kermany_split: pd.DataFrame, excluded: pd.DataFrame
) -> pd.DataFrame:
    """Per NIH split and Kermany fold: images used, patients, and patients also found in
    another split or fold (0 when the split is by patient). Excluded inputs are left out."""
    gone = set(excluded["file"].map(lambda f: Path(f).name))
    nih = nih_split[~nih_split["file"].isin(gone)]
    kermany = kermany_split[kermany_split["note"] != "excluded"]
    parts = [
        patients_per_split(nih, "split").rename(columns={"split": "group"}).assign(set="NIH"),
        patients_per_split(kermany.assign(fold=kermany["fold"].map("fold {}".format)), "fold")
        .rename(columns={"fold": "group"})
        .assign(set="Kermany"),
    ]
    table = pd.concat(parts, ignore_index=True)
    return table[["set", "group", "images", "patients", "patients_in_another"]]


def manifest_digest(manifest: pd.DataFrame, key: str = "path") -> str:
    """SHA-256 over a manifest's (``key``, sha256) pairs: one number for a whole set of files."""
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
    """One example of each produced kind (for notebook 01's sample figure), six per row: the
    NIH original, the multiscale copy the first crop was cut from, that crop, a test HR and
    its two LR forms, then each Kermany class's HR and LR forms. ``work`` is the run (its
    folder or :class:`~cxrsr_utils.core.layout.StudyLayout`)."""
    data_root = as_layout(work).data
    role, dataset = manifest["role"], manifest["dataset"]
    crops = manifest[role == "crop"]
    crop_source = f"/{crops.iloc[0]['source']}" if len(crops) else None
    forms = {"hr": "HR", "lr": "LR (bicubic)", "lr_degraded": "LR (degraded)"}
    picks = [
        ("NIH original", role == "original"),
        ("NIH multiscale copy (crop source)", manifest["path"].str.endswith(crop_source or "/")),
        ("NIH crop of that copy", role == "crop"),
    ]
    nih_test = (dataset == "nih") & (manifest["split"] == "test")
    picks += [(f"NIH test {what}", nih_test & (role == r)) for r, what in forms.items()]
    for label, name in enumerate(KERMANY_CLASSES):
        kermany = (dataset == "kermany") & (manifest["label"] == label).fillna(False)
        picks += [(f"Kermany {name} {what}", kermany & (role == r)) for r, what in forms.items()]
    out = []
    for title, mask in picks:
        rows = manifest[mask.astype(bool)]
        if len(rows):
            out.append(
                (title, radiographs.read_radiograph(data_root / rows.iloc[0]["path"]).as_float())
            )
    return out
