"""The one pinned dependency set: pyproject.toml and environment.yml must agree."""

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
EXTRAS = ("dev", "notebooks")  # what `make setup` installs beside the runtime set


def _project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _pinned(project: dict) -> dict[str, list[str]]:
    """The runtime dependencies and each extra, by group."""
    return {"runtime": project["dependencies"], **project["optional-dependencies"]}


def _name(requirement: str) -> str:
    return re.split(r"[=<>!~\[ ;]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def _pip_section(env: dict) -> list[str]:
    for dep in env["dependencies"]:
        if isinstance(dep, dict) and "pip" in dep:
            return dep["pip"]
    raise AssertionError("environment.yml has no pip section")


def test_pyproject_and_environment_pin_the_same_set():
    groups = _pinned(_project())
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = _pip_section(env)
    pins = [d for d in pip if not d.startswith("-e ")]
    assert sorted(pins) == sorted(d for group in groups.values() for d in group)
    # The project itself, with the extras the Makefile installs.
    assert [d for d in pip if d.startswith("-e ")] == [f"-e .[{','.join(sorted(EXTRAS))}]"]
    assert "python=3.11" in env["dependencies"]


def test_every_dependency_is_pinned_exactly_once():
    groups = _pinned(_project())
    every = [d for group in groups.values() for d in group]
    loose = [d for d in every if "==" not in d]
    assert not loose, f"unpinned: {loose}"
    names = [_name(d) for d in every]
    assert len(names) == len(set(names)), f"pinned in two groups: {names}"
    assert "tensorboard" not in names, "basicsr brings tb-nightly"


def test_test_and_dev_tools_are_not_runtime_dependencies():
    groups = _pinned(_project())
    runtime = {_name(d) for d in groups["runtime"]}
    dev_only = {"pytest", "nbval", "ruff", "mypy", "pre-commit", "playwright", "jupyterlab"}
    assert not runtime & dev_only, f"runtime pins tools: {sorted(runtime & dev_only)}"
    # What `cxrsr study` runs the notebooks with stays at run time.
    assert {"papermill", "nbformat", "ipykernel"} <= runtime
    assert set(groups) == {"runtime", *EXTRAS}


def test_the_makefile_installs_the_extras_the_tests_need():
    makefile = (ROOT / "Makefile").read_text()
    assert f'-e ".[{",".join(sorted(EXTRAS))}]"' in makefile


def test_licence_and_citation_agree_with_the_package():
    project = _project()
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert project["license"]["text"] == cff["license"] == "BSD-3-Clause"
    assert (ROOT / "LICENSE").read_text().startswith("BSD 3-Clause License")
    assert cff["cff-version"] == "1.2.0" and cff["version"] == project["version"]
    cited = " ".join(ref["title"] for ref in cff["references"])
    for work in ("Real-ESRGAN", "ESRGAN", "BasicSR", "ChestX-ray8", "Chest X-Ray Images"):
        assert work in cited, f"CITATION.cff does not cite {work}"
