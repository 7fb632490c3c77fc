"""The processes of a fine-tuning run: joining torchrun's group, waiting for each other, memory.

basicsr's ``init_dist`` forces NCCL and divides by the GPU count: :func:`init_distributed`
picks gloo on CPU.
"""

from __future__ import annotations

from cxrsr_utils.sr import upstream as sr_backend  # noqa: F401  (the basicsr import shim, before basicsr)

# isort: split

import os
import resource
from collections.abc import Mapping
from typing import Any

import torch
from basicsr.utils.dist_util import get_dist_info


def init_distributed(opt: dict[str, Any]) -> bool:
    """Join the process group when launched by torchrun; True when this call created it."""
    import torch.distributed as dist

    created = False
    if opt.get("launcher", "none") == "none":
        opt["dist"] = False
    else:
        if opt["launcher"] != "pytorch":
            raise ValueError(f"Unsupported launcher {opt['launcher']!r}; use torchrun (pytorch).")
        if "RANK" not in os.environ:
            raise RuntimeError(
                "These options are for several processes (launcher: pytorch); run "
                "them with the command from torchrun_command()."
            )
        if not dist.is_initialized():
            cuda = opt["num_gpu"] > 0
            backend = (opt.get("dist_params") or {}).get("backend") or ("nccl" if cuda else "gloo")
            if cuda:
                # basicsr uses RANK % device_count; LOCAL_RANK is right on several nodes too.
                torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
            dist.init_process_group(backend=backend)
            created = True
        opt["dist"] = True
    opt["rank"], opt["world_size"] = get_dist_info()
    return created


def barrier(opt: Mapping[str, Any]) -> None:
    """Wait for every process of the run (nothing to wait for in one process)."""
    if opt["dist"]:
        import torch.distributed as dist

        dist.barrier()


def peak_rss_mb() -> float:
    """This process's peak resident memory (MB; ru_maxrss is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
