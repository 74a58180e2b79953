"""DeiT student (Touvron et al., 2021) with an optional distillation token."""

import keras
from keras import ops

from libkd_keras.layers import (
    CIFAR10_MEAN,
    CIFAR10_STD,
    ClassDistTokens,
    LayerNormalization,
    PatchEmbedding,
    PixelNormalization,
    TransformerBlock,
)

# Every variant has an MLP ratio of 4; "micro" is a CIFAR-scale size (not in the DeiT paper).
DEIT_VARIANTS = {
    "micro": dict(dim=96, num_heads=3, depth=6),
    "tiny": dict(dim=192, num_heads=3, depth=12),
    "small": dict(dim=384, num_heads=6, depth=12),
    "base": dict(dim=768, num_heads=12, depth=12),
}


def _image_size(image_size):
    if isinstance(image_size, int):
        size = (image_size, image_size)
    elif isinstance(image_size, (tuple, list)):
        size = tuple(image_size)
    else:  # None included: DeiT's position embedding needs a static size
        size = ()
    if len(size) != 2 or any(not isinstance(s, int) or s <= 0 for s in size):
        raise ValueError(f"`image_size` must be a positive int or (height, width); got {image_size!r}.")
    return size


@keras.saving.register_keras_serializable(package="libkd_keras")
class DeiT(keras.Model):
    """Data-efficient Image Transformer with a class token and, optionally, a distillation token.

    Inputs are raw pixels in [0, 255] (normalised inside). With `distillation=True`:
    `model(x, training=True)` returns `(cls_logits, dist_logits)`; `model(x)` (inference)
    returns their average, as DeiT does. `model.heads(x)` always returns both. With
    `distillation=False` both modes return the class-token logits.

    Example:
    >>> student = DeiT(num_classes=10, image_size=32, patch_size=4, dim=192, depth=12, num_heads=3)
    >>> cls, dist = student(keras.ops.zeros((2, 32, 32, 3)), training=True)
    >>> student(keras.ops.zeros((2, 32, 32, 3))).shape
    (2, 10)
    """

    def __init__(
        self,
        num_classes=10,
        image_size=32,
        patch_size=4,
        dim=192,
        depth=12,
        num_heads=3,
        mlp_ratio=4.0,
        distillation=True,
        drop_path_rate=0.1,
        qkv_bias=True,
        layer_norm_epsilon=1e-6,
        mean=CIFAR10_MEAN,
        std=CIFAR10_STD,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(f"`num_classes` must be an integer >= 2; got {num_classes!r}.")
        self.image_size = _image_size(image_size)
        if not isinstance(patch_size, int) or patch_size <= 0:
            raise ValueError(f"`patch_size` must be a positive integer; got {patch_size!r}.")
        if self.image_size[0] % patch_size or self.image_size[1] % patch_size:
            divisors = [
                p
                for p in range(1, min(self.image_size) + 1)
                if self.image_size[0] % p == 0 and self.image_size[1] % p == 0
            ]
            raise ValueError(
                f"`image_size`={image_size!r} is not divisible by `patch_size`={patch_size}; "
                f"accepted patch sizes for this image size: {divisors}."
            )
        if not isinstance(depth, int) or depth <= 0:
            raise ValueError(f"`depth` must be a positive integer; got {depth!r}.")
        if not 0.0 <= float(drop_path_rate) < 1.0:
            raise ValueError(f"`drop_path_rate` must be in [0, 1); got {drop_path_rate!r}.")
        self.num_classes, self.patch_size, self.dim, self.depth = num_classes, patch_size, dim, depth
        self.num_heads, self.mlp_ratio, self.distillation = num_heads, float(mlp_ratio), bool(distillation)
        self.drop_path_rate, self.qkv_bias = float(drop_path_rate), bool(qkv_bias)
        self.layer_norm_epsilon = float(layer_norm_epsilon)
        self.mean, self.std = tuple(mean), tuple(std)

        self.normalize = PixelNormalization(self.mean, self.std, name="normalize")
        self.patch_embed = PatchEmbedding(patch_size, dim, name="patch_embed")
        self.tokens = ClassDistTokens(distillation=self.distillation, name="tokens")
        rates = [self.drop_path_rate * i / max(depth - 1, 1) for i in range(depth)]  # linear, as DeiT
        self.blocks = [
            TransformerBlock(dim, num_heads, mlp_ratio, qkv_bias, rate, layer_norm_epsilon, name=f"block{i}")
            for i, rate in enumerate(rates)
        ]
        self.norm = LayerNormalization(epsilon=layer_norm_epsilon, name="norm")
        head = dict(kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.02), dtype="float32")
        self.head = keras.layers.Dense(num_classes, name="head", **head)
        self.head_dist = keras.layers.Dense(num_classes, name="head_dist", **head) if self.distillation else None
        self.build((None, *self.image_size, 3))

    def build(self, input_shape):
        self.normalize.build(input_shape)
        self.patch_embed.build(input_shape)
        n = self.patch_embed.num_patches
        self.tokens.build((None, n, self.dim))
        seq = (None, n + self.tokens.num_tokens, self.dim)
        for block in self.blocks:
            block.build(seq)
        self.norm.build(seq)
        self.head.build((None, self.dim))
        if self.head_dist is not None:
            self.head_dist.build((None, self.dim))
        self.built = True

    def block_outputs(self, inputs, training=False):
        """The token sequence after the embedding and after every block (for CKA)."""
        x = self.tokens(self.patch_embed(self.normalize(inputs)))
        outputs = [x]
        for block in self.blocks:
            x = block(x, training=training)
            outputs.append(x)
        return outputs

    def heads(self, inputs, training=False):
        """`(cls_logits, dist_logits)`; with no distillation token, `(cls_logits, cls_logits)`."""
        # LayerNorm is per token, so only the class (and distillation) token need it. Unit slices
        # and a reshape, not x[:, 0]: LiteRT's XNNPACK delegate does not run axis-dropping slices.
        x = self.norm(self.block_outputs(inputs, training=training)[-1][:, : self.tokens.num_tokens])
        cls = self.head(ops.reshape(x[:, 0:1], (-1, self.dim)))
        if not self.distillation:
            return cls, cls
        return cls, self.head_dist(ops.reshape(x[:, 1:2], (-1, self.dim)))

    def call(self, inputs, training=None):
        cls, dist = self.heads(inputs, training=bool(training))
        if not self.distillation:
            return cls
        if training:
            return cls, dist
        return (cls + dist) * 0.5

    def get_config(self):
        return {
            **super().get_config(),
            "num_classes": self.num_classes,
            "image_size": list(self.image_size),
            "patch_size": self.patch_size,
            "dim": self.dim,
            "depth": self.depth,
            "num_heads": self.num_heads,
            "mlp_ratio": self.mlp_ratio,
            "distillation": self.distillation,
            "drop_path_rate": self.drop_path_rate,
            "qkv_bias": self.qkv_bias,
            "layer_norm_epsilon": self.layer_norm_epsilon,
            "mean": list(self.mean),
            "std": list(self.std),
        }


def _deit(variant, num_classes, image_size, patch_size, distillation, drop_path_rate, **kwargs):
    name = kwargs.pop("name", f"deit_{variant}" + ("_distilled" if distillation else ""))
    return DeiT(
        num_classes=num_classes,
        image_size=image_size,
        patch_size=patch_size,
        mlp_ratio=4.0,
        distillation=distillation,
        drop_path_rate=drop_path_rate,
        name=name,
        **DEIT_VARIANTS[variant],
        **kwargs,
    )


def deit_micro(num_classes=10, image_size=32, patch_size=4, distillation=True, drop_path_rate=0.1, **kwargs):
    """DeiT-Micro, a CIFAR-scale student (dim 96, 3 heads, depth 6, MLP ratio 4; not in the DeiT paper).

    Patch 4, 32x32, 10 classes, distilled: 684,404 params (without the distillation token: 683,242).
    """
    return _deit("micro", num_classes, image_size, patch_size, distillation, drop_path_rate, **kwargs)


def deit_tiny(num_classes=10, image_size=32, patch_size=4, distillation=True, drop_path_rate=0.1, **kwargs):
    """DeiT-Tiny (dim 192, 3 heads, depth 12). Patch 4, 32x32, 10 classes, distilled: 5,365,076 params."""
    return _deit("tiny", num_classes, image_size, patch_size, distillation, drop_path_rate, **kwargs)


def deit_small(num_classes=10, image_size=32, patch_size=4, distillation=True, drop_path_rate=0.1, **kwargs):
    """DeiT-Small (dim 384, 6 heads, depth 12)."""
    return _deit("small", num_classes, image_size, patch_size, distillation, drop_path_rate, **kwargs)


def deit_base(num_classes=10, image_size=32, patch_size=4, distillation=True, drop_path_rate=0.1, **kwargs):
    """DeiT-Base (dim 768, 12 heads, depth 12)."""
    return _deit("base", num_classes, image_size, patch_size, distillation, drop_path_rate, **kwargs)
