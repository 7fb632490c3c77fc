"""The inference engine: tiling is exact, bit depth survives, batching and precision behave."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from cxrsr_utils.images import radiographs
from cxrsr_utils.images.radiograph import Radiograph
from cxrsr_utils.sr.infer import (
    InferOptions,
    baseline_array,
    baseline_radiograph,
    upscale_array,
    upscale_arrays,
    upscale_radiograph,
    upscale_radiographs,
)
from cxrsr_utils.sr.upscaler import load_model

QUIET = InferOptions(progress=False)


def small_net(seed: int = 0) -> torch.nn.Module:
    """x4 conv net with a receptive field radius of exactly 3 LR pixels (three 3x3 convs)."""
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.Conv2d(8, 8, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.Conv2d(8, 3 * 16, 3, padding=1),
        torch.nn.PixelShuffle(4),
    ).eval()


def nearest_net() -> torch.nn.Module:
    """Identity-like x4 'network': every output pixel is an input pixel, all channels equal."""
    return torch.nn.Upsample(scale_factor=4, mode="nearest")


def opts(**kwargs: object) -> InferOptions:
    return InferOptions(**{"progress": False, **kwargs})


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    # Odd sizes so that no tile grid divides them.
    return np.random.default_rng(0).random((29, 23), dtype=np.float32)


@pytest.mark.parametrize(
    ("tile", "tile_pad", "pre_pad", "batch_size"),
    [(7, 3, 10, 1), (7, 3, 10, 3), (8, 3, 0, 2), (5, 4, 3, 4), (10, 5, 0, 16), (40, 3, 10, 2)],
)
def test_tiled_equals_untiled_when_pad_covers_receptive_field(
    image: np.ndarray, tile: int, tile_pad: int, pre_pad: int, batch_size: int
) -> None:
    net = small_net()
    whole = upscale_array(image, net, opts(pre_pad=pre_pad), scale=4)
    tiled = upscale_array(
        image,
        net,
        opts(tile=tile, tile_pad=tile_pad, pre_pad=pre_pad, batch_size=batch_size),
        scale=4,
    )
    assert tiled.shape == whole.shape == (29 * 4, 23 * 4)
    np.testing.assert_allclose(tiled, whole, rtol=0, atol=1e-6)


def test_srvgg_scale_is_read_and_tiling_exact(image: np.ndarray) -> None:
    # realesr-general-x4v3's architecture, shrunk: 1 + 2 + 1 convs 3x3 -> radius 4.
    from cxrsr_utils.sr.upstream import SRVGGNetCompact

    torch.manual_seed(1)
    net = SRVGGNetCompact(num_feat=4, num_conv=2, upscale=4, act_type="prelu").eval()
    whole = upscale_array(image, net, opts())
    tiled = upscale_array(image, net, opts(tile=9, tile_pad=4, batch_size=3))
    assert whole.shape == (29 * 4, 23 * 4)
    np.testing.assert_allclose(tiled, whole, rtol=0, atol=1e-6)


@pytest.mark.parametrize("tile_pad", [0, 2])
def test_tiling_differs_when_pad_is_short_of_receptive_field(
    image: np.ndarray, tile_pad: int
) -> None:
    # The exactness above is not vacuous: with too little context the seams show.
    net = small_net()
    whole = upscale_array(image, net, opts(), scale=4)
    tiled = upscale_array(image, net, opts(tile=7, tile_pad=tile_pad), scale=4)
    assert np.abs(tiled - whole).max() > 1e-3


def test_untiled_is_the_network_forward_with_channel_mean(image: np.ndarray) -> None:
    net = small_net()
    with torch.no_grad():
        rgb = net(torch.from_numpy(image)[None, None].repeat(1, 3, 1, 1))[0]
    expected_mean = rgb.mean(0).clamp(0, 1).numpy()
    expected_luma = (0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]).clamp(0, 1).numpy()
    np.testing.assert_allclose(
        upscale_array(image, net, opts(pre_pad=0), scale=4), expected_mean, atol=1e-6
    )
    np.testing.assert_allclose(
        upscale_array(image, net, opts(pre_pad=0, gray="luma"), scale=4),
        expected_luma,
        atol=1e-6,
    )


def test_pre_pad_is_reflect_padding_at_bottom_right_cropped_off(image: np.ndarray) -> None:
    net = small_net()
    padded = np.pad(image, ((0, 5), (0, 5)), mode="reflect")
    expected = upscale_array(padded, net, opts(pre_pad=0), scale=4)[: 29 * 4, : 23 * 4]
    np.testing.assert_allclose(
        upscale_array(image, net, opts(pre_pad=5), scale=4), expected, atol=1e-6
    )


def test_batches_of_mixed_images_equal_one_at_a_time() -> None:
    rng = np.random.default_rng(1)
    images = [rng.random(shape, dtype=np.float32) for shape in [(16, 16), (16, 16), (12, 20)]]
    net = small_net()
    together = upscale_arrays(images, net, opts(tile=8, tile_pad=4, batch_size=5), scale=4)
    for img, out in zip(images, together, strict=True):
        alone = upscale_array(img, net, opts(), scale=4)
        np.testing.assert_allclose(out, alone, atol=1e-6)


@pytest.mark.parametrize("max_value", [4095, 65535])
@pytest.mark.parametrize("tile", [0, 6])
def test_16bit_round_trip_keeps_values_exactly(max_value: int, tile: int) -> None:
    rng = np.random.default_rng(max_value)
    pixels = rng.integers(0, max_value + 1, size=(13, 17)).astype(np.uint16)
    pixels[0, 0], pixels[-1, -1] = 0, max_value
    rad = Radiograph(pixels, max_value, Path("synthetic.png"), "16-bit")
    out = upscale_radiograph(rad, nearest_net(), opts(tile=tile, tile_pad=2), scale=4)
    assert out.pixels.dtype == np.uint16
    assert out.max_value == max_value
    assert out.pixels.max() == max_value  # not squashed into 1/16 of the range
    np.testing.assert_array_equal(out.pixels, np.kron(pixels, np.ones((4, 4), np.uint16)))
    assert out.path == rad.path and "super-resolved x4" in out.note


def test_8bit_stays_8bit() -> None:
    pixels = np.random.default_rng(8).integers(0, 256, size=(10, 9)).astype(np.uint8)
    rad = Radiograph(pixels, 255, Path("synthetic.png"))
    [out] = upscale_radiographs([rad], nearest_net(), opts(), scale=4)
    assert out.pixels.dtype == np.uint8 and out.max_value == 255
    np.testing.assert_array_equal(out.pixels, np.kron(pixels, np.ones((4, 4), np.uint8)))


def test_radiograph_path_matches_float_path() -> None:
    pixels = np.random.default_rng(12).integers(0, 4096, size=(15, 11)).astype(np.uint16)
    rad = Radiograph(pixels, 4095, Path("synthetic.dcm"), "DICOM 12-bit")
    net = small_net()
    via_float = radiographs.to_pixels(upscale_array(rad.as_float(), net, opts(), scale=4), 4095)
    np.testing.assert_array_equal(upscale_radiograph(rad, net, opts(), scale=4).pixels, via_float)


def test_bf16_on_cpu_runs_close_to_fp32(image: np.ndarray) -> None:
    net = small_net()
    fp32 = upscale_array(image, net, opts(), scale=4)
    bf16 = upscale_array(image, net, opts(precision="bf16"), scale=4)
    assert bf16.dtype == np.float32
    assert 0 < np.abs(bf16 - fp32).max() < 0.05


def test_bad_inputs_and_options_raise(image: np.ndarray) -> None:
    net = small_net()
    with pytest.raises(ValueError, match="fp16"):
        InferOptions(precision="fp16", device="cpu")
    with pytest.raises(ValueError, match="tile_pad"):
        InferOptions(tile_pad=-1)
    with pytest.raises(ValueError, match=r"outside \[0, 1\]"):
        upscale_array(image * 1.5, net, QUIET, scale=4)
    with pytest.raises(ValueError, match="2-D"):
        upscale_array(np.stack([image] * 3, -1), net, QUIET, scale=4)
    with pytest.raises(ValueError, match="float"):
        upscale_array((image * 255).astype(np.uint8), net, QUIET, scale=4)
    with pytest.raises(ValueError, match="scale"):
        upscale_array(image, net, QUIET)  # a Sequential has no .scale


def test_non_finite_output_raises(image: np.ndarray) -> None:
    class Broken(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.full_like(
                torch.repeat_interleave(x, 4, -1).repeat_interleave(4, -2), float("nan")
            )

    with pytest.raises(FloatingPointError, match="NaN"):
        upscale_array(image, Broken(), QUIET, scale=4)


def test_channels_last_matches_and_leaves_the_network_as_it_was(image: np.ndarray) -> None:
    net = small_net()
    plain = upscale_arrays([image, image[::-1].copy()], net, opts(batch_size=2), scale=4)
    nhwc = upscale_arrays(
        [image, image[::-1].copy()], net, opts(batch_size=2, channels_last=True), scale=4
    )
    for a, b in zip(plain, nhwc, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)
    # converted for the call only: the caller's network keeps its contiguous weights
    assert all(p.is_contiguous() for p in net.parameters())


def test_network_mode_is_restored(image: np.ndarray) -> None:
    net = small_net().train()
    upscale_array(image, net, QUIET, scale=4)
    assert net.training


def test_baseline_has_the_same_interface(image: np.ndarray) -> None:
    expected = np.clip(radiographs.resize(image, (23 * 4, 29 * 4), "bicubic"), 0, 1)
    np.testing.assert_array_equal(baseline_array(image), expected)
    # Through the models of cxrsr upscale / cxrsr_utils.upscale (what notebook 04 runs).
    np.testing.assert_array_equal(load_model("bicubic").upscale_float(image), expected)
    lanczos = load_model("lanczos").upscale_float(image)
    assert lanczos.shape == expected.shape and not np.array_equal(lanczos, expected)
    net = small_net()
    np.testing.assert_array_equal(
        load_model(net, QUIET).upscale_float(image), upscale_array(image, net, QUIET, scale=4)
    )
    pixels = np.random.default_rng(3).integers(0, 4096, size=(8, 8)).astype(np.uint16)
    out = baseline_radiograph(Radiograph(pixels, 4095, Path("x.dcm")), method="lanczos")
    assert out.pixels.dtype == np.uint16 and out.max_value == 4095 and out.pixels.shape == (32, 32)
    assert out.pixels.max() <= 4095


@pytest.mark.slow
def test_pretrained_rrdbnet_tiled_close_to_untiled(nih_images: list[Path]) -> None:
    # RRDBNet's receptive field is far wider than any practical tile_pad, so tiling is not
    # exact. Measured on this crop: tile_pad 10 -> max |diff| 0.018 (4.7 grey levels of 8-bit),
    # mean 0.0017, PSNR vs untiled 52.3 dB (tile_pad 4: max 0.033, mean 0.0029, 48.4 dB).
    from cxrsr_utils.sr.networks import load_pretrained_generator
    from cxrsr_utils.stats.image_metrics import psnr

    net, _ = load_pretrained_generator(download=False)
    hr = radiographs.read_radiograph(nih_images[0]).as_float()
    lr = np.clip(radiographs.resize(hr, (256, 256)), 0, 1)[100:140, 100:140]
    whole = upscale_array(lr, net, opts())
    tiled = upscale_array(lr, net, opts(tile=20, tile_pad=10, batch_size=4))
    assert whole.shape == tiled.shape == (160, 160)
    diff = np.abs(tiled - whole)
    assert diff.max() < 0.03 and diff.mean() < 0.003
    assert psnr(tiled, whole) > 48
    # and the output is a plausible upscaling, not noise: close to the HR crop it came from
    assert np.abs(whole - hr[400:560, 400:560]).mean() < 0.02


@pytest.mark.parametrize("scale", [1, 2])
def test_rrdbnet_at_scale_1_and_2_runs_tiled_and_whole(scale):
    from cxrsr_utils.sr.upstream import RRDBNet

    torch.manual_seed(0)
    net = RRDBNet(num_in_ch=3, num_out_ch=3, num_feat=8, num_block=1, num_grow_ch=4, scale=scale)
    image = np.random.default_rng(0).random((20, 24)).astype(np.float32)
    whole = upscale_array(image, net, QUIET)
    tiled = upscale_array(image, net, InferOptions(tile=8, tile_pad=4, progress=False))
    assert whole.shape == tiled.shape == (20 * scale, 24 * scale)
    assert np.isfinite(whole).all()


def test_pixels_outside_the_range_are_refused_not_clipped():
    over = Radiograph(np.array([[0, 5000]], np.uint16), 4095, Path("over.png"))
    with pytest.raises(ValueError, match=r"over\.png.*0\.\.5000 outside its range 0\.\.4095"):
        upscale_radiograph(over, nearest_net(), QUIET, scale=4)
    neg = Radiograph(np.array([[-3, 7]], np.int16), 255, Path("neg.png"))
    with pytest.raises(ValueError, match=r"neg\.png.*-3\.\.7 outside"):
        upscale_radiograph(neg, nearest_net(), QUIET, scale=4)


def test_nan_input_is_named_as_nan():
    image = np.full((4, 4), 0.5, np.float32)
    image[1, 1] = np.nan
    with pytest.raises(ValueError, match="1 NaN or infinite"):
        upscale_array(image, nearest_net(), QUIET, scale=4)


def test_nan_output_in_fp32_is_not_blamed_on_fp16():
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 3, 1), torch.nn.Upsample(scale_factor=4))
    with torch.no_grad():
        net[0].weight.fill_(float("nan"))
    with pytest.raises(FloatingPointError) as err:
        upscale_array(np.zeros((4, 4), np.float32), net, QUIET, scale=4)
    assert "fp16" not in str(err.value) and "fp32" in str(err.value)


def test_cuda_without_a_gpu_and_boolean_tile_are_refused(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="no CUDA GPU"):
        InferOptions(device="cuda")
    with pytest.raises(ValueError, match="tile must be an integer"):
        InferOptions(tile=True)


def test_tiled_memory_grows_only_by_the_image_arrays():
    """Python-side peak memory of a tiled run: a 4x larger image costs its input and output
    arrays, never a float copy of the whole output (checked with tracemalloc, which sees numpy)."""
    import tracemalloc

    def peak(side: int) -> int:
        rad = Radiograph(np.zeros((side, side), np.uint16), 4095, Path("zeros.png"))
        tracemalloc.start()
        upscale_radiograph(rad, nearest_net(), opts(tile=32, tile_pad=8), scale=4)
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return top

    small, large = peak(64), peak(256)
    arrays = (256**2 - 64**2) * (2 * 16 + 2 + 2)  # uint16 output, input, its padded copy
    float_output = (256**2) * 16 * 4
    assert large - small < arrays + float_output // 4, (small, large, arrays)
