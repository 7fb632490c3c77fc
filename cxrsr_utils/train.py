"""Fine-tuning Real-ESRGAN on chest X-rays: notebook 03's entry and the one torchrun starts.

The fine-tuning goes through realesrgan/basicsr's own training pieces; its parts are:

- :mod:`cxrsr_utils.finetune_sources`  the initial weights a run needs (or what replaces them)
- :mod:`cxrsr_utils.finetune_options`  basicsr's option dict from ``params.finetune``,
  its digest, the torchrun command
- :mod:`cxrsr_utils.finetune_model`    the training model (realesrgan's, device-agnostic)
- :mod:`cxrsr_utils.finetune_loop`     :func:`train`: run, resume, checkpoint
- :mod:`cxrsr_utils.finetune_logs`     train.log, TensorBoard, the loss CSV
- :mod:`cxrsr_utils.finetune_records`  model card, run identity, results

Here: :func:`profile_options` and :func:`train_variant` (one variant of a profile, in the
run's :class:`~cxrsr_utils.layout.StudyLayout`), the names notebook 03 uses, and
``python -m cxrsr_utils.train --opt options.yml ...`` (:func:`main`), the command of
:func:`torchrun_command`.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any

from cxrsr_utils.finetune_logs import loss_log
from cxrsr_utils.finetune_loop import train
from cxrsr_utils.finetune_options import build_options, read_options, torchrun_command
from cxrsr_utils.finetune_records import TrainResult, sources_table
from cxrsr_utils.layout import StudyLayout, as_layout

__all__ = [
    "TrainResult",
    "build_options",
    "loss_log",
    "main",
    "profile_options",
    "sources_table",
    "torchrun_command",
    "train",
    "train_variant",
]


def profile_options(
    params: Any, work: StudyLayout | str | os.PathLike[str], variant: str
) -> dict[str, Any]:
    """basicsr options for ``variant`` from a :class:`cxrsr_utils.params.Params` profile.

    The fine-tune set is notebook 01's (``work/data/nih/finetune`` with its
    ``meta_info.txt``); the variant trains into ``work/finetune/<variant>/experiment``.
    """
    layout = as_layout(work)
    if not layout.meta_info.is_file():
        raise FileNotFoundError(
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
    )


def train_variant(
    params: Any,
    work: StudyLayout | str | os.PathLike[str],
    variant: str,
    *,
    data_manifest_hash: str | None,
) -> TrainResult:
    """Train (or resume, or recognise as done) one variant of the profile; see :func:`train`.

    Writes ``work/finetune/<variant>/generator.pth`` and ``model_card.json``.
    """
    layout = as_layout(work)
    return train(
        profile_options(params, layout, variant),
        generator_path=layout.generator(variant),
        model_card_path=layout.model_card(variant),
        params_hash=params.digest(),
        data_manifest_hash=data_manifest_hash,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m cxrsr_utils.train --opt options.yml ...``: the entry torchrun starts."""
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
