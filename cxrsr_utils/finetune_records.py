"""What a fine-tuning run is and leaves: its identity, its exported model, its result.

A run is identified by the SHA-256 of its recipe
(:func:`cxrsr_utils.finetune_options.options_digest`) with the hashes of the study's params and
data manifest. Checkpoints carry that identity (``run_identity.json``) so a different recipe
is never resumed from them; the export writes the EMA generator and a model card holding it,
and the card is the run's "done" stamp (:mod:`cxrsr_utils.stamps`): a run whose card and
generator match is not trained again.
"""

from __future__ import annotations

import importlib.metadata
import json
import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from cxrsr_utils import checkpoints, provenance, sources, stamps
from cxrsr_utils.atomic import write_text
from cxrsr_utils.finetune_speed import SPEED_OPTION
from cxrsr_utils.models import save_torch

RUN_IDENTITY = "run_identity.json"


@dataclass(frozen=True)
class TrainResult:
    """What a call of :func:`cxrsr_utils.finetune_loop.train` did and wrote."""

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
    total for a run found already done, none for one that ran from the start), its seconds
    and peak memory (MB)."""
    return pd.DataFrame(
        [
            {
                "variant": variant,
                "iterations": r.iterations,
                "total_iter": r.total_iter,
                "resumed_from": r.resumed_from,
                "seconds": round(r.seconds),
                "peak_rss_mb": round(r.peak_rss_mb),
            }
            for variant, r in results.items()
        ]
    ).astype({"resumed_from": "Int64"})


def finished(card_path: Path, generator_path: Path, identity: Mapping[str, Any]) -> bool:
    """Is the run already done: its generator and model card exist, the card holds this
    identity and all its iterations, and the generator is the one the card names?"""
    card = stamps.done(card_path, identity, generator_path)
    return (
        card is not None
        and card.get("iterations") == card.get("total_iter")
        and card.get("generator", {}).get("sha256") == sources.sha256_file(generator_path)
    )


def check_identity(
    path: Path, identity: Mapping[str, Any], has_checkpoints: bool, rank: int
) -> None:
    """Refuse to resume checkpoints of a different recipe, data or params."""
    if has_checkpoints and path.is_file():
        stored = json.loads(path.read_text())
        if stored != dict(identity):
            diff = [k for k in identity if stored.get(k) != identity[k]]
            raise RuntimeError(
                f"{path.parent} holds checkpoints of a different run ({', '.join(diff)} differ). "
                "Delete that folder to start over, or give this run another experiments_root."
            )
    elif rank == 0:
        write_text(path, json.dumps(dict(identity), indent=1))


def export(
    model: Any,
    opt: Mapping[str, Any],
    generator_path: Path,
    card_path: Path,
    identity: Mapping[str, Any],
    start_iter: int,
    logger: logging.Logger,
) -> None:
    """Save the EMA generator (params_ema) of a trained
    :class:`~cxrsr_utils.finetune_model.CxrRealESRGANModel` and the model card, each
    atomically."""
    net = (
        model.net_g_ema
        if getattr(model, "net_g_ema", None) is not None
        else (model.get_bare_model(model.net_g))
    )
    save_torch(checkpoints.network_dict([net], ["params_ema"]), generator_path)
    cx = opt["cxrsr"]
    card = {
        "model": opt["name"],
        "architecture": opt["network_g"],
        "variant": cx["variant"],
        "degradation": cx["degradation"],
        "loss": cx["loss"],
        **identity,
        "iterations": int(opt["train"]["total_iter"]),
        "total_iter": int(opt["train"]["total_iter"]),
        "batch_size": cx["batch_size"],
        "gt_size": opt["gt_size"],
        "world_size": opt["world_size"],
        "device": cx["device"],
        "autocast": cx.get("autocast"),
        # The speed switches that were on (a card of a run with none stays as it was).
        **({SPEED_OPTION: cx[SPEED_OPTION]} if cx.get(SPEED_OPTION) else {}),
        "ema_decay": opt["train"]["ema_decay"],
        "sources": cx["sources"],
        "training_data": {"n_images": cx["n_images"], "meta_info_sha256": cx["meta_info_sha256"]},
        "generator": {
            "path": str(generator_path),
            "sha256": sources.sha256_file(generator_path),
            "param_key": "params_ema",
            "weights": "EMA of the generator (decay ema_decay)"
            if opt["train"]["ema_decay"] > 0
            else "generator (no EMA)",
        },
        "resumed_from": start_iter or None,
        "software": {
            "torch": torch.__version__,
            "basicsr": importlib.metadata.version("basicsr"),
            "realesrgan": importlib.metadata.version("realesrgan"),
            "cxrsr": importlib.metadata.version("cxrsr"),
        },
    }
    provenance.write_json(card_path, card)
    logger.info(f"Saved the EMA generator to {generator_path} and the model card to {card_path}.")
