"""Fine-tuning Real-ESRGAN on chest X-rays: notebook 03's entry and the one torchrun starts.

The fine-tuning goes through realesrgan/basicsr's own training pieces; its parts are:

- :mod:`cxrsr_utils.finetune.start_weights`  the initial weights a run needs (or what replaces them)
- :mod:`cxrsr_utils.finetune.options`  basicsr's option dict from ``params.finetune``
  (its sections: :mod:`~cxrsr_utils.finetune.option_sections`; as a file:
  :mod:`~cxrsr_utils.finetune.option_files`)
- :mod:`cxrsr_utils.finetune.identity` the recipe's digest and the run identity
- :mod:`cxrsr_utils.finetune.torchrun` several processes: their options, the torchrun command
- :mod:`cxrsr_utils.finetune.model`    the training model (realesrgan's, device-agnostic)
- :mod:`cxrsr_utils.finetune.loop`     :func:`train`: run, resume, checkpoint
  (resuming inside an epoch: :mod:`~cxrsr_utils.finetune.resume`; processes:
  :mod:`~cxrsr_utils.finetune.processes`)
- :mod:`cxrsr_utils.finetune.logs`     train.log, TensorBoard, the loss CSV
- :mod:`cxrsr_utils.finetune.records`  model card, results, the 2x2 design
- :mod:`cxrsr_utils.finetune.model_card`  reading the cards, the variant chosen on validation
- :mod:`cxrsr_utils.finetune.paper_gaps`  what a variant lacks against the paper

- :mod:`cxrsr_utils.finetune.validation`  validation during training, the checkpoint choice

Here: :func:`profile_options`, :func:`train_variant` and :func:`train_variants` (the variants of
a profile, in the run's :class:`~cxrsr_utils.core.layout.StudyLayout`), :func:`save_model_cards`,
:func:`design`, :func:`save_loss_logs`, :func:`discriminator_table`,
:func:`save_validation_curves`, :func:`validation_references`, :func:`chosen_variant` and
:func:`variant_torchrun_command`: the calls notebook 03 makes; and
``python -m cxrsr_utils.finetune.steps --opt options.yml ...`` (:func:`main`), the command of
:func:`torchrun_command`.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from cxrsr_utils.core.errors import MissingStepError
from cxrsr_utils.core.layout import EVAL_CONDITIONS, StudyLayout, as_layout
from cxrsr_utils.core.params import Params
from cxrsr_utils.finetune.inference_settings import VALIDATION_INFER_KEYS, infer_settings
from cxrsr_utils.finetune.logs import discriminator_verdict, loss_log
from cxrsr_utils.finetune.loop import train
from cxrsr_utils.finetune.model_card import ModelCard, chosen_variant
from cxrsr_utils.finetune.option_files import read_options
from cxrsr_utils.finetune.options import build_options
from cxrsr_utils.finetune.records import (
    TrainResult,
    check_design,
    design_table,
    runs_table,
    sources_table,
)
from cxrsr_utils.finetune.torchrun import torchrun_command
from cxrsr_utils.finetune.validation import log_table, reference_psnr, validation_options
from cxrsr_utils.reporting import files as report
from cxrsr_utils.reporting import provenance

__all__ = [
    "TrainResult",
    "build_options",
    "chosen_variant",
    "design",
    "discriminator_table",
    "loss_log",
    "main",
    "profile_options",
    "profile_validation",
    "runs_table",
    "save_loss_logs",
    "save_model_cards",
    "save_validation_curves",
    "sources_table",
    "torchrun_command",
    "train",
    "train_variant",
    "train_variants",
    "validation_references",
    "variant_torchrun_command",
]

# A run: its layout (or Paths), or its folder work/<profile>.
Layout = StudyLayout | str | os.PathLike[str]


def profile_options(params: Params, work: Layout, variant: str) -> dict[str, Any]:
    """basicsr options for ``variant`` from a :class:`cxrsr_utils.core.params.Params` profile.

    The fine-tune set is notebook 01's (``work/data/nih/finetune`` with its
    ``meta_info.txt``); the variant trains into ``work/finetune/<variant>/experiment``. It is
    validated on notebook 01's NIH validation pairs (their bicubic LR, for every variant) with
    notebook 04's inference settings (``params.evaluate``), every ``finetune.val_freq``
    iterations, and exports the generator ``finetune.checkpoint`` chooses.
    """
    layout = as_layout(work)
    if not layout.meta_info.is_file():
        raise MissingStepError(
            f"{layout.meta_info} is missing: run notebook 01 (data preparation) first."
        )
    return build_options(
        params.finetune,
        name=f"{params.profile}_{variant}",
        dataroot_gt=layout.nih_finetune,
        meta_info=layout.meta_info,
        experiments_root=layout.experiment(variant),
        variant=variant,
        seed=params.seed,
        device=params.device,
        degradation=params.degradation.model_dump(mode="json"),
        validation=profile_validation(params, layout),
    )


def profile_validation(params: Params, work: Layout) -> dict[str, Any]:
    """The validation settings of a profile's variants: the run's NIH validation pairs (HR and
    bicubic LR; the first ``finetune.val_images`` by name, or all), ``finetune.val_freq`` and
    ``finetune.checkpoint``, and notebook 04's inference settings (``params.evaluate``)."""
    layout = as_layout(work)
    return validation_options(
        layout.pair_folder("nih_val", "hr"),
        layout.pair_folder("nih_val", EVAL_CONDITIONS["bicubic"]),
        freq=params.finetune.val_freq,
        checkpoint=params.finetune.checkpoint,
        infer_options=infer_settings(params.evaluate, VALIDATION_INFER_KEYS),
        max_images=params.finetune.val_images,
    )


def _run_files(
    params: Params, layout: StudyLayout, variant: str, data_manifest_hash: str | None
) -> dict[str, Any]:
    # Where a variant's run exports to, and the hashes its model card records.
    return {
        "generator_path": layout.generator(variant),
        "model_card_path": layout.model_card(variant),
        "params_hash": params.digest(),
        "data_manifest_hash": data_manifest_hash,
    }


def train_variant(
    params: Params, work: Layout, variant: str, *, data_manifest_hash: str | None
) -> TrainResult:
    """Train (or resume, or recognise as done) one variant of the profile; see :func:`train`.

    Writes ``work/finetune/<variant>/generator.pth`` and ``model_card.json``.
    """
    layout = as_layout(work)
    return train(
        profile_options(params, layout, variant),
        **_run_files(params, layout, variant, data_manifest_hash),
    )


def train_variants(
    params: Params, work: Layout, *, data_manifest_hash: str | None
) -> dict[str, TrainResult]:
    """:func:`train_variant` for each of ``params.finetune.variants``, one after the other in
    the profile's order; returns {variant: its result} (:func:`runs_table` shows them)."""
    return {
        variant: train_variant(params, work, variant, data_manifest_hash=data_manifest_hash)
        for variant in params.finetune.variants
    }


def save_model_cards(results: Mapping[str, TrainResult], work: Layout) -> list[Path]:
    """Copy each variant's model card into the run's reports (``reports/model_cards/``, paths
    in it made portable by :func:`cxrsr_utils.reporting.provenance.write_json`); returns the
    copies."""
    folder = as_layout(work).model_cards
    copies = []
    for variant, r in results.items():
        if r.model_card_path is None:
            raise ValueError(f"Variant {variant!r} has no model card: its training did not finish.")
        card = ModelCard.read(r.model_card_path)
        copies.append(provenance.write_json(folder / f"{variant}.json", card.to_json()))
    return copies


def save_loss_logs(results: Mapping[str, TrainResult], work: Layout) -> dict[str, pd.DataFrame]:
    """Each variant's loss log (:func:`loss_log`) saved as the table ``03_loss_log_<variant>``
    of the run; returns {variant: its log}, for
    :func:`cxrsr_utils.reporting.training_figures.loss_curves`."""
    tables = as_layout(work).tables
    logs = {v: loss_log(r.experiments_root) for v, r in results.items()}
    for v, log in logs.items():
        report.save_table(log, tables, f"03_loss_log_{v}", markdown=False)
    return logs


def _cards(results: Mapping[str, TrainResult]) -> dict[str, ModelCard]:
    cards = {}
    for variant, r in results.items():
        if r.model_card_path is None:
            raise ValueError(f"Variant {variant!r} has no model card: its training did not finish.")
        cards[variant] = ModelCard.read(r.model_card_path)
    return cards


def design(results: Mapping[str, TrainResult]) -> pd.DataFrame:
    """The trained variants as cells of the 2x2 design (degradation x loss), with what each
    lacks against the paper (:func:`~cxrsr_utils.finetune.records.design_table`); raises
    ValueError unless they share one start and one number of iterations."""
    cards = _cards(results)
    check_design(cards)
    return design_table(cards)


def discriminator_table(logs: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Per variant with a discriminator: did it learn or stay at chance, from its loss log
    (:func:`~cxrsr_utils.finetune.logs.discriminator_verdict`)."""
    rows = []
    for variant, log in logs.items():
        verdict = discriminator_verdict(log)
        if verdict.at_chance is None:
            continue
        rows.append(
            {
                "variant": variant,
                "at_chance": verdict.at_chance,
                "balanced_accuracy": round(verdict.balanced_accuracy or 0.0, 3),
                "acc_real": round(verdict.accuracy_real or 0.0, 3),
                "acc_fake": round(verdict.accuracy_fake or 0.0, 3),
                "iterations": f"{verdict.first}-{verdict.last}",
                "verdict": verdict.text,
            }
        )
    columns = ["variant", "at_chance", "balanced_accuracy", "acc_real", "acc_fake"]
    return pd.DataFrame(rows, columns=[*columns, "iterations", "verdict"])


def save_validation_curves(results: Mapping[str, TrainResult], work: Layout) -> pd.DataFrame:
    """Every variant's validation curve in one table (variant, iter, val_psnr in dB, seconds
    of the validation pass, elapsed_s of training before it), saved as
    ``03_validation_curve``; computed on the validation split only."""
    parts = [log_table(r.experiments_root).assign(variant=v) for v, r in results.items()]
    columns = ["variant", "iter", "val_psnr", "seconds", "elapsed_s"]
    curve = pd.concat([p[columns] for p in parts if len(p)], ignore_index=True)
    report.save_table(curve, as_layout(work).tables, "03_validation_curve")
    return curve


def validation_references(params: Params, work: Layout) -> pd.DataFrame:
    """Validation PSNR (dB) of bicubic, Lanczos and the pretrained x4plus (every variant's
    start) on the same validation pairs, scored as the variants are; saved as
    ``03_validation_references``."""
    from cxrsr_utils.core.device import torch_device

    scores = reference_psnr(profile_validation(params, work), torch_device(params.device))
    table = pd.DataFrame({"method": list(scores), "val_psnr": list(scores.values())})
    report.save_table(table, as_layout(work).tables, "03_validation_references")
    return table


def variant_torchrun_command(
    params: Params, work: Layout, variant: str, *, data_manifest_hash: str | None
) -> list[str]:
    """The command that trains ``variant`` as :func:`train_variant` does, on
    ``params.finetune.gpus`` processes with torchrun (:func:`torchrun_command`; its options
    file is written beside the variant's run)."""
    layout = as_layout(work)
    cmd, _ = torchrun_command(
        profile_options(params, layout, variant),
        nproc=params.finetune.gpus,
        opt_path=layout.torchrun_options(variant),
        **_run_files(params, layout, variant, data_manifest_hash),
    )
    return cmd


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m cxrsr_utils.finetune.steps --opt options.yml ...``: the entry torchrun starts."""
    parser = argparse.ArgumentParser(description="Fine-tune Real-ESRGAN (cxrsr options file).")
    parser.add_argument("--opt", required=True, help="options YAML from torchrun_command()")
    parser.add_argument("--generator-path", required=True)
    parser.add_argument("--model-card", required=True)
    parser.add_argument("--params-hash")
    parser.add_argument("--data-manifest-hash")
    parser.add_argument("--stop-after", type=int)
    args = parser.parse_args(argv)
    result = train(
        read_options(args.opt),
        generator_path=args.generator_path,
        model_card_path=args.model_card,
        params_hash=args.params_hash,
        data_manifest_hash=args.data_manifest_hash,
        stop_after=args.stop_after,
    )
    return 0 if result.completed or args.stop_after else 1


if __name__ == "__main__":
    sys.exit(main())
