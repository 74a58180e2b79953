"""Precision names: "auto" resolves from the hardware; bad names are refused."""

import pytest

from libkd_keras import precision
from libkd_keras.distill import baseline


def test_cpu_flags_reads_the_flags_line(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx512f amx_bf16 amx_tile\nbugs\t\t: spectre\n")
    assert precision.cpu_flags(str(info)) == {"fpu", "sse2", "avx512f", "amx_bf16", "amx_tile"}
    assert precision.cpu_flags(str(tmp_path / "missing")) == set()


@pytest.mark.parametrize("fast, expected", [(True, "mixed_bfloat16"), (False, "float32")])
def test_auto_follows_the_hardware(monkeypatch, fast, expected):
    monkeypatch.setattr(precision, "fast_bfloat16", lambda: fast)
    assert precision.resolve_precision("auto") == expected
    assert precision.resolve_precision("float32") == "float32"
    assert precision.resolve_precision("mixed_bfloat16") == "mixed_bfloat16"
    assert baseline(precision="auto").precision == expected  # recipes record what they ran with


def test_fast_bfloat16_on_this_machine_matches_its_cpu_flags(float32_wherever_precision_is_auto):
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        pytest.skip("a GPU decides instead of the CPU flags")
    real_fast_bfloat16 = float32_wherever_precision_is_auto  # the conftest fixture hands back the real one
    assert real_fast_bfloat16() == bool(precision.cpu_flags() & {"amx_bf16", "avx512_bf16"})


def test_unknown_precision_names_the_choices():
    with pytest.raises(ValueError, match="auto"):
        precision.resolve_precision("float16")
    with pytest.raises(ValueError, match="precision"):
        baseline(precision="bf16")
