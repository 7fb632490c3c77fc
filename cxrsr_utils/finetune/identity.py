"""A fine-tuning run's identity: what it trains, with which params, data and validation.

:func:`options_digest` names a recipe independently of paths and process layout (a fine-tune
folder's identity); :func:`run_identity` adds the hashes of the study's params and data
manifest and of the validation settings (which generator is exported). Checkpoints carry that
identity (:data:`RUN_IDENTITY`, :func:`check_identity`), so a different recipe is never resumed
from them, and the model card holds it, so a finished run is not trained again.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cxrsr_utils.core.atomic import write_text
from cxrsr_utils.finetune.speed import SPEED_OPTION
from cxrsr_utils.finetune.validation import VALIDATION_OPTION, validation_digest

RUN_IDENTITY = "run_identity.json"

# Options that say where and how a run executes, not what it trains (see options_digest).
_MACHINE_KEYS = (
    "path",
    "logger",
    "launcher",
    "dist_params",
    "num_gpu",
    "dist",
    "rank",
    "world_size",
    "root_path",
    "auto_resume",
)


def options_digest(opt: Mapping[str, Any]) -> str:
    """SHA-256 of the training recipe: the options without paths, logging and process layout.

    Two runs with the same digest train the same thing (same data list, networks, losses,
    degradation, schedule, seed), wherever their files are, however many processes run and
    whichever speed switches are on.
    """
    recipe = {k: copy.deepcopy(v) for k, v in opt.items() if k not in _MACHINE_KEYS}
    # The speed switches change how fast a step runs, not what it trains (like the number of
    # data-loader workers below): a run keeps its identity, and its checkpoints, with them
    # toggled. (Absent when off, so they could not change old digests either way.)
    recipe.get("cxrsr", {}).pop(SPEED_OPTION, None)
    # Validation reads the weights and changes neither them nor any random state: the same
    # recipe trains the same weights with or without it. Which generator it exports is in the
    # run identity instead (finetune_validation.validation_digest).
    recipe.get("cxrsr", {}).pop(VALIDATION_OPTION, None)
    train_set = recipe.get("datasets", {}).get("train", {})
    for key in ("dataroot_gt", "meta_info", "num_worker_per_gpu", "batch_size_per_gpu"):
        train_set.pop(key, None)
    for info in recipe.get("cxrsr", {}).get("sources", {}).values():
        if isinstance(info, dict):
            # The weights are identified by their SHA-256; where they lie and how they were
            # found (a note may quote a failed download) do not change what is trained.
            info.pop("path", None)
            info.pop("note", None)
    blob = json.dumps(recipe, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()


def run_identity(
    opt: Mapping[str, Any], params_hash: str | None, data_manifest_hash: str | None
) -> dict[str, Any]:
    """The identity of a run of ``opt``: its recipe, the study's params and data manifest, and
    which pairs and rule choose the exported generator (None: not validated)."""
    return {
        "options_sha256": options_digest(opt),
        "params_sha256": params_hash,
        "data_manifest_sha256": data_manifest_hash,
        "validation_sha256": validation_digest(opt),
    }


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
