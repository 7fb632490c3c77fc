"""The batch behind ``cxrsr upscale``: inputs in, outputs and a manifest out, bad files reported.

:func:`collect_inputs` expands files, folders (recursive) and globs; :func:`run_batch` upscales
each input in turn and writes its output (:mod:`cxrsr_utils.outputs`), an optional audit mask
(:mod:`cxrsr_utils.audit`) and, after every file, ``manifest.json`` beside the outputs (one row
per input: status, output path, seconds, error, and the model that made it). A file that
cannot be read or written is one failed row with its reason; the batch goes on. An output that
exists is skipped when the manifest says this model made it (a re-run resumes), refused
otherwise unless ``overwrite``. Inputs are only ever read.
"""

from __future__ import annotations

import glob
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from cxrsr_utils import atomic, outputs, radiographs
from cxrsr_utils import audit as audit_mod
from cxrsr_utils.radiographs import ImageReadError
from cxrsr_utils.upscaler import Model

MANIFEST = "manifest.json"
AUDIT_SUFFIX = ".audit.png"
MIN_SIDE = 4  # smaller images have too little context for any upscaler (reflect padding fails)


class UsageError(ValueError):
    """The command was given something it cannot run at all (exit status 2)."""


@dataclass
class Row:
    """One input's outcome, one row of ``manifest.json``."""

    input: str
    output: str = ""
    status: str = "pending"  # done | skipped | failed
    seconds: float = 0.0
    error: str = ""
    size_in: str = ""
    size_out: str = ""
    note: str = ""
    model: dict[str, object] = field(default_factory=dict)
    audit: dict[str, float] = field(default_factory=dict)


def collect_inputs(items: Iterable[str]) -> list[tuple[Path, Path]]:
    """(input file, output path relative to the output folder) for files, folders and globs.

    A folder contributes its image files (by suffix, recursively) under their relative paths;
    a file or glob match its name. Arguments matching nothing are kept so they fail as rows.
    """
    found: list[tuple[Path, Path]] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            for f in sorted(path.rglob("*")):
                if (
                    f.is_file()
                    and f.suffix.lower() in outputs.INPUT_SUFFIXES
                    and not any(part.startswith(".") for part in f.relative_to(path).parts)
                ):
                    found.append((f, f.relative_to(path)))
        elif glob.has_magic(item) and not path.exists():
            found += [
                (Path(m), Path(Path(m).name)) for m in sorted(glob.glob(item)) if Path(m).is_file()
            ] or [(path, Path(path.name))]
        else:
            found.append((path, Path(path.name)))
    return found


def check_output_folder(outdir: Path, items: Iterable[str]) -> None:
    """Refuse an output folder inside an input folder, or one that cannot be written."""
    resolved = outdir.resolve()
    for item in items:
        folder = Path(item)
        if folder.is_dir() and resolved.is_relative_to(folder.resolve()):
            raise UsageError(
                f"output folder {outdir} is inside the input folder {folder}; a re-run would "
                "read its own outputs. Choose a folder outside it."
            )
    try:
        outdir.mkdir(parents=True, exist_ok=True)
        atomic.write_text(outdir / ".cxrsr-write-test", "")
        (outdir / ".cxrsr-write-test").unlink()
    except OSError as exc:
        raise UsageError(f"output folder {outdir} cannot be written ({exc}).") from exc


def _previous(outdir: Path) -> dict[str, dict]:
    try:
        rows = json.loads((outdir / MANIFEST).read_text())["rows"]
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    return {r["output"]: r for r in rows if isinstance(r, dict) and r.get("output")}


def _skip_or_refuse(row: Row, target: Path, previous: dict[str, dict], overwrite: bool) -> bool:
    """True when the existing output ``target`` is a finished result of this model."""
    if overwrite or not target.exists():
        return False
    before = previous.get(str(target), {})
    if before.get("model") == row.model:
        if before.get("status") in ("done", "skipped"):
            row.status, row.note = "skipped", "finished by an earlier run with this model"
            return True
        if before.get("status") == "pending":  # ours, interrupted after writing: redo it
            return False
    raise FileExistsError(f"{target}: exists (not made by this model here); pass --overwrite.")


def process(
    row: Row, source: Path, target: Path, model: Model, *, anonymize: bool, audit: float | None
) -> None:
    """Read, upscale, write (and audit) one input, filling ``row``; raises on failure."""
    rad = radiographs.read_radiograph(source)
    h, w = rad.pixels.shape
    row.size_in = f"{w}x{h}"
    if min(h, w) < MIN_SIDE:
        raise ImageReadError(
            f"{source}: {w} x {h} pixels; at least {MIN_SIDE} x {MIN_SIDE} are needed to upscale."
        )
    out = model.upscale(rad)
    outputs.write(target, out, rad, row.model, anonymize=anonymize)
    row.size_out = f"{out.pixels.shape[1]}x{out.pixels.shape[0]}"
    lossless = (
        "JPEG written as PNG (lossless)" if source.suffix.lower() in (".jpg", ".jpeg") else ""
    )
    row.note = ", ".join(filter(None, [rad.note, lossless]))
    if audit is not None:
        result = audit_mod.audit(rad, out, model.scale, audit)
        radiographs.write_png(
            target.with_name(target.name + AUDIT_SUFFIX),
            result.mask,
            text={
                "cxrsr:audit_threshold": str(audit),
                **{f"cxrsr:{k}": str(v) for k, v in row.model.items()},
            },
        )
        row.audit = result.to_dict()


def write_manifest(outdir: Path, rows: list[Row], model: Model) -> Path:
    """``manifest.json``: the model and one row per input (written atomically)."""
    done = {r.input for r in rows}
    # Rows of earlier runs for inputs not in this one stay, so a partial re-run loses nothing.
    kept = [r for r in _previous(outdir).values() if r.get("input") not in done]
    body = {"model": model.describe(), "rows": kept + [asdict(r) for r in rows]}
    return atomic.write_text(outdir / MANIFEST, json.dumps(body, indent=1, default=str))


def run_batch(
    items: Iterable[str],
    outdir: Path,
    model: Model,
    *,
    overwrite: bool = False,
    anonymize: bool = False,
    audit: float | None = None,
    on_row: Callable[[Row], None] | None = None,
) -> list[Row]:
    """Upscale every input into ``outdir`` (see module doc); returns the rows."""
    items = list(items)
    outdir = Path(outdir)
    check_output_folder(outdir, items)
    previous = _previous(outdir)
    described = model.describe()
    rows: list[Row] = []
    claimed: dict[Path, str] = {}
    for source, rel in collect_inputs(items):
        row = Row(input=str(source), model=described)
        rows.append(row)
        t0 = time.perf_counter()
        try:
            is_dicom = source.is_file() and radiographs.is_dicom(source)
            target = outdir / rel.parent / outputs.output_name(rel, is_dicom)
            row.output = str(target)
            if target in claimed:
                raise UsageError(f"{source}: same output {target} as {claimed[target]}; rename.")
            claimed[target] = str(source)
            if not _skip_or_refuse(row, target, previous, overwrite):
                process(row, source, target, model, anonymize=anonymize, audit=audit)
                row.status = "done"
        except (OSError, ValueError, FloatingPointError, RuntimeError) as exc:
            row.status, row.error = "failed", _one_line(exc, source)
        finally:
            row.seconds = round(time.perf_counter() - t0, 3)
            write_manifest(outdir, rows, model)
        if on_row is not None:
            on_row(row)
    return rows


def _one_line(exc: BaseException, source: Path) -> str:
    text = " ".join(str(exc).split())
    return text if str(source) in text else f"{source}: {text}"


def summary(rows: list[Row]) -> str:
    """A plain-text table: one line per input, then the counts."""
    width = max([len(Path(r.input).name) for r in rows] + [5])
    lines = [f"{'input':<{width}}  {'status':<7}  {'seconds':>8}  output / reason"]
    for r in rows:
        detail = r.error or r.output
        lines.append(f"{Path(r.input).name:<{width}}  {r.status:<7}  {r.seconds:>8.2f}  {detail}")
    counts = {s: sum(r.status == s for r in rows) for s in ("done", "skipped", "failed")}
    lines.append(", ".join(f"{n} {s}" for s, n in counts.items()) + f" of {len(rows)} inputs")
    return "\n".join(lines)
