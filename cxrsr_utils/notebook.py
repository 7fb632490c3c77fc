"""The set-up call every notebook of the study starts with.

A notebook's first code cell after its parameters is ``params, paths = notebook.setup(profile,
overrides)``; the next cell shows :func:`cxrsr_utils.reporting.provenance.summary` (the MONAI
tutorials' set-up and provenance cells). Nothing else happens here: what a notebook computes
is in its own cells, so the set-up of all five stays one copy.
"""

from __future__ import annotations

import os
from typing import Any

from cxrsr_utils.core.layout import Paths
from cxrsr_utils.core.params import Params, load_params
from cxrsr_utils.core.repro import seed_everything


def setup(
    profile: str | os.PathLike[str],
    overrides: dict[str, Any] | None = None,
    *,
    tensorflow: bool = False,
) -> tuple[Params, Paths]:
    """Load ``profile`` with ``overrides``, make the run's folders, seed every generator.

    Seeds Python, NumPy and torch from ``params.seed`` (and TensorFlow/Keras, with op
    determinism, when ``tensorflow``: notebook 05's classifier), after the profile is loaded
    and the folders are made, as each notebook did in its own set-up cell; the results depend
    on that random state. Returns ``(params, paths)``.
    """
    params = load_params(profile, overrides)
    paths = Paths(params)
    seed_everything(params.seed, tensorflow=tensorflow)
    return params, paths
