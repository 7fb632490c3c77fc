"""Run the study: every numbered notebook in order, with papermill, for one profile.

``cxrsr study --profile quick`` (what ``make study`` calls; ``python -m cxrsr_utils.runner``
takes the same options and a few developer ones) executes
``notebooks/NN_*.ipynb`` into the run's folder ``work/<profile>/reports/``; the notebooks write
figures to ``work/<profile>/figures/`` and tables to ``work/<profile>/reports/tables/``. At the
end a run manifest (``run_manifest.json`` there) records the git commit, the params and their
hash, package versions, the SHA-256 of every source used, the data manifest hash, the device
(CPU model and instruction sets), the precision used and the wall time of each notebook, and
every table is compared with the committed reference results (``reports/<profile>/``):
``reference_comparison.md`` says which are the same, which within tolerance, which differ.
``--publish`` makes the run the new committed reference. A failing notebook stops the run
with its name and cell.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from cxrsr_utils.core.atomic import atomic_path
from cxrsr_utils.core.errors import CxrsrError
from cxrsr_utils.core.layout import Paths
from cxrsr_utils.core.params import Params, ParamsError, load_params, parse_set
from cxrsr_utils.core.project import PROJECT_ROOT
from cxrsr_utils.reporting import provenance, reference
from cxrsr_utils.study_options import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    add_study_options,
)

NOTEBOOKS = PROJECT_ROOT / "notebooks"
KERNEL = "cxrsr"


class StudyError(CxrsrError, RuntimeError):
    """A notebook of the study failed; the message names the notebook and the cell."""


class NotebookChoiceError(StudyError):
    """``--only`` names no notebook of the study (a usage error, exit status 2)."""


def study_notebooks(only: list[str] | None = None, folder: Path = NOTEBOOKS) -> list[Path]:
    """The numbered notebooks in run order, optionally only those whose number/name is listed."""
    books = sorted(folder.glob("[0-9][0-9]_*.ipynb"))
    if only:
        books = [b for b in books if any(b.name.startswith(o) or b.stem == o for o in only)]
    if not books:
        known = ", ".join(b.stem for b in sorted(folder.glob("[0-9][0-9]_*.ipynb")))
        raise NotebookChoiceError(
            f"No notebook matches {only or 'NN_*.ipynb'} in {folder}; the study's are {known}."
        )
    return books


def _failure(book: Path, out: Path, exc: Exception) -> StudyError:
    import nbformat

    # papermill numbers cells of the *executed* copy (with its injected parameters cell);
    # name the cell by its position in the source notebook the user edits instead.
    source = getattr(exc, "source", None)
    where = "an unknown cell"
    if source is not None:
        cells = nbformat.read(book, as_version=4).cells
        index = next((i for i, c in enumerate(cells) if c.source == source), None)
        first = source.strip().splitlines()[0] if source.strip() else ""
        where = f"cell {index}" if index is not None else "the injected parameters cell"
        where += f" (starting {first!r})" if first else ""
    reason = f"{getattr(exc, 'ename', type(exc).__name__)}: {getattr(exc, 'evalue', exc)}"
    log = out.parent / f"{book.stem}.kernel.log"
    return StudyError(
        f"{book.name} failed in {where}: {reason}. Executed copy: {out}; kernel log: {log}"
    )


@contextlib.contextmanager
def _kernel_log(out: Path) -> Iterator[None]:
    """Send what the Jupyter kernel process writes to stderr (its start-up warnings, and the
    traceback it prints when a Ctrl-C closes its sockets) to ``<notebook>.kernel.log`` instead
    of the terminal: the kernel inherits file descriptor 2 when papermill starts it."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(out.with_suffix(".kernel.log"), "w") as log:
        os.dup2(log.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)


def run_study(
    profile: str = "quick",
    overrides: dict[str, Any] | None = None,
    only: list[str] | None = None,
    kernel: str | None = KERNEL,
    folder: Path = NOTEBOOKS,
) -> dict[str, Any]:
    """Execute the notebooks for ``profile`` and write the run manifest; return the manifest."""
    import papermill

    params = load_params(profile, overrides)
    paths = Paths(params)
    started = time.time()
    walls: dict[str, float] = {}
    for book in study_notebooks(only, folder):
        out = paths.reports / book.name
        t0 = time.time()
        print(f"[cxrsr] {book.name} ({params.profile}) ...", flush=True)
        # Executed into a temporary: an interrupted notebook leaves nothing that looks done, a
        # failed one is kept for its traceback as NN_name.failed.ipynb.
        failed = out.with_suffix(".failed.ipynb")
        failed.unlink(missing_ok=True)
        try:
            with atomic_path(out, keep_suffix=True) as tmp, _kernel_log(out):
                try:
                    papermill.execute_notebook(
                        str(book),
                        str(tmp),
                        parameters={"profile": profile, "overrides": overrides or {}},
                        kernel_name=kernel,
                        cwd=str(book.parent),
                        progress_bar=False,
                        log_output=False,
                    )
                except Exception:
                    if tmp.is_file():
                        os.replace(tmp, failed)
                    raise
        except Exception as exc:  # papermill wraps the kernel's error; keep its details
            raise _failure(book, failed, exc) from exc
        walls[book.name] = round(time.time() - t0, 1)
        print(f"[cxrsr] {book.name} done in {walls[book.name]} s", flush=True)
    manifest = build_manifest(params, paths, walls, time.time() - started)
    provenance.write_json(paths.reports / "run_manifest.json", manifest)
    if only is None:
        compare_with_reference(params.profile, paths)
    return manifest


def compare_with_reference(profile: str, paths: Paths) -> pd.DataFrame:
    """Compare the run's tables with the committed ones; write and print the outcome."""
    from cxrsr_utils.reporting import files as report

    table = reference.compare_run(paths.tables, profile)
    report.save_table(table, paths.reports, "reference_comparison")
    counts = table.status.value_counts().to_dict()
    print(
        f"[cxrsr] tables against the committed reference reports/{profile}/tables: "
        + ", ".join(f"{n} {status}" for status, n in counts.items())
        + f" (details: {paths.reports / 'reference_comparison.md'})",
        flush=True,
    )
    for row in table[table.status == "differs"].itertuples():
        print(f"[cxrsr]   {row.table} differs: {row.detail}", flush=True)
    return table


def build_manifest(params: Params, paths: Paths, walls: dict[str, float], total: float) -> dict:
    """The run manifest (see module doc)."""
    from cxrsr_utils.data_prep.steps import manifest_digest

    data_csv = paths.data_manifest
    data_hash = manifest_digest(pd.read_csv(data_csv)) if data_csv.is_file() else None
    return {
        **provenance.summary(params, paths),
        "params": params.model_dump(mode="json"),
        "sources": provenance.sources_used(paths),
        "data_manifest_sha256": data_hash,
        "wall_seconds": {"per_notebook": walls, "total": round(total, 1)},
    }


def refresh_expected_outputs(profile: str = "quick", folder: Path = NOTEBOOKS) -> list[Path]:
    """Copy the outputs of ``# NBVAL_CHECK_OUTPUT`` cells from an executed run into the sources.

    nbval compares those cells against the outputs stored in ``notebooks/``; every other
    output is cleared so the source notebooks stay light (figures live in ``figures/``).
    """
    import nbformat

    reports = Paths(load_params(profile)).reports
    written = []
    for book in study_notebooks(None, folder):
        executed = reports / book.name
        if not executed.is_file():
            raise StudyError(f"No executed copy of {book.name} in {reports}; run the study first.")
        done = {c.get("id"): c for c in nbformat.read(executed, as_version=4).cells}
        nb = nbformat.read(book, as_version=4)
        for cell in nb.cells:
            if cell.cell_type != "code":
                continue
            cell.execution_count = None
            cell.outputs = []
            ran = done.get(cell.get("id"))
            if "NBVAL_CHECK_OUTPUT" in cell.source and ran is not None:
                cell.outputs = [o for o in ran.outputs if o.get("output_type") == "stream"]
                cell.execution_count = ran.execution_count  # nbval skips "unrun" cells
        with atomic_path(book) as tmp:
            nbformat.write(nb, str(tmp))
        written.append(book)
    return written


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; returns the exit status: 0 done, 1 the study failed, 2 a
    parameter error (unknown profile or key, bad value)."""
    ap = argparse.ArgumentParser(prog="cxrsr-study", description=__doc__.splitlines()[0])
    add_study_options(ap)
    ap.add_argument("--kernel", default=KERNEL, help="Jupyter kernel (default: %(default)s)")
    ap.add_argument(
        "--refresh-expected",
        action="store_true",
        help="after the run, store the checked cells' outputs in notebooks/ for nbval",
    )
    ap.add_argument(
        "--no-run", action="store_true", help="run no notebook (with --publish: the last run)"
    )
    args = ap.parse_args(argv)
    try:
        overrides = parse_set(args.set)
        if not args.no_run:
            manifest = run_study(args.profile, overrides, args.only, args.kernel)
            print(
                f"[cxrsr] study done in {manifest['wall_seconds']['total']} s; results in "
                f"{provenance.portable(str(Paths(load_params(args.profile)).work))}/"
            )
        if args.publish:
            publish(args.profile, overrides)
        if args.refresh_expected:
            if args.publish and not args.no_run:
                # The run's verdict lines compared it with the reference it has just replaced:
                # run again (every finished step is reused, so this is quick) for the lines
                # nbval will check against the new reference.
                run_study(args.profile, overrides, args.only, args.kernel)
            refresh_expected_outputs(args.profile)
    except ParamsError as exc:  # an unknown key, a bad value, an unknown profile: usage
        print(f"[cxrsr] parameter error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except NotebookChoiceError as exc:
        print(f"[cxrsr] {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(
            "[cxrsr] interrupted; the notebook that was running left no executed copy, and a "
            "re-run reuses every finished step.",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    except (StudyError, FileNotFoundError) as exc:
        print(f"[cxrsr] {exc}", file=sys.stderr)
        return EXIT_FAILED
    return 0


def publish(profile: str, overrides: dict[str, Any] | None = None) -> list[Path]:
    """Make the last run of ``profile`` the committed reference results."""
    if overrides:
        raise ParamsError("--publish takes the profile as it is committed, without --set.")
    paths = Paths(load_params(profile))
    written = reference.publish(paths.reports, paths.figures, profile)
    print(
        f"[cxrsr] published {len(written)} files to reports/{profile}/ and "
        f"figures/{profile}/; commit them with the code that made them.",
        flush=True,
    )
    return written


if __name__ == "__main__":
    sys.exit(main())
