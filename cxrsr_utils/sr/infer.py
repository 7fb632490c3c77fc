"""Running a super-resolution network on gray radiographs: tiled, batched, bit-depth safe.

One engine serves the study (many 256x256 LR images) and the ``cxrsr upscale`` command (one
DICOM of 3000x3000 12-bit pixels, or a 16-bit PNG bigger than memory allows to push through the
network in one piece):

- **Gray in, gray out.** The network (RRDBNet x4plus) has 3 input channels; the gray image is
  replicated into all three. Its 3 output channels are brought back to one by their **mean**
  (``gray="mean"``, the default): the input carries no colour, so no channel deserves more
  weight than another (luma would favour green for no reason), the mean is the least-squares
  gray estimate of three near-equal channels and averages down their independent small
  deviations (colour casts a photo-trained network adds), and being linear it commutes with
  tiling. ``gray="luma"`` (ITU-R 601, 0.299 R + 0.587 G + 0.114 B) reproduces what
  realesrgan's ``RealESRGANer`` does for gray input (``cv2.COLOR_BGR2GRAY``). The gray result
  is clamped to [0, 1], as ``RealESRGANer`` clamps.
- **Bit depth kept.** :func:`upscale_radiograph` divides by the radiograph's real maximum
  (255, 4095 or 65535), so a 12-bit DICOM uses the network's whole [0, 1] input range, and
  writes back to the same ``max_value`` and dtype. ``RealESRGANer.enhance`` instead divides any
  image whose maximum exceeds 256 by 65535, squashing 12-bit data into 1/16 of the range the
  network was trained on, and writes 8-bit for 12-bit input whose maximum is at most 256.
- **Tiled with overlap** (:mod:`cxrsr_utils.sr.tiling`). ``tile``, ``tile_pad`` and
  ``pre_pad`` mean what they mean in ``RealESRGANer``, but a window at an image border is
  *shifted inward* (keeping its full ``tile + 2 * tile_pad`` size) rather than cut short, so
  every window of an image has one shape and several go through the network in one batch; this
  only adds context. For a network whose receptive field radius is at most ``tile_pad`` (in
  input pixels) the tiled result equals the untiled one to float rounding; for RRDBNet (a
  receptive field far wider than any practical pad) it differs slightly, see
  ``tests/test_infer.py``.
- **Batched.** Windows of equal shape, from one image or from several images of one size, go
  through the network ``batch_size`` at a time.
- **Precision.** ``fp32`` or ``bf16`` on CPU, ``fp16`` or ``bf16`` (or ``fp32``) on a GPU, via
  :func:`torch.autocast`; ``auto`` is bf16 only where the CPU has native bf16 (on an AVX2-only
  CPU torch emulates it, ~160x slower than fp32) or on a GPU, else fp32. bf16 keeps 8
  significant bits and fp16 11, fewer than 12-bit data has: use ``fp32`` where the lowest
  bits of 12/16-bit data matter.
- **Memory.** Only one batch of network output exists at a time in float; each finished
  window is reduced to gray and written straight into the result (``uint8``/``uint16`` for a
  radiograph), so a large image never has its full 3-channel float output in memory.

A bicubic/lanczos baseline (:func:`baseline_array`, :func:`baseline_radiograph`) has the same
interface; :class:`cxrsr_utils.sr.upscaler.Model` runs either under one name.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Literal

import numpy as np
import torch
from tqdm.auto import tqdm

from cxrsr_utils.core import cpu
from cxrsr_utils.core.errors import CxrsrError
from cxrsr_utils.images.radiographs import Radiograph, resize, to_pixels
from cxrsr_utils.sr import backends, tiling
from cxrsr_utils.sr.network_io import GrayReduction, input_channels, net_scale, to_gray

Precision = Literal["auto", "fp32", "bf16", "fp16"]


class InferOptionsError(CxrsrError, ValueError):
    """An inference option (tile, batch size, precision, device, ...) that cannot be used; the
    message names the option and what it accepts."""


@dataclass(frozen=True)
class InferOptions:
    """How to run the network; every field is recorded with the results (:meth:`to_dict`).

    ``tile`` is the core size in input pixels (0: the whole image in one piece), ``tile_pad``
    the context each core gets on every non-border side, ``pre_pad`` the reflect padding added
    at the bottom and right of the whole image first (all as in realesrgan's RealESRGANer).
    ``batch_size`` windows go through the network per forward pass. ``device`` is any torch
    device string; the network is moved there in place. ``gray`` picks how the 3 output
    channels become one (see the module doc). ``progress`` shows a tqdm bar over windows.
    ``channels_last`` runs the network and its input in NHWC memory format for the call (the
    network is converted back after it): on an AVX-512 CPU in bf16 about 15-25% faster, and
    rounded differently (up to 0.03 on the [0, 1] scale for RRDBNet in bf16); torch only.
    ``backend`` is ``torch``, ``openvino`` or ``auto`` (the fastest measured on this CPU kind
    for this precision, :func:`cxrsr_utils.sr.backends.choose`); it is resolved on construction,
    so :meth:`to_dict` records what runs.
    """

    tile: int = 0
    tile_pad: int = 10
    pre_pad: int = 10
    batch_size: int = 4
    precision: Precision = "fp32"
    device: str = "cpu"
    gray: GrayReduction = "mean"
    progress: bool = True
    channels_last: bool = False
    backend: backends.Backend = "auto"

    def __post_init__(self) -> None:
        for name in ("tile", "tile_pad", "pre_pad"):
            value = getattr(self, name)
            # bool is an int in Python: tile=True would silently mean tile 1.
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise InferOptionsError(
                    f"InferOptions.{name} must be an integer >= 0, got {value!r}."
                )
        if (
            isinstance(self.batch_size, bool)
            or not isinstance(self.batch_size, int)
            or (self.batch_size < 1)
        ):
            raise InferOptionsError(
                f"InferOptions.batch_size must be >= 1, got {self.batch_size!r}."
            )
        if self.precision not in ("auto", "fp32", "bf16", "fp16"):
            raise InferOptionsError(
                "InferOptions.precision must be 'auto', 'fp32', 'bf16' or 'fp16', got "
                f"{self.precision!r}."
            )
        _check_device(self.device)
        # auto: bf16 only where the CPU has it natively (or on a GPU); explicit bf16 on a CPU
        # that emulates it warns (cxrsr_utils.core.cpu).
        object.__setattr__(self, "precision", cpu.resolve_precision(self.precision, self.device))
        if self.gray not in ("mean", "luma"):
            raise InferOptionsError(
                f"InferOptions.gray must be 'mean' or 'luma', got {self.gray!r}."
            )
        device_type = torch.device(self.device).type
        if self.precision == "fp16" and device_type == "cpu":
            raise InferOptionsError(
                "fp16 inference is for GPUs; on CPU use precision='bf16' (or 'fp32')."
            )
        chosen = backends.choose(self.backend, self.device, self.precision)
        object.__setattr__(self, "backend", chosen)

    def describe_backend(self) -> str:
        """What runs the network, for provenance (``openvino 2026.4.1 f32``)."""
        return backends.label(self.backend, self.precision, self.channels_last)

    def agreement_db(self) -> float:
        """The agreement with torch eager fp32 this precision promises (dB)."""
        return backends.agreement_bound(self.precision)

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def _check_device(device: str) -> None:
    try:
        kind = torch.device(device).type
    except (RuntimeError, TypeError) as exc:
        raise InferOptionsError(
            f"InferOptions.device {device!r} is not a torch device: {exc}"
        ) from exc
    if kind == "cuda" and not torch.cuda.is_available():
        raise InferOptionsError(
            f"device {device!r} asked for, but torch sees no CUDA GPU on this machine "
            f"(torch {torch.__version__}); use device='cpu'."
        )


Sink = Callable[[int, tuple[slice, slice], np.ndarray], None]


def _run(
    images: Sequence[np.ndarray],
    divisors: Sequence[float],
    net: torch.nn.Module,
    scale: int | None,
    options: InferOptions,
    sink: Sink,
) -> None:
    """Push every window of ``images`` (divided by ``divisors``) through ``net`` into ``sink``.

    ``sink(image_index, output_slices, gray_tile)`` receives each kept output region as a
    float32 array in [0, 1].
    """
    scale = net_scale(net, scale)
    mod = tiling.mod_for_scale(scale)
    channels = input_channels(net, scale)
    shapes = [image.shape for image in images]
    windows = tiling.plan(shapes, options.tile, options.tile_pad, options.pre_pad, mod)
    padded: dict[int, np.ndarray] = {}
    with (
        backends.session(
            net,
            backend=options.backend,
            precision=options.precision,
            device=options.device,
            channels_last=options.channels_last,
            channels=channels,
            mod=mod,
        ) as forward,
        tqdm(
            total=len(windows),
            disable=not options.progress,
            desc="super-resolving",
            unit="tile",
        ) as bar,
        torch.inference_mode(),
    ):
        for batch in tiling.batches(windows, options.batch_size):
            crops = _batch_input(batch, images, divisors, padded, options.pre_pad, mod)
            x = torch.from_numpy(crops)[:, None].repeat(1, channels, 1, 1)
            gray = to_gray(forward(x), options.gray, options.precision).cpu().numpy()
            for w, out in zip(batch, gray, strict=True):
                kept, target = tiling.output_slices(w, scale)
                sink(w.image, target, out[kept])
            bar.update(len(batch))


def _batch_input(
    batch: list[tiling.Window],
    images: Sequence[np.ndarray],
    divisors: Sequence[float],
    padded: dict[int, np.ndarray],
    pre_pad: int,
    mod: int,
) -> np.ndarray:
    """The (B, H, W) float32 crops of ``batch``, each image divided by its divisor.

    ``padded`` holds the padded images in use and is updated here: an image is padded when its
    first window comes and dropped once no later window needs it, so a long list of images is
    never held padded all at once.
    """
    for done in [k for k in padded if k < batch[0].image]:
        del padded[done]
    for index in sorted({w.image for w in batch} - padded.keys()):
        padded[index] = tiling.pad(images[index], pre_pad, mod)
    return np.stack(
        [
            padded[w.image][w.y0 : w.y1, w.x0 : w.x1].astype(np.float32)
            / np.float32(divisors[w.image])
            for w in batch
        ]
    )


def _check_float_image(image: np.ndarray, what: str) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 2:
        raise ValueError(f"{what} must be a 2-D gray image, got shape {image.shape}.")
    if image.dtype.kind != "f":
        raise ValueError(
            f"{what} must be float in [0, 1], got {image.dtype}; for integer pixels use "
            "upscale_radiograph (it knows the real maximum)."
        )
    bad = int(image.size - np.isfinite(image).sum()) if image.size else 0
    if bad:
        raise ValueError(f"{what} has {bad} NaN or infinite values; replace them first.")
    if image.size and not (image.min() >= 0 and image.max() <= 1):
        raise ValueError(
            f"{what} has values outside [0, 1] (min {np.nanmin(image):.4g}, max "
            f"{np.nanmax(image):.4g}); clip it first (bicubic downsampling overshoots a little)."
        )
    return image


def upscale_arrays(
    images: Sequence[np.ndarray],
    net: torch.nn.Module,
    options: InferOptions | None = None,
    *,
    scale: int | None = None,
) -> list[np.ndarray]:
    """Super-resolve gray float images in [0, 1]; returns float32 images ``scale`` times larger.

    Images of one size share batches. ``scale`` defaults to ``net.scale`` (or ``net.upscale``).
    """
    options = options or InferOptions()
    images = [_check_float_image(image, f"images[{i}]") for i, image in enumerate(images)]
    scale = net_scale(net, scale)
    outputs = [np.empty((h * scale, w * scale), np.float32) for h, w in (i.shape for i in images)]

    def sink(index: int, target: tuple[slice, slice], tile: np.ndarray) -> None:
        outputs[index][target] = tile

    _run(images, [1.0] * len(images), net, scale, options, sink)
    return outputs


def upscale_array(
    image: np.ndarray,
    net: torch.nn.Module,
    options: InferOptions | None = None,
    *,
    scale: int | None = None,
) -> np.ndarray:
    """Super-resolve one gray float image in [0, 1] (see :func:`upscale_arrays`)."""
    return upscale_arrays([image], net, options, scale=scale)[0]


def upscale_radiographs(
    radiographs: Sequence[Radiograph],
    net: torch.nn.Module,
    options: InferOptions | None = None,
    *,
    scale: int | None = None,
) -> list[Radiograph]:
    """Super-resolve radiographs, each keeping its ``max_value`` and integer dtype.

    Pixels are divided by the radiograph's real maximum (not the dtype's) on the way in and
    rounded back to ``[0, max_value]`` tile by tile on the way out, so no float copy of the
    output is ever held whole.
    """
    options = options or InferOptions()
    scale = net_scale(net, scale)
    for i, rad in enumerate(radiographs):
        if rad.pixels.ndim != 2 or rad.pixels.dtype.kind not in "ui":
            raise ValueError(
                f"radiographs[{i}] ({rad.path}) must hold 2-D integer pixels, got "
                f"{rad.pixels.dtype} {rad.pixels.shape}."
            )
        low, high = (int(rad.pixels.min()), int(rad.pixels.max())) if rad.pixels.size else (0, 0)
        if low < 0 or high > rad.max_value:
            # Clipping here would silently change the image the user gave.
            raise ValueError(
                f"radiographs[{i}] ({rad.path}) has pixels {low}..{high} outside its range "
                f"0..{rad.max_value}; fix max_value or the pixels."
            )
    outputs = [
        np.empty(
            (rad.pixels.shape[0] * scale, rad.pixels.shape[1] * scale),
            np.uint8 if rad.max_value <= 255 else np.uint16,
        )
        for rad in radiographs
    ]

    def sink(index: int, target: tuple[slice, slice], tile: np.ndarray) -> None:
        outputs[index][target] = to_pixels(tile, radiographs[index].max_value)

    _run(
        [rad.pixels for rad in radiographs],
        [float(rad.max_value) for rad in radiographs],
        net,
        scale,
        options,
        sink,
    )
    note = f"super-resolved x{scale} by {type(net).__name__} ({options.describe_backend()})"
    return [
        replace(rad, pixels=out, note="; ".join(filter(None, [rad.note, note])))
        for rad, out in zip(radiographs, outputs, strict=True)
    ]


def upscale_radiograph(
    radiograph: Radiograph,
    net: torch.nn.Module,
    options: InferOptions | None = None,
    *,
    scale: int | None = None,
) -> Radiograph:
    """Super-resolve one radiograph (see :func:`upscale_radiographs`)."""
    return upscale_radiographs([radiograph], net, options, scale=scale)[0]


def baseline_array(image: np.ndarray, *, scale: int = 4, method: str = "bicubic") -> np.ndarray:
    """Upscale a gray float image in [0, 1] by ``scale`` with :func:`radiographs.resize` (``method``
    ``bicubic``, ``lanczos`` or ``bilinear``), clipped to [0, 1] like the network's output."""
    image = _check_float_image(image, "image")
    h, w = image.shape
    return np.clip(resize(image, (w * scale, h * scale), method=method), 0.0, 1.0)


def baseline_radiograph(
    radiograph: Radiograph, *, scale: int = 4, method: str = "bicubic"
) -> Radiograph:
    """:func:`baseline_array` on a radiograph; keeps its ``max_value`` and dtype."""
    out = baseline_array(radiograph.as_float(), scale=scale, method=method)
    note = f"upscaled x{scale} by {method}"
    return replace(
        radiograph,
        pixels=to_pixels(out, radiograph.max_value),
        note="; ".join(filter(None, [radiograph.note, note])),
    )
