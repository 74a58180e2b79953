"""Vision Transformer blocks for DeiT: patch embedding, class/distillation tokens, encoder block."""

import keras
from keras import ops

from libkd_keras.layers.normalization import LayerNormalization


def _check_rate(name, value):
    if not 0.0 <= float(value) < 1.0:
        raise ValueError(f"`{name}` must be in [0, 1); got {value!r}.")
    return float(value)


@keras.saving.register_keras_serializable(package="libkd_keras")
class DropPath(keras.layers.Layer):
    """Stochastic depth: drops the whole residual branch of a sample with probability `rate`.

    Example:
    >>> DropPath(0.1)(keras.ops.ones((4, 65, 192)), training=True).shape
    (4, 65, 192)
    """

    def __init__(self, rate=0.0, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.rate = _check_rate("rate", rate)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs, training=None):
        if not training or self.rate == 0.0:
            return inputs
        keep = 1.0 - self.rate
        shape = (ops.shape(inputs)[0],) + (1,) * (len(inputs.shape) - 1)
        mask = ops.floor(keep + keras.random.uniform(shape, seed=self.seed_generator))
        return inputs / keep * ops.cast(mask, inputs.dtype)

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}


@keras.saving.register_keras_serializable(package="libkd_keras")
class PatchEmbedding(keras.layers.Layer):
    """Cuts an image into non-overlapping `patch_size` patches and projects each to `dim`.

    Example:
    >>> PatchEmbedding(patch_size=4, dim=192)(keras.ops.ones((1, 32, 32, 3))).shape
    (1, 64, 192)
    """

    def __init__(self, patch_size=16, dim=768, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(patch_size, int) or patch_size <= 0:
            raise ValueError(f"`patch_size` must be a positive integer; got {patch_size!r}.")
        if not isinstance(dim, int) or dim <= 0:
            raise ValueError(f"`dim` must be a positive integer; got {dim!r}.")
        self.patch_size = patch_size
        self.dim = dim
        self.projection = keras.layers.Conv2D(
            dim, patch_size, strides=patch_size, dtype=self.dtype_policy, name="projection"
        )

    def build(self, input_shape):
        _, h, w, _ = input_shape
        if h is None or w is None:
            raise ValueError("PatchEmbedding needs a static image size; give the model `image_size`.")
        if h % self.patch_size or w % self.patch_size:
            raise ValueError(
                f"image size {h}x{w} is not divisible by `patch_size`={self.patch_size}; "
                f"use a patch size that divides {h} and {w}."
            )
        self.num_patches = (h // self.patch_size) * (w // self.patch_size)
        self.projection.build(input_shape)

    def call(self, inputs):
        x = self.projection(inputs)
        return ops.reshape(x, (-1, self.num_patches, self.dim))

    def compute_output_shape(self, input_shape):
        h, w = input_shape[1], input_shape[2]
        return (input_shape[0], (h // self.patch_size) * (w // self.patch_size), self.dim)

    def get_config(self):
        return {**super().get_config(), "patch_size": self.patch_size, "dim": self.dim}


@keras.saving.register_keras_serializable(package="libkd_keras")
class ClassDistTokens(keras.layers.Layer):
    """Prepends a class token (and a distillation token) and adds learned position embeddings.

    Output: `(batch, num_tokens + num_patches, dim)`; token 0 is the class token, token 1 the
    distillation token when `distillation=True`.

    Example:
    >>> ClassDistTokens(distillation=True)(keras.ops.ones((2, 64, 192))).shape
    (2, 66, 192)
    """

    def __init__(self, distillation=True, **kwargs):
        super().__init__(**kwargs)
        self.distillation = bool(distillation)
        self.num_tokens = 2 if self.distillation else 1

    def build(self, input_shape):
        _, n, dim = input_shape
        if n is None or dim is None:
            raise ValueError(f"ClassDistTokens needs a static (patches, dim); got {input_shape}.")
        init = keras.initializers.TruncatedNormal(stddev=0.02)
        self.cls_token = self.add_weight(shape=(1, 1, dim), initializer=init, name="cls_token")
        self.dist_token = (
            self.add_weight(shape=(1, 1, dim), initializer=init, name="dist_token") if self.distillation else None
        )
        self.position_embedding = self.add_weight(
            shape=(1, n + self.num_tokens, dim), initializer=init, name="position_embedding"
        )

    def call(self, inputs):
        batch = ops.shape(inputs)[0]
        dim = inputs.shape[-1]
        tokens = [ops.broadcast_to(ops.cast(self.cls_token, inputs.dtype), (batch, 1, dim))]
        if self.distillation:
            tokens.append(ops.broadcast_to(ops.cast(self.dist_token, inputs.dtype), (batch, 1, dim)))
        x = ops.concatenate(tokens + [inputs], axis=1)
        return x + ops.cast(self.position_embedding, inputs.dtype)

    def compute_output_shape(self, input_shape):
        b, n, d = input_shape
        return (b, n + self.num_tokens, d)

    def get_config(self):
        return {**super().get_config(), "distillation": self.distillation}


@keras.saving.register_keras_serializable(package="libkd_keras")
class TransformerBlock(keras.layers.Layer):
    """Pre-norm ViT encoder block: x + DropPath(MHSA(LN(x))), then x + DropPath(MLP(LN(x))).

    Multi-head self-attention uses one fused `qkv` projection with bias, as in DeiT/timm.

    Example:
    >>> TransformerBlock(dim=192, num_heads=3)(keras.ops.ones((2, 66, 192))).shape
    (2, 66, 192)
    """

    def __init__(
        self, dim=768, num_heads=12, mlp_ratio=4.0, qkv_bias=True, drop_path_rate=0.0, layer_norm_epsilon=1e-6, **kwargs
    ):
        super().__init__(**kwargs)
        if not isinstance(dim, int) or not isinstance(num_heads, int) or num_heads <= 0 or dim % num_heads:
            raise ValueError(f"`dim`={dim!r} must be a positive multiple of `num_heads`={num_heads!r}.")
        if mlp_ratio <= 0:
            raise ValueError(f"`mlp_ratio` must be positive; got {mlp_ratio!r}.")
        self.dim, self.num_heads, self.mlp_ratio = dim, num_heads, float(mlp_ratio)
        self.qkv_bias = bool(qkv_bias)
        self.drop_path_rate = _check_rate("drop_path_rate", drop_path_rate)
        self.layer_norm_epsilon = float(layer_norm_epsilon)
        self.head_dim = dim // num_heads
        dense = dict(kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.02), dtype=self.dtype_policy)
        self.norm1 = LayerNormalization(epsilon=layer_norm_epsilon, dtype=self.dtype_policy, name="norm1")
        self.qkv = keras.layers.Dense(3 * dim, use_bias=self.qkv_bias, name="qkv", **dense)
        self.proj = keras.layers.Dense(dim, name="proj", **dense)
        self.norm2 = LayerNormalization(epsilon=layer_norm_epsilon, dtype=self.dtype_policy, name="norm2")
        self.fc1 = keras.layers.Dense(int(dim * mlp_ratio), name="fc1", **dense)
        self.fc2 = keras.layers.Dense(dim, name="fc2", **dense)
        self.drop_path = DropPath(self.drop_path_rate, dtype=self.dtype_policy, name="drop_path")

    def build(self, input_shape):
        self.norm1.build(input_shape)
        self.qkv.build(input_shape)
        self.proj.build(input_shape)
        self.norm2.build(input_shape)
        self.fc1.build(input_shape)
        self.fc2.build(tuple(input_shape[:-1]) + (int(self.dim * self.mlp_ratio),))

    def attention(self, x):
        n, d = x.shape[1], self.dim
        qkv = self.qkv(x)  # (B, N, 3 * dim): q, k and v side by side, each heads x head_dim

        def heads(t):  # (B, N, dim) -> (B, heads, N, head_dim)
            return ops.transpose(ops.reshape(t, (-1, n, self.num_heads, self.head_dim)), (0, 2, 1, 3))

        # Three 3-D slices, not indexing a (3, B, heads, N, head_dim) tensor: LiteRT's XNNPACK
        # delegate runs these slices but not axis-dropping ones, which split files into partitions.
        q, k, v = (heads(qkv[:, :, i * d : (i + 1) * d]) for i in range(3))
        scores = ops.matmul(q * (self.head_dim**-0.5), ops.transpose(k, (0, 1, 3, 2)))
        attn = ops.softmax(scores, axis=-1)
        out = ops.transpose(ops.matmul(attn, v), (0, 2, 1, 3))
        return self.proj(ops.reshape(out, (-1, n, self.dim)))

    def call(self, inputs, training=None):
        x = inputs + self.drop_path(self.attention(self.norm1(inputs)), training=training)
        mlp = self.fc2(ops.gelu(self.fc1(self.norm2(x)), approximate=False))
        return x + self.drop_path(mlp, training=training)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "dim": self.dim,
            "num_heads": self.num_heads,
            "mlp_ratio": self.mlp_ratio,
            "qkv_bias": self.qkv_bias,
            "drop_path_rate": self.drop_path_rate,
            "layer_norm_epsilon": self.layer_norm_epsilon,
        }
