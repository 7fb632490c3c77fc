"""Which checkout the study runs in: the project root and its profiles folder.

Found once, at import, before anything reads a profile: :mod:`cxrsr_utils.core.params` loads
profiles from :data:`PARAMS_DIR`, and :mod:`cxrsr_utils.core.layout` puts run folders under
:data:`PROJECT_ROOT`. It lives apart from both so that neither imports the other's module for it.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV_ROOT = "CXRSR_ROOT"


def is_checkout(folder: Path) -> bool:
    """Whether ``folder`` is a study checkout: it holds the profiles and the notebooks."""
    return (folder / "params").is_dir() and (folder / "notebooks").is_dir()


def find_project_root(package: Path | None = None, cwd: Path | None = None) -> Path:
    """The study checkout whose profiles, notebooks and ``work/`` the study uses.

    ``$CXRSR_ROOT`` if set; else the folder above the package when that is a checkout (an
    editable install, or the package imported from the checkout); else the nearest checkout at
    or above the working folder (``pip install .`` copies only the package into
    site-packages, and the notebooks run from the checkout's ``notebooks/``). Installed
    without any checkout (``cxrsr upscale`` alone) it is the folder above the package.
    """
    env = os.environ.get(ENV_ROOT)
    if env:
        return Path(env).expanduser().resolve()
    # This file is cxrsr_utils/core/project.py: the package is two folders up.
    above_package = (package or Path(__file__).resolve().parents[1]).parent
    if is_checkout(above_package):
        return above_package
    here = (cwd or Path.cwd()).resolve()
    return next((f for f in (here, *here.parents) if is_checkout(f)), above_package)


PROJECT_ROOT = find_project_root()
PARAMS_DIR = PROJECT_ROOT / "params"
