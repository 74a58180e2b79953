# %% [markdown]
# # Involution and RedNet-26: the second teacher's inductive bias
#
# **Description:** what the `Involution2D` layer computes, a check of it against a plain
# loop, and the RedNet-26 teacher built from it.
#
# LIB-KD distils a DeiT student from two kinds of teachers with different inductive biases.
# A **convolution** is *spatial-agnostic and channel-specific*: the same K x K kernel slides
# over every pixel, with different weights for every pair of channels. An **involution**
# (Li et al., CVPR 2021) inverts that: it is *spatial-specific and channel-agnostic*. At every
# pixel it *generates* a K x K kernel from the pixel's own features, and all the channels of
# a group share that kernel. The paper's argument is that the two biases are complementary,
# so an ensemble of ResNets (convolution) and RedNets (involution) teaches the student more
# than either alone.
#
# This example runs on a CPU in well under a minute.

# %%
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import numpy as np

from libkd_keras.layers import Involution2D
from libkd_keras.models import rednet26, resnet26

keras.utils.set_random_seed(0)

# %% [markdown]
# ## Kernel generation
#
# For an input `X` with `C` channels, an involution with kernel size `K`, stride `s` and
# `group_channels` channels per group (so `G = C / group_channels` groups) works in two steps
# (paper eq. 8-9):
#
# 1. **Generate** a kernel for every output pixel `(i, j)` from the input at that pixel
#    (average-pooled over the stride when `s > 1`): a 1x1 convolution down to `C / r`
#    channels, BatchNorm, ReLU, and a 1x1 convolution up to `K * K * G` values. That is one
#    K x K kernel per group, per pixel.
# 2. **Apply** it: output channel `c` of group `g` at `(i, j)` is the K x K neighbourhood of
#    input channel `c` around `(i * s, j * s)`, weighted by the kernel of group `g` at `(i, j)`.
#
# `Involution2D.kernel(x)` exposes step 1: one kernel per pixel and group.

# %%
images = keras.random.normal((2, 8, 8, 32), seed=1)
involution = Involution2D(kernel_size=3, strides=1, group_channels=16, reduction_ratio=4)
outputs = involution(images)
kernels = involution.kernel(images)

print("input  :", images.shape)
print("output :", outputs.shape, "(an involution keeps the channel count)")
print("kernels:", kernels.shape, "= (batch, height, width, groups, K*K)")

# %% [markdown]
# Unlike a convolution's, these kernels differ from pixel to pixel:

# %%
kernels = keras.ops.convert_to_numpy(kernels)
print("kernel of group 0 at pixel (0, 0):\n", kernels[0, 0, 0, 0].reshape(3, 3).round(3))
print("kernel of group 0 at pixel (4, 4):\n", kernels[0, 4, 4, 0].reshape(3, 3).round(3))

# %% [markdown]
# ## A check against a plain loop
#
# The layer gathers the neighbourhood with K * K strided slices of the padded input (so that
# every operation is a LiteRT builtin). Here is the same computation written as the
# definition reads, one output pixel and one group at a time, in float64 NumPy.


# %%
def naive_involution(layer, x):
    x = keras.ops.convert_to_numpy(x).astype(np.float64)
    weights = keras.ops.convert_to_numpy(layer.kernel(x)).astype(np.float64)  # (B, H', W', G, K*K)
    k, s, gc = layer.kernel_size, layer.strides, layer.group_channels
    pad = (k - 1) // 2
    padded = np.pad(x, [(0, 0), (pad, pad), (pad, pad), (0, 0)])
    batch, height, width, channels = x.shape
    out = np.zeros((batch, height // s, width // s, channels))
    for i in range(height // s):
        for j in range(width // s):
            for g in range(channels // gc):
                group = slice(g * gc, (g + 1) * gc)
                window = padded[:, i * s : i * s + k, j * s : j * s + k, group]  # (B, K, K, gc)
                kernel = weights[:, i, j, g].reshape(batch, k, k, 1)  # shared by the group's channels
                out[:, i, j, group] = (window * kernel).sum(axis=(1, 2))
    return out


for layer in (involution, Involution2D(kernel_size=7, strides=2, group_channels=16, reduction_ratio=4)):
    fast = keras.ops.convert_to_numpy(layer(images))
    slow = naive_involution(layer, images)
    error = np.abs(fast - slow).max()
    print(f"K={layer.kernel_size} stride={layer.strides}: output {fast.shape}, max |layer - loop| = {error:.2e}")
    assert error < 1e-4, error

# %% [markdown]
# ## Few weights for a large receptive field
#
# The weights live in the kernel generator, not in the kernel itself, so a 7x7 involution
# costs far less than a 7x7 convolution on the same channels:

# %%
x = keras.random.normal((1, 16, 16, 64))
convolution = keras.layers.Conv2D(64, 7, padding="same")
involution7 = Involution2D(kernel_size=7, group_channels=16, reduction_ratio=4)
convolution(x), involution7(x)
print(f"7x7 convolution, 64 -> 64 channels: {convolution.count_params():,} weights")
print(f"7x7 involution,  64 -> 64 channels: {involution7.count_params():,} weights")

# %% [markdown]
# ## RedNet-26
#
# RedNet-26 is ResNet-26's layout (bottleneck stages of 1, 2, 4 and 1 blocks) with the 3x3
# convolution of every bottleneck replaced by a 7x7 involution, and an involution in the stem.
# Like every model of the package it takes raw pixels in [0, 255] and normalises them in its
# first layer. The paper (Table 2) counts 7,184,166 trainable parameters without the
# classification head; its ResNet-26 (Table 3) has 8,740,682 with a 10-class head.

# %%
rednet = rednet26(num_classes=10, input_shape=(32, 32, 3))
rednet.summary(line_length=110)


# %%
def trainable(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


backbone = rednet26(num_classes=10, include_top=False)
print(f"RedNet-26 without head: {trainable(backbone):,} trainable parameters (paper: 7,184,166)")
print(f"RedNet-26 with a 10-class head: {trainable(rednet):,}")
print(f"ResNet-26 with a 10-class head: {trainable(resnet26(num_classes=10)):,} (paper: 8,740,682)")
assert trainable(backbone) == 7_184_166

# %% [markdown]
# The teacher returns logits for a batch of raw images:

# %%
pixels = np.random.default_rng(0).integers(0, 256, size=(2, 32, 32, 3)).astype("float32")
print(rednet(pixels, training=False).shape)

# %% [markdown]
# ## Where next
#
# - `01_distill_from_stored_labels` trains ResNet and RedNet teachers, stores their logits
#   once and distils a DeiT from the stored ensemble.
# - `03_export_to_litert` exports a model (the RedNet too: the involution uses builtin ops
#   only) to LiteRT and runs it.
