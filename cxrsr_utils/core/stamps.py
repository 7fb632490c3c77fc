"""Is a step already done? One rule for every resumable step of the study.

A step that writes outputs also writes a JSON record of what made them (a stamp): the
settings of data preparation (``data/prepared_with.json``), of the classifier
(``classifier/settings.json``), or a fine-tuned variant's model card. A later run skips the
step when every output exists and the record holds the values it would write now; otherwise
it runs the step again (and the caller decides whether to clear what is there first).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cxrsr_utils.core.atomic import write_text


def _as_json(values: Mapping[str, Any]) -> dict[str, Any]:
    # Compare as JSON sees them: tuples are lists, paths are strings.
    return json.loads(json.dumps(dict(values), default=str))


def done(
    record: str | os.PathLike[str],
    expected: Mapping[str, Any],
    *outputs: str | os.PathLike[str],
) -> dict[str, Any] | None:
    """The record of a finished step, or None when the step must run (again).

    Finished means: every file in ``outputs`` exists, and ``record`` is a JSON object whose
    values for the keys of ``expected`` equal them (other keys of the record are free).
    """
    path = Path(record)
    if not path.is_file() or not all(Path(p).is_file() for p in outputs):
        return None
    try:
        stored = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if not isinstance(stored, dict):
        return None
    wanted = _as_json(expected)
    return stored if all(stored.get(k) == v for k, v in wanted.items()) else None


def write(record: str | os.PathLike[str], values: Mapping[str, Any]) -> Path:
    """Write a stamp (atomically): ``values`` as JSON with sorted keys, once the outputs are
    complete."""
    return write_text(record, json.dumps(dict(values), sort_keys=True, default=str))
