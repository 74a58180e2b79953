"""Multi-view stores: the teachers' logits on V augmented views of each image, replayed exactly.

A view is the student's flip-and-crop (`distill/augment.py`) with its randomness written down: a
horizontal flip or not, then a reflect-padded crop at `(top, left)`. `write_store(..., views=V)`
(write.py) draws V distinct views per example (`views="all"`: every one of the 2 (2p + 1)^2, 162 at p = 4),
stores their parameters and each teacher's logits on each view, and `TeacherStore.dataset(...,
views=True)` replays one stored view per example each epoch. The pixels are rebuilt by the same
`replay` that made them for the teacher, so the teacher row belongs to exactly those pixels.

What is replayed: flip and crop. What is not: RandAugment, colour jitter (they would change the
pixels after the teacher saw them: use them with online teachers), random erasing and MixUp/CutMix
(the latter mix the teacher rows like the pixels, as for clean-image rows).

Their layout on disk and its check (`validate_views`) are `format.py`'s, with the rest of the format.
"""

import dataclasses

import numpy as np
import tensorflow as tf

from libkd_keras.store.errors import StoreError


@dataclasses.dataclass(frozen=True)
class ViewRecipe:
    """How a view is made: flip, then reflect-pad by `padding` and crop back to `image_shape`.

    Example:
    >>> recipe = ViewRecipe(padding=4, image_shape=(32, 32, 3))
    >>> recipe.num_distinct
    162
    >>> params = recipe.draw(ids, count=8, seed=0)     # (N, 8, 3): flip, top, left
    >>> views = replay(images, params[:, 0], recipe.padding)
    """

    padding: int
    image_shape: tuple

    def __post_init__(self):
        height, width = self.image_shape[:2]
        if not isinstance(self.padding, int) or not 0 <= self.padding < min(height, width):
            raise StoreError(f"View `padding` must be an integer in [0, {min(height, width)}); got {self.padding!r}.")

    @property
    def num_distinct(self):
        return 2 * (2 * self.padding + 1) ** 2

    def all_views(self):
        """int `(num_distinct, 3)`: every (flip, top, left), flip-major."""
        offsets = np.arange(2 * self.padding + 1)
        grid = np.stack(np.meshgrid([0, 1], offsets, offsets, indexing="ij"), axis=-1)
        return grid.reshape(-1, 3).astype(np.uint8)

    def count_for(self, views):
        """The number of views per example that `views` (a positive int or "all") asks for."""
        if views == "all":
            return self.num_distinct
        if not isinstance(views, int) or isinstance(views, bool) or not 1 <= views <= self.num_distinct:
            raise StoreError(
                f"`views` must be 'all' or an integer in [1, {self.num_distinct}] (the distinct flips and "
                f"crops at padding {self.padding}); got {views!r}."
            )
        return views

    def draw(self, ids, count, seed):
        """uint8 `(N, count, 3)`: `count` distinct views per example, drawn from `(seed, id)` alone."""
        table = self.all_views()
        if count == len(table):
            return np.broadcast_to(table, (len(ids), count, 3)).copy()
        picks = [np.random.default_rng([seed, int(i)]).choice(len(table), count, replace=False) for i in ids]
        return table[np.asarray(picks)]


def replay(images, params, padding):
    """Rebuild views: `images` `(B, H, W, 3)` (any dtype, kept), `params` `(B, 3)` (flip, top, left).

    Pure indexing (reverse, reflect pad, gather): the same inputs give bit-identical pixels.
    """
    images = tf.convert_to_tensor(images)
    params = tf.cast(params, tf.int32)
    height, width = images.shape[1], images.shape[2]
    flipped = tf.where(params[:, 0, None, None, None] > 0, tf.reverse(images, axis=[2]), images)
    if not padding:
        return flipped
    padded = tf.pad(flipped, [[0, 0], [padding, padding], [padding, padding], [0, 0]], mode="REFLECT")
    rows = params[:, 1, None] + tf.range(height)[None]
    cols = params[:, 2, None] + tf.range(width)[None]
    cropped = tf.gather(padded, rows, axis=1, batch_dims=1)
    return tf.gather(cropped, cols, axis=2, batch_dims=1)


def view_images(images, params, view, padding, batch_size=2048):
    """uint8 `(N, H, W, 3)`: view number `view` of every image (for the teachers' pass)."""
    out = [
        replay(images[start : start + batch_size], params[start : start + batch_size, view], padding).numpy()
        for start in range(0, len(images), batch_size)
    ]
    return np.concatenate(out) if out else images[:0]


def recipe_of(manifest):
    """The `ViewRecipe` of a multi-view store's manifest, or None for a single-view store."""
    views = manifest.get("views")
    if views is None:
        return None
    return ViewRecipe(padding=views["padding"], image_shape=tuple(views["image_shape"]))


def check_views(store):
    """Refuse replayed views from a single-view store, saying how to precompute one."""
    if not store.num_views:
        raise StoreError(
            f"Store {store.path!r} holds teacher logits on the clean images only; replayed views need a multi-view "
            "store: precompute it with `precompute(..., views=N)` (config: store.views = N, e.g. 16; "
            f"`views='all'` stores all {ViewRecipe(4, tuple(store.image_shape)).num_distinct} pad-4 flips and crops)."
        )


def check_replayable(store, recipe, image_shape):
    """Refuse views the reader cannot replay for a student of `recipe` (its crop) and `image_shape`."""
    check_views(store)
    views = recipe_of(store.manifest)
    differences = []
    if tuple(image_shape) != tuple(views.image_shape):
        differences.append(f"image shape {list(views.image_shape)} (store) vs {list(image_shape)} (student)")
    if not recipe.flip_crop or recipe.crop_padding != views.padding:
        crop = f"padding {recipe.crop_padding}" if recipe.flip_crop else "no flip/crop"
        differences.append(f"crop padding {views.padding} (store) vs {crop} (recipe {recipe.recipe!r})")
    if differences:
        raise StoreError(
            f"Store {store.path!r} cannot replay views for this student: {'; '.join(differences)}. Precompute the "
            "views with the student's crop and image size, or train with targets='clean'."
        )


# ------------------------------------------------------------------------------------ reading
def read_params(store):
    """uint8 `(N, V, 3)` view parameters of a multi-view store, rows by id."""
    views = store.manifest["views"]
    rows = store._read_rows(views["shards"], "uint8", views["count"] * 3, "View parameter")
    return rows.astype(np.uint8).reshape(store.num_examples, views["count"], 3)


def read_teacher_views(store, name):
    """float32 `(N, V, C)` logits of teacher `name` on each stored view."""
    teacher, count = store.manifest["teachers"][name], store.manifest["views"]["count"]
    width = count * store.num_classes
    rows = store._read_rows(teacher["view_shards"], teacher["dtype"], width, f"Teacher {name!r} view")
    return rows.reshape(store.num_examples, count, store.num_classes)
