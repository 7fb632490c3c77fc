"""The batch behind ``cxrsr upscale``: inputs in, outputs and a manifest out, bad files reported.

:func:`run_batch` upscales each input (:mod:`cxrsr_utils.upscaling.inputs`) in turn and writes its
output (:mod:`cxrsr_utils.images.outputs`), an optional audit mask
(:mod:`cxrsr_utils.upscaling.audit`) and,
after every file, ``manifest.json`` (:mod:`cxrsr_utils.upscaling.manifest`). What it promises:

- **Inputs are only read.** No output may resolve (links followed, hard links too) to an input,
  whatever ``overwrite`` says: such a file fails with the reason.
- **One line per failure, the batch goes on**: an unreadable file, one that needs more memory
  than there is (checked from its header before it starts), a write that fails. A manifest that
  cannot be written (a full disk) stops the batch with one line (:class:`ManifestError`).
- **Resumable and safe to run twice at once.** An existing output is skipped when its own
  provenance says this model made it from this input (its SHA-256), however ``-o`` is spelled;
  otherwise it is refused unless ``overwrite``. Dead temporaries of killed runs are removed.
- **Anonymizing** (a :class:`cxrsr_utils.images.deidentify.Deidentifier`): DICOM outputs are
  de-identified, and no output name, manifest row or metadata carries the input's name or
  folders: outputs are named ``cxr-<first 16 hex digits of the input's SHA-256>``.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from cxrsr_utils.core import atomic
from cxrsr_utils.core.errors import CxrsrError
from cxrsr_utils.images import outputs, radiograph, radiographs
from cxrsr_utils.images.deidentify import Deidentifier
from cxrsr_utils.images.radiograph import ImageReadError
from cxrsr_utils.sr.upscaler import Model
from cxrsr_utils.upscaling import audit as audit_mod
from cxrsr_utils.upscaling import resources
from cxrsr_utils.upscaling.inputs import Input, Inputs, collect_inputs
from cxrsr_utils.upscaling.manifest import MANIFEST, ManifestError, Row, write_manifest

__all__ = ["MANIFEST", "ManifestError", "Row", "collect_inputs", "run_batch", "summary"]

AUDIT_SUFFIX = ".audit.png"
MIN_SIDE = 4  # smaller images have too little context for any upscaler (reflect padding fails)


class UsageError(CxrsrError, ValueError):
    """The command was given something it cannot run at all (exit status 2)."""


class InputProtectedError(CxrsrError, OSError):
    """An output would replace an input (refused whatever ``overwrite`` says)."""


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
        # A name of this process's own: two runs on one folder must not remove each other's.
        with tempfile.NamedTemporaryFile(dir=outdir, prefix=".cxrsr-write-test."):
            pass
    except OSError as exc:
        raise UsageError(f"output folder {outdir} cannot be written ({exc}).") from exc


class _Protected:
    """The inputs of a batch, to refuse any output that is one of them."""

    def __init__(self, inputs: Inputs) -> None:
        self.paths: dict[str, Path] = {}
        self.files: dict[tuple[int, int], Path] = {}
        for item in inputs.items:
            self.paths[os.path.realpath(item.source)] = item.source
            try:
                status = item.source.stat()
                self.files[(status.st_dev, status.st_ino)] = item.source
            except OSError:
                pass

    def check(self, target: Path) -> None:
        source = self.paths.get(os.path.realpath(target))
        try:
            status = target.stat()
        except OSError:  # not there (or a name too long to exist): nothing to protect
            status = None
        if source is None and status is not None:
            source = self.files.get((status.st_dev, status.st_ino))
        if source is not None:
            raise InputProtectedError(
                f"{target}: is the input {source}; inputs are never overwritten (not even with "
                "--overwrite). Choose an output folder that holds no input, e.g. a new one."
            )


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes (read in blocks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _skip(row: Row, target: Path, audit: float | None, overwrite: bool) -> bool:
    """True when ``target`` is this model's finished output of this input (see module doc)."""
    if not target.exists():
        return False
    has_mask = audit is None or target.with_name(target.name + AUDIT_SUFFIX).exists()
    ours = outputs.made_by(target, row.model, row.input_sha256)
    if ours and has_mask and not overwrite:
        row.status, row.note = "skipped", "finished earlier by this model from this input"
        return True
    if ours or overwrite:  # ours without its audit mask, or replacing on purpose: redo
        return False
    raise FileExistsError(
        f"{target}: exists and its provenance does not say this model made it from this input; "
        "pass --overwrite to replace it, or choose another output folder."
    )


def process(
    row: Row,
    source: Path,
    target: Path,
    model: Model,
    *,
    deidentifier: Deidentifier | None,
    audit: float | None,
) -> None:
    """Read, upscale, write (and audit) one input, filling ``row``; raises on failure."""
    size = resources.image_size(source)
    refusal = resources.memory_refusal(size, model) if size else ""
    if refusal:
        raise MemoryError(f"{source}: {refusal}")
    rad = radiographs.read_radiograph(source)
    h, w = rad.pixels.shape
    row.size_in = f"{w}x{h}"
    if min(h, w) < MIN_SIDE:
        raise ImageReadError(
            f"{source}: {w} x {h} pixels; at least {MIN_SIDE} x {MIN_SIDE} are needed to upscale."
        )
    out = model.upscale(rad)
    outputs.write(
        target,
        out,
        rad,
        row.model,
        input_sha256=row.input_sha256,
        input_name=row.input if deidentifier else source.name,
        deidentifier=deidentifier,
    )
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


def _name(row: Row, item: Input, deidentifier: Deidentifier | None) -> Path:
    """The output path relative to the output folder (a pseudonym when anonymizing)."""
    is_dicom = radiograph.is_dicom(item.source)
    if deidentifier is None:
        return item.rel.parent / outputs.output_name(item.rel, is_dicom)
    row.input = f"cxr-{row.input_sha256[:16]}"  # the name is the patient's, often
    return Path(outputs.output_name(item.rel, is_dicom, pseudonym=row.input))


def _one(
    row: Row,
    item: Input,
    outdir: Path,
    model: Model,
    protected: _Protected,
    claimed: dict[Path, Row],
    options: dict,
) -> None:
    """Upscale one input, filling its row; every failure becomes the row's one-line error."""
    source = item.source
    t0 = time.perf_counter()
    try:
        if options["deidentifier"] is None:  # named before reading, so a failure has a key
            row.output = _name(row, item, None).as_posix()
        radiograph.require_regular_file(source)
        row.input_sha256 = file_sha256(source)
        rel = _name(row, item, options["deidentifier"])
        target = outdir / rel
        row.output = rel.as_posix()
        if target in claimed:
            first = claimed[target]
            if first.input_sha256 == row.input_sha256:
                row.status, row.note = "skipped", f"same content as {first.input}; written once"
                return
            raise UsageError(f"{source}: same output {target} as {first.input}; rename one.")
        claimed[target] = row
        protected.check(target)
        protected.check(target.with_name(target.name + AUDIT_SUFFIX))
        if not _skip(row, target, options["audit"], options["overwrite"]):
            process(
                row,
                source,
                target,
                model,
                deidentifier=options["deidentifier"],
                audit=options["audit"],
            )
            row.status = "done"
    except KeyboardInterrupt:
        row.status, row.error = "interrupted", "interrupted; a re-run does this file again"
        raise
    except MemoryError as exc:
        text = str(exc) or "ran out of memory; try a smaller --tile, or free memory"
        row.status, row.error = "failed", _one_line(text, row, source, options)
    except (OSError, ValueError, FloatingPointError, RuntimeError) as exc:
        row.status, row.error = "failed", _one_line(str(exc), row, source, options)
    finally:
        row.seconds = round(time.perf_counter() - t0, 3)


def run_batch(
    items: Iterable[str],
    outdir: Path,
    model: Model,
    *,
    overwrite: bool = False,
    deidentifier: Deidentifier | None = None,
    audit: float | None = None,
    on_row: Callable[[Row], None] | None = None,
    inputs: Inputs | None = None,
) -> list[Row]:
    """Upscale every input into ``outdir`` (see module doc); returns the rows.

    ``inputs`` (from :func:`collect_inputs` of ``items``) saves scanning the folders twice.
    """
    items = list(items)
    outdir = Path(outdir)
    check_output_folder(outdir, items)
    atomic.remove_stale_parts(outdir, recursive=True)  # a killed run's temporaries
    inputs = inputs or collect_inputs(items)
    protected = _Protected(inputs)
    options = {"overwrite": overwrite, "deidentifier": deidentifier, "audit": audit}
    described = model.describe()
    rows: list[Row] = []
    claimed: dict[Path, Row] = {}
    for item in inputs.items:
        row = Row(input=str(item.source), model=described)
        rows.append(row)
        try:
            _one(row, item, outdir, model, protected, claimed, options)
        finally:  # also when interrupted: every row on disk ends in a final state
            write_manifest(outdir, rows, described)
        if on_row is not None:
            on_row(row)
    return rows


def _one_line(text: str, row: Row, source: Path, options: dict) -> str:
    """The error on one line, naming the input (its pseudonym when anonymizing)."""
    text = " ".join(text.split())
    if options["deidentifier"] is not None and row.input == str(source):
        # Failed before its content was read: a pseudonym of the path, never the path.
        row.input = f"input-{hashlib.sha256(str(source).encode()).hexdigest()[:16]}"
    if row.input != str(source):  # anonymized: the file's name never reaches the manifest
        text = text.replace(str(source), row.input).replace(source.name, row.input)
    return text if row.input in text else f"{row.input}: {text}"


def summary(rows: list[Row], outdir: Path | None = None) -> str:
    """A plain-text table: one line per input, then the counts."""
    width = max([len(Path(r.input).name) for r in rows] + [5])
    lines = [f"{'input':<{width}}  {'status':<11}  {'seconds':>8}  output / reason"]
    for r in rows:
        detail = r.error or (str(outdir / r.output) if outdir and r.output else r.output)
        lines.append(f"{Path(r.input).name:<{width}}  {r.status:<11}  {r.seconds:>8.2f}  {detail}")
    counts = {s: sum(r.status == s for r in rows) for s in ("done", "skipped", "failed")}
    lines.append(", ".join(f"{n} {s}" for s, n in counts.items()) + f" of {len(rows)} inputs")
    return "\n".join(lines)
