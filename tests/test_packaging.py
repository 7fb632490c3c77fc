"""The built wheel: every subpackage inside, and ``cxrsr --help`` from a venv that has only it.

An editable install imports the checkout's folders directly, so a subpackage left out of the
wheel's package list would go unnoticed by every other test; a user's ``pip install`` would then
fail on its first import.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "cxrsr_utils"


def build_wheel(out: Path) -> Path:
    """Build the wheel from a copy of what it is made of (the checkout stays clean: setuptools
    writes ``build/`` and ``*.egg-info`` beside the sources)."""
    src = out / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(PACKAGE, src / "cxrsr_utils", ignore=shutil.ignore_patterns("__pycache__"))
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(out), str(src)]
    if importlib.util.find_spec("setuptools") is not None:
        cmd.append("--no-build-isolation")  # offline: this venv's setuptools builds it
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    [wheel] = out.glob("cxrsr-*.whl")
    return wheel


def test_the_wheel_holds_every_module_and_runs_cxrsr_help(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path)
    in_wheel = {n for n in zipfile.ZipFile(wheel).namelist() if n.endswith(".py")}
    in_tree = {p.relative_to(ROOT).as_posix() for p in PACKAGE.rglob("*.py")}
    assert in_tree - in_wheel == set()
    assert {"cxrsr_utils/sr/__init__.py", "cxrsr_utils/core/params.py"} <= in_wheel

    # A fresh venv with the wheel alone; the dependencies come from this venv's site-packages
    # by a path entry (not a site dir, so this venv's editable-install hook is not run).
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    install = [python, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", str(wheel)]
    subprocess.run(install, check=True, capture_output=True, text=True)
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    (Path(site) / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")

    # Nothing of the checkout on the path: no PYTHONPATH, and a working folder outside it.
    clean = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    where = subprocess.run(
        [python, "-c", "import cxrsr_utils.cli, cxrsr_utils.sr.infer; print(cxrsr_utils.__file__)"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=clean,
    )
    assert where.returncode == 0, where.stderr
    assert Path(where.stdout.strip()).is_relative_to(site)
    helped = subprocess.run(
        [env_dir / "bin" / "cxrsr", "--help"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=clean,
    )
    assert helped.returncode == 0, helped.stderr
    assert "upscale" in helped.stdout and "study" in helped.stdout
