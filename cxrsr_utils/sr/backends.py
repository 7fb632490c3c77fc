"""Which code runs the network: torch, or OpenVINO's CPU plugin, chosen by CPU kind.

The engine (:mod:`cxrsr_utils.sr.infer`) hands every batch of windows to a *forward* function
made here; tiling, batching, bit depth and the gray reduction stay the engine's.

- **Two purposes, two bounds.** An output that a metric, a validation point or a classifier
  form is computed from runs in fp32 and must agree with torch eager fp32 to at least
  :data:`SCORE_AGREEMENT_DB` (PSNR of one against the other on the [0, 1] scale). An output
  that is only looked at may take the CPU's bf16 path, within :data:`VIEW_AGREEMENT_DB`.
  :func:`agreement_bound` says which bound a precision promises; it is recorded with every
  output (manifest, PNG text chunks, DICOM DerivationDescription).
- **Chosen by measurement** (``bench/backends.py``, ``reports/bench/backends.md``): on every
  CPU kind measured, OpenVINO ran RRDBNet faster than torch eager at the same precision, and
  it is the only way to AMX's bf16 matrix units worth having (8.4x torch eager fp32 on an
  Intel Xeon, against 2.8x for torch's bf16 autocast). :data:`FASTEST` holds the measured
  choice per CPU kind and precision; a pair not measured takes OpenVINO too (the same oneDNN
  kernels underneath). torch stays the backend on a GPU, where OpenVINO is not installed,
  for bf16 that the CPU only emulates (OpenVINO would silently run fp32 there), and for
  networks whose weights change between calls (training's validation): converting RRDBNet
  takes about 10 s, more than a validation pass saves.
- **Converted once per weights.** The OpenVINO model is converted from the torch module and
  cached as IR in ``<cache>/openvino/`` under the SHA-256 of the weights (and the OpenVINO
  version), so new weights get a new conversion and a conversion is never reused for others.
  Compiled models are kept per input shape for the life of the process.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import warnings
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from cxrsr_utils.core import cpu
from cxrsr_utils.core.errors import CxrsrError

Backend = Literal["auto", "torch", "openvino"]
BACKENDS = ("auto", "torch", "openvino")
Forward = Callable[[torch.Tensor], torch.Tensor]

SCORE_AGREEMENT_DB = 100.0
# bf16 through RRDBNet's 23 blocks agrees with fp32 to 49.2-52.1 dB on AMX for torch autocast
# and OpenVINO alike (24² to 256² LR crops of a mirror radiograph, 2026-12-04, the smaller
# inputs lower); issue 20's one 128² crop gave 53.8-54.4 dB. The promise is the measured
# floor less a margin: 45 dB is an RMS difference of 0.56% of the range, about 1.4 grey levels
# of an 8-bit output.
VIEW_AGREEMENT_DB = 45.0

# Measured fastest backend per (CPU kind, precision), reports/bench/backends.md:
#   avx2 fp32: OpenVINO 4.16 s, torch eager 4.94 s, torch channels_last 5.09 s, ONNX Runtime
#     5.07 s (AMD EPYC, 2 cores, 128x128 LR, x4plus); bf16 is emulated there (cpu.py).
#   amx fp32: OpenVINO 1.93 s, torch channels_last 2.53 s, torch eager 3.11 s; amx bf16:
#     OpenVINO 0.34 s, torch channels_last 0.63 s, torch autocast 0.99 s (Intel Xeon, 2 cores,
#     128x128 LR, OpenMP's default wait policy; OpenVINO first at every size from 64 to 256).
#   avx512_bf16, emulated on that Xeon: OpenVINO first at each precision (fp32 1.94 s, bf16
#     2.95 s); not yet measured on an AMD EPYC with AVX512_BF16.
FASTEST: dict[tuple[str, str], str] = {
    ("avx2", "fp32"): "openvino",
    ("amx", "fp32"): "openvino",
    ("amx", "bf16"): "openvino",
    ("avx512_bf16", "fp32"): "openvino",
    ("avx512_bf16", "bf16"): "openvino",
}
_OPENVINO_PRECISION = {"fp32": "f32", "bf16": "bf16"}
_COMPILED_KEEP = 4  # compiled models kept per process (one per window shape in practice)


class BackendError(CxrsrError, ValueError):
    """A backend that cannot run here; the message says what to do instead."""


@functools.cache
def openvino_version() -> str | None:
    """OpenVINO's version where it is installed, else None."""
    try:
        import openvino
    except ImportError:
        return None
    return str(openvino.__version__).split("-")[0]


def choose(
    requested: str,
    device: str,
    precision: str,
    *,
    flags: dict[str, bool] | None = None,
    openvino: str | None | bool = True,
) -> Literal["torch", "openvino"]:
    """The backend to run: ``requested`` checked, or ``auto`` resolved by :data:`FASTEST`.

    ``flags`` (CPU flags, :func:`cpu.isa_flags`; the kind is :func:`cpu.cpu_kind`'s) and
    ``openvino`` (its version, or None when not installed; True: look) exist for tests that
    fake another machine.
    """
    if requested not in BACKENDS:
        raise BackendError(f"backend must be one of {', '.join(BACKENDS)}, got {requested!r}.")
    version = openvino_version() if openvino is True else openvino
    on_cpu = torch.device(device).type == "cpu"
    kind = cpu.cpu_kind(flags)
    native = precision == "fp32" or kind in ("amx", "avx512_bf16")
    if requested == "openvino":
        if not on_cpu:
            raise BackendError(
                f"backend 'openvino' runs on the CPU; device {device!r} needs 'torch'."
            )
        if version is None:
            raise BackendError(
                "backend 'openvino' asked for, but OpenVINO is not installed here: "
                "pip install 'openvino==2026.4.1', or use backend 'torch'."
            )
        if precision not in _OPENVINO_PRECISION:
            raise BackendError(f"backend 'openvino' runs fp32 or bf16, not {precision!r}.")
        if not native:
            raise BackendError(
                "backend 'openvino' in bf16 needs a CPU with native bf16 (AMX or AVX512_BF16); "
                "here it would run fp32 under a bf16 label: use precision 'fp32'."
            )
        return "openvino"
    if requested == "torch":
        return "torch"
    if not on_cpu or version is None or precision not in _OPENVINO_PRECISION or not native:
        return "torch"
    return "openvino" if FASTEST.get((kind, precision), "openvino") == "openvino" else "torch"


def agreement_bound(precision: str) -> float:
    """The promised agreement with torch eager fp32, dB: fp32 scores, anything else is viewed."""
    return SCORE_AGREEMENT_DB if precision == "fp32" else VIEW_AGREEMENT_DB


def label(backend: str, precision: str, channels_last: bool = False) -> str:
    """What ran, for provenance: ``openvino 2026.4.1 f32``, ``torch 2.14.1 channels_last``."""
    if backend == "openvino":
        return f"openvino {openvino_version()} {_OPENVINO_PRECISION.get(precision, precision)}"
    layout = " channels_last" if channels_last else ""
    return f"torch {torch.__version__.split('+')[0]}{layout} {precision}"


# ---- weights' identity ------------------------------------------------------------------

_DIGESTS: weakref.WeakKeyDictionary[torch.nn.Module, tuple[tuple[int, ...], str]] = (
    weakref.WeakKeyDictionary()
)


def weights_sha256(net: torch.nn.Module) -> str:
    """SHA-256 of the network's state (names, dtypes, shapes and values, in order).

    Remembered per network until a tensor of it changes in place (torch counts versions), so
    the ~0.2 s of hashing RRDBNet's 67 MB is paid once per set of weights.
    """
    state = net.state_dict()
    versions = tuple(t._version for t in state.values())
    known = _DIGESTS.get(net)
    if known is not None and known[0] == versions:
        return known[1]
    digest = hashlib.sha256(type(net).__name__.encode())
    for name, tensor in state.items():
        value = tensor.detach().cpu().contiguous()
        digest.update(f"{name}|{value.dtype}|{tuple(value.shape)}".encode())
        digest.update(value.view(torch.uint8).numpy().tobytes() if value.numel() else b"")
    _DIGESTS[net] = (versions, digest.hexdigest())
    return digest.hexdigest()


# ---- OpenVINO -------------------------------------------------------------------------


def converted_path(net: torch.nn.Module, cache: Path | None = None) -> Path:
    """Where the OpenVINO IR of ``net``'s current weights is (or will be) cached."""
    from cxrsr_utils.external.sources import cache_dir

    folder = (cache or cache_dir()) / "openvino"
    return folder / f"{type(net).__name__}-{weights_sha256(net)[:24]}-ov{openvino_version()}.xml"


def convert(net: torch.nn.Module, channels: int, mod: int, cache: Path | None = None) -> Path:
    """The cached IR of ``net`` (converted now if absent): input (N, channels, H, W), any size."""
    import openvino as ov

    xml = converted_path(net, cache)
    if xml.is_file() and xml.with_suffix(".bin").is_file():
        return xml
    xml.parent.mkdir(parents=True, exist_ok=True)
    example = torch.zeros(1, channels, 4 * mod, 4 * mod)
    # Tracing records autograd-free ops only under no_grad (inference_mode tensors cannot be
    # traced), and converts the module as it is now: eval mode, on the CPU.
    was_training = net.training
    net.eval()
    try:
        with torch.no_grad(), warnings.catch_warnings():
            # OpenVINO traces with torch.jit.trace, which torch 2.14 calls deprecated.
            warnings.filterwarnings("ignore", category=FutureWarning, module="torch")
            model = ov.convert_model(net, example_input=example, input=[(-1, channels, -1, -1)])
    finally:
        net.train(was_training)
    part = xml.with_name(f".{xml.stem}.part{os.getpid()}.xml")
    ov.save_model(model, part, compress_to_fp16=False)
    # read_model finds the weights beside the .xml under the same stem: the .bin goes first,
    # the .xml last, so a complete .xml always has its .bin.
    part.with_suffix(".bin").replace(xml.with_suffix(".bin"))
    part.replace(xml)
    return xml


_COMPILED: OrderedDict[tuple[Any, ...], Any] = OrderedDict()


def _compiled(xml: Path, shape: tuple[int, ...], precision: str) -> Any:
    """A compiled OpenVINO model of ``xml`` for inputs of ``shape``, kept for later batches."""
    import openvino as ov

    key = (str(xml), shape, precision, torch.get_num_threads())
    if key in _COMPILED:
        _COMPILED.move_to_end(key)
        return _COMPILED[key]
    core = ov.Core()
    model = core.read_model(xml)
    model.reshape(list(shape))  # a static shape compiles to faster kernels than a dynamic one
    config = {
        # Explicit, because the CPU plugin's default on a bf16-capable CPU is bf16.
        "INFERENCE_PRECISION_HINT": _OPENVINO_PRECISION[precision],
        "INFERENCE_NUM_THREADS": torch.get_num_threads(),
        "PERFORMANCE_HINT": "LATENCY",
    }
    compiled = core.compile_model(model, "CPU", config)
    _COMPILED[key] = compiled
    while len(_COMPILED) > _COMPILED_KEEP:
        _COMPILED.popitem(last=False)
    return compiled


def openvino_forward(
    net: torch.nn.Module, channels: int, mod: int, precision: str, cache: Path | None = None
) -> Forward:
    """A forward function running ``net``'s current weights in OpenVINO at ``precision``."""
    xml = convert(net, channels, mod, cache)

    def forward(x: torch.Tensor) -> torch.Tensor:
        compiled = _compiled(xml, tuple(x.shape), precision)
        array = np.ascontiguousarray(x.detach().cpu().float().numpy())
        return torch.from_numpy(np.array(compiled(array)[0], dtype=np.float32, copy=True))

    return forward


# ---- the one entry point ------------------------------------------------------------------

_AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


@contextlib.contextmanager
def session(
    net: torch.nn.Module,
    *,
    backend: str,
    precision: str,
    device: str,
    channels_last: bool,
    channels: int,
    mod: int,
) -> Iterator[Forward]:
    """Yield the forward function of ``net`` on ``backend``; the network is in eval mode
    meanwhile and gets its training mode and memory format back afterwards."""
    was_training = net.training
    net.eval()
    if backend == "openvino":
        try:
            yield openvino_forward(net, channels, mod, precision)
        finally:
            net.train(was_training)
        return
    target = torch.device(device)
    net.to(target)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    if channels_last:
        net.to(memory_format=memory_format)

    def forward(x: torch.Tensor) -> torch.Tensor:
        x = x.to(target).contiguous(memory_format=memory_format)
        if precision == "fp32":
            return net(x)
        with torch.autocast(device_type=target.type, dtype=_AUTOCAST_DTYPES[precision]):
            return net(x)

    try:
        yield forward
    finally:
        net.train(was_training)
        if channels_last:
            net.to(memory_format=torch.contiguous_format)
