"""Precision names: "auto" resolves from the hardware; bad names are refused."""

import pytest

from libkd_keras import precision
from libkd_keras.distill import baseline


def test_cpu_flags_reads_the_flags_line(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx512f amx_bf16 amx_tile\nbugs\t\t: spectre\n")
    assert precision.cpu_flags(str(info)) == {"fpu", "sse2", "avx512f", "amx_bf16", "amx_tile"}
    assert precision.cpu_flags(str(tmp_path / "missing")) == set()


@pytest.mark.parametrize(
    "hardware, expected",
    [
        # hardware: {family: precision "auto" picks}, from the measured table (BF16_PAYS_ON)
        ({"amx_bf16", "avx512_bf16"}, dict(resnet="mixed_bfloat16", rednet="mixed_bfloat16", deit="mixed_bfloat16")),
        ({"avx512_bf16"}, dict(resnet="mixed_bfloat16", rednet="float32", deit="float32")),
        ({"gpu"}, dict(resnet="mixed_bfloat16", rednet="mixed_bfloat16", deit="mixed_bfloat16")),
        (set(), dict(resnet="float32", rednet="float32", deit="float32")),
    ],
)
def test_auto_follows_the_hardware_and_the_family(monkeypatch, hardware, expected):
    monkeypatch.setattr(precision, "bf16_hardware", lambda: frozenset(hardware))
    assert {family: precision.resolve_precision("auto", family) for family in precision.FAMILIES} == expected
    for family in (*precision.FAMILIES, None):
        assert precision.resolve_precision("float32", family) == "float32"
        assert precision.resolve_precision("mixed_bfloat16", family) == "mixed_bfloat16"
    assert baseline(precision="auto").precision == expected["deit"]  # student recipes resolve for DeiT


def test_real_hardware_reading_matches_this_machine(float32_wherever_precision_is_auto):
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        pytest.skip("a GPU decides instead of the CPU flags")
    real_bf16_hardware = float32_wherever_precision_is_auto  # the conftest fixture hands back the real one
    assert real_bf16_hardware() == frozenset(precision.cpu_flags() & {"amx_bf16", "avx512_bf16"})


def test_unknown_family_is_refused():
    with pytest.raises(ValueError, match="family"):
        precision.resolve_precision("auto", "vgg")


def test_unknown_precision_names_the_choices():
    with pytest.raises(ValueError, match="auto"):
        precision.resolve_precision("float16")
    with pytest.raises(ValueError, match="precision"):
        baseline(precision="bf16")
