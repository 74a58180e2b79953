"""Decoding encoded images into one uint8 array, resizing those whose size differs."""

import warnings

import numpy as np
import tensorflow as tf

from libkd_keras.data.names import DataError

DECODE_BATCH = 512


def as_size(image_size):
    """`None`, an int or `(height, width)` -> `None` or a `(height, width)` tuple of positive ints."""
    if image_size is None:
        return None
    size = (image_size, image_size) if isinstance(image_size, (int, np.integer)) else tuple(image_size)
    if len(size) != 2 or not all(isinstance(s, (int, np.integer)) and s > 0 for s in size):
        raise DataError(f"`image_size` must be a positive int or (height, width); got {image_size!r}.")
    return int(size[0]), int(size[1])


def center_crop_resize(image, size):
    """Crop the largest central window with the aspect ratio of `size`, then resize to `size` (uint8 out).

    Works on one image `(H, W, 3)` or a batch `(B, H, W, 3)` of any integer or float dtype.
    """
    height, width = tf.shape(image)[-3], tf.shape(image)[-2]
    target_h, target_w = size
    # Largest window of aspect target_h:target_w that fits, centred.
    crop_h = tf.minimum(height, tf.cast(tf.math.round(tf.cast(width * target_h, tf.float32) / target_w), tf.int32))
    crop_w = tf.minimum(width, tf.cast(tf.math.round(tf.cast(height * target_w, tf.float32) / target_h), tf.int32))
    top, left = (height - crop_h) // 2, (width - crop_w) // 2
    image = image[..., top : top + crop_h, left : left + crop_w, :]
    resized = tf.image.resize(tf.cast(image, tf.float32), size, method="bilinear", antialias=True)
    return tf.cast(tf.clip_by_value(tf.round(resized), 0, 255), tf.uint8)


def _decode(contents):
    return tf.io.decode_image(contents, channels=3, expand_animations=False, dtype=tf.uint8)


def decode_images(items, *, image_size=None, from_paths=False, source="images"):
    """Decode JPEG/PNG/BMP/GIF `items` (bytes, or file paths with `from_paths=True`) into `(N, H, W, 3)` uint8.

    Every image is brought to `image_size`, or, when it is `None`, to the size of the first image;
    if that means resizing any image, one warning says how many.
    """
    if not len(items):
        raise DataError(f"No images to decode in {source}.")
    read = tf.io.read_file if from_paths else tf.identity
    size = as_size(image_size)
    warn_on_resize = size is None
    if size is None:
        size = tuple(int(d) for d in _decode(read(items[0])).shape[:2])

    def decode_and_fit(item):
        image = _decode(read(item))
        same = tf.reduce_all(tf.equal(tf.shape(image)[:2], size))
        image = tf.cond(same, lambda: image, lambda: center_crop_resize(image, size))
        return tf.ensure_shape(image, (*size, 3)), tf.logical_not(same)

    ds = tf.data.Dataset.from_tensor_slices(list(items))
    ds = ds.map(decode_and_fit, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).batch(DECODE_BATCH)
    images, resized = [], 0
    try:
        for batch, was_resized in ds.as_numpy_iterator():
            images.append(batch)
            resized += int(was_resized.sum())
    except tf.errors.OpError:
        _raise_for_first_bad_item(items, read, source)
        raise
    if warn_on_resize and resized:
        warnings.warn(
            f"{resized} of {len(items)} images in {source} are not {size[0]}x{size[1]} (the size of the first "
            "image); they were centre-cropped and resized to it. Pass `image_size` to choose the size.",
            stacklevel=3,
        )
    return np.concatenate(images)


def _raise_for_first_bad_item(items, read, source):
    for item in items:
        try:
            _decode(read(item))
        except tf.errors.OpError as error:
            name = item if isinstance(item, str) else "an image"
            raise DataError(
                f"Could not decode {name} in {source} as JPEG/PNG/BMP/GIF ({error.message.splitlines()[0]}). "
                "Remove or replace the file."
            ) from None
