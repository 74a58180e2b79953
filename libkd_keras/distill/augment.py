"""The student's training augmentation, as a `tf.data` transformation of store batches.

Order, as DeiT (timm's `create_transform` then `Mixup` on the batch):

1. repeated augmentation: each batch keeps its first `ceil(B / repeats)` examples, each
   `repeats` times (the copies are augmented independently below);
2. per image: horizontal flip and pad-and-crop, RandAugment, colour jitter;
3. per batch: random erasing, then MixUp or CutMix with the true labels and the teacher rows
   mixed like the pixels (`mixing.LabelConsistentMix`).

Repeated augmentation follows DeiT's `RASampler`: an epoch still has as many examples (and steps)
as the data set, made of 1/`repeats` of the images seen `repeats` times each, the copies of an
image landing in the same batch (DeiT spreads them over the GPUs of one global batch). It relies
on the store dataset being reshuffled every epoch (`shuffle=True`, its default) so that every
epoch draws a different third.

Images stay raw float32 pixels in [0, 255] (the models normalise inside). All layers run in
float32 whatever the dtype policy.

Reproducibility: with a `seed`, flip and crop are stateless functions of a per-image seed stream
(`tf.data.Dataset.random`, new each epoch), so the same seed gives the same pixels in every run
even in parallel maps. RandAugment, colour jitter, random erasing and MixUp/CutMix are Keras
layers drawing from their own `SeedGenerator` inside parallel maps: seeded, but the order in
which the calls draw is not fixed, so their pixels differ from run to run.

Example:
>>> batches = store.dataset(teachers=["resnet26", "rednet26"], target="hard", batch_size=128)
>>> train = student_augmentation(batches, num_classes=10, batch_size=128, mixup_alpha=0.8,
...                              cutmix_alpha=1.0, repeats=3, rand_augment_ops=2, random_erasing=0.25)
"""

import keras
import tensorflow as tf

from libkd_keras.distill.mixing import LabelConsistentMix


def _repeat_in_batch(repeats):
    def repeat(images, targets):
        batch = tf.shape(images)[0]
        keep = (batch + repeats - 1) // repeats
        return tf.nest.map_structure(lambda t: tf.repeat(t[:keep], repeats, axis=0)[:batch], (images, targets))

    return repeat


def _flip_and_crop(padding):
    # Stateless: the flip and the crop are functions of the image's own seed pair, so a parallel
    # `map` gives the same pixels whatever order its calls run in.
    def flip_and_crop(image, seed):
        flip_seed, crop_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
        image = tf.image.stateless_random_flip_left_right(image, seed=flip_seed)
        if padding:
            shape = tf.shape(image)
            image = tf.pad(image, [[padding, padding], [padding, padding], [0, 0]], mode="REFLECT")
            image = tf.image.stateless_random_crop(image, shape, seed=crop_seed)
        return image

    return flip_and_crop


def _colour_jitter(strength, seed):
    # torchvision's ColorJitter(s, s, s): brightness/contrast/saturation multipliers in [1-s, 1+s].
    # Keras' brightness is additive (+-s of the value range); saturation factor f means a
    # multiplier f / (1 - f), so [1-s, 1+s] maps to [(1-s)/(2-s), (1+s)/(2+s)].
    return keras.layers.RandomColorJitter(
        value_range=(0, 255),
        brightness_factor=strength,
        contrast_factor=strength,
        saturation_factor=((1 - strength) / (2 - strength), (1 + strength) / (2 + strength)),
        seed=seed,
        dtype="float32",
    )


def student_augmentation(
    dataset,
    num_classes,
    batch_size,
    *,
    flip_crop=True,
    crop_padding=4,
    rand_augment_ops=0,
    rand_augment_factor=0.1,
    color_jitter=0.0,
    random_erasing=0.0,
    mixup_alpha=0.0,
    cutmix_alpha=0.0,
    mix_switch_prob=0.5,
    repeats=1,
    seed=None,
):
    """Augment a batched `(image, targets)` dataset; returns batches of `batch_size`.

    `targets` is labels or the store's `{"label", "teacher"}`; when MixUp/CutMix is on, the label
    (and teacher) come back as mixed float32 probability rows, otherwise unchanged.
    `rand_augment_factor` is Keras' single strength for every RandAugment op (0.1: rotations up
    to +-36 degrees, shifts up to 10%; timm's m9 rotates up to +-27 degrees).
    """
    if not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"`repeats` must be an integer >= 1; got {repeats!r}.")
    if not 0.0 <= random_erasing <= 1.0:
        raise ValueError(f"`random_erasing` (a probability) must be in [0, 1]; got {random_erasing!r}.")
    if not 0.0 <= color_jitter < 1.0:
        raise ValueError(f"`color_jitter` must be in [0, 1); got {color_jitter!r}.")

    def seed_for(k):  # a distinct seed per random layer
        return None if seed is None else seed + k

    autotune = tf.data.AUTOTUNE

    if repeats > 1:
        dataset = dataset.map(_repeat_in_batch(repeats), num_parallel_calls=autotune)

    per_image = []
    if flip_crop:
        per_image.append(_flip_and_crop(crop_padding))
    if rand_augment_ops:
        per_image.append(
            keras.layers.RandAugment(
                value_range=(0, 255),
                num_ops=rand_augment_ops,
                factor=rand_augment_factor,
                seed=seed_for(1),
                dtype="float32",
            )
        )
    if color_jitter:
        per_image.append(_colour_jitter(color_jitter, seed_for(2)))
    if per_image:

        def augment_image(example, image_seed):
            image, targets = example
            image = tf.cast(image, tf.float32)
            for op in per_image:
                image = op(image, training=True) if isinstance(op, keras.layers.Layer) else op(image, image_seed)
            return image, targets

        # One seed pair per image, a new stream each epoch (iteration), the same streams for the same `seed`.
        image_seeds = tf.data.Dataset.random(seed=seed_for(0), rerandomize_each_iteration=True).batch(2)
        dataset = tf.data.Dataset.zip(dataset.unbatch(), image_seeds)
        dataset = dataset.map(augment_image, num_parallel_calls=autotune).batch(batch_size)

    per_batch = []
    if random_erasing:
        erase = keras.layers.RandomErasing(
            factor=(random_erasing, random_erasing), value_range=(0, 255), seed=seed_for(3), dtype="float32"
        )
        per_batch.append(lambda images, targets: (erase(images, training=True), targets))
    if mixup_alpha or cutmix_alpha:
        per_batch.append(LabelConsistentMix(num_classes, mixup_alpha, cutmix_alpha, mix_switch_prob, seed_for(4)))
    for op in per_batch:
        dataset = dataset.map(op, num_parallel_calls=autotune)
    return dataset.prefetch(autotune)
