"""Training checkpoints that survive a failed write, and resume from the newest one that loads.

basicsr's ``BaseModel.save_network`` writes ``net_g_N.pth``/``net_d_N.pth`` straight to their
final paths and, after three failed tries, logs "Just ignore it" and returns. A full disk then
leaves a torn, unloadable network file behind a normal return; the training loop would go on
to write ``N.state``, prune the previous good checkpoint, and a later resume would pick the
torn one because it only checked that the files exist.

Here every checkpoint file is written to a temporary file beside its target, flushed to disk,
loaded back, and only then renamed into place; any failure raises :class:`CheckpointError`
and leaves the previous checkpoint untouched. :func:`prune` runs only after a whole
checkpoint was written this way, and :func:`newest_loadable` resumes from the newest
checkpoint whose every file loads, falling back past torn or missing ones.

A checkpoint ``N`` is ``<training_states>/N.state`` plus ``<models>/net_g_N.pth`` (and
``net_d_N.pth`` when the options have a discriminator), basicsr's layout.
"""

from __future__ import annotations

import logging
import os
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from cxrsr_utils.core.atomic import atomic_path
from cxrsr_utils.core.errors import CxrsrError

_STATE_RE = re.compile(r"(\d+)\.state")
# Temporary files of atomic_path left by a killed process: ".<name>.<random>.part" (and
# ".<stem>.<random><suffix>" from before atomic_path named them .part).
_TEMP_RE = re.compile(r"\.(net_[gd]_\d+|\d+)\.(.+\.(pth|state)|(pth|state)\.[^.]+\.part)")


class CheckpointError(CxrsrError, RuntimeError):
    """A checkpoint file could not be written or does not load; the message names the file."""


def load(path: str | os.PathLike[str]) -> Any:
    """Load a checkpoint file safely (``weights_only``) to CPU; CheckpointError if it cannot."""
    try:
        # basicsr's MultiStepLR state holds a collections.Counter of milestones.
        with torch.serialization.safe_globals([Counter]):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for torn or foreign files
        raise CheckpointError(f"Checkpoint file {path} does not load: {exc}") from exc


def save(obj: Any, target: str | os.PathLike[str]) -> Path:
    """Write ``obj`` to ``target`` through a temporary file that is loaded back before the rename.

    Raises :class:`CheckpointError` (naming the file) when writing, flushing or loading back
    fails, e.g. on a full disk; ``target`` is then untouched. Saved through a file handle so
    the archive inside is always named ``archive`` (byte-reproducible, see ``save_torch``).
    """
    target = Path(target)
    try:
        with atomic_path(target) as tmp:
            with open(tmp, "wb") as f:
                torch.save(obj, f)
                f.flush()
                os.fsync(f.fileno())
            load(tmp)
    except Exception as exc:
        raise CheckpointError(
            f"Could not write checkpoint {target}: {exc}. Nothing was written there and the "
            "previous checkpoint is kept; free disk space in "
            f"{target.parent} (or choose another experiments_root) and resume."
        ) from exc
    _fsync_dir(target.parent)
    return target


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable (POSIX); a no-op where folders cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def network_file(opt: Mapping[str, Any], net_label: str, current_iter: int) -> Path:
    """basicsr's file name of a network checkpoint (``-1`` means ``latest``)."""
    name = "latest" if current_iter == -1 else str(current_iter)
    return Path(opt["path"]["models"]) / f"{net_label}_{name}.pth"


def network_dict(nets: Sequence[torch.nn.Module], param_keys: Sequence[str]) -> dict[str, Any]:
    """``{param_key: state_dict}`` on CPU without DDP's ``module.`` prefix, as basicsr saves,
    in the default memory format (a channels_last network saves the same file as a plain one)."""
    if len(nets) != len(param_keys):
        raise ValueError("save_network needs one param_key per network.")
    out: dict[str, Any] = {}
    for net, key in zip(nets, param_keys, strict=True):
        if isinstance(net, torch.nn.parallel.DistributedDataParallel | torch.nn.DataParallel):
            net = net.module
        out[key] = {
            k.removeprefix("module."): v.detach().cpu().contiguous()
            for k, v in net.state_dict().items()
        }
    return out


def files(opt: Mapping[str, Any], it: int) -> list[Path]:
    """Every file of checkpoint ``it``: the training state, then each network file."""
    nets = ["net_g", "net_d"] if "network_d" in opt else ["net_g"]
    return [Path(opt["path"]["training_states"]) / f"{it}.state"] + [
        network_file(opt, n, it) for n in nets
    ]


def iterations(opt: Mapping[str, Any]) -> list[int]:
    """Iterations that have a training state file, oldest first."""
    states = Path(opt["path"]["training_states"])
    if not states.is_dir():
        return []
    return sorted(int(m.group(1)) for f in states.iterdir() if (m := _STATE_RE.fullmatch(f.name)))


def newest_loadable(
    opt: Mapping[str, Any], logger: logging.Logger
) -> tuple[Path, dict[str, Any]] | None:
    """The newest checkpoint whose state and network files all load: (state path, state).

    Older checkpoints are tried when a newer one is missing a file or holds a torn one (each
    skip is logged as a warning); None when no checkpoint loads.
    """
    for it in reversed(iterations(opt)):
        state_path, *nets = files(opt, it)
        missing = [p for p in nets if not p.is_file()]
        if missing:
            logger.warning(f"Skipping checkpoint {it}: missing {', '.join(map(str, missing))}.")
            continue
        try:
            state = load(state_path)
            for net in nets:
                load(net)
        except CheckpointError as exc:
            logger.warning(f"Skipping checkpoint {it}: {exc}")
            continue
        if int(state.get("iter", -1)) != it:
            logger.warning(
                f"Skipping checkpoint {it}: {state_path} says iteration {state.get('iter')}."
            )
            continue
        return state_path, state
    return None


def prune(opt: Mapping[str, Any], keep: int | None) -> None:
    """Delete every checkpoint except ``keep`` (all when None), and stale temporary files.

    Call it only after checkpoint ``keep`` was written completely (every :func:`save`
    returned): then its files have loaded back and the older ones are no longer needed.
    """
    folders = [Path(opt["path"]["training_states"]), Path(opt["path"]["models"])]
    kept = set(files(opt, keep)) if keep is not None else set()
    for folder in folders:
        if not folder.is_dir():
            continue
        for path in folder.iterdir():
            ours = (
                _STATE_RE.fullmatch(path.name)
                or _TEMP_RE.fullmatch(path.name)
                or re.fullmatch(r"net_[gd]_\d+\.pth", path.name)
            )
            if ours and path not in kept:
                path.unlink(missing_ok=True)
