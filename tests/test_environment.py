"""The one pinned dependency set: pyproject.toml and environment.yml must agree."""

import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _pip_section(env: dict) -> list[str]:
    for dep in env["dependencies"]:
        if isinstance(dep, dict) and "pip" in dep:
            return dep["pip"]
    raise AssertionError("environment.yml has no pip section")


def test_pyproject_and_environment_pin_the_same_set():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = [d for d in _pip_section(env) if d != "-e ."]
    assert sorted(pip) == sorted(project)
    assert "python=3.11" in env["dependencies"]


def test_every_dependency_is_pinned_exactly():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    loose = [d for d in project if "==" not in d]
    assert not loose, f"unpinned: {loose}"
    assert not any(d.startswith("tensorboard==") for d in project), "basicsr brings tb-nightly"
