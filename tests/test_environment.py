"""Dependencies: compatible ranges in pyproject.toml, the exact tested set in
requirements-lock.txt (what `make setup` and environment.yml install), and the two agree."""

import re
import tomllib
from pathlib import Path

import yaml
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
EXTRAS = ("dev", "notebooks")  # what `make setup` installs beside the runtime set
LOCK = "requirements-lock.txt"


def _project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _pinned(project: dict) -> dict[str, list[str]]:
    """The runtime dependencies and each extra, by group."""
    return {"runtime": project["dependencies"], **project["optional-dependencies"]}


def _name(requirement: str) -> str:
    return re.split(r"[=<>!~\[ ;@]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def _pip_section(env: dict) -> list[str]:
    for dep in env["dependencies"]:
        if isinstance(dep, dict) and "pip" in dep:
            return dep["pip"]
    raise AssertionError("environment.yml has no pip section")


def _lock() -> dict[str, str]:
    """requirements-lock.txt as {name: version}; every line an exact pin."""
    pins = {}
    for line in (ROOT / LOCK).read_text().splitlines():
        if line and not line.startswith("#"):
            name, sep, version = line.partition("==")
            assert sep and version, f"{LOCK}: not an exact pin: {line!r}"
            pins[_name(name)] = version
    return pins


def test_the_lock_pins_every_dependency_inside_its_range():
    lock = _lock()
    for group, requirements in _pinned(_project()).items():
        for text in requirements:
            req = Requirement(text)
            name = _name(req.name)
            assert name in lock, f"{LOCK} lacks {name} ({group})"
            assert req.specifier.contains(lock[name], prereleases=True), (
                f"{LOCK} pins {name}=={lock[name]}, outside pyproject's {text!r}"
            )
    assert "cxrsr" not in lock  # the package itself is installed from the checkout


def test_conda_and_make_install_the_lock():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert _pip_section(env) == [f"-c {LOCK}", f"-e .[{','.join(sorted(EXTRAS))}]"]
    assert "python=3.11" in env["dependencies"]
    makefile = (ROOT / "Makefile").read_text()
    assert f"LOCK    := {LOCK}" in makefile
    assert f'-c $(LOCK) -e ".[{",".join(sorted(EXTRAS))}]"' in makefile


def test_every_dependency_is_a_range_with_a_tested_lower_bound_once():
    groups = _pinned(_project())
    every = [d for group in groups.values() for d in group]
    unbounded = [d for d in every if not re.search(r"(>=|==)", d)]
    assert not unbounded, f"no lower bound: {unbounded}"
    runtime_exact = [d for d in groups["runtime"] if "==" in d]
    assert not runtime_exact, f"runtime pins belong in {LOCK}: {runtime_exact}"
    names = [_name(d) for d in every]
    assert len(names) == len(set(names)), f"declared in two groups: {names}"
    assert "tensorboard" not in names, "basicsr brings tb-nightly"
    assert _project()["requires-python"] == ">=3.11,<3.13"


def test_test_and_dev_tools_are_not_runtime_dependencies():
    groups = _pinned(_project())
    runtime = {_name(d) for d in groups["runtime"]}
    dev_only = {"pytest", "nbval", "ruff", "mypy", "pre-commit", "playwright", "jupyterlab"}
    assert not runtime & dev_only, f"runtime pins tools: {sorted(runtime & dev_only)}"
    # What `cxrsr study` runs the notebooks with stays at run time.
    assert {"papermill", "nbformat", "ipykernel"} <= runtime
    assert set(groups) == {"runtime", *EXTRAS}


def test_licence_and_citation_agree_with_the_package():
    project = _project()
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert project["license"]["text"] == cff["license"] == "BSD-3-Clause"
    assert (ROOT / "LICENSE").read_text().startswith("BSD 3-Clause License")
    assert cff["cff-version"] == "1.2.0" and cff["version"] == project["version"]
    cited = " ".join(ref["title"] for ref in cff["references"])
    for work in ("Real-ESRGAN", "ESRGAN", "BasicSR", "ChestX-ray8", "Chest X-Ray Images"):
        assert work in cited, f"CITATION.cff does not cite {work}"
