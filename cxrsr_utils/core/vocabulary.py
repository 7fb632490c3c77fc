"""The study's fixed names: the words its tables, figures and code share for the same things.

Each block below is one family of names; a name is spelled here once, and every module that
writes or recognises it uses these constants and functions. Standard library only, so that any
layer can import them without pulling in a stage.
"""

from __future__ import annotations

# --- Class labels -----------------------------------------------------------------------------
# Kermany pneumonia: the class folders' names, in label order (label 0, 1: the reference CNN's
# order).
KERMANY_CLASSES = ("NORMAL", "PNEUMONIA")

# --- Method names -----------------------------------------------------------------------------
# A *method* is how an SR output was made (``bicubic``, ``pretrained``, ...); a variant
# fine-tuned in notebook 03 is the method ``finetuned:<variant>`` in every table and figure.

FINETUNED_PREFIX = "finetuned:"


def finetuned_method(variant: str) -> str:
    """The method name of the fine-tuned ``variant`` (``finetuned:<variant>``)."""
    return f"{FINETUNED_PREFIX}{variant}"


def is_finetuned(name: str) -> bool:
    """Is the method ``name`` a variant fine-tuned in notebook 03?"""
    return name.startswith(FINETUNED_PREFIX)
