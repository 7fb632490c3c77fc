"""How every external file of the registry (:mod:`cxrsr_utils.external.registry`) is found,
checked and fetched.

Resolution order for a file source (weights):

1. the user cache (``$CXRSR_CACHE``, default ``~/.cache/cxrsr``), ``weights/<file name>``;
2. the mirror folder named by ``$CXRSR_MIRROR``, ``weights/<file name>`` (read in place);
3. a download from the official URL into the cache, with a progress bar, written to a
   temporary file and renamed into place only once its size and SHA-256 are right.

A checksum mismatch, or a missing file that cannot be downloaded, raises :class:`SourceError`
with one message naming the file, the expected hash, the URL and how to fill a mirror. The one
exception is :func:`allow_unverified_for_tests`: tests and benchmarks that run the paper's
training path on random-weight stand-ins (see :func:`cxrsr_utils.sr.networks.write_standin_weights`)
accept files that fail their checksum inside that block; :func:`check` then calls them
``UNVERIFIED`` and the model card says so. The study's own commands never set it.

Data sets cannot be downloaded by code (NIH needs a manual download, Kermany sits behind
Mendeley/Kaggle); :func:`resolve_dataset` finds them in the cache or the mirror and otherwise
says where to get them and which layout is expected.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import os
import tempfile
import urllib.error
import urllib.request
import warnings
from collections.abc import Iterator
from pathlib import Path

from tqdm.auto import tqdm

from cxrsr_utils.core.atomic import glob_escape, remove_stale_parts
from cxrsr_utils.core.errors import CxrsrError
from cxrsr_utils.external import registry

ENV_CACHE = "CXRSR_CACHE"
ENV_MIRROR = "CXRSR_MIRROR"
STALE_DOWNLOAD_SECONDS = 600
# For notebooks run by a test in a kernel of their own; the study's commands never set it.
ENV_ALLOW_UNVERIFIED = "CXRSR_ALLOW_UNVERIFIED_FOR_TESTS"
_ALLOW_UNVERIFIED: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "cxrsr_allow_unverified", default=False
)


class SourceError(CxrsrError, RuntimeError):
    """An external file is missing, unreachable or fails its checksum."""


# --- locations -----------------------------------------------------------------------------


def cache_dir() -> Path:
    """The user cache: ``$CXRSR_CACHE`` or ``~/.cache/cxrsr``."""
    env = os.environ.get(ENV_CACHE)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "cxrsr"


def mirror_dir() -> Path | None:
    """The offline mirror named by ``$CXRSR_MIRROR``, or None when unset."""
    env = os.environ.get(ENV_MIRROR)
    return Path(env).expanduser() if env else None


def existing_mirror() -> Path | None:
    """:func:`mirror_dir` if it is a folder; a set but missing mirror is warned about (stderr)."""
    mirror = mirror_dir()
    if mirror is not None and not mirror.is_dir():
        warnings.warn(
            f"{ENV_MIRROR}={mirror} does not exist (or is not a folder); the mirror is skipped.",
            stacklevel=3,
        )
        return None
    return mirror


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """SHA-256 of a file, streamed."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


# --- file sources --------------------------------------------------------------------------


def _mismatch(source: registry.FileSource, path: Path) -> str | None:
    """Why ``path`` is not ``source`` (None when it is)."""
    size = path.stat().st_size
    if source.size is not None and size != source.size:
        return f"size {size:,} bytes, expected {source.size:,}"
    if source.sha256 or source.sha256_prefix:
        digest = sha256_file(path)
        if source.sha256 and digest != source.sha256:
            return f"sha256 {digest}, expected {source.sha256}"
        if source.sha256_prefix and not digest.startswith(source.sha256_prefix):
            return f"sha256 {digest}, expected one starting with {source.sha256_prefix}"
    return None


@contextlib.contextmanager
def allow_unverified_for_tests() -> Iterator[None]:
    """Inside this block, :func:`resolve` returns files that fail their checksum.

    Only for tests and benchmarks that exercise the paper's training path on stand-in
    weights (random weights with the real architectures and file names). The study's own
    commands never enter it; :func:`check` reports each such file as ``UNVERIFIED``.
    """
    token = _ALLOW_UNVERIFIED.set(True)
    try:
        yield
    finally:
        _ALLOW_UNVERIFIED.reset(token)


def _unverified_allowed() -> bool:
    return _ALLOW_UNVERIFIED.get() or os.environ.get(ENV_ALLOW_UNVERIFIED) == "1"


def check(name: str, path: str | os.PathLike[str]) -> str:
    """How a local file stands against source ``name``, for model cards and manifests.

    ``verified`` (its published hash, or hash prefix, and size match), ``unpinned`` (no hash
    is published: only size and loadability can be checked), or ``UNVERIFIED: <why>`` (it
    fails its checksum; only :func:`allow_unverified_for_tests` lets such a file through).
    """
    source = registry.WEIGHTS[name]
    problem = _mismatch(source, Path(path))
    if problem:
        return f"UNVERIFIED: {problem}"
    return "verified" if (source.sha256 or source.sha256_prefix) else "unpinned"


def _how_to_fix(source: registry.FileSource) -> str:
    return (
        f"Download {source.url} on a machine with internet access, check its "
        f"{source.check_text()}, "
        f"and put it at <mirror>/weights/{source.filename} with CXRSR_MIRROR=<mirror> set, "
        f"or at {cache_dir() / 'weights' / source.filename}."
    )


def resolve(name: str, *, download: bool = True) -> Path:
    """Return a verified local path for the weights source ``name``.

    Looks in the cache, then the mirror, then downloads (unless ``download`` is False).
    Raises :class:`SourceError` naming the file, its expected hash and URL when it cannot.
    """
    if name not in registry.WEIGHTS:
        known = ", ".join(sorted(registry.WEIGHTS))
        raise SourceError(f"Unknown source {name!r}; known sources: {known}.")
    source = registry.WEIGHTS[name]
    candidates = [cache_dir() / "weights" / source.filename]
    mirror = existing_mirror()
    if mirror is not None:
        candidates.append(mirror / "weights" / source.filename)
    for path in candidates:
        if path.is_file():
            problem = _mismatch(source, path)
            if problem and not _unverified_allowed():
                raise SourceError(
                    f"{path} does not match source {source.name} ({problem}). "
                    f"Delete it and fetch it again. {_how_to_fix(source)}"
                )
            return path
    if not download:
        raise SourceError(
            f"{source.filename} ({source.check_text()}) was not found in the cache or the mirror "
            f"and downloading is off. {_how_to_fix(source)}"
        )
    return download_to_cache(source)


def download_to_cache(source: registry.FileSource, timeout: float = 60.0) -> Path:
    """Download ``source`` into the cache atomically and verify it; return its path."""
    target = cache_dir() / "weights" / source.filename
    target.parent.mkdir(parents=True, exist_ok=True)
    # A killed download leaves its .part behind; a live one touches it every block.
    remove_stale_parts(target.parent, glob_escape(source.filename), age=STALE_DOWNLOAD_SECONDS)
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{source.filename}.", suffix=".part", dir=target.parent
    )
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                with urllib.request.urlopen(source.url, timeout=timeout) as response:
                    total = int(response.headers.get("Content-Length") or 0) or source.size
                    with tqdm(total=total, unit="B", unit_scale=True, desc=source.filename) as bar:
                        while block := response.read(1 << 20):
                            out.write(block)
                            bar.update(len(block))
            except (urllib.error.URLError, OSError, TimeoutError) as exc:
                raise SourceError(
                    f"Could not download {source.filename} from {source.url} ({exc}). "
                    f"Expected {source.check_text()}. {_how_to_fix(source)}"
                ) from exc
        problem = _mismatch(source, tmp)
        if problem:
            raise SourceError(
                f"Downloaded {source.filename} from {source.url} but it does not match "
                f"({problem}); "
                f"nothing was written to the cache. {_how_to_fix(source)}"
            )
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


# --- package sources -----------------------------------------------------------------------


def resolve_package_files(source: registry.PackageSource = registry.NCNN_X4PLUS) -> dict[str, Path]:
    """Paths of the files inside an installed PyPI package, each checked against its SHA-256."""
    import importlib.util

    spec = importlib.util.find_spec(source.package)
    if spec is None or not spec.submodule_search_locations:
        raise SourceError(
            f"The package {source.package} is not installed. Install it with "
            f"`pip install {source.package.replace('_', '-')}=={source.version}` "
            f"(it is part of this project's pinned dependencies)."
        )
    root = Path(next(iter(spec.submodule_search_locations)))
    out: dict[str, Path] = {}
    for rel, expected in source.files.items():
        path = root / rel
        if not path.is_file():
            raise SourceError(
                f"{path} is missing from the installed {source.package}; reinstall "
                f"{source.package}=={source.version}."
            )
        digest = sha256_file(path)
        if digest != expected:
            raise SourceError(
                f"{path} has sha256 {digest}, expected {expected} ({source.package} "
                f"{source.version}); reinstall that exact version."
            )
        out[rel] = path
    return out


# --- data sets -----------------------------------------------------------------------------


def resolve_dataset(name: str, root: str | Path | None = None) -> Path:
    """Find the data set ``name`` and check its layout.

    ``root`` (from params) wins when given; otherwise ``<cache>/data/<folder>`` and then
    ``<mirror>/data/<folder>`` are tried for each known folder name.
    """
    if name not in registry.DATASETS:
        known = ", ".join(sorted(registry.DATASETS))
        raise SourceError(f"Unknown data set {name!r}; known: {known}.")
    ds = registry.DATASETS[name]
    if root is not None:
        candidates = [Path(root).expanduser()]
    else:
        bases = [cache_dir() / "data"]
        mirror = existing_mirror()
        if mirror is not None:
            bases.append(mirror / "data")
        candidates = [base / folder for base in bases for folder in ds.folders]
    for path in candidates:
        if path.is_dir():
            missing = [r for r in ds.required if not (path / r).exists()]
            if missing:
                raise SourceError(
                    f"Data set {name} at {path} lacks {', '.join(missing)}; expected layout: "
                    f"{ds.layout}."
                )
            return path
    tried = ", ".join(str(c) for c in candidates)
    raise SourceError(
        f"Data set {name} not found (tried {tried}). Get it from {ds.where}, unpack it as "
        f"{ds.layout}, and put it under <mirror>/data/{ds.folders[0]} with CXRSR_MIRROR=<mirror> "
        f"set, or pass its folder as the profile's data root."
    )
