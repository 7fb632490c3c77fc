"""Super-resolution evaluation (notebook 04): every method on the same LR inputs, scored against HR.

Methods: ``bicubic`` and ``lanczos`` (:func:`cxrsr_utils.images.radiographs.resize`),
``pretrained`` (the
un-tuned RealESRGAN_x4plus), each fine-tuned variant found under ``work/finetune/`` (notebook
03), and ``realesr-general-x4v3`` when its weights resolve. Inputs: the held-out NIH test pairs
("same dataset"; HR a native-pixel centre crop of the original) and every Kermany pair
("unseen"; HR the whole image resampled), prepared by notebook 01, each in the two evaluation
conditions of :data:`cxrsr_utils.core.layout.EVAL_CONDITIONS`: the paper's bicubic x4 LR, and a
low-quality LR made by the paper's two-stage degradation (fixed per image, saved).

Every method runs through :func:`cxrsr_utils.sr.upscaler.load_model` and its
:class:`~cxrsr_utils.sr.upscaler.Model`, the path of ``cxrsr upscale`` and
:func:`cxrsr_utils.upscale`, with the profile's inference settings. SR outputs are written as
PNG (same bit depth as the HR) under ``work/sr/<method>/<condition>/<dataset>/`` and scored
from the written file, so a resumed run scores exactly what a fresh run scores, and notebook 05
classifies the very images scored here. The statistics plan (which comparison is primary) is
:mod:`cxrsr_utils.evaluation.comparisons`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from cxrsr_utils.core.device import torch_device
from cxrsr_utils.core.layout import EVAL_CONDITIONS, StudyLayout, as_layout
from cxrsr_utils.core.params import Params
from cxrsr_utils.evaluation import variant_cards
from cxrsr_utils.external import registry, sources
from cxrsr_utils.images import radiographs
from cxrsr_utils.sr import infer
from cxrsr_utils.sr import networks as models
from cxrsr_utils.sr.upscaler import BASELINES, Model, load_model
from cxrsr_utils.stats import image_metrics as metrics

# What the HR ground truth of each data set is, said wherever a data set is named: NIH's is
# native pixels, Kermany's is itself a resample (the classifier reads the whole chest).
DATASET_LABELS = {
    "nih": "NIH held-out test (HR: native-pixel centre crop)",
    "kermany": "Kermany, unseen (HR: whole image resampled)",
}
CONDITION_LABELS = {
    "bicubic": "bicubic x4 LR (the paper's protocol)",
    "degraded": "two-stage degraded LR (low quality)",
}
# The manifest's split of the pairs each data set is evaluated on (every Kermany image: none
# of them trains the SR networks, and notebook 05 classifies each one in every form).
EVAL_SPLITS = {"nih": "test", "kermany": "cv"}


def dataset_label(dataset: str) -> str:
    """A data set's name as tables and figures show it (unknown names as they are)."""
    return DATASET_LABELS.get(dataset, dataset)


def condition_label(condition: str) -> str:
    """An evaluation condition's name as figures show it (unknown names as they are)."""
    return CONDITION_LABELS.get(condition, condition)


def with_dataset_labels(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` with its ``dataset`` column in the words of :data:`DATASET_LABELS`."""
    return table.assign(dataset=table["dataset"].map(dataset_label))


def with_labels(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` with its ``dataset`` and ``condition`` columns (where it has one) in the
    words of :data:`DATASET_LABELS` and :data:`CONDITION_LABELS` (what figures show)."""
    labelled = with_dataset_labels(table)
    if "condition" in table.columns:
        labelled["condition"] = table["condition"].map(condition_label)
    return labelled


@dataclass(frozen=True)
class Method:
    """One way of bringing LR to HR size (a loaded :class:`~cxrsr_utils.sr.upscaler.Model`),
    and where it came from."""

    name: str
    kind: str  # "resize" or "network"
    model: Model
    source: str
    sha256: str = ""
    note: str = ""
    # A fine-tuned variant's model-card record of what it lacks against the paper (None: the
    # card does not say); empty for the methods that are not fine-tuned here.
    differs_from_paper: tuple[str, ...] | None = ()

    def upscale(self, image: np.ndarray) -> np.ndarray:
        """The SR of a gray float image in [0, 1], as ``cxrsr_utils.upscale`` computes it."""
        return self.model.upscale_float(image)

    def upscale_many(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        """:meth:`upscale` of each image, a network's batched (see ``Model.upscale_floats``)."""
        return self.model.upscale_floats(images)

    @property
    def paper_gaps(self) -> str:
        """What the method lacks against the paper, in words (tables' and figures' notes)."""
        if not self.name.startswith("finetuned:"):
            return "not fine-tuned"
        return variant_cards.describe_gaps(self.differs_from_paper)

    def describe(self) -> dict[str, str]:
        return {
            "method": self.name,
            "kind": self.kind,
            "source": self.source,
            "sha256": self.sha256,
            "note": self.note,
            "differs_from_paper": self.paper_gaps,
        }


def method_rank(name: str) -> tuple[int, str]:
    """Display order: baselines, the pretrained model, other pretrained networks, fine-tuned."""
    fixed = {"bicubic": 0, "lanczos": 1, "pretrained": 2}
    return (fixed.get(name, 4 if name.startswith("finetuned:") else 3), name)


def eval_pairs(
    manifest: pd.DataFrame,
    work: StudyLayout | Path,
    conditions: Sequence[str] = tuple(EVAL_CONDITIONS),
) -> pd.DataFrame:
    """HR/LR pairs to evaluate, one row per (data set, image, condition): the NIH test and
    every Kermany image (:data:`EVAL_SPLITS`) of the run ``work`` (its folder or
    :class:`~cxrsr_utils.core.layout.StudyLayout`), each with the LR of each of ``conditions``.

    Columns: dataset, condition, image (path relative to the dataset's HR folder), hr, lr
    (absolute paths; lr is the condition's LR), label (Kermany: 0/1, NIH: NA). Sorted by data
    set, condition and image. A condition's missing LR file raises (run notebook 01).
    """
    layout = as_layout(work)
    if not layout.data.is_dir():
        raise FileNotFoundError(
            f"{layout.data} is missing: give the run's folder (work/<profile>) or its Paths, "
            "and run notebook 01 first."
        )
    unknown = [c for c in conditions if c not in EVAL_CONDITIONS]
    if unknown or not conditions:
        raise ValueError(f"conditions must be among {', '.join(EVAL_CONDITIONS)}, got {unknown}.")
    split = manifest["dataset"].map(EVAL_SPLITS)
    hr = manifest[(manifest["role"] == "hr") & (manifest["split"] == split)]
    rows = []
    for r in hr.itertuples():
        hr_path = layout.data / r.path
        image = hr_path.relative_to(layout.pair_folder(r.dataset, "hr"))
        for condition in conditions:
            rows.append(
                {
                    "dataset": r.dataset,
                    "condition": condition,
                    "image": image.as_posix(),
                    "hr": hr_path,
                    "lr": layout.pair_folder(r.dataset, EVAL_CONDITIONS[condition]) / image,
                    "label": r.label,
                }
            )
    if not rows:
        raise ValueError("The data manifest has no test or cv HR images; run notebook 01 first.")
    pairs = pd.DataFrame(rows).sort_values(["dataset", "condition", "image"], ignore_index=True)
    missing = [p for p in pairs["lr"] if not p.is_file()]
    if missing:
        raise FileNotFoundError(
            f"{len(missing)} LR input(s) are missing, e.g. {missing[0]}: run notebook 01 "
            "(it writes the LR of every evaluation condition)."
        )
    return pairs


def infer_options(params: Params) -> infer.InferOptions:
    """``params.evaluate``'s inference settings on ``params.device``: how notebook 04 runs
    every network."""
    ev = params.evaluate
    return infer.InferOptions(
        tile=ev.tile,
        tile_pad=ev.tile_pad,
        pre_pad=ev.pre_pad,
        batch_size=ev.batch_size,
        precision=ev.precision,
        channels_last=ev.channels_last,
        device=torch_device(params.device),
        progress=False,
    )


def study_methods(params: Params, work: StudyLayout | Path) -> tuple[list[Method], list[str]]:
    """The methods notebooks 04 and 05 compare, run with :func:`infer_options` (see
    :func:`available_methods`)."""
    options = infer_options(params)
    return available_methods(work, options, include_general_v3=params.evaluate.include_general_v3)


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
    layout = as_layout(work)
    generators = layout.finetuned_generators()
    for variant, path in generators.items():
        tuned = load_model(path, options)
        gaps = variant_cards.differs_from_paper(layout, variant)
        methods.append(
            Method(f"finetuned:{variant}", "network", tuned, str(path), tuned.sha256, "", gaps)
        )
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
                    registry.WEIGHTS["realesr-general-x4v3"].sha256 or "",
                )
            )
    return methods, skipped


def source_record(methods: list[Method]) -> dict[str, dict[str, str]]:
    """Each method as the run's sources file records it (``method:<name>`` -> its description)."""
    return {f"method:{m.name}": m.describe() for m in methods}


def methods_table(methods: list[Method], skipped: list[str]) -> pd.DataFrame:
    """The methods evaluated (:meth:`Method.describe`, with what each fine-tuned variant
    lacks against the paper), then one ``not evaluated`` row for each method that cannot run
    here, its note saying why."""
    columns = ["method", "kind", "source", "sha256", "note", "differs_from_paper"]
    rows = [m.describe() for m in methods]
    rows += [{**dict.fromkeys(columns, ""), "kind": "not evaluated", "note": n} for n in skipped]
    return pd.DataFrame(rows, columns=columns)


def paper_gaps(methods: Sequence[Method]) -> dict[str, str]:
    """{method: what it lacks against the paper} (:attr:`Method.paper_gaps`)."""
    return {m.name: m.paper_gaps for m in methods}


def paper_gaps_note(methods: Sequence[Method]) -> str:
    """One line per fine-tuned variant saying what it lacks against the paper (the note every
    figure of notebook 04 carries)."""
    lines = [
        f"{m.name} lacks against the paper: {m.paper_gaps}"
        for m in methods
        if m.name.startswith("finetuned:")
    ]
    return "\n".join(lines)


def sr_path(
    work: StudyLayout | Path,
    method: Method,
    dataset: str,
    image: str,
    condition: str = "bicubic",
) -> Path:
    """Where the SR output of ``method`` for one image, from the LR of ``condition``, lives.

    The folder carries the first 12 hex digits of the weights' SHA-256, so outputs of other
    weights (a re-trained variant) are never reused by a resumed run.
    """
    folder = method.name.replace(":", "_") + (f"-{method.sha256[:12]}" if method.sha256 else "")
    return as_layout(work).sr_output(folder, dataset, image, condition)


def run_methods(
    pairs: pd.DataFrame, methods: list[Method], work: StudyLayout | Path
) -> pd.DataFrame:
    """Upscale every LR input (each pair of :func:`eval_pairs`: one image in one condition)
    with every method, write the outputs, score them against HR.

    Returns the per-image long table: dataset, condition, image, label, method, psnr, ssim,
    mse, lr_psnr (the SR output downsampled again against the LR it was made from: under the
    degraded condition that LR holds the degradation's noise and blur). Outputs that already
    exist are reused (resumable).
    """
    rows = []
    for method in methods:
        write_missing_outputs(pairs, method, work)
        for pair in pairs.itertuples():
            hr = radiographs.read_radiograph(pair.hr).as_float()
            lr = radiographs.read_radiograph(pair.lr).as_float()
            sr = radiographs.read_radiograph(
                sr_path(work, method, pair.dataset, pair.image, pair.condition)
            ).as_float()
            rows.append(
                {
                    "dataset": pair.dataset,
                    "condition": pair.condition,
                    "image": pair.image,
                    "label": pair.label,
                    "method": method.name,
                    **metrics.image_metrics(sr, hr, data_range=1.0),
                    "lr_psnr": metrics.lr_consistency(sr, lr, data_range=1.0),
                }
            )
    return pd.DataFrame(rows)


def write_missing_outputs(
    pairs: pd.DataFrame, method: Method, work: StudyLayout | Path, chunk: int | None = None
) -> int:
    """Write ``method``'s SR output of every pair that has none yet; returns how many it wrote.

    The pairs go to the method in fixed chunks of ``chunk`` (default: its inference batch
    size), in table order, so a network runs inputs of one size in batches. A chunk with any
    output missing is run whole and only its missing outputs are written (atomically): a
    resumed run batches every input as a fresh run does, so it writes the same pixels (batch
    composition can change float rounding). Each output is rounded to the bit depth of its HR.
    """
    size = chunk or method.model.options.batch_size
    rows = list(pairs.itertuples())
    chunks = [rows[i : i + size] for i in range(0, len(rows), size)]
    written = 0
    with tqdm(total=len(rows), desc=method.name, unit="image", leave=False) as bar:
        for part in chunks:
            targets = [sr_path(work, method, p.dataset, p.image, p.condition) for p in part]
            if all(t.is_file() for t in targets):
                bar.update(len(part))
                continue
            lrs = [radiographs.read_radiograph(p.lr).as_float() for p in part]
            for pair, target, sr in zip(part, targets, method.upscale_many(lrs), strict=True):
                if not target.is_file():
                    top = radiographs.read_radiograph(pair.hr).max_value
                    radiographs.write_png(target, radiographs.to_pixels(sr, top))
                    written += 1
            bar.update(len(part))
    return written


def paper_table(
    pairs: pd.DataFrame, work: StudyLayout | Path, methods: list[Method]
) -> pd.DataFrame:
    """The paper's Fig 10 table in its own form, for each SR method, data set and condition.

    The paper compares against the *LR* image, brought to HR size with bicubic here:
    "Between Original & LR" = metric(HR, bicubic(LR)), "Between SR & LR" =
    metric(SR, bicubic(LR)), "Improvement (%)" = (SR&LR - Original&LR) / Original&LR x 100.
    This rewards an SR image for resembling the blurry input rather than the ground truth,
    so it cannot tell whether SR restored anything; the proper table scores against HR.
    """
    rows = []
    for method in methods:
        for (dataset, condition), part in pairs.groupby(["dataset", "condition"], sort=True):
            orig, srs = [], []
            for pair in part.itertuples():
                hr = radiographs.read_radiograph(pair.hr).as_float()
                lr = radiographs.read_radiograph(pair.lr).as_float()
                lr_up = infer.baseline_array(lr, scale=hr.shape[0] // lr.shape[0])
                sr = radiographs.read_radiograph(
                    sr_path(work, method, str(dataset), pair.image, str(condition))
                ).as_float()
                orig.append(metrics.image_metrics(hr, lr_up, data_range=1.0))
                srs.append(metrics.image_metrics(sr, lr_up, data_range=1.0))
            for metric in ("psnr", "ssim", "mse"):
                a = float(np.mean([o[metric] for o in orig]))
                b = float(np.mean([s[metric] for s in srs]))
                rows.append(
                    {
                        "dataset": dataset_label(str(dataset)),
                        "condition": condition,
                        "method": method.name,
                        "metric": metric.upper(),
                        "Between Original & LR": a,
                        "Between SR & LR": b,
                        "Improvement (%)": (b - a) / a * 100,
                        "differs_from_paper": method.paper_gaps,
                    }
                )
    return pd.DataFrame(rows)


@dataclass(frozen=True)
class ZoomRow:
    """One row of the paper's Fig 8
    (:func:`cxrsr_utils.reporting.image_figures.zoom_comparison`): one image in
    one condition, its tiles (LR nearest-neighbour enlarged, each method's SR, HR; gray floats
    in [0, 1]) and the box that is zoomed, as fractions of the image."""

    dataset: str
    condition: str
    image: str
    tiles: list[tuple[str, np.ndarray]]
    box: tuple[float, float, float]

    @property
    def title(self) -> str:
        """Which image this is: data set, condition and file, one per line."""
        return f"{dataset_label(self.dataset)}\n{condition_label(self.condition)}\n{self.image}"

    @property
    def caption(self) -> str:
        """:attr:`title` on one line."""
        return self.title.replace("\n", " · ")


def zoom_rows(
    pairs: pd.DataFrame,
    methods: list[Method],
    work: StudyLayout | Path,
    params: Params,
) -> list[ZoomRow]:
    """One :class:`ZoomRow` per data set and condition: the first image of the data set, its
    LR of that condition enlarged ``params.scale`` times, each method's written SR output and
    the HR, with the data set's lung-field box of ``params.evaluate.zoom_boxes``."""
    rows = []
    for (dataset, condition), part in pairs.groupby(["dataset", "condition"], sort=True):
        pair = part.iloc[0]
        lr = radiographs.read_radiograph(pair.lr).as_float()
        hr = radiographs.read_radiograph(pair.hr).as_float()
        tiles = [("LR (nearest)", lr.repeat(params.scale, 0).repeat(params.scale, 1))]
        for m in methods:
            sr = sr_path(work, m, str(dataset), pair.image, str(condition))
            tiles.append((m.name, radiographs.read_radiograph(sr).as_float()))
        tiles.append(("HR", hr))
        box = params.evaluate.zoom_boxes[str(dataset)]
        rows.append(ZoomRow(str(dataset), str(condition), pair.image, tiles, box))
    return rows


def zoom_row(rows: Sequence[ZoomRow], dataset: str, condition: str) -> ZoomRow:
    """The row of ``dataset`` in ``condition`` among :func:`zoom_rows`' rows."""
    for row in rows:
        if (row.dataset, row.condition) == (dataset, condition):
            return row
    raise KeyError(f"No zoom row for data set {dataset!r} in condition {condition!r}.")


def zoom_differences(row: ZoomRow) -> list[tuple[str, np.ndarray]]:
    """|SR - HR| of each method in one :func:`zoom_rows` row (its LR and HR tiles left out)."""
    hr = row.tiles[-1][1]
    return [(title, metrics.difference_map(img, hr)) for title, img in row.tiles[1:-1]]
