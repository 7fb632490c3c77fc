"""Running one fine-tuning recipe on several GPUs or CPU processes with torchrun.

:func:`distributed_options` splits the global batch over the processes;
:func:`torchrun_command` writes those options and gives the command that trains them
(``python -m torch.distributed.run ... -m cxrsr_utils.finetune.steps --opt ...``).
"""

from __future__ import annotations

import copy
import os
import sys
from collections.abc import Mapping
from typing import Any

from cxrsr_utils.finetune.option_files import write_options


def distributed_options(
    opt: Mapping[str, Any], *, nproc: int, backend: str | None = None
) -> dict[str, Any]:
    """Options for ``nproc`` processes (one per GPU, or CPU processes) keeping the global batch.

    ``backend`` defaults to NCCL on GPUs and gloo on CPU.
    """
    if nproc < 1:
        raise ValueError(f"nproc must be at least 1, got {nproc}.")
    out = copy.deepcopy(dict(opt))
    batch = out["cxrsr"]["batch_size"]
    if batch % nproc:
        good = [n for n in range(1, batch + 1) if batch % n == 0]
        raise ValueError(
            f"The global batch {batch} does not split over {nproc} processes; use "
            f"nproc in {good} or change batch_size."
        )
    per_proc = batch // nproc
    if out["queue_size"] % per_proc:
        raise ValueError(
            f"queue_size {out['queue_size']} must be divisible by the per-process batch {per_proc}."
        )
    cuda = out["cxrsr"]["device"] == "cuda"
    out["datasets"]["train"]["batch_size_per_gpu"] = per_proc
    out["launcher"] = "pytorch"
    out["dist_params"] = {"backend": backend or ("nccl" if cuda else "gloo")}
    return out


def torchrun_command(
    opt: Mapping[str, Any],
    *,
    nproc: int,
    opt_path: str | os.PathLike[str],
    generator_path: str | os.PathLike[str],
    model_card_path: str | os.PathLike[str],
    backend: str | None = None,
    params_hash: str | None = None,
    data_manifest_hash: str | None = None,
) -> tuple[list[str], dict[str, Any]]:
    """The command that trains ``opt`` on ``nproc`` GPUs (or CPU processes), and its options.

    The options (see :func:`distributed_options`) are written to ``opt_path``; the command is
    ``python -m torch.distributed.run --standalone --nproc_per_node N -m cxrsr_utils.finetune.steps
    --opt <opt_path> ...`` (``torchrun`` itself, without relying on it being on PATH).
    """
    dist_opt = distributed_options(opt, nproc=nproc, backend=backend)
    write_options(dist_opt, opt_path)
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={nproc}",
        "-m",
        "cxrsr_utils.finetune.steps",
        "--opt",
        str(opt_path),
        "--generator-path",
        str(generator_path),
        "--model-card",
        str(model_card_path),
    ]
    if params_hash:
        cmd += ["--params-hash", params_hash]
    if data_manifest_hash:
        cmd += ["--data-manifest-hash", data_manifest_hash]
    return cmd, dist_opt
