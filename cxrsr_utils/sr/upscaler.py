"""Which model upscales, and the one Python entry point :func:`upscale`.

A model is named as the ``cxrsr upscale --model`` option names it: ``pretrained`` (the official
RealESRGAN_x4plus, see :mod:`cxrsr_utils.sr.networks`), a fine-tuned variant of a study run
(``paper``, ``matched``, ... : ``<run>/finetune/<variant>/generator.pth``, the newest run under
``work/`` unless one is given), a path to any x4plus-shaped ``.pth``, or the classical
``bicubic`` / ``lanczos`` baselines, which go through exactly the same path (formats, metadata,
DICOM) so a user can compare and a check can run fast.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from cxrsr_utils.core.errors import CxrsrError
from cxrsr_utils.core.layout import GENERATOR_FILE, StudyLayout
from cxrsr_utils.core.project import PROJECT_ROOT
from cxrsr_utils.images import radiographs
from cxrsr_utils.images.radiograph import Radiograph
from cxrsr_utils.sr import infer

# Tiling the command uses unless told otherwise: at tile 128 / pad 32 RRDBNet's tiled output
# is 66.1 dB from the untiled one (docs/inference.md), above the 60 dB promised.
DEFAULT_TILE = 128
DEFAULT_TILE_PAD = 32
TILED_MIN_DB = 60.0
SCALE = 4
# The classical resize methods, named like models (no weights; the study's baselines too).
BASELINES = ("bicubic", "lanczos")


class ModelError(CxrsrError, ValueError):
    """A model name or file that cannot be used; the message lists what can."""


@dataclass
class Model:
    """A loaded upscaler: a network, or a resize method (``net`` None)."""

    name: str
    sha256: str
    scale: int = SCALE
    net: torch.nn.Module | None = None
    source: str = ""
    note: str = ""
    options: infer.InferOptions = field(default_factory=infer.InferOptions)

    @property
    def is_network(self) -> bool:
        return self.net is not None

    def describe(self) -> dict[str, object]:
        """What made an output: recorded in PNG text chunks, DICOM and the manifest."""
        tiling = (
            f"tile {self.options.tile}, tile_pad {self.options.tile_pad}, "
            f"pre_pad {self.options.pre_pad}"
            if self.is_network and self.options.tile
            else "none"
        )
        return {
            "model": self.name,
            "model_sha256": self.sha256,
            "scale": self.scale,
            "precision": self.options.precision if self.is_network else "fp32",
            "tiling": tiling,
            "backend": self.options.describe_backend() if self.is_network else "PIL resize",
            # What the output promises against torch eager fp32 (backends.agreement_bound).
            "agreement_db_min": self.options.agreement_db() if self.is_network else "exact",
            "source": self.source,
        }

    def upscale(self, rad: Radiograph) -> Radiograph:
        """Upscale one radiograph, keeping its range, dtype and meta."""
        if self.net is None:
            return infer.baseline_radiograph(rad, scale=self.scale, method=self.name)
        return infer.upscale_radiograph(rad, self.net, self.options, scale=self.scale)

    def upscale_float(self, image: np.ndarray) -> np.ndarray:
        """Upscale a float image in [0, 1] (no rounding to integer pixels on the way)."""
        if self.net is None:
            return infer.baseline_array(image, scale=self.scale, method=self.name)
        return infer.upscale_array(image, self.net, self.options, scale=self.scale)

    def upscale_floats(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        """:meth:`upscale_float` of each image; a network takes images of one size
        ``options.batch_size`` at a time (fewer forward passes; a batch may round floats
        differently from one image alone, by about 1e-5 dB in fp32)."""
        if self.net is None:
            return [self.upscale_float(image) for image in images]
        return infer.upscale_arrays(images, self.net, self.options, scale=self.scale)


def latest_run(root: Path | None = None) -> Path | None:
    """The study run under ``<root>/work/`` whose newest generator is newest (None if none)."""
    work = Path(root or os.environ.get("CXRSR_OUTPUT_ROOT") or PROJECT_ROOT) / "work"
    runs = [StudyLayout(folder) for folder in sorted(work.glob("*")) if folder.is_dir()]
    found = sorted(
        (
            (path.stat().st_mtime, run.work)
            for run in runs
            for path in run.finetuned_generators().values()
        ),
        key=lambda item: item[0],
    )
    return found[-1][1] if found else None


def known_models(run: Path | None = None) -> list[str]:
    """Every name ``--model`` accepts here (variants of ``run`` or the newest run)."""
    run = run or latest_run()
    variants = sorted(StudyLayout(run).finetuned_generators()) if run else []
    return ["pretrained", *variants, *BASELINES]


def load_model(
    spec: str | os.PathLike[str] | torch.nn.Module,
    options: infer.InferOptions | None = None,
    *,
    run: str | os.PathLike[str] | None = None,
) -> Model:
    """Resolve ``spec`` (see module doc) to a :class:`Model`; unknown names list the known ones."""
    from cxrsr_utils.external import sources
    from cxrsr_utils.sr import networks as models

    options = options or infer.InferOptions()
    if isinstance(spec, torch.nn.Module):
        return Model(
            type(spec).__name__,
            "",
            int(getattr(spec, "scale", SCALE)),
            spec,
            "in-memory network",
            options=options,
        )
    name = str(spec)
    if name in BASELINES:
        return Model(
            name,
            "n/a (no weights)",
            SCALE,
            None,
            f"PIL {name} resize (antialiased)",
            options=options,
        )
    if name == "pretrained":
        net, info = models.load_pretrained_generator()
        return Model(info.source, info.sha256, SCALE, net, info.path, info.note, options)
    path = Path(name)
    if not (path.suffix == ".pth" or path.is_file()):
        run_dir = Path(run) if run else latest_run()
        path = StudyLayout(run_dir).generator(name) if run_dir else Path("")
        if not path.is_file():
            where = f"run {run_dir}" if run_dir else "no study run under work/"
            raise ModelError(
                f"Unknown model {name!r} ({where}); known: {', '.join(known_models(run_dir))}, "
                "or a path to an x4plus-shaped .pth."
            )
    try:
        net, info = models.load_generator_file(path)
    except sources.SourceError as exc:
        raise ModelError(str(exc)) from exc
    return Model(
        name if path.name == GENERATOR_FILE else path.stem,
        info.sha256,
        SCALE,
        net,
        str(path),
        options=options,
    )


def _as_input(item: object, index: int) -> tuple[Radiograph | np.ndarray, str]:
    """An input of :func:`upscale` as a radiograph (or a float array), and its kind."""
    if isinstance(item, Radiograph):
        return item, "radiograph"
    if isinstance(item, str | os.PathLike):
        return radiographs.read_radiograph(item), "radiograph"
    array = np.asarray(item)
    if array.dtype.kind == "f":
        return array, "float"
    if array.dtype == np.uint8:
        return Radiograph(array, 255, Path(f"<array {index}>")), "int"
    if array.dtype == np.uint16:
        # The reader's rule for 16-bit data: 12-bit when every value fits, else 16-bit.
        top, note = radiographs.sixteen_bit_range(array)
        return Radiograph(array, top, Path(f"<array {index}>"), note), "int"
    raise ValueError(f"inputs[{index}]: give a path, a Radiograph, or a uint8/uint16/float array.")


def upscale(
    inputs: str | os.PathLike[str] | np.ndarray | Radiograph | Sequence[object],
    model: str | os.PathLike[str] | torch.nn.Module = "pretrained",
    *,
    tile: int = DEFAULT_TILE,
    tile_pad: int = DEFAULT_TILE_PAD,
    precision: infer.Precision = "auto",
    device: str = "cpu",
    run: str | os.PathLike[str] | None = None,
    progress: bool = False,
) -> list[object]:
    """Upscale radiographs in one line: ``cxrsr_utils.upscale("cxr.dcm", model="pretrained")``.

    ``inputs`` is one or a list of paths (any format :func:`radiographs.read_radiograph` reads),
    :class:`Radiograph` objects or arrays (float in [0, 1], uint8 or uint16). Returns one output
    per input: a :class:`Radiograph` for paths and radiographs (same range and dtype, ``note``
    saying what made it), a float32 array for float input, the same integer dtype for integer
    arrays (uint16 arrays whose values all fit in 12 bits are taken as 12-bit, as the reader
    takes 16-bit PNGs without sBIT). ``model`` as ``cxrsr upscale --model`` (see
    :func:`load_model`). To write files, manifests and DICOM, use
    :func:`cxrsr_utils.upscaling.batch.run_batch` (the command does).
    """
    items: list[object]
    if isinstance(inputs, str | os.PathLike | np.ndarray | Radiograph):
        items = [inputs]
    else:
        items = list(inputs)
    options = infer.InferOptions(
        tile=tile,
        tile_pad=tile_pad,
        precision=precision,
        device=device,
        batch_size=1,
        progress=progress,
    )
    chosen = load_model(model, options, run=run)
    outputs: list[object] = []
    for index, item in enumerate(items):
        rad, kind = _as_input(item, index)
        if isinstance(rad, np.ndarray):  # kind "float"
            outputs.append(chosen.upscale_float(rad))
            continue
        out = chosen.upscale(rad)
        if kind == "int":
            outputs.append(out.pixels)
        else:
            outputs.append(replace(out, meta={**rad.meta, **chosen.describe()}))
    return outputs
