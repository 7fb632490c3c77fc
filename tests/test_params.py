"""Profiles load, overrides apply, and bad keys or values are errors that say what is valid."""

import pytest

from cxrsr_utils.core.params import ParamsError, load_params


@pytest.mark.parametrize("profile", ["quick", "paper"])
def test_profiles_load(profile):
    p = load_params(profile)
    assert p.profile == profile
    assert p.scale == 4


def test_paper_profile_counts_match_the_paper():
    p = load_params("paper")
    assert p.nih.n_finetune == 3600
    assert p.nih.multiscale_originals * (len(p.nih.scales) + 1) == 3600
    assert p.nih.n_crops == 900
    assert p.kermany.n_per_class == 1000


def test_nested_and_dotted_overrides():
    p = load_params("quick", {"nih": {"n_crops": 3}, "kermany.n_per_class": 5, "seed": 7})
    assert (p.nih.n_crops, p.kermany.n_per_class, p.seed) == (3, 5, 7)
    assert p.nih.crop_size == load_params("quick").nih.crop_size  # untouched keys stay


def test_unknown_key_lists_valid_keys():
    with pytest.raises(ParamsError) as err:
        load_params("quick", {"nih.n_crop": 3})
    msg = str(err.value)
    assert "nih.n_crop" in msg and "n_crops" in msg and "crop_size" in msg


def test_unknown_top_level_key():
    with pytest.raises(ParamsError, match="valid keys here: .*kermany"):
        load_params("quick", {"sed": 1})


def test_mistyped_value_is_an_error():
    with pytest.raises(ParamsError, match="nih.n_crops"):
        load_params("quick", {"nih.n_crops": "many"})


def test_hr_size_must_divide_by_scale():
    with pytest.raises(ParamsError, match="divisible"):
        load_params("quick", {"kermany.hr_size": 257})


def test_unknown_profile_names_the_known_ones():
    with pytest.raises(ParamsError, match="quick"):
        load_params("nope")


def test_digest_changes_with_params():
    assert load_params("quick").digest() == load_params("quick").digest()
    assert load_params("quick").digest() != load_params("quick", {"seed": 1}).digest()


def test_speed_switches_leave_the_digest_alone():
    """channels_last, compile and cudnn_benchmark change how fast fine-tuning runs, not what it
    computes: toggling them keeps the digest that identifies finished runs. The quick profile
    leaves them off; the paper profile turns them on for a GPU."""
    quick = load_params("quick")
    switched = load_params(
        "quick",
        {"finetune.compile": True, "finetune.channels_last": "auto", "finetune.cudnn_benchmark": 1},
    )
    assert (switched.finetune.compile, switched.finetune.channels_last) == (True, "auto")
    assert switched.finetune.cudnn_benchmark is True
    assert switched.digest() == quick.digest()
    assert (quick.finetune.compile, quick.finetune.channels_last) == (False, False)
    assert not quick.finetune.cudnn_benchmark
    paper = load_params("paper").finetune
    assert (paper.compile, paper.channels_last, paper.cudnn_benchmark) == ("auto",) * 3
    with pytest.raises(ParamsError, match="finetune.compile"):
        load_params("quick", {"finetune.compile": "gpu"})
    # notebook 04's channels_last likewise: the mirror profile runs with it, quick without
    nhwc = load_params("quick", {"evaluate.channels_last": True})
    assert nhwc.evaluate.channels_last and not quick.evaluate.channels_last
    assert nhwc.digest() == quick.digest()
    assert load_params("mirror").evaluate.channels_last


@pytest.mark.parametrize(
    "override, where",
    [
        ({"finetune.ema_decay": 1.5}, "finetune.ema_decay"),
        ({"finetune.lr_g": -1e-4}, "finetune.lr_g"),
        ({"nih.scales": [0.5, -0.25]}, "nih.scales"),
        ({"degradation.gaussian_noise_prob": 1.2}, "degradation.gaussian_noise_prob"),
        ({"degradation.resize_prob": [0.5, 0.5, -0.1]}, "degradation.resize_prob"),
        ({"degradation.noise_range": [30, 1]}, "noise_range"),
        ({"finetune.variants": []}, "finetune.variants"),
        ({"profile": "../../escape"}, "profile"),
    ],
)
def test_nonsense_values_are_refused(override, where):
    with pytest.raises(ParamsError, match=where.replace(".", r"\.")):
        load_params("quick", override)


def test_profile_name_cannot_escape_the_params_folder():
    with pytest.raises(ParamsError, match="may hold only letters"):
        load_params("../reports/quick")


def test_a_key_given_twice_is_refused(tmp_path):
    from cxrsr_utils.core.params import parse_set
    from cxrsr_utils.core.project import PARAMS_DIR

    text = (PARAMS_DIR / "quick.yaml").read_text() + "\nseed: 1\nseed: 2\n"
    (tmp_path / "dup.yaml").write_text(text)
    with pytest.raises(ParamsError, match="'seed' is given twice"):
        load_params(tmp_path / "dup.yaml")
    with pytest.raises(ParamsError, match="seed is given twice"):
        parse_set(["seed=1", "seed=2"])
    with pytest.raises(ParamsError, match="nih.n_crops is given twice"):
        load_params("quick", {"nih.n_crops": 3, "nih": {"n_crops": 4}})


def test_nih_split_shares_and_validation_side():
    nih = load_params("quick").nih
    assert nih.val_side == nih.eval_hr_size  # validation HR defaults to the test HR's side
    assert load_params("quick", {"nih.val_hr_size": 128}).nih.val_side == 128
    with pytest.raises(ParamsError, match="nih.val_hr_size=130 must be divisible"):
        load_params("quick", {"nih.val_hr_size": 130})
    with pytest.raises(ParamsError, match="leave patients for fine-tuning"):
        load_params("quick", {"nih.val_fraction": 0.5, "nih.test_fraction": 0.5})
    for removed in ("nih.eval_fraction", "nih.n_eval", "kermany.test_fraction"):
        with pytest.raises(ParamsError, match="unknown key"):
            load_params("quick", {removed: 1})
    assert load_params("quick", {"kermany.n_per_class": None}).kermany.n_per_class is None


def test_the_project_root_is_found_from_an_installed_package(tmp_path, monkeypatch):
    """`pip install .` puts the package in site-packages: the study then finds its checkout
    from the working folder (the notebooks run in notebooks/), or from $CXRSR_ROOT."""
    from cxrsr_utils.core.project import find_project_root

    checkout = tmp_path / "cxrsr"
    for folder in ("params", "notebooks", "cxrsr_utils"):
        (checkout / folder).mkdir(parents=True)
    site = tmp_path / "venv" / "site-packages" / "cxrsr_utils"
    site.mkdir(parents=True)
    monkeypatch.delenv("CXRSR_ROOT", raising=False)
    assert find_project_root(checkout / "cxrsr_utils", cwd=tmp_path) == checkout  # editable
    assert find_project_root(site, cwd=checkout / "notebooks") == checkout
    assert find_project_root(site, cwd=tmp_path) == site.parent  # no checkout anywhere
    monkeypatch.setenv("CXRSR_ROOT", str(checkout))
    assert find_project_root(site, cwd=tmp_path) == checkout


def test_the_study_profiles_score_in_fp32_on_the_cpu():
    """Scored outputs run in fp32 (issue 21, reports/bench/precision_bound.md: bf16 moved the
    mean PSNR by more than the 0.01 dB bound); the GPU-only paper profile keeps the paper's
    fp16, recorded as a gap from a CPU run."""
    for profile in ("quick", "mirror"):
        assert load_params(profile).evaluate.precision == "fp32", profile
