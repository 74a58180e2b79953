"""Compute precision of training: "float32", "mixed_bfloat16", or "auto" (bf16 where it is faster).

Whether bfloat16 pays depends on the hardware and on the model family (the measurements:
benchmarks/RESULTS.md, "Training precision"). On a CPU with AMX-BF16 it trains every family at
least as fast as float32; with AVX512-BF16 alone (no AMX) it pays only for ResNets and is slower
for RedNets and the patch-8 DeiT; without bf16 instructions it is slower for all.
"auto" therefore picks, per family, mixed_bfloat16 only where it measured at least as fast (`BF16_PAYS_ON`),
and float32 elsewhere. A GPU of compute capability 8.0 or newer (Ampere, Hopper) counts as fast
for every family.

Under mixed_bfloat16 the weights stay float32 and the classifier heads and losses compute in
float32; exports are always float32 graphs.

Example:
>>> resolve_precision("auto", "resnet")  # 'mixed_bfloat16' on an AMX or AVX512-BF16 CPU, else 'float32'
>>> resolve_precision("auto", "rednet")  # 'mixed_bfloat16' on an AMX CPU or an A100/H100, else 'float32'
>>> keras.mixed_precision.set_dtype_policy(resolve_precision(config_precision, "deit"))
"""

import functools

PRECISIONS = ("float32", "mixed_bfloat16")
CHOICES = PRECISIONS + ("auto",)
BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")
FAMILIES = ("resnet", "rednet", "deit")
# The bf16 hardware on which mixed_bfloat16 trained a family at least as fast as float32 ("gpu": compute
# capability >= 8.0); None is any other model. Measured: benchmarks/RESULTS.md, "Training precision".
BF16_PAYS_ON = {
    "resnet": ("gpu", "amx_bf16", "avx512_bf16"),
    "rednet": ("gpu", "amx_bf16"),
    "deit": ("gpu", "amx_bf16"),
    None: ("gpu", "amx_bf16"),
}


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
def bf16_hardware():
    """The bf16 units here: {"gpu"} on GPUs all of compute capability >= 8.0, else the CPU's bf16 flags."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        capabilities = [tf.config.experimental.get_device_details(g).get("compute_capability", (0, 0)) for g in gpus]
        return frozenset({"gpu"} if all(tuple(c) >= (8, 0) for c in capabilities) else ())
    return frozenset(cpu_flags() & set(BF16_CPU_FLAGS))


def fast_bfloat16(family=None):
    """True where mixed_bfloat16 trains `family` ("resnet", "rednet", "deit" or None) faster here."""
    if family not in BF16_PAYS_ON:
        raise ValueError(f"`family` must be one of {FAMILIES} or None; got {family!r}.")
    return bool(bf16_hardware() & set(BF16_PAYS_ON[family]))


def resolve_precision(precision, family=None):
    """`"float32"` or `"mixed_bfloat16"` for a precision name; `"auto"` is decided by `fast_bfloat16(family)`.

    Args:
        precision: str. "float32", "mixed_bfloat16" or "auto".
        family: str or None. The model family trained under it ("resnet", "rednet", "deit").
    """
    if precision not in CHOICES:
        raise ValueError(f"`precision` must be one of {CHOICES}; got {precision!r}.")
    if precision == "auto":
        return "mixed_bfloat16" if fast_bfloat16(family) else "float32"
    return precision
