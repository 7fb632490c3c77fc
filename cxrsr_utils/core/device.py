"""Which torch device the study runs on: the profile's ``device`` (``auto``, ``cpu`` or
``cuda``) resolved against what torch sees."""

from __future__ import annotations


def torch_device(requested: str = "auto") -> str:
    """``cuda`` when asked for (or ``auto`` and available), else ``cpu``."""
    import torch

    if requested == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(
            "The profile asks for device 'cuda' but torch sees no GPU. Use the quick profile "
            "or set device: cpu (or auto) in the profile's overrides."
        )
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return requested
