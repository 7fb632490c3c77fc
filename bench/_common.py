"""What the benchmarks share: where the project and its reports are, the mirror's NIH images,
peak memory, and running one configuration in a fresh process.

Importing this puts the project root first on ``sys.path``, so a benchmark run from this
checkout times this checkout's ``cxrsr_utils`` (not an installed copy).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue as queue_module
import resource
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
REPORTS = ROOT / "reports" / "bench"

Outcome = Literal["ok", "error", "timeout"]


def mirror() -> Path:
    """The offline mirror: ``$CXRSR_MIRROR``, else ``../shared/mirror`` beside the project."""
    return Path(os.environ.get("CXRSR_MIRROR", ROOT.parent / "shared" / "mirror"))


def nih_folder() -> Path:
    """The mirror's folder of NIH radiographs (PNG)."""
    return mirror() / "data" / "nih-sample" / "images"


def nih_images() -> list[Path]:
    """The mirror's NIH radiographs, sorted; stops with a message when there are none."""
    files = sorted(nih_folder().glob("*.png"))
    if not files:
        raise SystemExit(f"No NIH images under {mirror()}; set CXRSR_MIRROR.")
    return files


def peak_rss_mb() -> float:
    """This process's peak resident memory so far, in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kilobytes


def _child(fn: Callable[..., Any], args: Sequence[Any], results: Any) -> None:
    try:
        results.put(("ok", fn(*args)))
    except BaseException as exc:  # report, do not hang the parent
        results.put(("error", f"{type(exc).__name__}: {exc}\n{traceback.format_exc()[-2000:]}"))


def in_fresh_process(
    fn: Callable[..., Any], args: Sequence[Any], timeout: float | None = None
) -> tuple[Outcome, Any]:
    """``fn(*args)`` in a spawned process, so its peak memory and caches are its own.

    Returns ``("ok", result)``, ``("error", message)`` (the exception with its traceback, or
    the exit code of a process that died without a result) or, when no result came within
    ``timeout`` seconds (the process is then terminated), ``("timeout", None)``. ``fn`` must
    be importable by name (a module-level function).
    """
    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    proc = ctx.Process(target=_child, args=(fn, args, results))
    proc.start()
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        try:
            status, payload = results.get(timeout=1.0)
        except queue_module.Empty:
            if not proc.is_alive() and results.empty():
                # Killed (out of memory, a crash) or failed before fn ran: no result will come.
                proc.join()
                return "error", f"the process exited with code {proc.exitcode} and no result"
            if deadline is not None and time.monotonic() > deadline:
                proc.terminate()
                proc.join()
                return "timeout", None
            continue
        proc.join()
        return status, payload


def write_report(name: str, body: dict[str, Any], lines: list[str]) -> str:
    """``reports/bench/<name>.json`` (``body``) and ``<name>.md`` (``lines``), each written
    atomically; returns the Markdown."""
    import json

    from cxrsr_utils.core.atomic import write_text

    REPORTS.mkdir(parents=True, exist_ok=True)
    write_text(REPORTS / f"{name}.json", json.dumps(body, indent=1) + "\n")
    text = "\n".join(lines) + "\n"
    write_text(REPORTS / f"{name}.md", text)
    return text


def stored_runs(name: str) -> dict[str, Any]:
    """The runs kept in ``reports/bench/<name>.json`` by section (CPU kind), else none: the
    reports that keep one section per CPU kind add a run to these and write them all."""
    import json

    path = REPORTS / f"{name}.json"
    return dict(json.loads(path.read_text())["runs"]) if path.is_file() else {}


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    """A Markdown table's lines."""
    return [
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(str(c) for c in row) + " |" for row in rows),
    ]
