"""Set a notebook's Python up for this checkout: Colab's recipe, in one place.

Colab (Python 3.12, a GPU runtime and its own torch) starts every notebook in a fresh runtime
without the package. Each notebook's first code cell therefore runs this file by path, on Colab
only (``runpy.run_path("/content/cxrsr/cxrsr_utils/colab.py", run_name="__main__")``), before
anything imports the package:

1. install the checkout this file sits in into the running Python, with ``pip install
   <checkout>`` from the package's ranges: torch, torchvision, numpy and TensorFlow already in
   range are kept (a regular install, not ``-e``: a running kernel cannot import an editable
   install made after it started);
2. ``CXRSR_ROOT`` names the checkout, so the study finds its profiles, notebooks and ``work/``
   although the package now lives in site-packages;
3. the data: ``CXRSR_MIRROR`` is kept when set, else the first of :data:`MIRRORS` that holds a
   ``data/`` folder (Google Drive mounted at ``/content/drive``); without one, weights are
   downloaded from their official URLs (SHA-256 checked) and the radiographs must be put under
   the profile's data folders (docs/install.md, "Colab").

Only the standard library is used: this runs before any dependency is installed.
``tests/compat/py312.sh`` (``make test-compat``) runs this same file in a fresh Python 3.12 venv
with torch 2.11 preinstalled, then the fast tests and notebook 01.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import subprocess
import sys
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[1]
# Where a Colab user keeps the offline mirror (a copy of ../shared/mirror): Drive first.
MIRRORS = (
    Path("/content/drive/MyDrive/cxrsr-mirror"),
    Path("/content/cxrsr-mirror"),
    CHECKOUT.parent / "shared" / "mirror",
)
KEPT = ("torch", "torchvision", "numpy", "tensorflow")  # what Colab brings and must keep


def installed(name: str) -> str | None:
    """The installed version of distribution ``name``, or None."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def install(checkout: Path = CHECKOUT, quiet: bool = True) -> None:
    """``pip install <checkout>`` into this Python unless this checkout's package is there."""
    version = installed("cxrsr")
    if version is not None:
        print(f"cxrsr {version} is installed in {sys.prefix}")
        return
    command = [sys.executable, "-m", "pip", "install", *(["--quiet"] * quiet), str(checkout)]
    print("Installing the study:", " ".join(command[2:]), flush=True)
    subprocess.run(command, check=True)
    importlib.invalidate_caches()  # the new package is importable in this kernel now


def find_mirror() -> Path | None:
    """``$CXRSR_MIRROR`` when set, else the first of :data:`MIRRORS` that has ``data/``.
    (``sources.mirror_dir`` reads the variable for the study; this file cannot import the
    package, which may not be installed yet.)"""
    env = os.environ.get("CXRSR_MIRROR")
    if env:
        return Path(env).expanduser()
    return next((m for m in MIRRORS if (m / "data").is_dir()), None)


def main() -> None:
    """Install, then point the study at the checkout and the data; say what was done."""
    before = {name: installed(name) for name in KEPT}
    install()
    os.environ["CXRSR_ROOT"] = str(CHECKOUT)
    changed = {n: (v, installed(n)) for n, v in before.items() if v and installed(n) != v}
    for name, (old, new) in changed.items():
        print(f"Note: pip replaced {name} {old} by {new} (outside the package's ranges).")
    mirror = find_mirror()
    if mirror is not None:
        os.environ["CXRSR_MIRROR"] = str(mirror)
    kept = ", ".join(f"{n} {before[n]}" for n in KEPT if before[n] and n not in changed)
    where = mirror or "none (weights are downloaded; radiographs: see docs/install.md)"
    print(f"Study checkout: {CHECKOUT}\nData mirror: {where}\nKept: {kept or 'nothing'}")


if __name__ == "__main__":
    main()
