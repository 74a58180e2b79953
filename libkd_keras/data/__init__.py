"""Data sources, stable example ids, split fingerprints and the teachers' augmentation.

The names below are imported when first used (PEP 562), so `libkd_keras.data.names` (the source
names, the path rule and the errors) loads without TensorFlow (the CLI checks a data path before
importing it).
"""

import importlib

_EXPORTS = {
    "TeacherAugmentation": "augmentation",
    "teacher_augmentation": "augmentation",
    "balanced_limit": "sources",
    "DataError": "names",
    "DataNotFoundError": "names",
    "CIFAR10_SAMPLE": "names",
    "TFDS_SOURCES": "names",
    "load_split": "sources",
    "Split": "split",
    "split_fingerprint": "split",
}
_RENAMED = {"CIFAR10_SAMPLE": "SAMPLE_NAME"}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), _RENAMED.get(name, name))
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
