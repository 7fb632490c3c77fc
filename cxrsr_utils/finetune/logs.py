"""Where a fine-tuning run logs: ``train.log``, TensorBoard events and the loss CSV.

basicsr's logger writes everything to ``train.log`` in the experiments folder and only
warnings to the console; its message logger also feeds TensorBoard (without loading
TensorFlow). ``loss_log.csv`` has one row per iteration (learning rates, times, every loss
and, with a discriminator, its accuracy on real and fake patches); a resumed run drops the
rows after its checkpoint and writes them again. :func:`discriminator_verdict` says from
that log whether the discriminator learned or stayed at chance.
"""

from __future__ import annotations

from cxrsr_utils.core.errors import MissingStepError
from cxrsr_utils.sr import upstream as sr_backend  # noqa: F401  (the basicsr import shim, before basicsr)

# isort: split

import contextlib
import csv
import logging
import os
import sys
import types
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from basicsr.utils import MessageLogger, get_root_logger, init_tb_logger

from cxrsr_utils.core.atomic import atomic_path

GAN_LOG_KEYS = (
    "l_g_pix",
    "l_g_percep",
    "l_g_gan",
    "l_d_real",
    "out_d_real",
    "l_d_fake",
    "out_d_fake",
    "d_acc_real",
    "d_acc_fake",
)
L1_LOG_KEYS = ("l_g_pix",)
CSV_BASE_COLUMNS = ("iter", "epoch", "lr_g", "lr_d", "time_s", "data_time_s", "elapsed_s")
LOSS_CSV = "loss_log.csv"


class LossCSV:
    """The per-iteration loss log; rows after the resumed checkpoint are dropped (redone)."""

    def __init__(self, path: Path, columns: Sequence[str], resume_iter: int) -> None:
        self.path, self.columns = path, list(columns)
        self.elapsed0 = 0.0
        kept: list[dict[str, str]] = []
        if path.is_file() and resume_iter > 0:
            with open(path, newline="") as f:
                kept = [r for r in csv.DictReader(f) if int(r["iter"]) <= resume_iter]
            if kept and kept[-1].get("elapsed_s"):
                self.elapsed0 = float(kept[-1]["elapsed_s"])
        with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, self.columns)
            writer.writeheader()
            writer.writerows({k: r.get(k, "") for k in self.columns} for r in kept)
        self._file = open(path, "a", newline="")  # closed in close()
        self._writer = csv.DictWriter(self._file, self.columns, extrasaction="ignore")

    def write(self, row: Mapping[str, Any]) -> None:
        self._writer.writerow(row)
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def loss_log(source: str | os.PathLike[str]) -> pd.DataFrame:
    """The loss log of a run (its experiments folder or its CSV) as a DataFrame, one row per
    iteration: iter, epoch, lr_g, lr_d, time_s, data_time_s, elapsed_s and each loss."""
    path = Path(source)
    if path.is_dir():
        path = path / LOSS_CSV
    if not path.is_file():
        raise MissingStepError(f"No loss log at {path}; train first.")
    return pd.read_csv(path)


# The discriminator "stayed at chance" when its balanced accuracy (the mean of its accuracy on
# real and on fake patches; 0.5 for any discriminator that ignores its input) over the last
# VERDICT_TAIL of the logged iterations is below 0.5 + CHANCE_MARGIN.
VERDICT_TAIL = 0.25
CHANCE_MARGIN = 0.05


@dataclass(frozen=True)
class DiscriminatorVerdict:
    """Did the discriminator learn? ``at_chance`` None: no discriminator accuracy was logged
    (an L1-only variant, or a log from before it was). Accuracies are shares of patches over
    iterations ``first``..``last``."""

    at_chance: bool | None
    balanced_accuracy: float | None = None
    accuracy_real: float | None = None
    accuracy_fake: float | None = None
    first: int | None = None
    last: int | None = None

    @property
    def text(self) -> str:
        """One sentence for the notebook, the tables and the model card."""
        if self.at_chance is None:
            return "no discriminator accuracy logged (no discriminator, or an older log)"
        numbers = (
            f"balanced accuracy {self.balanced_accuracy:.2f} (real patches "
            f"{self.accuracy_real:.2f}, fake {self.accuracy_fake:.2f}) over iterations "
            f"{self.first}-{self.last}"
        )
        if self.at_chance:
            return (
                f"the discriminator stayed at chance: {numbers}; it did not learn, so this "
                "variant is not the paper's GAN protocol"
            )
        return f"the discriminator learned: {numbers}"


def discriminator_verdict(
    log: pd.DataFrame, *, tail: float = VERDICT_TAIL, margin: float = CHANCE_MARGIN
) -> DiscriminatorVerdict:
    """Whether a GAN run's discriminator stayed at chance, from its loss log (:func:`loss_log`):
    its balanced accuracy (mean of ``d_acc_real`` and ``d_acc_fake``) over the last ``tail``
    share of the logged iterations (at least one) against 0.5 + ``margin``."""
    if not 0 < tail <= 1:
        raise ValueError(f"tail must be in (0, 1], got {tail}.")
    columns = ["d_acc_real", "d_acc_fake"]
    if not set(columns) <= set(log.columns) or log[columns].dropna().empty:
        return DiscriminatorVerdict(None)
    rows = log.dropna(subset=columns).sort_values("iter")
    rows = rows.iloc[len(rows) - max(1, round(tail * len(rows))) :]
    real, fake = float(rows["d_acc_real"].mean()), float(rows["d_acc_fake"].mean())
    balanced = (real + fake) / 2
    return DiscriminatorVerdict(
        balanced < 0.5 + margin,
        balanced,
        real,
        fake,
        int(rows["iter"].iloc[0]),
        int(rows["iter"].iloc[-1]),
    )


@contextlib.contextmanager
def basicsr_logging(log_file: Path, rank: int) -> Iterator[logging.Logger]:
    """basicsr's logger, with everything in ``log_file`` and only warnings on the console."""
    logger = get_root_logger()  # creates the 'basicsr' logger with a console handler once
    for existing in logger.handlers:
        if type(existing) is logging.StreamHandler:
            existing.setLevel(logging.WARNING)
    handler: logging.Handler | None = None
    if rank == 0:
        logger.setLevel(logging.INFO)
        handler = logging.FileHandler(log_file, "a")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s: %(message)s"))
        logger.addHandler(handler)
    try:
        yield logger
    finally:
        if handler is not None:
            logger.removeHandler(handler)
            handler.close()


def _tensorboard_writer(log_dir: str) -> Any:
    """basicsr's TensorBoard writer, without loading TensorFlow just to write event files.

    When TensorFlow is installed, tensorboard imports all of it (seconds and about a GB on a
    small machine) unless the module ``tensorboard.compat.notf`` exists, which is how its
    own TensorFlow-free build selects its stub; register that marker unless TF is loaded.
    """
    if "tensorflow" not in sys.modules:
        name = "tensorboard.compat.notf"
        sys.modules.setdefault(name, types.ModuleType(name))
    return init_tb_logger(log_dir=log_dir)


@dataclass(frozen=True)
class IterationLogs:
    """Where each iteration is logged: basicsr's message logger and the loss CSV (rank 0)."""

    messages: MessageLogger
    loss_csv: LossCSV | None


@contextlib.contextmanager
def iteration_logs(opt: Mapping[str, Any], gan: bool, start_iter: int) -> Iterator[IterationLogs]:
    """basicsr's message logger (console, train.log, TensorBoard) and the loss CSV, for rank
    0; closed at the end."""
    rank, root = opt["rank"], Path(opt["path"]["experiments_root"])
    columns = list(CSV_BASE_COLUMNS) + list(GAN_LOG_KEYS if gan else L1_LOG_KEYS)
    tb_logger = (
        _tensorboard_writer(opt["path"]["tb_logger"])
        if opt["logger"]["use_tb_logger"] and rank == 0
        else None
    )
    messages = MessageLogger(opt, start_iter, tb_logger)
    loss_csv = LossCSV(root / LOSS_CSV, columns, start_iter) if rank == 0 else None
    try:
        yield IterationLogs(messages, loss_csv)
    finally:
        if loss_csv is not None:
            loss_csv.close()
        if tb_logger is not None:
            tb_logger.close()
