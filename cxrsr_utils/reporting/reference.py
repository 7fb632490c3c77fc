"""The committed reference results of a profile, and how far a fresh run may differ from them.

A run writes its tables and figures into its own git-ignored folder
(``work/<profile>/reports``, ``work/<profile>/figures``); the results committed with the code
live in ``reports/<profile>/`` and ``figures/<profile>/`` and change only when someone
publishes a run (``make publish``). After a run, every table is compared with its reference:

- on one machine a rerun gives the same tables to the last digit (the seeds fix every draw);
- across machines the float kernels differ (AVX-512 vs AVX2: oneDNN, MKL, XLA, numpy, OpenCV),
  fine-tuned weights differ in their last bits, and SR metrics move by hundredths of a dB. So
  keys, counts and labels must match exactly and metrics within :data:`TOLERANCES`, measured
  by ``bench/cpu_portability.py`` (``reports/bench/cpu_portability.md``) and set with margin;
- the classifier's scores are not compared, only which images, folds and forms it scored:
  TensorFlow's kernels change with the instruction set, and the CNN's weights with them
  (see :data:`CHECKS`).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from cxrsr_utils.core.atomic import atomic_path
from cxrsr_utils.core.errors import MissingStepError
from cxrsr_utils.core.layout import DATA_MANIFEST_FILE
from cxrsr_utils.core.project import PROJECT_ROOT


@dataclass(frozen=True)
class Tolerance:
    """Largest accepted difference: absolute, or relative to the reference value."""

    value: float
    relative: bool = False
    unit: str = ""

    def allows(self, fresh: np.ndarray, ref: np.ndarray) -> np.ndarray:
        """Element-wise: is ``fresh`` close enough to ``ref`` (both NaN counts as equal)?"""
        bound = self.value * np.abs(ref) if self.relative else self.value
        both_nan = np.isnan(fresh) & np.isnan(ref)
        return both_nan | (np.abs(fresh - ref) <= bound + 1e-12)

    def __str__(self) -> str:
        return f"±{self.value:.0%}" if self.relative else f"±{self.value:g}{self.unit}"


# Per metric, for a mean over the test images (and its CI bounds and paired differences).
# Measured AVX2-vs-AVX-512 differences are in reports/bench/cpu_portability.md; each bound is
# at least twice the largest seen there.
TOLERANCES: dict[str, Tolerance] = {
    "psnr": Tolerance(0.1, unit=" dB"),
    # the SR output downsampled again and compared with its input: weight changes show more
    "lr_psnr": Tolerance(0.2, unit=" dB"),
    "ssim": Tolerance(0.002),
    "mse": Tolerance(0.03, relative=True),  # ~0.13 dB
}
# One image's score moves more than a mean over 16-20 images.
PER_IMAGE_FACTOR = 3.0


@dataclass(frozen=True)
class TableCheck:
    """How one table is compared with its reference.

    ``keys`` name a row and must match exactly, as must ``exact`` columns. ``metrics`` maps a
    numeric column to the :data:`TOLERANCES` entry it is held to, or ``metric_column`` names
    the column that gives each row's metric (long tables). ``skipped`` says why a column is
    not compared; a table with ``reason`` set is not compared at all.
    """

    keys: tuple[str, ...] = ()
    exact: tuple[str, ...] = ()
    metrics: dict[str, str] = field(default_factory=dict)
    metric_column: str | None = None
    numeric: tuple[str, ...] = ()
    skipped: dict[str, str] = field(default_factory=dict)
    factor: float = 1.0
    reason: str = ""


_CLASSIFIER = (
    "the CNN's weights follow TensorFlow's float kernels, which differ between AVX2 and "
    "AVX-512 CPUs; its predictions, and every score computed from them, move with the CPU"
)
# The checkpoint chosen and the discriminator's verdict follow the training's float rounding.
_TRAINING = (
    "follows the training trajectory (validation PSNR, discriminator accuracy), which follows "
    "the CPU's float rounding"
)
_SR_STATS = ("mean", "ci_low", "ci_high")
_PAIRED = ("mean_a", "mean_b", "mean_diff", "diff_ci_low", "diff_ci_high", "median_diff")

CHECKS: dict[str, TableCheck] = {
    "01_counts": TableCheck(keys=("set", "part"), exact=("images", "patients")),
    "01_excluded": TableCheck(exact=("*",)),
    "01_nih_split": TableCheck(exact=("*",)),
    "01_kermany_split": TableCheck(exact=("*",)),
    "01_patients": TableCheck(exact=("*",)),
    "02_lr_fidelity": TableCheck(
        keys=("image", "draw", "mode"),
        metrics={"psnr": "psnr", "ssim": "ssim"},
        factor=PER_IMAGE_FACTOR,
    ),
    "02_lr_fidelity_summary": TableCheck(
        keys=("mode",),
        exact=("psnr count", "ssim count"),
        metrics={f"{m} {s}": m for m in ("psnr", "ssim") for s in ("mean", "5%", "50%", "95%")},
    ),
    "03_sources_used": TableCheck(exact=("*",)),
    "03_design": TableCheck(
        keys=("variant",),
        exact=("degradation", "loss", "start", "iterations"),
        skipped={c: _TRAINING for c in ("chosen", "lacks vs paper")},
    ),
    "03_discriminator": TableCheck(reason=_TRAINING),
    "03_validation_curve": TableCheck(
        keys=("variant", "iter"),
        metrics={"val_psnr": "psnr"},
        factor=PER_IMAGE_FACTOR,  # a training trajectory, not only an inference, moves
        skipped={c: "seconds" for c in ("seconds", "elapsed_s")},
    ),
    "03_validation_references": TableCheck(keys=("method",), metrics={"val_psnr": "psnr"}),
    "04_datasets": TableCheck(exact=("*",)),
    "04_statistics_plan": TableCheck(exact=("*",)),
    "04_per_image": TableCheck(
        keys=("dataset", "condition", "method", "image"),
        exact=("label",),
        metrics={"psnr": "psnr", "ssim": "ssim", "mse": "mse", "lr_psnr": "lr_psnr"},
        factor=PER_IMAGE_FACTOR,
    ),
    "04_summary": TableCheck(
        keys=("dataset", "condition", "method", "metric"),
        exact=("n",),
        metric_column="metric",
        numeric=_SR_STATS,
    ),
    "04_summary_wide": TableCheck(reason="04_summary's numbers as text; 04_summary is compared"),
    "04_paired_tests": TableCheck(
        keys=("role", "dataset", "condition", "metric", "method_a", "method_b"),
        exact=("n", "a_differs_from_paper"),
        metric_column="metric",
        numeric=_PAIRED,
        skipped={
            c: "rank test of the differences compared above; near-zero differences "
            "reorder their ranks"
            for c in ("wilcoxon_statistic", "p_value", "p_holm", "favours", "significant")
        },
    ),
    "04_paper_fig10_form": TableCheck(
        keys=("dataset", "condition", "method", "metric"),
        exact=("differs_from_paper",),
        metric_column="metric",
        numeric=("Between Original & LR", "Between SR & LR"),
        skipped={"Improvement (%)": "derived from the two columns compared"},
    ),
    "05_training_history": TableCheck(reason=_CLASSIFIER),
    "05_predictions": TableCheck(reason=_CLASSIFIER),
    "05_forms_summary": TableCheck(
        keys=("form",), exact=("kind", "condition", "method", "n"), skipped={"*": _CLASSIFIER}
    ),
    "05_folds": TableCheck(
        keys=("test_fold", "validation_fold"),
        exact=tuple(
            f"{part}_{what}"
            for part in ("train", "validation", "test")
            for what in ("images", "pneumonia", "patients")
        ),
        skipped={c: _CLASSIFIER for c in ("epochs_run", "chosen_epoch", "chosen_val_loss")},
    ),
    "05_size_baseline": TableCheck(keys=("model",), exact=("n",), skipped={"*": _CLASSIFIER}),
    "05_size_baseline_predictions": TableCheck(
        keys=("image",),
        exact=("label", "fold"),
        skipped={"probability": "scikit-learn's lbfgs fit rounds with the CPU"},
    ),
}


# One loss log per fine-tuned variant (03_loss_log_<variant>), whichever variants a profile has.
LOSS_LOG = TableCheck(
    reason="training losses and seconds per iteration: the loss trajectory "
    "follows the CPU's float rounding"
)


def check_for(table: str) -> TableCheck | None:
    """How ``table`` is compared, or None where nothing is declared for it."""
    return LOSS_LOG if table.startswith("03_loss_log_") else CHECKS.get(table)


def reference_dirs(profile: str, root: Path = PROJECT_ROOT) -> dict[str, Path]:
    """The committed results of ``profile``: ``reports`` (tables, manifests) and ``figures``."""
    return {"reports": root / "reports" / profile, "figures": root / "figures" / profile}


def _read(path: Path) -> pd.DataFrame:
    # keep strings as written ("nan" only for empty numeric cells), so labels compare exactly
    return pd.read_csv(path, keep_default_na=False, na_values=[""])


def labels(col: pd.Series) -> pd.Series:
    """A column as text for exact comparison (an empty cell reads as an empty string)."""
    return col.astype(object).where(col.notna(), "").astype(str)


def _numeric(col: pd.Series) -> np.ndarray:
    return pd.to_numeric(col, errors="coerce").to_numpy(dtype=float)


def compare_table(fresh: pd.DataFrame, ref: pd.DataFrame, check: TableCheck) -> list[str]:
    """Every way ``fresh`` departs from ``ref`` under ``check``; empty if within tolerance."""
    if check.reason:
        return []
    if list(fresh.columns) != list(ref.columns):
        return [f"columns differ: {list(fresh.columns)} vs reference {list(ref.columns)}"]
    if len(fresh) != len(ref):
        return [f"{len(fresh)} rows vs {len(ref)} in the reference"]
    problems = []
    if check.keys:
        a = fresh[list(check.keys)].apply(labels).agg(" / ".join, axis=1)
        b = ref[list(check.keys)].apply(labels).agg(" / ".join, axis=1)
        problems += [
            f"row {i}: {x!r} vs reference {y!r}"
            for i, (x, y) in enumerate(zip(a, b, strict=True))
            if x != y
        ]
    exact = list(ref.columns) if "*" in check.exact else list(check.exact)
    for col in exact:
        differs = labels(fresh[col]) != labels(ref[col])
        problems += [
            f"{col} of row {i}: {fresh[col][i]!r} vs reference {ref[col][i]!r}"
            for i in np.flatnonzero(differs.to_numpy())
        ]
    return problems + _metric_problems(fresh, ref, check)


def _tolerance(metric: str, factor: float) -> Tolerance:
    tol = TOLERANCES[metric.lower()]
    return Tolerance(tol.value * factor, tol.relative, tol.unit)


def _metric_problems(fresh: pd.DataFrame, ref: pd.DataFrame, check: TableCheck) -> list[str]:
    columns = {c: [m] * len(ref) for c, m in check.metrics.items()}
    if check.metric_column:
        columns |= {c: list(ref[check.metric_column]) for c in check.numeric}
    problems = []
    for col, metric_per_row in columns.items():
        a, b = _numeric(fresh[col]), _numeric(ref[col])
        for i, metric in enumerate(metric_per_row):
            tol = _tolerance(str(metric), check.factor)
            if not tol.allows(a[i : i + 1], b[i : i + 1])[0]:
                problems.append(
                    f"{col} of row {i} ({metric}): {a[i]:.6g} vs reference "
                    f"{b[i]:.6g} (tolerance {tol})"
                )
    return problems


@dataclass(frozen=True)
class Comparison:
    """The outcome of comparing one table with its reference."""

    table: str
    status: str  # "same", "within tolerance", "differs", "not compared", "no reference", "new"
    detail: str = ""


def compare_file(fresh: Path, reference: Path) -> Comparison:
    """Compare one table (CSV) of a fresh run with its committed reference."""
    name = fresh.stem
    check = check_for(name)
    if check is None:
        return Comparison(name, "new", "no comparison declared in reference.CHECKS")
    if check.reason:
        return Comparison(name, "not compared", check.reason)
    if not reference.is_file():
        return Comparison(name, "no reference", f"{reference} does not exist")
    if fresh.read_bytes() == reference.read_bytes():
        return Comparison(name, "same")
    problems = compare_table(_read(fresh), _read(reference), check)
    if problems:
        more = f" (+{len(problems) - 5} more)" if len(problems) > 5 else ""
        return Comparison(name, "differs", "; ".join(problems[:5]) + more)
    return Comparison(name, "within tolerance", describe(check))


def describe(check: TableCheck) -> str:
    """What a check holds a table to, in words."""
    parts = []
    if check.keys or check.exact:
        parts.append("labels and counts exactly")
    metrics = set(check.metrics.values())
    if check.metric_column:
        metrics |= {"psnr", "ssim", "mse", "lr_psnr"}
    if metrics:
        parts.append(
            "metrics within "
            + ", ".join(f"{m} {_tolerance(m, check.factor)}" for m in TOLERANCES if m in metrics)
        )
    if "*" in check.skipped:
        parts.append(f"its other columns are not compared: {check.skipped['*']}")
    elif check.skipped:
        parts.append("not compared: " + ", ".join(check.skipped))
    return "; ".join(parts)


def compare_run(fresh_tables: Path, profile: str, root: Path = PROJECT_ROOT) -> pd.DataFrame:
    """Compare every table of a run with the committed reference of ``profile``."""
    ref_tables = reference_dirs(profile, root)["reports"] / "tables"
    rows = [compare_file(p, ref_tables / p.name) for p in sorted(fresh_tables.glob("*.csv"))]
    fresh_names = {p.name for p in fresh_tables.glob("*.csv")}
    rows += [
        Comparison(p.stem, "missing", "in the reference, not produced by this run")
        for p in sorted(ref_tables.glob("*.csv"))
        if p.name not in fresh_names
    ]
    return pd.DataFrame([vars(r) for r in rows], columns=["table", "status", "detail"])


def verdict(fresh_tables: Path, table: str, profile: str, root: Path = PROJECT_ROOT) -> str:
    """One line on ``table`` against its reference, worded so that it is the same on every
    CPU while the table is within tolerance (what the notebooks' nbval-checked cells print)."""
    ref = reference_dirs(profile, root)["reports"] / "tables" / f"{table}.csv"
    result = compare_file(fresh_tables / f"{table}.csv", ref)
    check = check_for(table)
    if check is not None and result.status in ("same", "within tolerance"):
        return f"{table}: matches the committed reference ({describe(check)})"
    return f"{table}: {result.status}: {result.detail}"


PUBLISHED = ("tables", "model_cards")
PUBLISHED_FILES = ("run_manifest.json", DATA_MANIFEST_FILE, "sources_used.json")


def publish(
    run_reports: Path, run_figures: Path, profile: str, root: Path = PROJECT_ROOT
) -> list[Path]:
    """Make a run's results the committed reference of ``profile`` (``make publish``).

    Copies tables, model cards, manifests and figures; reference files the run no longer
    produces are removed, so the reference is exactly this run's. Each file is written
    through a temporary file, so an interrupted publish leaves whole files only.
    """
    if not (run_reports / "run_manifest.json").is_file():
        raise MissingStepError(
            f"{run_reports / 'run_manifest.json'} is missing: run the whole study for "
            f"profile {profile!r} first (make study PROFILE={profile})."
        )
    dirs = reference_dirs(profile, root)
    pairs = [(run_reports / sub, dirs["reports"] / sub) for sub in PUBLISHED]
    pairs.append((run_figures, dirs["figures"]))
    written = _copy_files([run_reports / f for f in PUBLISHED_FILES], dirs["reports"])
    for source, target in pairs:
        files = sorted(p for p in source.glob("*") if p.is_file()) if source.is_dir() else []
        for stale in set(target.glob("*")) - {target / p.name for p in files}:
            if stale.is_file():
                stale.unlink()
        written += _copy_files(files, target)
    return written


def _copy_files(files: Iterable[Path], target: Path) -> list[Path]:
    target.mkdir(parents=True, exist_ok=True)
    out = []
    for src in files:
        if src.is_file():
            with atomic_path(target / src.name) as tmp:
                shutil.copyfile(src, tmp)
            out.append(target / src.name)
    return out
