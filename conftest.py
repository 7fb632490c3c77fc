"""Test-session set-up shared by ``tests/`` and the nbval run over ``notebooks/``.

Caches (matplotlib, Keras, torch, cxrsr's own) live in the project's ``.cache/`` folder, never
the user's home, and every result a notebook writes under nbval goes to a scratch output root
so a test run never overwrites the committed figures and tables.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    import numpy as np

ROOT = Path(__file__).resolve().parent
CACHE = ROOT / ".cache"

for var, sub in (
    ("MPLCONFIGDIR", "matplotlib"),
    ("KERAS_HOME", "keras"),
    ("TORCH_HOME", "torch"),
    ("CXRSR_CACHE", "cxrsr"),
):
    os.environ[var] = str(CACHE / sub)
    (CACHE / sub).mkdir(parents=True, exist_ok=True)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Spinning OpenMP threads make torch up to 1000x slower when the 2 cores are shared (nbval's
# kernel beside pytest); must be set before torch is imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("MPLBACKEND", "Agg")

_default_mirror = ROOT.parent / "shared" / "mirror"
if "CXRSR_MIRROR" not in os.environ and _default_mirror.is_dir():
    os.environ["CXRSR_MIRROR"] = str(_default_mirror)


def pytest_configure(config: pytest.Config) -> None:
    if "CXRSR_OUTPUT_ROOT" not in os.environ:
        os.environ["CXRSR_OUTPUT_ROOT"] = tempfile.mkdtemp(prefix="cxrsr-test-output-")


@pytest.fixture(scope="session")
def mirror() -> Path:
    """The offline mirror (``$CXRSR_MIRROR`` or ``../shared/mirror``); skips if absent."""
    env = os.environ.get("CXRSR_MIRROR")
    path = Path(env) if env else _default_mirror
    if not (path / "data").is_dir():
        pytest.skip(f"offline mirror not found at {path} (set CXRSR_MIRROR); CI always has it")
    return path


@pytest.fixture(scope="session")
def nih_images(mirror: Path) -> list[Path]:
    """The mirror's NIH PNGs, sorted."""
    return sorted((mirror / "data" / "nih-sample" / "images").glob("*.png"))


@pytest.fixture(scope="session")
def kermany_root(mirror: Path) -> Path:
    """The mirror's Kermany folder (``chest_xray``)."""
    return mirror / "data" / "chest_xray"


@pytest.fixture(scope="session")
def hr_image(nih_images: list[Path]) -> np.ndarray:
    """A real NIH radiograph as gray float in [0, 1], shrunk to 96 x 96 (8-bit levels)."""
    import numpy as np

    from cxrsr_utils.images.radiographs import read_radiograph
    from cxrsr_utils.images.radiographs import resize as pil_resize

    image = pil_resize(read_radiograph(nih_images[0]).as_float(), (96, 96))
    return np.clip(np.rint(image * 255), 0, 255).astype(np.float32) / 255
