"""The training loop: basicsr's pieces run on CPU or GPUs with explicit options and paths.

:func:`train` runs an option dict from :func:`cxrsr_utils.finetune.options.build_options`
with basicsr's dataset, sampler, data loader, networks, losses, optimizers, schedulers and
EMA, and the study's model (:class:`~cxrsr_utils.finetune.model.CxrRealESRGANModel`). It is
our own small loop rather than basicsr's ``train_pipeline``, because of what breaks there
off-GPU or outside realesrgan's checkout:

- ``basicsr.train.load_resume_state`` calls ``torch.cuda.current_device()`` and looks in
  ``./experiments``; ``realesrgan/train.py`` takes site-packages as its root folder and
  ``train_pipeline`` reads ``sys.argv``: here the paths come from the options.
- basicsr's ``init_dist`` forces NCCL and divides by the GPU count:
  :func:`cxrsr_utils.finetune.processes.init_distributed` picks gloo on CPU.
- Resume falls back past checkpoints that do not load (:mod:`cxrsr_utils.finetune.checkpoints`), and
  continues exactly (position in the epoch, RNG states, training-pair pool) in one process.

With validation settings in the options (:mod:`cxrsr_utils.finetune.validation`), the EMA
generator is validated every ``val_freq`` iterations and at the last one, and the generator
exported is the one the declared rule chooses (best validation PSNR, or the last).
"""

from __future__ import annotations

from cxrsr_utils.sr import upstream as sr_backend  # noqa: F401  (the basicsr import shim, before basicsr)

# isort: split

import copy
import logging
import os
import shutil
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from basicsr.models import build_model
from basicsr.utils import set_random_seed

from cxrsr_utils.core.repro import set_rng_state
from cxrsr_utils.finetune import checkpoints, processes, resume
from cxrsr_utils.finetune.identity import RUN_IDENTITY, check_identity, run_identity
from cxrsr_utils.finetune.logs import LOSS_CSV, IterationLogs, basicsr_logging, iteration_logs
from cxrsr_utils.finetune.model import CxrRealESRGANModel
from cxrsr_utils.finetune.records import (
    TrainResult,
    card_summary,
    export,
    exported_network,
    finished,
)
from cxrsr_utils.finetune.validation import VALIDATION_OPTION, Validator, validation_due


def train(
    opt: Mapping[str, Any],
    *,
    generator_path: str | os.PathLike[str],
    model_card_path: str | os.PathLike[str],
    params_hash: str | None = None,
    data_manifest_hash: str | None = None,
    stop_after: int | None = None,
) -> TrainResult:
    """Run (or resume, or recognise as done) the training described by ``opt``.

    Resumes from the newest checkpoint in ``opt.path.experiments_root`` whose every file
    loads (a torn or missing file makes it fall back to an older one) and stops at
    ``train.total_iter``. A checkpoint holds basicsr's networks (``net_g`` with its EMA,
    ``net_d``), optimizer and scheduler states, plus the position in the epoch, the RNG
    states and the training-pair pool, so that in one process with ``num_workers=0`` a
    resumed run ends with exactly the weights of an uninterrupted one (with several
    processes or data-loader workers it continues with fresh seeds instead). Checkpoints
    are written every ``save_checkpoint_freq`` iterations and at the last one, each file
    through a temporary file that must load back before it is renamed into place (a failed
    write raises :class:`~cxrsr_utils.finetune.checkpoints.CheckpointError`); only then is the
    previous checkpoint deleted, so only the newest is kept, and all are deleted once the
    EMA generator (``{"params_ema": ...}``) and the model card are written (each
    atomically). With validation settings (``opt.cxrsr.validation``) the EMA generator is
    validated every ``freq`` iterations and at the last, the curve goes to
    ``validation_log.csv`` and into every checkpoint, and the generator exported is the one
    the settings' ``checkpoint`` rule chooses (see :mod:`cxrsr_utils.finetune.validation`).
    A run whose card and generator already match these options and hashes is recognised as
    done and not trained again; checkpoints of a different recipe raise RuntimeError instead
    of being resumed.
    ``stop_after`` stops after that iteration without writing outputs, as an interruption
    would. Writes ``loss_log.csv``, ``train.log`` and TensorBoard events (``tb_logger/``)
    under the experiments folder. Several processes: see
    :func:`cxrsr_utils.finetune.torchrun.torchrun_command`.
    """
    t0 = time.time()
    options = copy.deepcopy(dict(opt))
    created_group = processes.init_distributed(options)
    try:
        return _train(
            options,
            Path(generator_path),
            Path(model_card_path),
            params_hash,
            data_manifest_hash,
            stop_after,
            t0,
        )
    finally:
        if created_group:
            import torch.distributed as dist

            dist.destroy_process_group()


@dataclass(frozen=True)
class _Run:
    """One call of :func:`train`: the options, the outputs and the run's identity."""

    opt: dict[str, Any]
    generator_path: Path
    card_path: Path
    identity: dict[str, Any]
    t0: float

    @property
    def root(self) -> Path:
        return Path(self.opt["path"]["experiments_root"])

    @property
    def total(self) -> int:
        return int(self.opt["train"]["total_iter"])

    @property
    def rank(self) -> int:
        return self.opt["rank"]

    def result(
        self, completed: bool, it: int, resumed: int | None, n_iters: int, train_seconds: float
    ) -> TrainResult:
        summary = card_summary(self.card_path) if completed else {}
        return TrainResult(
            completed=completed,
            iterations=it,
            total_iter=self.total,
            resumed_from=resumed,
            generator_path=str(self.generator_path) if completed else None,
            model_card_path=str(self.card_path) if completed else None,
            loss_csv=str(self.root / LOSS_CSV),
            experiments_root=str(self.root),
            options_sha256=self.identity["options_sha256"],
            sources=self.opt["cxrsr"]["sources"],
            seconds=time.time() - self.t0,
            seconds_per_iter=train_seconds / n_iters if n_iters else None,
            peak_rss_mb=processes.peak_rss_mb(),
            iter_seconds=summary.get("seconds_per_iter"),
            validation=summary.get("validation"),
        )


@dataclass
class _Progress:
    """Where the loop is: the iteration, the epoch and its batches done, the time trained."""

    start_iter: int
    it: int
    epoch: int
    epoch_batches: int = 0  # batches of ``epoch`` already trained
    n_iters: int = 0
    train_seconds: float = 0.0

    def result(self, run: _Run, completed: bool) -> TrainResult:
        return run.result(
            completed, self.it, self.start_iter or None, self.n_iters, self.train_seconds
        )


def _train(
    opt: dict[str, Any],
    generator_path: Path,
    card_path: Path,
    params_hash: str | None,
    data_hash: str | None,
    stop_after: int | None,
    t0: float,
) -> TrainResult:
    identity = run_identity(opt, params_hash, data_hash)
    run = _Run(opt, generator_path, card_path, identity, t0)
    if finished(card_path, generator_path, identity):
        return run.result(True, run.total, run.total, 0, 0.0)
    if opt["cxrsr"]["device"] == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(
            "These options were built for a GPU but torch sees none; rebuild them "
            "with device='cpu' or 'auto'."
        )
    _prepare_folders(run)
    with basicsr_logging(run.root / "train.log", run.rank) as logger:
        state = resume.load_resume_state(opt, logger)
        start_iter = int(state["iter"]) if state else 0
        if start_iter == 0 and run.rank == 0:
            # A fresh start: events of an earlier, finished run would mix into the curves.
            shutil.rmtree(opt["path"]["tb_logger"], ignore_errors=True)
        set_random_seed(resume.derived_seed(opt["manual_seed"], run.rank, start_iter))
        sampler, loader = resume.data_loader(opt)
        model = build_model(opt)
        progress = _Progress(start_iter, start_iter, int(state["epoch"]) if state else 0)
        pending_rng = _resume(model, state, progress, len(loader), logger)
        validator = _validator(run, model, state, start_iter)
        stop = run.total if stop_after is None else min(run.total, stop_after)
        with iteration_logs(opt, model.uses_gan, start_iter) as logs:
            _loop(run, model, loader, sampler, progress, pending_rng, stop, logs, validator)
        if progress.it < run.total:
            logger.info(
                f"Stopped at iteration {progress.it} of {run.total} (stop_after={stop_after})."
            )
            return progress.result(run, False)
        if run.rank == 0:
            choice = validator.choice(run.total) if validator else None
            export(model, opt, generator_path, card_path, identity, start_iter, logger, choice)
            # The card and generator now mark the run as done; checkpoints are dead weight.
            checkpoints.prune(opt, keep=None)
            if validator:
                validator.finish()
            (run.root / RUN_IDENTITY).unlink(missing_ok=True)
        processes.barrier(opt)
        logger.info(f"Training finished at iteration {progress.it}.")
    return progress.result(run, True)


def _validator(
    run: _Run, model: CxrRealESRGANModel, state: dict[str, Any] | None, start_iter: int
) -> Validator | None:
    """Rank 0's validator (None without validation settings, and on the other ranks),
    started afresh or from the curve the checkpoint carried."""
    settings = run.opt["cxrsr"].get(VALIDATION_OPTION)
    if not settings or run.rank != 0:
        return None
    validator = Validator(settings, run.root, str(model.device))
    validator.start(state.get("validation") if state else None, start_iter)
    model.validation_state = validator.state.to_dict()
    return validator


def _prepare_folders(run: _Run) -> None:
    """basicsr's folders, and the identity that guards its checkpoints (all processes wait)."""
    opt = run.opt
    for key in ("experiments_root", "models", "training_states", "tb_logger"):
        if run.rank == 0:
            Path(opt["path"][key]).mkdir(parents=True, exist_ok=True)
    processes.barrier(opt)
    check_identity(
        run.root / RUN_IDENTITY, run.identity, bool(checkpoints.iterations(opt)), run.rank
    )
    processes.barrier(opt)


def _resume(
    model: CxrRealESRGANModel,
    state: dict[str, Any] | None,
    progress: _Progress,
    epoch_length: int,
    logger: logging.Logger,
) -> dict[str, Any] | None:
    """Put a checkpoint's state into the model and ``progress``; returns the RNG states to
    restore once the first epoch's batches are drawn (None: nothing to restore)."""
    exact = model.opt["world_size"] == 1  # one process saves one set of RNG states and one pool
    if state:
        model.resume_training(state)
        progress.epoch_batches = int(state.get("loop", {}).get("epoch_batches", 0))
        if exact:
            model.restore_pool(state.get("pool"))
        logger.info(
            f"Resuming training from epoch {progress.epoch}, iteration {progress.start_iter}."
        )
    if progress.epoch_batches >= epoch_length:
        progress.epoch, progress.epoch_batches = progress.epoch + 1, 0
    return state.get("rng") if state and exact else None


def _loop(
    run: _Run,
    model: CxrRealESRGANModel,
    loader: Any,
    sampler: resume.ResumableSampler,
    progress: _Progress,
    pending_rng: dict[str, Any] | None,
    stop: int,
    logs: IterationLogs,
    validator: Validator | None,
) -> None:
    """Train epoch after epoch until iteration ``stop``."""
    per_batch = run.opt["datasets"]["train"]["batch_size_per_gpu"]
    while progress.it < stop:
        sampler.set_epoch(progress.epoch)
        sampler.skip = progress.epoch_batches * per_batch
        batches = iter(loader)  # draws from torch's RNG, so restore the states after
        if pending_rng is not None:
            set_rng_state(pending_rng)
            pending_rng = None
        tic = time.perf_counter()
        for batch in batches:
            data_time = time.perf_counter() - tic
            _step(run, model, batch, progress, tic, data_time, logs, validator)
            if progress.it >= stop:
                break
            tic = time.perf_counter()
        else:
            progress.epoch, progress.epoch_batches = progress.epoch + 1, 0


def _step(
    run: _Run,
    model: CxrRealESRGANModel,
    batch: dict[str, Any],
    progress: _Progress,
    tic: float,
    data_time: float,
    logs: IterationLogs,
    validator: Validator | None,
) -> None:
    """One iteration: optimise, log, validate and write a checkpoint when they are due."""
    progress.it += 1
    progress.epoch_batches += 1
    it = progress.it
    _update_learning_rate(model, it, run.opt["train"].get("warmup_iter", -1))
    model.feed_data(batch)
    model.optimize_parameters(it)
    iter_time = time.perf_counter() - tic
    progress.n_iters += 1
    progress.train_seconds += iter_time
    _log_iteration(run, model, progress, iter_time, data_time, logs)
    if validation_due(run.opt, it, run.total):
        # Before the checkpoint, so a checkpoint always carries the points up to its iteration
        # (and names a best-generator file that exists). Rank 0 validates, the others wait.
        if validator is not None:
            validator.validate(exported_network(model), it, progress.train_seconds)
            model.validation_state = validator.state.to_dict()
        processes.barrier(run.opt)
    if it % run.opt["logger"]["save_checkpoint_freq"] == 0 or it == run.total:
        _checkpoint(run, model, progress, validator)


def _log_iteration(
    run: _Run,
    model: CxrRealESRGANModel,
    progress: _Progress,
    iter_time: float,
    data_time: float,
    logs: IterationLogs,
) -> None:
    """The iteration's row of the loss CSV, and basicsr's message every ``print_freq``."""
    it = progress.it
    losses = model.get_current_log()
    lr_g = model.optimizers[0].param_groups[0]["lr"]
    lr_d = model.optimizers[1].param_groups[0]["lr"] if model.uses_gan else None
    if logs.loss_csv is not None:
        logs.loss_csv.write(
            {
                "iter": it,
                "epoch": progress.epoch,
                "lr_g": lr_g,
                "lr_d": lr_d,
                "time_s": iter_time,
                "data_time_s": data_time,
                "elapsed_s": logs.loss_csv.elapsed0 + progress.train_seconds,
                **losses,
            }
        )
    if it % run.opt["logger"]["print_freq"] == 0:
        logs.messages(
            {
                "epoch": progress.epoch,
                "iter": it,
                "lrs": [lr_g],
                "time": iter_time,
                "data_time": data_time,
                **losses,
            }
        )


def _checkpoint(
    run: _Run, model: CxrRealESRGANModel, progress: _Progress, validator: Validator | None
) -> None:
    """Write the checkpoint of this iteration, then drop the older one (and stale best files)."""
    model.loop_state = {"epoch_batches": progress.epoch_batches}
    # Every file is written through a temporary file that must load back
    # (CheckpointError otherwise), so the older one can go after.
    model.save(progress.epoch, progress.it)
    if run.rank == 0:
        checkpoints.prune(run.opt, keep=progress.it)
        if validator is not None:
            validator.prune()


def _update_learning_rate(model: CxrRealESRGANModel, it: int, warmup_iter: int) -> None:
    with warnings.catch_warnings():
        # During the discriminator warm-up (net_d_init_iters) the generator's optimizer rightly
        # does not step yet; torch warns about that ordering when the scheduler steps.
        warnings.filterwarnings("ignore", message=r"Detected call of `lr_scheduler\.step\(\)`")
        model.update_learning_rate(it, warmup_iter=warmup_iter)
