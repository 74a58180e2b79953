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

Reproducibility: with a `seed`, flip and crop are stateless functions of one seed pair per batch:
with an int seed, a `tf.data.Dataset.random` stream (new each epoch, the same in every process); with
an `EpochSeeds` (`data/epochs.py`, what `train_student` passes), a function of (seed, epoch, batch), so
a run resumed from its backup flips and crops as the run that was never stopped. RandAugment, colour
jitter, random erasing and MixUp/CutMix are Keras layers drawing from their own `SeedGenerator` inside
parallel maps: seeded, but the order in which the calls draw is not fixed, so their pixels differ from
run to run (and a resumed run's from the uninterrupted run's).

The dataset keeps its batches: the number of batches, their sizes and the known length Keras ends
each epoch with are those of `dataset`, whose batches must be of `batch_size` (the last one may be
smaller). RandAugment and colour jitter run image by image, after which the images are batched again
and the length is asserted (without it Keras ran one step past each epoch's end).

Example:
>>> recipe = superior(batch_size=128)   # MixUp/CutMix, 3 repeats, RandAugment, random erasing, ...
>>> batches = store.dataset(HardDistillation(), teachers=["resnet26", "rednet26"], batch_size=recipe.batch_size)
>>> train = student_augmentation(batches, recipe, num_classes=10)
"""

import keras
import tensorflow as tf

from libkd_keras.data.augmentation import pad_and_crop, random_flip, stateless_draws
from libkd_keras.data.epochs import FLIP_CROP, EpochSeeds, with_batch_seeds
from libkd_keras.distill.mixing import LabelConsistentMix


def _repeat_in_batch(repeats):
    def repeat(images, targets):
        batch = tf.shape(images)[0]
        keep = (batch + repeats - 1) // repeats
        return tf.nest.map_structure(lambda t: tf.repeat(t[:keep], repeats, axis=0)[:batch], (images, targets))

    return repeat


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


def student_augmentation(dataset, recipe, num_classes, *, seed=None, replayed_views=False):
    """The student recipe's augmentation of a batched `(image, targets)` dataset; its batches, augmented
    (same number and sizes).

    `recipe` is a `StudentRecipe`: its `batch_size` is the size of `dataset`'s batches (the last may be
    smaller), its augmentation fields say what runs (`flip_crop`, `crop_padding`, `rand_augment_ops`,
    `rand_augment_factor`, `color_jitter`, `random_erasing`, `mixup_alpha`, `cutmix_alpha`,
    `mix_switch_prob`, `repeats`). `seed`: None, an int or a `data.epochs.EpochSeeds` (see the module
    docstring). `replayed_views`: the batches are replayed store views (`store.dataset(views=True)`),
    which are the recipe's flip and crop already; the rest of the recipe follows.

    `targets` is labels or the store's `{"label", "teacher"}`; when MixUp/CutMix is on, the label
    (and teacher) come back as mixed float32 probability rows, otherwise unchanged.
    `rand_augment_factor` is Keras' single strength for every RandAugment op (0.1: rotations up
    to +-36 degrees, shifts up to 10%; timm's m9 rotates up to +-27 degrees).
    """
    r = recipe  # its values were checked when it was made (`libkd_keras/recipes.py`)

    base = seed.seed if isinstance(seed, EpochSeeds) else seed

    def seed_for(k):  # a distinct seed per random Keras layer
        return None if base is None else base + k

    autotune = tf.data.AUTOTUNE
    # The dataset keeps its batches and its known length, so Keras ends each epoch exactly.
    if r.repeats > 1:
        dataset = dataset.map(_repeat_in_batch(r.repeats), num_parallel_calls=autotune)
    if r.flip_crop and not replayed_views:  # stateless, from one seed pair per batch (data/epochs.py)

        def flip_and_crop(batch, pair):
            images, targets = batch
            draw = stateless_draws(pair)
            images = pad_and_crop(tf.cast(images, tf.float32), r.crop_padding, draw, mode="REFLECT")
            return random_flip(images, draw), targets

        dataset = with_batch_seeds(dataset, seed, FLIP_CROP).map(flip_and_crop, num_parallel_calls=autotune)

    per_image = []
    if r.rand_augment_ops:
        per_image.append(
            keras.layers.RandAugment(
                value_range=(0, 255),
                num_ops=r.rand_augment_ops,
                factor=r.rand_augment_factor,
                seed=seed_for(1),
                dtype="float32",
            )
        )
    if r.color_jitter:
        per_image.append(_colour_jitter(r.color_jitter, seed_for(2)))
    if per_image:  # image by image (RandAugment picks its ops per call), in parallel over the images

        def augment_image(image, targets):
            image = tf.cast(image, tf.float32)
            for layer in per_image:
                image = layer(image, training=True)
            return image, targets

        # `dataset`'s batches are of `batch_size` (the last one may be smaller), so batching the images
        # again gives the same batches; the assertion keeps the known length (and fails loudly otherwise).
        batches = int(dataset.cardinality())
        dataset = dataset.unbatch().map(augment_image, num_parallel_calls=autotune).batch(r.batch_size)
        if batches >= 0:
            dataset = dataset.apply(tf.data.experimental.assert_cardinality(batches))

    per_batch = []
    if r.random_erasing:
        erase = keras.layers.RandomErasing(
            factor=(r.random_erasing, r.random_erasing), value_range=(0, 255), seed=seed_for(3), dtype="float32"
        )
        per_batch.append(lambda images, targets: (erase(images, training=True), targets))
    if r.mixup_alpha or r.cutmix_alpha:
        mixing = LabelConsistentMix(num_classes, r.mixup_alpha, r.cutmix_alpha, r.mix_switch_prob, seed_for(4))
        per_batch.append(mixing)
    for op in per_batch:
        dataset = dataset.map(op, num_parallel_calls=autotune)
    return dataset.prefetch(autotune)
