"""The CPU facts a run records, and bf16 only where the CPU has it natively."""

from __future__ import annotations

import warnings

import pytest

from cxrsr_utils.core import cpu
from cxrsr_utils.core.params import load_params
from cxrsr_utils.reporting import provenance


def _flags(monkeypatch: pytest.MonkeyPatch, *present: str) -> None:
    monkeypatch.setattr(cpu, "_cpuinfo", lambda: ("Test CPU", frozenset(present)))


def test_auto_precision_is_bf16_only_with_native_bf16(monkeypatch):
    for var in cpu.AVX2_ONLY_ENV:
        monkeypatch.delenv(var, raising=False)
    _flags(monkeypatch, "avx2", "avx512f", "avx512_bf16")
    assert cpu.native_bf16() and cpu.resolve_precision("auto") == "bf16"
    _flags(monkeypatch, "avx2", "fma")
    assert not cpu.native_bf16() and cpu.resolve_precision("auto") == "fp32"
    _flags(monkeypatch, "avx2", "amx_tile", "amx_bf16")
    assert cpu.resolve_precision("auto") == "bf16"


def test_limiting_onednn_to_avx2_means_no_native_bf16(monkeypatch):
    for var in cpu.AVX2_ONLY_ENV:  # a run under bench/cpu_portability.py's AVX2 limits
        monkeypatch.delenv(var, raising=False)
    _flags(monkeypatch, "avx2", "avx512f", "avx512_bf16")
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    assert not cpu.native_bf16()
    assert cpu.isa_limits() == {"ONEDNN_MAX_CPU_ISA": "AVX2"}
    assert "emulated" in cpu.isa_label()


def test_explicit_bf16_on_an_emulating_cpu_warns_how_much_slower(monkeypatch):
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    _flags(monkeypatch, "avx2")
    with pytest.warns(RuntimeWarning, match=f"about {cpu.EMULATED_BF16_SLOWDOWN}x slower"):
        assert cpu.resolve_precision("bf16") == "bf16"
    _flags(monkeypatch, "avx2", "avx512f", "avx512_bf16")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert cpu.resolve_precision("bf16") == "bf16"
        assert cpu.resolve_precision("fp32") == "fp32"


def test_isa_label_names_the_cpu_and_its_kind(monkeypatch):
    for var in cpu.AVX2_ONLY_ENV:
        monkeypatch.delenv(var, raising=False)
    _flags(monkeypatch, "avx2")
    assert cpu.isa_label() == "Test CPU, AVX2 only"
    _flags(monkeypatch, "avx2", "avx512f", "avx512_bf16")
    assert cpu.isa_label() == "Test CPU, AVX-512 + native bf16"


def test_this_machine_is_described_in_the_provenance():
    info = provenance.device_info()["cpu"]
    assert info["model"] and set(info["flags"]) == set(cpu.ISA_FLAGS)
    assert info["torch_kernels"] in {"AVX512", "AVX2", "DEFAULT", "AVX512_BF16", "NO AVX"}
    assert isinstance(info["native_bf16"], bool)


def test_auto_profile_settings_resolve_to_this_cpu(monkeypatch):
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    params = load_params("quick", {"finetune.autocast": "auto", "evaluate.precision": "auto"})
    _flags(monkeypatch, "avx2")
    assert provenance.precisions(params) == {"finetune": "fp32", "evaluate": "fp32"}
    _flags(monkeypatch, "avx2", "avx512f", "avx512_bf16")
    assert provenance.precisions(params) == {"finetune": "bf16", "evaluate": "bf16"}
    # the quick profile itself stays fp32 everywhere, so its results compare across CPUs
    assert provenance.precisions(load_params("quick")) == {"finetune": "fp32", "evaluate": "fp32"}


def test_inference_options_resolve_auto_and_warn_for_emulated_bf16(monkeypatch):
    from cxrsr_utils.sr.infer import InferOptions

    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    _flags(monkeypatch, "avx2")
    assert InferOptions(precision="auto").precision == "fp32"
    with pytest.warns(RuntimeWarning, match="emulates"):
        InferOptions(precision="bf16")
    _flags(monkeypatch, "avx2", "avx512f", "avx512_bf16")
    assert InferOptions(precision="auto").precision == "bf16"


@pytest.mark.parametrize(
    ("isa", "kind", "bf16"),
    [
        ("AVX512_CORE_AMX", "amx", True),
        ("AVX512_CORE_BF16", "avx512_bf16", True),
        ("AVX512_CORE", "avx512", False),
        ("AVX2", "avx2", False),
    ],
)
def test_onednn_limits_emulate_a_slower_cpu_kind_never_a_faster_one(monkeypatch, isa, kind, bf16):
    for var in cpu.AVX2_ONLY_ENV:
        monkeypatch.delenv(var, raising=False)
    _flags(monkeypatch, "avx2", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16")
    assert cpu.cpu_kind() == "amx" and "AMX" in cpu.isa_label()
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", isa)
    assert cpu.cpu_kind() == kind
    assert cpu.native_bf16() is bf16
    assert ("emulated" in cpu.isa_label()) is (kind != "amx")
    _flags(monkeypatch, "avx2", "fma")  # a limit above the CPU's own kind changes nothing
    assert cpu.cpu_kind() == "avx2" and not cpu.native_bf16()


def test_each_emulated_kind_has_the_environment_that_makes_it(monkeypatch):
    _flags(monkeypatch, "avx2", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16")
    for kind, env in cpu.KIND_ENV.items():
        for var in cpu.AVX2_ONLY_ENV:
            monkeypatch.delenv(var, raising=False)
        for var, value in env.items():
            monkeypatch.setenv(var, value)
        assert cpu.cpu_kind() == kind
