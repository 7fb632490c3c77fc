"""The package's layers, read from its imports: no cycles, and every import points down.

The order below is the architecture (docs/architecture.md): a module may import modules of its
own subpackage or of a lower one, never of a higher one; the apps at the top (``cli``,
``runner``, ...) may import anything. Every import counts, also one inside a function: a lazy
import still makes the lower module depend on the higher one.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "cxrsr_utils"

# Lowest first. Stages follow the study (a later notebook's code may read an earlier one's),
# below them what every stage uses, above them the batch upscaler and the apps.
LAYERS = (
    "core",
    "images",
    "external",
    "stats",
    "sr",
    "reporting",
    "degradation",
    "data_prep",
    "finetune",
    "evaluation",
    "classification",
    "upscaling",
    "apps",
)
# Subpackages that must import without torch, basicsr, TensorFlow or Keras: what ``cxrsr
# --help``, the plots and the statistics need stays light (the heavy libraries take seconds and
# gigabytes to import).
LIGHT = ("core", "images", "external", "stats", "reporting")
HEAVY = ("torch", "torchvision", "basicsr", "realesrgan", "tensorflow", "keras", "openvino")


def module_name(path: Path) -> str:
    """``cxrsr_utils/sr/infer.py`` -> ``cxrsr_utils.sr.infer`` (a package is its folder's name)."""
    parts = ("cxrsr_utils", *path.relative_to(PACKAGE).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def layer(module: str) -> str:
    """A module's layer: its subpackage, or ``apps`` for the modules at the package's top."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and (PACKAGE / parts[1]).is_dir() else "apps"


def imports(module: str) -> set[str]:
    """The package's modules that ``module`` imports (at any depth of its code)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(MODULES[module].read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name in MODULES}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if not node.module.startswith("cxrsr_utils"):
                continue
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in MODULES else node.module)
    return found - {module}


GRAPH = {m: imports(m) for m in MODULES}


def test_the_layers_name_every_subpackage() -> None:
    subpackages = {p.parent.name for p in PACKAGE.glob("*/__init__.py")}
    assert subpackages == set(LAYERS) - {"apps"}


def test_no_module_imports_a_higher_layer() -> None:
    rank = {name: i for i, name in enumerate(LAYERS)}
    upward = [
        f"{m} ({layer(m)}) imports {d} ({layer(d)})"
        for m, deps in GRAPH.items()
        for d in sorted(deps)
        # The package itself holds only the version and the lazy `upscale` entry point.
        if d != "cxrsr_utils" and rank[layer(d)] > rank[layer(m)]
    ]
    assert upward == []


def test_the_package_root_is_imported_only_for_its_version() -> None:
    """``from cxrsr_utils import X`` names a module, or the version: the package's
    ``__init__`` holds nothing else a module could come to depend on."""
    for m, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module == "cxrsr_utils":
                for alias in node.names:
                    assert alias.name == "__version__" or f"cxrsr_utils.{alias.name}" in MODULES, m


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import cycle of ``graph`` as a list of modules (empty when there is none)."""
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return []

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return []


def test_find_cycle_finds_one() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle() -> None:
    graph = {m: deps - {"cxrsr_utils"} for m, deps in GRAPH.items()}
    assert find_cycle(graph) == []


def test_light_subpackages_import_no_heavy_library() -> None:
    light = sorted(m for m in MODULES if layer(m) in LIGHT)
    code = (
        "import sys\n"
        + "".join(f"import {m}\n" for m in light)
        + f"print(sorted(n for n in {HEAVY!r} if n in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=PACKAGE.parent
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", f"{', '.join(light)} pulled in {out.stdout.strip()}"


@pytest.mark.parametrize("app", ["cxrsr_utils", "cxrsr_utils.cli", "cxrsr_utils.runner"])
def test_the_apps_start_without_heavy_libraries(app: str) -> None:
    code = f"import sys, {app}; print(sorted(n for n in {HEAVY!r} if n in sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=PACKAGE.parent
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
