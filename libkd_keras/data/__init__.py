"""Data sources, stable example ids, split fingerprints and the teachers' augmentation."""

from libkd_keras.data.augmentation import TeacherAugmentation, teacher_augmentation
from libkd_keras.data.catalog import balanced_limit
from libkd_keras.data.errors import DataError, DataNotFoundError
from libkd_keras.data.sample import SAMPLE_NAME as CIFAR10_SAMPLE
from libkd_keras.data.sources import load_split
from libkd_keras.data.split import Split, split_fingerprint
from libkd_keras.data.tfds_sources import TFDS_SOURCES

__all__ = [
    "CIFAR10_SAMPLE",
    "DataError",
    "DataNotFoundError",
    "Split",
    "TFDS_SOURCES",
    "TeacherAugmentation",
    "balanced_limit",
    "load_split",
    "split_fingerprint",
    "teacher_augmentation",
]
