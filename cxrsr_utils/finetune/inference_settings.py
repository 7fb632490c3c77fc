"""The inference settings every network of the study runs with: notebook 04's, from the profile.

``params.evaluate`` holds them. Notebook 04 runs every method with
:func:`evaluate_infer_options`; validation during fine-tuning scores the generator the same
way, with the settings of :data:`VALIDATION_INFER_KEYS` stored in the run's options
(:func:`infer_settings`) and :func:`infer_options` on the training device. Here, below
``evaluation``, so that fine-tuning and evaluation build them in one place.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from cxrsr_utils.core.device import torch_device
from cxrsr_utils.core.params import EvaluateParams, Params
from cxrsr_utils.sr import infer

# The settings a validation pass stores in the run's options (and so in its identity).
VALIDATION_INFER_KEYS = ("tile", "tile_pad", "pre_pad", "batch_size", "precision")
# Notebook 04's: the validation ones and channels_last (a speed switch of the evaluation).
EVALUATE_INFER_KEYS = (*VALIDATION_INFER_KEYS, "channels_last")


def infer_settings(ev: EvaluateParams, keys: Sequence[str] = EVALUATE_INFER_KEYS) -> dict[str, Any]:
    """The profile's inference settings ``keys`` (fields of ``params.evaluate``), by name."""
    return {k: getattr(ev, k) for k in keys}


def infer_options(settings: Mapping[str, Any], device: str, **fixed: Any) -> infer.InferOptions:
    """:class:`~cxrsr_utils.sr.infer.InferOptions` of ``settings`` on ``device``, without a
    progress bar; ``fixed`` sets other fields (e.g. ``backend``)."""
    return infer.InferOptions(**settings, device=device, progress=False, **fixed)


def evaluate_infer_options(params: Params) -> infer.InferOptions:
    """``params.evaluate``'s inference settings on ``params.device``: how notebook 04 runs
    every network."""
    return infer_options(infer_settings(params.evaluate), torch_device(params.device))
