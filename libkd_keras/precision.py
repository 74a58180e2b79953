"""Compute precision of training: "float32", "mixed_bfloat16", or "auto" (bf16 where it is fast).

bfloat16 only pays where the hardware has bf16 matrix units: on a CPU with AMX-BF16 it trains the
convolutional teachers faster, on a CPU without bf16 instructions it is slower (the measurements:
benchmarks/RESULTS.md, "Training precision"). "auto" therefore picks mixed_bfloat16 on a CPU with AMX-BF16 or
AVX512-BF16 and on a GPU of compute capability 8.0 or newer (Ampere, Hopper), float32 elsewhere.

Under mixed_bfloat16 the weights stay float32 and the classifier heads and losses compute in
float32; exports are always float32 graphs.

Example:
>>> resolve_precision("auto")  # 'mixed_bfloat16' on an AMX CPU or an A100/H100, else 'float32'
>>> keras.mixed_precision.set_dtype_policy(resolve_precision(config_precision))
"""

import functools

PRECISIONS = ("float32", "mixed_bfloat16")
CHOICES = PRECISIONS + ("auto",)
BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")


def cpu_flags(cpuinfo="/proc/cpuinfo"):
    """The CPU's feature flags (Linux `/proc/cpuinfo`); an empty set where they cannot be read."""
    try:
        with open(cpuinfo, encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


@functools.lru_cache(maxsize=None)
def fast_bfloat16():
    """True where bf16 matrix work is fast: a GPU of compute capability >= 8.0, or a bf16 CPU."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        capabilities = [tf.config.experimental.get_device_details(g).get("compute_capability", (0, 0)) for g in gpus]
        return all(tuple(c) >= (8, 0) for c in capabilities)
    return bool(cpu_flags() & set(BF16_CPU_FLAGS))


def resolve_precision(precision):
    """`"float32"` or `"mixed_bfloat16"` for a precision name (`"auto"` decided by `fast_bfloat16()`)."""
    if precision not in CHOICES:
        raise ValueError(f"`precision` must be one of {CHOICES}; got {precision!r}.")
    if precision == "auto":
        return "mixed_bfloat16" if fast_bfloat16() else "float32"
    return precision
