"""The ncnn fp16 copy of RealESRGAN_x4plus converts to a strictly loading, working RRDBNet."""

import numpy as np
import pytest
import torch

from cxrsr_utils.external import sources
from cxrsr_utils.images import radiographs
from cxrsr_utils.sr import ncnn
from cxrsr_utils.sr import networks as models


@pytest.fixture(scope="module")
def ncnn_files():
    files = sources.resolve_package_files()
    return files["models/REALESRGAN_X4PLUS_UP4X.param"], files["models/REALESRGAN_X4PLUS_UP4X.bin"]


def test_conversion_loads_strictly_and_consumes_the_file(ncnn_files):
    param, binary = ncnn_files
    specs = ncnn.parse_param(param)
    assert len(specs) == 351 == len(ncnn.rrdbnet_conv_names())
    state = ncnn.convert(param, binary)
    net = models.build_generator()
    result = net.load_state_dict(state, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    w = state["conv_first.weight"]
    assert torch.equal(w, w.half().float()), "weights are exactly fp16 values"


def test_truncated_bin_is_rejected(ncnn_files, tmp_path):
    param, binary = ncnn_files
    cut = tmp_path / "cut.bin"
    cut.write_bytes(binary.read_bytes()[:-8])
    with pytest.raises(ValueError):
        ncnn.convert(param, cut)
    longer = tmp_path / "long.bin"
    longer.write_bytes(binary.read_bytes() + b"\0" * 4)
    with pytest.raises(ValueError, match="bytes left"):
        ncnn.convert(param, longer)


def test_converted_weights_are_cached_with_their_hash():
    _, info = models.ncnn_generator_state()
    assert info.fp16_rounded and len(info.sha256) == 64
    assert sources.sha256_file(models.sources.cache_dir() / "weights" / models.NCNN_CONVERTED) == (
        info.sha256
    )


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(10 * torch.log10(1 / torch.mean((a - b) ** 2)))


@pytest.mark.slow
def test_pretrained_beats_random_init_on_a_real_cxr(nih_images):
    torch.manual_seed(0)
    hr = radiographs.resize(radiographs.read_radiograph(nih_images[0]).as_float(), (192, 192))
    lr = np.clip(radiographs.resize(hr, (48, 48)), 0, 1)
    to_t = lambda a: torch.from_numpy(a)[None, None].repeat(1, 3, 1, 1)  # noqa: E731
    pretrained, info = models.load_pretrained_generator(download=False)
    assert info.source in {"RealESRGAN_x4plus", "RealESRGAN_x4plus_ncnn"}
    random_net = models.build_generator().eval()
    with torch.no_grad():
        good = _psnr(pretrained(to_t(lr)).clamp(0, 1), to_t(hr))
        bad = _psnr(random_net(to_t(lr)).clamp(0, 1), to_t(hr))
    assert good > 25 and good - bad > 15, (good, bad)


def test_saved_weights_do_not_depend_on_the_file_name(tmp_path):
    # torch.save(obj, path) embeds the path's stem, so atomic writes (random temp names) would
    # give the same weights a new SHA-256 on every run and break the model card's hash.
    state = {"params_ema": {"w": torch.arange(12.0).reshape(3, 4)}}
    a = models.save_torch(state, tmp_path / "generator.pth")
    b = models.save_torch(state, tmp_path / "other" / "another_name.pth")
    assert a.read_bytes() == b.read_bytes()
    assert not list(tmp_path.glob(".*")), "no temporary file is left behind"
    loaded = models.load_state_dict_file(b)
    assert torch.equal(loaded["w"], state["params_ema"]["w"])
    state["params_ema"]["w"][0, 0] = -1
    assert models.save_torch(state, tmp_path / "changed.pth").read_bytes() != a.read_bytes()
