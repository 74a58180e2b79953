"""Building blocks of the teachers and the student (keras.ops only, LiteRT builtin ops)."""

from libkd_keras.layers.involution import Involution2D
from libkd_keras.layers.normalization import CIFAR10_MEAN, CIFAR10_STD, LayerNormalization, PixelNormalization
from libkd_keras.layers.vit import ClassDistTokens, DropPath, PatchEmbedding, TransformerBlock

__all__ = [
    "CIFAR10_MEAN",
    "CIFAR10_STD",
    "ClassDistTokens",
    "DropPath",
    "Involution2D",
    "LayerNormalization",
    "PatchEmbedding",
    "PixelNormalization",
    "TransformerBlock",
]
