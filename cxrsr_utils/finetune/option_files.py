"""A fine-tuning run's options as a file: YAML for basicsr-style records and torchrun."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from cxrsr_utils.core.atomic import write_text


def write_options(opt: Mapping[str, Any], path: str | os.PathLike[str]) -> Path:
    """Write an option dict as YAML (atomically), for basicsr-style records and torchrun."""
    return write_text(path, yaml.safe_dump(_plain(opt), sort_keys=False))


def read_options(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read an option file written by :func:`write_options`."""
    with open(path) as f:
        return yaml.safe_load(f)


def _plain(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, tuple | list):
        return [_plain(v) for v in obj]
    return obj
