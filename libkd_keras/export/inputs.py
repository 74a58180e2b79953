"""The image sources export accepts, turned into numpy batches of raw pixels.

Labelled data (for accuracy): `(images, labels)` arrays, an object with `.images` and
`.labels` (a `libkd_keras.data.Split`), or a `tf.data.Dataset` of `(image, label)` or
`(image, {"label": ...})`, batched or not. Labels may be integer ids or probability rows.
Calibration data: the same, or images alone (an array or a dataset of images).
"""

import numpy as np
import tensorflow as tf

MAX_CALIBRATION_IMAGES = 1000


def _check_pixels(images, what):
    """Models take raw pixels in [0, 255] (docs/DESIGN.md); catch normalised inputs early."""
    if images.size == 0:
        return
    low, high = float(np.min(images)), float(np.max(images))
    if low < 0.0 or high > 255.0:
        raise ValueError(
            f"{what} has values in [{low:.3g}, {high:.3g}]; models take raw pixels in [0, 255] and "
            "normalise inside, so pass unnormalised images."
        )
    if high <= 1.0:
        raise ValueError(
            f"{what} looks normalised to [0, 1] (max {high:.3g}); models take raw pixels in [0, 255]. "
            "Multiply by 255 or pass the uint8 images."
        )


def _check_shape(images, image_shape, what):
    if images.ndim != 4 or tuple(images.shape[1:]) != tuple(image_shape):
        raise ValueError(
            f"{what} must be images of shape (N, {', '.join(map(str, image_shape))}) to fit the model; "
            f"got shape {images.shape}."
        )


def _labels(y):
    if isinstance(y, dict):
        if "label" not in y:
            raise ValueError(f"label dicts must have a 'label' entry; got keys {sorted(y)}.")
        y = y["label"]
    y = np.asarray(y)
    return np.argmax(y, axis=-1) if y.ndim == 2 else y.reshape(-1)  # probability rows -> ids


def labelled_batches(data, image_shape, batch_size=64):
    """Yields `(images float32 (B, H, W, C), labels int64 (B,))` from any accepted source."""
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"`batch_size` must be a positive integer; got {batch_size!r}.")
    if isinstance(data, tf.data.Dataset):
        yield from _dataset_batches(data, image_shape, batch_size)
        return
    if hasattr(data, "images") and hasattr(data, "labels"):
        data = (data.images, data.labels)
    if not isinstance(data, (tuple, list)) or len(data) != 2:
        raise TypeError(
            "data must be (images, labels) arrays, an object with .images and .labels, or a tf.data.Dataset "
            f"of (image, label) / (image, {{'label': ...}}); got {type(data).__name__}."
        )
    images, labels = np.asarray(data[0]), _labels(data[1])
    _check_shape(images, image_shape, "the images")
    if len(images) != len(labels):
        raise ValueError(f"got {len(images)} images but {len(labels)} labels.")
    if len(images):
        _check_pixels(images[:batch_size], "the images")
    for start in range(0, len(images), batch_size):
        yield images[start : start + batch_size].astype(np.float32), labels[start : start + batch_size].astype(np.int64)


def _dataset_batches(dataset, image_shape, batch_size):
    spec = dataset.element_spec
    if not isinstance(spec, tuple) or len(spec) < 2:
        raise TypeError(
            f"the dataset must yield (image, label) or (image, {{'label': ...}}) pairs; its elements are {spec}."
        )
    if spec[0].shape.rank == 3:  # unbatched
        dataset = dataset.batch(batch_size)
    first = True
    for element in dataset.as_numpy_iterator():
        images, labels = np.asarray(element[0]), _labels(element[1])
        _check_shape(images, image_shape, "the dataset's images")
        if first:
            _check_pixels(images, "the dataset's images")
            first = False
        yield images.astype(np.float32), labels.astype(np.int64)


def calibration_images(data, image_shape, limit=MAX_CALIBRATION_IMAGES):
    """The first `limit` images of `data` as float32 `(N, H, W, C)`, checked, for int8 calibration."""
    if isinstance(data, tf.data.Dataset):
        spec = data.element_spec
        image_spec = spec[0] if isinstance(spec, tuple) else spec
        if not isinstance(image_spec, tf.TensorSpec):
            raise TypeError(f"representative_data must yield images or (image, label) pairs; its elements are {spec}.")
        if isinstance(spec, tuple):
            data = data.map(lambda *element: element[0])
        if image_spec.shape.rank == 3:
            data = data.batch(64)
        chunks, count = [], 0
        for batch in data.as_numpy_iterator():
            chunks.append(np.asarray(batch))
            count += len(batch)
            if count >= limit:
                break
        images = np.concatenate(chunks) if chunks else np.zeros((0, *image_shape), np.float32)
    else:
        if hasattr(data, "images"):
            data = data.images
        elif isinstance(data, (tuple, list)) and len(data) == 2 and np.ndim(data[0]) == 4:
            data = data[0]  # (images, labels)
        images = np.asarray(data)
    if images.dtype == object or not np.issubdtype(images.dtype, np.number):
        raise TypeError(f"representative_data must hold numeric images; got dtype {images.dtype}.")
    images = images[:limit]
    _check_shape(images, image_shape, "representative_data")
    if len(images) == 0:
        raise ValueError("representative_data is empty; int8 calibration needs a few hundred training images.")
    _check_pixels(images, "representative_data")
    return images.astype(np.float32)
