"""The Colab set-up cell's file (cxrsr_utils/colab.py): it points the study at its checkout and
the mirror, and installs only when the package is missing. The install itself runs in
`make test-compat` (a fresh Python 3.12 venv with torch 2.11 preinstalled)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from cxrsr_utils import colab


def test_the_mirror_is_the_environments_else_the_first_with_data(tmp_path, monkeypatch):
    empty, drive = tmp_path / "empty", tmp_path / "drive"
    (drive / "data").mkdir(parents=True)
    empty.mkdir()
    monkeypatch.setattr(colab, "MIRRORS", (empty, drive))
    monkeypatch.delenv("CXRSR_MIRROR", raising=False)
    assert colab.find_mirror() == drive
    monkeypatch.setattr(colab, "MIRRORS", (empty,))
    assert colab.find_mirror() is None
    monkeypatch.setenv("CXRSR_MIRROR", str(empty))
    assert colab.find_mirror() == empty


def test_main_names_the_checkout_and_the_mirror(tmp_path, monkeypatch, capsys):
    drive = tmp_path / "drive"
    (drive / "data").mkdir(parents=True)
    monkeypatch.setattr(colab, "MIRRORS", (drive,))
    monkeypatch.setattr(colab, "install", lambda: None)
    monkeypatch.setenv("CXRSR_ROOT", "elsewhere")  # restored after the test
    monkeypatch.delenv("CXRSR_MIRROR", raising=False)
    colab.main()
    assert os.environ["CXRSR_ROOT"] == str(colab.CHECKOUT)
    assert colab.CHECKOUT == Path(__file__).resolve().parents[1]
    assert os.environ["CXRSR_MIRROR"] == str(drive)
    out = capsys.readouterr().out
    assert f"Study checkout: {colab.CHECKOUT}" in out and f"Data mirror: {drive}" in out
    assert "Kept: torch" in out  # this venv's torch, untouched


def test_install_is_skipped_where_the_package_is_installed(monkeypatch, capsys):
    def refuse(*args, **kwargs):
        raise AssertionError("pip must not run: cxrsr is installed")

    monkeypatch.setattr(subprocess, "run", refuse)
    colab.install()
    assert "is installed in" in capsys.readouterr().out


def test_it_runs_before_any_dependency_is_installed():
    """Run by path in a bare Python: it may import nothing outside the standard library."""
    import ast
    import sys

    tree = ast.parse(Path(colab.__file__).read_text())
    modules = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in (node.names if isinstance(node, ast.Import) else [ast.alias(node.module)])
    }
    outside = {m for m in modules if m not in sys.stdlib_module_names and m != "__future__"}
    assert not outside, f"colab.py imports {outside}"


@pytest.mark.parametrize("book", sorted(Path(colab.CHECKOUT, "notebooks").glob("0*.ipynb")))
def test_every_notebook_runs_it_on_colab_only(book):
    import nbformat

    nb = nbformat.read(book, 4)
    tagged = [i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])]
    cell = nb.cells[tagged[0] + 1].source
    assert 'if "google.colab" in sys.modules:' in cell
    assert 'runpy.run_path("/content/cxrsr/cxrsr_utils/colab.py", run_name="__main__")' in cell
