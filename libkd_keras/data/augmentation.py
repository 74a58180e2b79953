"""Teacher augmentation: pad-4 random crop + flip for small images, random resized crop + flip otherwise,
then optionally random erasing (Keras' `RandomErasing`, a Cutout-like regulariser for small data).

Works on batches of float32 pixels in [0, 255] inside `tf.data` (per-example randomness, vectorised);
it never normalises: every model normalises inside itself (docs/DESIGN.md).
"""

import math

import keras
import tensorflow as tf

from libkd_keras.data.images import as_size
from libkd_keras.data.names import DataError

SMALL_IMAGE_MAX_SIDE = 64  # up to this side: CIFAR-style pad-and-crop (same threshold as the model stems)


class TeacherAugmentation:
    """Random crop and horizontal flip for a batch `(B, H, W, 3)`; returns `(B, *image_size, 3)` float32.

    - `image_size` up to 64: zero-pad by `padding` pixels, crop back to `image_size` at a random offset
      (inputs must already be `image_size`).
    - larger: a random box covering `scale` of the area with aspect ratio in `ratio` (clipped to the
      image), resized to `image_size` (torchvision's RandomResizedCrop, without its rejection loop).
    - then, with probability `random_erasing` per image, one random box (2-33% of the area) is
      replaced by noise (`keras.layers.RandomErasing`).

    Example:
    >>> augment = teacher_augmentation(32)
    >>> train = split.dataset(128, shuffle=True, augment=augment)
    >>> regularised = teacher_augmentation(32, random_erasing=0.5)
    """

    def __init__(
        self, image_size, padding=4, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3), flip=True, random_erasing=0.0, seed=None
    ):
        self.image_size = as_size(image_size)
        if self.image_size is None:
            raise DataError("`image_size` is required for teacher augmentation.")
        self.small = max(self.image_size) <= SMALL_IMAGE_MAX_SIDE
        self.padding, self.scale, self.ratio, self.flip = int(padding), tuple(scale), tuple(ratio), flip
        if not 0 < self.scale[0] <= self.scale[1] <= 1:
            raise DataError(f"`scale` must satisfy 0 < min <= max <= 1; got {scale!r}.")
        if not 0.0 <= random_erasing <= 1.0:
            raise DataError(f"`random_erasing` (a probability) must be in [0, 1]; got {random_erasing!r}.")
        self.erase = None
        if random_erasing:  # (p, p): every image is erased with probability p (a lone float draws p from [0, p])
            self.erase = keras.layers.RandomErasing(
                factor=(random_erasing, random_erasing), value_range=(0, 255), seed=seed, dtype="float32"
            )
        # Created here, eagerly: tf.data functions cannot create variables.
        if seed is None:
            self.generator = tf.random.Generator.from_non_deterministic_state()
        else:
            self.generator = tf.random.Generator.from_seed(seed)

    def __call__(self, images, seed=None):
        """Augment `images`; `seed`, a stateless seed pair `(2,)`, makes the crop and flip a function of it.

        Without `seed` they draw from the augmentation's own generator (seeded by `seed=` at construction),
        so they depend on how many batches it has augmented before. Random erasing always draws from its
        Keras layer's generator.
        """
        images = tf.convert_to_tensor(images)
        unbatched = images.shape.rank == 3
        if unbatched:
            images = images[None]
        images = tf.cast(images, tf.float32)
        draw = self.generator.uniform if seed is None else stateless_draws(seed)
        images = self._pad_and_crop(images, draw) if self.small else self._resized_crop(images, draw)
        if self.flip:
            images = random_flip(images, draw)
        if self.erase is not None:
            images = self.erase(images, training=True)
        return images[0] if unbatched else images

    def _pad_and_crop(self, images, draw):
        height, width = self.image_size
        if images.shape[1] is not None and tuple(images.shape[1:3]) != (height, width):
            raise DataError(
                f"Pad-and-crop augmentation for {height}x{width} got {images.shape[1]}x{images.shape[2]} images; "
                "resize them when loading (`load_split(..., image_size=...)`)."
            )
        return pad_and_crop(images, self.padding, draw)

    def _resized_crop(self, images, draw):
        batch = tf.shape(images)[0]
        area = draw([batch], self.scale[0], self.scale[1])
        log_ratio = draw([batch], math.log(self.ratio[0]), math.log(self.ratio[1]))
        aspect = tf.exp(log_ratio)
        box_w = tf.minimum(tf.sqrt(area * aspect), 1.0)  # fractions of the image side
        box_h = tf.minimum(tf.sqrt(area / aspect), 1.0)
        top = draw([batch]) * (1.0 - box_h)
        left = draw([batch]) * (1.0 - box_w)
        boxes = tf.stack([top, left, top + box_h, left + box_w], axis=1)
        return tf.image.crop_and_resize(images, boxes, tf.range(batch), self.image_size)


def stateless_draws(seed):
    """`draw(shape, minval=0, maxval=None, dtype=tf.float32)` like `tf.random.Generator.uniform`, but each
    call a stateless function of `seed` (a pair) and of how many draws came before it in this trace."""
    count = iter(range(1 << 30))

    def draw(shape, minval=0, maxval=None, dtype=tf.float32):
        pair = tf.random.experimental.stateless_fold_in(seed, next(count))
        return tf.random.stateless_uniform(shape, pair, minval=minval, maxval=maxval, dtype=dtype)

    return draw


def pad_and_crop(images, padding, draw, mode="CONSTANT"):
    """Each image of `(B, H, W, C)` padded by `padding` (`tf.pad` `mode`) and cropped back at a random offset."""
    if not padding:
        return images
    height, width = (images.shape[i] if images.shape[i] is not None else tf.shape(images)[i] for i in (1, 2))
    padded = tf.pad(images, [[0, 0], [padding, padding], [padding, padding], [0, 0]], mode=mode)
    batch = tf.shape(images)[0]
    top = draw([batch], 0, 2 * padding + 1, dtype=tf.int32)
    left = draw([batch], 0, 2 * padding + 1, dtype=tf.int32)
    rows = top[:, None] + tf.range(height)[None]
    cols = left[:, None] + tf.range(width)[None]
    cropped = tf.gather(padded, rows, axis=1, batch_dims=1)
    return tf.gather(cropped, cols, axis=2, batch_dims=1)


def random_flip(images, draw):
    """Each image of `(B, H, W, C)` mirrored left-right with probability 1/2."""
    flips = draw([tf.shape(images)[0]]) < 0.5
    return tf.where(flips[:, None, None, None], tf.reverse(images, axis=[2]), images)


def teacher_augmentation(image_size, seed=None, **kwargs):
    """The teachers' standard augmentation for `image_size` (see `TeacherAugmentation`)."""
    return TeacherAugmentation(image_size, seed=seed, **kwargs)
