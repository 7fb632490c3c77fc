"""Super-resolution evaluation (notebook 04): every method on the same LR inputs, scored against HR.

Methods: ``bicubic`` and ``lanczos`` (:func:`cxrsr_utils.radiographs.resize`), ``pretrained`` (the
un-tuned RealESRGAN_x4plus), each fine-tuned variant found under ``work/finetune/`` (notebook
03), and ``realesr-general-x4v3`` when its weights resolve. Inputs: the held-out NIH pairs
("same dataset") and the Kermany test pairs ("unseen") prepared by notebook 01.

Every method runs through :func:`cxrsr_utils.upscaler.load_model` and its
:class:`~cxrsr_utils.upscaler.Model`, the path of ``cxrsr upscale`` and
:func:`cxrsr_utils.upscale`, with the profile's inference settings. SR outputs are written as
PNG (same bit depth as the HR) under ``work/sr/<method>/`` and scored from the written file, so
a resumed run scores exactly what a fresh run scores, and notebook 05 classifies the very
images scored here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from cxrsr_utils import infer, metrics, models, radiographs, sources, stats
from cxrsr_utils.layout import EVAL_CONDITIONS, StudyLayout, as_layout
from cxrsr_utils.params import Params
from cxrsr_utils.repro import torch_device
from cxrsr_utils.upscaler import BASELINES, Model, load_model

DATASET_LABELS = {"nih": "NIH held-out (same dataset)", "kermany": "Kermany test (unseen)"}


def dataset_label(dataset: str) -> str:
    """A data set's name as tables and figures show it (unknown names as they are)."""
    return DATASET_LABELS.get(dataset, dataset)


def with_dataset_labels(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` with its ``dataset`` column in the words of :data:`DATASET_LABELS`."""
    return table.assign(dataset=table["dataset"].map(dataset_label))


# Each fine-tuned variant is tested against these methods, on these metrics.
PAIRED_BASELINES = ("pretrained", "bicubic")
PAIRED_METRICS = ("psnr", "ssim", "lr_psnr")
# The columns of the paired-test table a reader needs first (the rest is in the saved table).
PAIRED_VIEW = (
    "dataset",
    "metric",
    "method_a",
    "method_b",
    "mean_diff",
    "diff_ci_low",
    "diff_ci_high",
    "p_value",
)
# One row of the paper's Fig 8: its title, then (title, image) tiles: LR, each method, HR.
ZoomRow = tuple[str, list[tuple[str, np.ndarray]]]


@dataclass(frozen=True)
class Method:
    """One way of bringing LR to HR size (a loaded :class:`~cxrsr_utils.upscaler.Model`),
    and where it came from."""

    name: str
    kind: str  # "resize" or "network"
    model: Model
    source: str
    sha256: str = ""
    note: str = ""

    def upscale(self, image: np.ndarray) -> np.ndarray:
        """The SR of a gray float image in [0, 1], as ``cxrsr_utils.upscale`` computes it."""
        return self.model.upscale_float(image)

    def describe(self) -> dict[str, str]:
        return {
            "method": self.name,
            "kind": self.kind,
            "source": self.source,
            "sha256": self.sha256,
            "note": self.note,
        }


def eval_pairs(manifest: pd.DataFrame, work: StudyLayout | Path) -> pd.DataFrame:
    """HR/LR pairs to evaluate: NIH held-out test and Kermany (every fold) images of the run
    ``work`` (its folder or :class:`~cxrsr_utils.layout.StudyLayout`).

    Columns: dataset, image (path relative to the dataset's HR folder), hr, lr (absolute
    paths), label (Kermany: 0/1, NIH: NA).
    """
    layout = as_layout(work)
    if not layout.data.is_dir():
        raise FileNotFoundError(
            f"{layout.data} is missing: give the run's folder (work/<profile>) or its Paths, "
            "and run notebook 01 first."
        )
    hr = manifest[(manifest["role"] == "hr") & manifest["split"].isin(["test", "cv"])]
    rows = []
    for r in hr.itertuples():
        hr_path = layout.data / r.path
        image = hr_path.relative_to(layout.pair_folder(r.dataset, "hr"))
        rows.append(
            {
                "dataset": r.dataset,
                "image": image.as_posix(),
                "hr": hr_path,
                "lr": layout.pair_folder(r.dataset, "lr") / image,
                "label": r.label,
            }
        )
    if not rows:
        raise ValueError("The data manifest has no held-out HR images; run notebook 01 first.")
    return pd.DataFrame(rows).sort_values(["dataset", "image"], ignore_index=True)


def study_methods(params: Params, work: StudyLayout | Path) -> tuple[list[Method], list[str]]:
    """The methods notebooks 04 and 05 compare, run with ``params.evaluate``'s inference
    settings on ``params.device`` (see :func:`available_methods`)."""
    ev = params.evaluate
    options = infer.InferOptions(
        tile=ev.tile,
        tile_pad=ev.tile_pad,
        pre_pad=ev.pre_pad,
        batch_size=ev.batch_size,
        precision=ev.precision,
        device=torch_device(params.device),
        progress=False,
    )
    return available_methods(work, options, include_general_v3=ev.include_general_v3)


def available_methods(
    work: StudyLayout | Path, options: infer.InferOptions, *, include_general_v3: bool = True
) -> tuple[list[Method], list[str]]:
    """Every method that can run here, and a note for each one that cannot (and why).

    Networks run with ``options``; the resize baselines ignore them.
    """
    methods = [
        Method(
            name, "resize", load_model(name, options), source=f"radiographs.resize ({name}, PIL)"
        )
        for name in BASELINES
    ]
    skipped: list[str] = []
    net, info = models.load_pretrained_generator()  # as load_model("pretrained"), with its info
    methods.append(
        Method(
            "pretrained",
            "network",
            load_model(net, options),
            info.source,
            info.sha256,
            "fp16-rounded weights" if info.fp16_rounded else "",
        )
    )
    generators = as_layout(work).finetuned_generators()
    for variant, path in generators.items():
        tuned = load_model(path, options)
        methods.append(Method(f"finetuned:{variant}", "network", tuned, str(path), tuned.sha256))
    if not generators:
        skipped.append("no fine-tuned generator under work/finetune/ (run notebook 03)")
    if include_general_v3:
        try:
            path = sources.resolve("realesr-general-x4v3")
        except sources.SourceError as exc:
            skipped.append(f"realesr-general-x4v3: {exc}")
        else:
            net = models.build_general_v3()
            net.load_state_dict(models.load_state_dict_file(path, "params"), strict=True)
            methods.append(
                Method(
                    "realesr-general-x4v3",
                    "network",
                    load_model(net.eval(), options),
                    str(path),
                    sources.WEIGHTS["realesr-general-x4v3"].sha256 or "",
                )
            )
    return methods, skipped


def source_record(methods: list[Method]) -> dict[str, dict[str, str]]:
    """Each method as the run's sources file records it (``method:<name>`` -> its description)."""
    return {f"method:{m.name}": m.describe() for m in methods}


def methods_table(methods: list[Method], skipped: list[str]) -> pd.DataFrame:
    """The methods evaluated (:meth:`Method.describe`), then one ``not evaluated`` row for
    each method that cannot run here, its note saying why."""
    rows = [m.describe() for m in methods]
    rows += [
        {"method": "", "kind": "not evaluated", "source": "", "sha256": "", "note": note}
        for note in skipped
    ]
    return pd.DataFrame(rows, columns=["method", "kind", "source", "sha256", "note"])


def sr_path(
    work: StudyLayout | Path,
    method: Method,
    dataset: str,
    image: str,
    condition: str = "bicubic",
) -> Path:
    """Where the SR output of ``method`` for one image's LR of ``condition`` lives.

    The folder carries the first 12 hex digits of the weights' SHA-256, so outputs of other
    weights (a re-trained variant) are never reused by a resumed run.
    """
    folder = method.name.replace(":", "_") + (f"-{method.sha256[:12]}" if method.sha256 else "")
    return as_layout(work).sr_output(folder, dataset, image, condition)


def run_methods(
    pairs: pd.DataFrame,
    methods: list[Method],
    work: StudyLayout | Path,
    condition: str = "bicubic",
) -> pd.DataFrame:
    """Upscale every LR input of ``condition`` with every method, write the outputs, score
    them.

    ``pairs`` has a column per LR role (:data:`~cxrsr_utils.layout.EVAL_CONDITIONS`: ``lr``
    for "bicubic", ``lr_degraded`` for "degraded"). Returns the per-image long table:
    dataset, image, label, method, psnr, ssim, mse, lr_psnr. Outputs that already exist are
    reused (resumable).
    """
    role = EVAL_CONDITIONS[condition]
    rows = []
    for method in methods:
        for pair in tqdm(pairs.itertuples(), total=len(pairs), desc=method.name, leave=False):
            target = sr_path(work, method, pair.dataset, pair.image, condition)
            hr = radiographs.read_radiograph(pair.hr)
            lr = radiographs.read_radiograph(getattr(pair, role))
            if not target.is_file():
                sr = method.upscale(lr.as_float())
                radiographs.write_png(target, radiographs.to_pixels(sr, hr.max_value))
            sr = radiographs.read_radiograph(target).as_float()
            rows.append(
                {
                    "dataset": pair.dataset,
                    "image": pair.image,
                    "label": pair.label,
                    "method": method.name,
                    **metrics.image_metrics(sr, hr.as_float(), data_range=1.0),
                    "lr_psnr": metrics.lr_consistency(sr, lr.as_float(), data_range=1.0),
                }
            )
    return pd.DataFrame(rows)


def paper_table(
    pairs: pd.DataFrame, work: StudyLayout | Path, methods: list[Method]
) -> pd.DataFrame:
    """The paper's Fig 10 table in its own form, for each SR method and dataset.

    The paper compares against the *LR* image, brought to HR size with bicubic here:
    "Between Original & LR" = metric(HR, bicubic(LR)), "Between SR & LR" =
    metric(SR, bicubic(LR)), "Improvement (%)" = (SR&LR - Original&LR) / Original&LR x 100.
    This rewards an SR image for resembling the blurry input rather than the ground truth,
    so it cannot tell whether SR restored anything; the proper table scores against HR.
    """
    rows = []
    for method in methods:
        for dataset, part in pairs.groupby("dataset", sort=True):
            orig, srs = [], []
            for pair in part.itertuples():
                hr = radiographs.read_radiograph(pair.hr).as_float()
                lr = radiographs.read_radiograph(pair.lr).as_float()
                lr_up = infer.baseline_array(lr, scale=hr.shape[0] // lr.shape[0])
                sr = radiographs.read_radiograph(
                    sr_path(work, method, dataset, pair.image)
                ).as_float()
                orig.append(metrics.image_metrics(hr, lr_up, data_range=1.0))
                srs.append(metrics.image_metrics(sr, lr_up, data_range=1.0))
            for metric in ("psnr", "ssim", "mse"):
                a = float(np.mean([o[metric] for o in orig]))
                b = float(np.mean([s[metric] for s in srs]))
                rows.append(
                    {
                        "dataset": dataset_label(dataset),
                        "method": method.name,
                        "metric": metric.upper(),
                        "Between Original & LR": a,
                        "Between SR & LR": b,
                        "Improvement (%)": (b - a) / a * 100,
                    }
                )
    return pd.DataFrame(rows)


def paired_tests(per_image: pd.DataFrame, params: Params) -> pd.DataFrame:
    """Each fine-tuned method against each of :data:`PAIRED_BASELINES` on the same images:
    :func:`metrics.compare_methods` on :data:`PAIRED_METRICS`, rounded as the tables are.

    The fine-tuned methods are taken in ``per_image``'s order (:func:`run_methods`' order of
    methods); the bootstrap uses ``params.evaluate.n_bootstrap`` resamples from
    ``params.seed``. Raises :class:`RuntimeError` when ``per_image`` has no fine-tuned method.
    """
    tuned = [m for m in dict.fromkeys(per_image["method"]) if m.startswith("finetuned:")]
    comparisons = [
        metrics.compare_methods(
            per_image,
            t,
            other,
            metrics=list(PAIRED_METRICS),
            n_resamples=params.evaluate.n_bootstrap,
            seed=params.seed,
        )
        for t in tuned
        for other in PAIRED_BASELINES
    ]
    if not comparisons:
        raise RuntimeError("No fine-tuned generator found: run notebook 03 first.")
    return stats.round_table(pd.concat(comparisons, ignore_index=True), metrics.DIGITS)


def zoom_rows(
    pairs: pd.DataFrame, methods: list[Method], work: StudyLayout | Path, scale: int
) -> list[ZoomRow]:
    """The paper's Fig 8 (:func:`cxrsr_utils.plots.zoom_comparison`): for the first pair of
    each data set, its LR (nearest-neighbour enlarged by ``scale``), each method's written SR
    output, and its HR, as gray floats in [0, 1]."""
    rows = []
    for dataset, part in pairs.groupby("dataset"):
        pair = part.iloc[0]
        lr = radiographs.read_radiograph(pair.lr).as_float()
        hr = radiographs.read_radiograph(pair.hr).as_float()
        images = [("LR (nearest)", lr.repeat(scale, 0).repeat(scale, 1))]
        for m in methods:
            sr = sr_path(work, m, str(dataset), pair.image)
            images.append((m.name, radiographs.read_radiograph(sr).as_float()))
        images.append(("HR", hr))
        rows.append((f"{dataset_label(str(dataset))}\n{pair.image}", images))
    return rows


def zoom_differences(row: ZoomRow) -> list[tuple[str, np.ndarray]]:
    """|SR - HR| of each method in one :func:`zoom_rows` row (its LR and HR tiles left out)."""
    _, images = row
    hr = images[-1][1]
    return [(title, metrics.difference_map(img, hr)) for title, img in images[1:-1]]


def method_rank(name: str) -> tuple[int, str]:
    """Display order: baselines, the pretrained model, other pretrained networks, fine-tuned."""
    fixed = {"bicubic": 0, "lanczos": 1, "pretrained": 2}
    return (fixed.get(name, 4 if name.startswith("finetuned:") else 3), name)


def wide_summary(summary: pd.DataFrame, digits: dict[str, int] | None = None) -> pd.DataFrame:
    """One row per data set and method, one ``mean [ci_low, ci_high]`` column per metric."""
    digits = {**metrics.DIGITS, **(digits or {})}
    table = summary.copy()
    table["value"] = [
        f"{r.mean:.{digits.get(r.metric, 4)}f} [{r.ci_low:.{digits.get(r.metric, 4)}f}, "
        f"{r.ci_high:.{digits.get(r.metric, 4)}f}]"
        for r in table.itertuples()
    ]
    order = sorted(dict.fromkeys(summary["method"]), key=method_rank)
    wide = table.pivot(index=["dataset", "method"], columns="metric", values="value")
    wide = wide.reset_index()
    wide["method"] = pd.Categorical(wide["method"], order)
    wide = wide.sort_values(["dataset", "method"]).astype({"method": str})
    wide["dataset"] = wide["dataset"].map(dataset_label)
    cols = [c for c in ("psnr", "ssim", "mse", "lr_psnr") if c in wide.columns]
    return (
        wide[["dataset", "method", *cols]]
        .rename(
            columns={
                "psnr": "PSNR (dB)",
                "ssim": "SSIM",
                "mse": "MSE",
                "lr_psnr": "LR-consistency PSNR (dB)",
            }
        )
        .reset_index(drop=True)
    )


def headline(summary: pd.DataFrame) -> str:
    """One sentence: the best fine-tuned variant against the pretrained model and bicubic."""
    psnr = summary[summary["metric"] == "psnr"].set_index(["dataset", "method"])["mean"]
    parts = []
    for dataset in sorted(summary["dataset"].unique()):
        tuned = [m for m in psnr.loc[dataset].index if m.startswith("finetuned:")]
        best = max(tuned, key=lambda m: psnr[(dataset, m)]) if tuned else None
        text = (
            f"{dataset_label(dataset)}: bicubic {psnr[(dataset, 'bicubic')]:.2f} dB, "
            f"pretrained {psnr[(dataset, 'pretrained')]:.2f} dB"
        )
        if best:
            text += f", best fine-tuned ({best.split(':', 1)[1]}) {psnr[(dataset, best)]:.2f} dB"
        parts.append(text)
    return "Mean PSNR against HR — " + "; ".join(parts) + "."
