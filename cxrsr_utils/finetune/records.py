"""What a fine-tuning run leaves: its exported model and card, its result, the 2x2 design.

The export writes the EMA generator (the one the validation rule chose,
:mod:`cxrsr_utils.finetune.validation`) and a model card holding the run's identity
(:mod:`cxrsr_utils.finetune.identity`); the card is the run's "done" stamp
(:mod:`cxrsr_utils.core.stamps`): a run whose card and generator match is not trained again.
The card also says what the variant lacks against the paper's protocol
(:mod:`cxrsr_utils.finetune.paper_gaps`), its validation curve and choice, and its seconds per
iteration; cards are read, and the variant chosen on validation picked, in
:mod:`cxrsr_utils.finetune.model_card`.
"""

from __future__ import annotations

import importlib.metadata
import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import torch

from cxrsr_utils.core import stamps
from cxrsr_utils.core.errors import MissingStepError
from cxrsr_utils.external import sources
from cxrsr_utils.finetune.model_card import (
    DiscriminatorRecord,
    GeneratorRecord,
    ModelCard,
    TrainingData,
)
from cxrsr_utils.finetune.paper_gaps import paper_gaps
from cxrsr_utils.finetune.speed import SPEED_OPTION
from cxrsr_utils.finetune.validation import Choice, chosen_weights, log_choice
from cxrsr_utils.reporting import provenance
from cxrsr_utils.sr.networks import save_torch

if TYPE_CHECKING:
    from cxrsr_utils.finetune.logs import DiscriminatorVerdict


@dataclass(frozen=True)
class TrainResult:
    """What a call of :func:`cxrsr_utils.finetune.loop.train` did and wrote."""

    completed: bool
    iterations: int
    total_iter: int
    resumed_from: int | None
    generator_path: str | None
    model_card_path: str | None
    loss_csv: str
    experiments_root: str
    options_sha256: str
    sources: dict[str, Any]
    seconds: float
    seconds_per_iter: float | None
    peak_rss_mb: float
    # From the model card of a finished run (also one found done): the mean seconds per
    # iteration over all its iterations (resumes included), and card["validation"].
    iter_seconds: float | None = None
    validation: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def sources_table(results: Mapping[str, TrainResult]) -> pd.DataFrame:
    """One row per variant: iterations and where the generator, discriminator and VGG19
    came from (a source name, or the note saying what replaced it)."""
    rows = []
    for variant, r in results.items():
        src, notes = r.sources, r.sources.get("notes", {})
        rows.append(
            {
                "variant": variant,
                "iterations": r.iterations,
                "generator init": (src.get("generator") or {}).get("source", "scratch"),
                "discriminator init": (src.get("discriminator") or {}).get("source")
                or notes.get("discriminator", "none"),
                "VGG19": (src.get("vgg19") or {}).get("source") or notes.get("vgg19", "none"),
            }
        )
    return pd.DataFrame(rows)


def runs_table(results: Mapping[str, TrainResult]) -> pd.DataFrame:
    """One row per variant: iterations done of the total, the iteration it resumed from (the
    total for a run found already done, none for one that ran from the start), this call's
    seconds and peak memory (MB), the mean seconds per iteration of the whole run
    (``s_per_iter``, from its model card), and the exported generator: the rule that chose it,
    its iteration and its validation PSNR (dB)."""
    rows = []
    for variant, r in results.items():
        val = r.validation or {}
        psnr = val.get("psnr")
        rows.append(
            {
                "variant": variant,
                "iterations": r.iterations,
                "total_iter": r.total_iter,
                "resumed_from": r.resumed_from,
                "seconds": round(r.seconds),
                "s_per_iter": None if r.iter_seconds is None else round(r.iter_seconds, 2),
                "peak_rss_mb": round(r.peak_rss_mb),
                "chosen_by": val.get("chosen_by"),
                "chosen_iter": val.get("chosen_iter"),
                "val_psnr": None if psnr is None else round(psnr, 3),
            }
        )
    return pd.DataFrame(rows).astype(
        {"resumed_from": "Int64", "chosen_iter": "Int64", "s_per_iter": "Float64"}
    )


def card_summary(card_path: Path) -> dict[str, Any]:
    """What :class:`TrainResult` repeats from a finished run's model card ({} without one):
    its mean seconds per iteration and its validation record (as the card's JSON holds it)."""
    if not Path(card_path).is_file():
        return {}
    card = ModelCard.read(card_path)
    return {"seconds_per_iter": card.seconds_per_iter, "validation": card.validation.to_json()}


def design_table(cards: Mapping[str, ModelCard]) -> pd.DataFrame:
    """The 2x2 design (degradation x loss), one row per trained variant: its cell, start
    (generator source and the first 12 hex digits of its SHA-256), iterations (the run's
    length), the rule and iteration of its exported generator, and what it lacks against the
    paper."""
    rows = []
    for variant, card in cards.items():
        gen = card.sources.get("generator") or {}
        rows.append(
            {
                "variant": variant,
                "degradation": {"realesrgan": "two-stage (blind)", "bicubic": "bicubic x4"}.get(
                    card.degradation, card.degradation
                ),
                "loss": "L1 + GAN" + (" + VGG19" if card.perceptual else "")
                if card.loss == "gan"
                else "L1",
                "start": f"{gen.get('source', 'scratch')} {gen.get('sha256', '')[:12]}".strip(),
                "iterations": card.total_iter,
                "chosen": f"{card.validation.chosen_by} @ {card.validation.chosen_iter}",
                "lacks vs paper": "; ".join(card.paper_gaps) or "nothing",
            }
        )
    return pd.DataFrame(rows)


def check_design(cards: Mapping[str, ModelCard]) -> None:
    """Raise ValueError unless every variant starts from the same generator and trains for the
    same number of iterations (the design compares them at equal budget)."""
    starts = {v: (c.sources.get("generator") or {}).get("sha256") for v, c in cards.items()}
    lengths = {v: c.total_iter for v, c in cards.items()}
    if len(set(starts.values())) > 1 or len(set(lengths.values())) > 1:
        raise ValueError(
            f"The variants do not share one start and length: starts {starts}, "
            f"iterations {lengths}."
        )


def finished(card_path: Path, generator_path: Path, identity: Mapping[str, Any]) -> bool:
    """Is the run already done: its generator and model card (of this version) exist, the card
    holds this identity, and the generator is the one the card names? (The identity's
    options_sha256 covers the run's length, ``train.total_iter``.)"""
    stored = stamps.done(card_path, identity, generator_path)
    if stored is None:
        return False
    try:
        card = ModelCard.from_json(stored)
    except (MissingStepError, ValueError, TypeError, KeyError):
        return False  # a card of an older version: train again, which rewrites it
    return card.generator.sha256 == sources.sha256_file(generator_path)


def exported_network(model: Any) -> torch.nn.Module:
    """The generator a run exports and validates: the EMA generator (the bare generator when
    ``ema_decay`` is 0)."""
    if getattr(model, "net_g_ema", None) is not None:
        return model.net_g_ema
    return model.get_bare_model(model.net_g)


def export(
    model: Any,
    opt: Mapping[str, Any],
    generator_path: Path,
    card_path: Path,
    identity: Mapping[str, Any],
    start_iter: int,
    logger: logging.Logger,
    choice: Choice | None = None,
) -> None:
    """Save the chosen EMA generator (params_ema) of a trained
    :class:`~cxrsr_utils.finetune.model.CxrRealESRGANModel` and the model card, each
    atomically. ``choice`` (:meth:`~cxrsr_utils.finetune.validation.Validator.choice`) names
    the generator; None: the last, not validated."""
    # Here, not at the top: finetune_logs imports basicsr, which readers of cards do not need.
    from cxrsr_utils.finetune.logs import discriminator_verdict, loss_log

    total = int(opt["train"]["total_iter"])
    choice = choice or Choice("last", total, None, None)
    save_torch(chosen_weights(choice, exported_network(model)), generator_path)
    log = loss_log(Path(opt["path"]["experiments_root"]))
    verdict = discriminator_verdict(log) if opt["cxrsr"]["loss"] == "gan" else None
    card = _card(opt, identity, choice, verdict, log, generator_path, start_iter)
    provenance.write_json(card_path, card.to_json())
    log_choice(choice, logger)
    logger.info(f"Saved the EMA generator to {generator_path} and the model card to {card_path}.")


def _card(
    opt: Mapping[str, Any],
    identity: Mapping[str, Any],
    choice: Choice,
    verdict: DiscriminatorVerdict | None,
    log: pd.DataFrame,
    generator_path: Path,
    start_iter: int,
) -> ModelCard:
    """The model card of a run of ``opt`` that exports ``choice``'s generator."""
    cx = opt["cxrsr"]
    return ModelCard(
        model=opt["name"],
        architecture=opt["network_g"],
        variant=cx["variant"],
        degradation=cx["degradation"],
        loss=cx["loss"],
        perceptual="perceptual_opt" in opt["train"],
        paper_gaps=tuple(paper_gaps(opt, verdict)),
        discriminator=_discriminator_record(verdict),
        validation=choice.record(),
        options_sha256=identity["options_sha256"],
        params_sha256=identity["params_sha256"],
        data_manifest_sha256=identity["data_manifest_sha256"],
        validation_sha256=identity["validation_sha256"],
        iterations=choice.iteration,  # the exported generator's (the rule's choice)
        total_iter=int(opt["train"]["total_iter"]),
        batch_size=cx["batch_size"],
        gt_size=opt["gt_size"],
        world_size=opt["world_size"],
        device=cx["device"],
        autocast=cx.get("autocast"),
        ema_decay=opt["train"]["ema_decay"],
        # Over every iteration of the loss log (a resumed run's too; D warm-up included).
        seconds_per_iter=float(log["time_s"].mean()) if len(log) else None,
        sources=cx["sources"],
        training_data=TrainingData(cx["n_images"], cx["meta_info_sha256"]),
        generator=_generator_record(opt, choice, generator_path),
        resumed_from=start_iter or None,
        software=_software(),
        # The speed switches that were on (a card of a run with none has no such key).
        speed=cx[SPEED_OPTION] if cx.get(SPEED_OPTION) else None,
    )


def _discriminator_record(verdict: DiscriminatorVerdict | None) -> DiscriminatorRecord | None:
    """``card.discriminator``: did it learn (None without a discriminator)."""
    if verdict is None:
        return None
    return DiscriminatorRecord(verdict.text, verdict.at_chance, verdict.balanced_accuracy)


def _generator_record(
    opt: Mapping[str, Any], choice: Choice, generator_path: Path
) -> GeneratorRecord:
    """``card.generator``: the exported file, its hash, and which weights it holds."""
    ema = opt["train"]["ema_decay"] > 0
    weights = "EMA of the generator (decay ema_decay)" if ema else "generator (no EMA)"
    return GeneratorRecord(
        path=str(generator_path),
        sha256=sources.sha256_file(generator_path),
        param_key="params_ema",
        weights=weights + f" at iteration {choice.iteration} ({choice.rule})",
        iteration=choice.iteration,
    )


def _software() -> dict[str, str]:
    """The versions of the training stack (``card["software"]``)."""
    return {
        "torch": torch.__version__,
        "basicsr": importlib.metadata.version("basicsr"),
        "realesrgan": importlib.metadata.version("realesrgan"),
        "cxrsr": importlib.metadata.version("cxrsr"),
    }
