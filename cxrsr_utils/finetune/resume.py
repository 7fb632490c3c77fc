"""What lets a fine-tuning run resume exactly: the data order inside an epoch and the seeds.

:func:`data_loader` is basicsr's dataset and data loader with a sampler that can skip the
samples an interrupted epoch already used (:class:`ResumableSampler`);
:func:`load_resume_state` finds the newest checkpoint that loads and sets basicsr's resume
paths; :func:`derived_seed` is the seed a process starts from at an iteration.
"""

from __future__ import annotations

from cxrsr_utils.sr import upstream as sr_backend  # noqa: F401  (the basicsr import shim, before basicsr)

# isort: split

import contextlib
import hashlib
import io
import logging
from collections.abc import Iterator
from typing import Any

from basicsr.data import build_dataloader, build_dataset
from basicsr.data.data_sampler import EnlargedSampler
from basicsr.utils.misc import check_resume

from cxrsr_utils.finetune import checkpoints


def data_loader(opt: dict[str, Any]) -> tuple[ResumableSampler, Any]:
    """basicsr's dataset and data loader, with a sampler that can resume inside an epoch."""
    dataset_opt = opt["datasets"]["train"]
    world, rank = opt["world_size"], opt["rank"]
    train_set = build_dataset(dataset_opt)
    sampler = ResumableSampler(train_set, world, rank, dataset_opt["dataset_enlarge_ratio"])
    loader = build_dataloader(
        train_set,
        dataset_opt,
        num_gpu=opt["num_gpu"],
        dist=opt["dist"],
        sampler=sampler,
        seed=opt["manual_seed"],
    )
    if len(loader) == 0:
        raise ValueError(
            f"{len(train_set)} images give no full batch of "
            f"{dataset_opt['batch_size_per_gpu']} per process over {world} "
            "processes; add images or raise dataset_enlarge_ratio."
        )
    return sampler, loader


class ResumableSampler(EnlargedSampler):
    """basicsr's EnlargedSampler that can skip the samples an interrupted epoch already used."""

    skip = 0

    def __iter__(self) -> Iterator[int]:
        indices = list(super().__iter__())
        skip, self.skip = self.skip, 0
        return iter(indices[skip:])


def derived_seed(seed: int, rank: int, start_iter: int) -> int:
    """The seed process ``rank`` starts from at ``start_iter`` (fresh seeds on a resume)."""
    if start_iter == 0:
        return seed + rank  # basicsr's convention for a fresh run
    digest = hashlib.sha256(f"{seed}/{rank}/{start_iter}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


def load_resume_state(opt: dict[str, Any], logger: logging.Logger) -> dict[str, Any] | None:
    """The newest checkpoint whose files all load (see :func:`checkpoints.newest_loadable`),
    with basicsr's resume paths set in ``opt``; None for a fresh start."""
    found = checkpoints.newest_loadable(opt, logger)
    if found is None:
        return None
    path, state = found
    opt["path"]["resume_state"] = str(path)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):  # check_resume print()s what it changes
        check_resume(opt, state["iter"])
    for line in out.getvalue().splitlines():
        logger.info(line)
    return state
