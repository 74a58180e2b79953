# %% [markdown]
# # Distilling a DeiT from stored teacher labels
#
# **Description:** train a convolution teacher (ResNet) and an involution teacher (RedNet),
# store their predictions once, and distil a DeiT student with one distillation token from
# the stored ensemble with plain `model.fit`.
#
# Knowledge distillation usually runs the teacher at every training step, which makes every
# student epoch cost a teacher forward pass too. LIB-KD runs each teacher **once** over the
# training images and writes its logits to a store (sharded TFRecord + `manifest.json`). The
# student then reads its targets from the store: no teacher is in memory while it trains, and
# one store serves any number of students, ensembles and temperatures.
#
# The student is a DeiT with a class token and a distillation token. The class token learns
# from the true label, the distillation token from the teachers' ensemble:
#
#     loss = alpha * CE(cls_head, label) + (1 - alpha) * CE(dist_head, ensemble_label)
#
# and at inference the two heads are averaged.
#
# **Settings.** Everything here is tiny so that it runs on a 2-core CPU in two to three
# minutes (most of it training the RedNet teacher): a few hundred synthetic 16x16 images,
# narrow teachers trained for a few epochs, and a small DeiT. For a slice of real CIFAR-10
# instead, set the environment variable `LIBKD_CIFAR10` to
# a folder `<root>/{train,test}/<class>/*.jpg` (such as the extracted `cifar10-jpeg.tar.gz`),
# to that tarball, or to the CIFAR-10 python tarball (32x32 images: expect several minutes).
# Accuracies are low and noisy at this budget; `libkd pipeline --preset budget` runs the real
# thing.

# %%
import os
import shutil
import tempfile
from functools import partial
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import numpy as np

from libkd_keras.data import Split, load_split
from libkd_keras.distill import baseline, distiller_for, make_student, student_augmentation, student_optimizer
from libkd_keras.evaluation import evaluate_heads
from libkd_keras.models import rednet, resnet
from libkd_keras.store import TeacherStore, analyses, precompute
from libkd_keras.teachers import TeacherRecipe, train_teacher
from libkd_keras.training import FitOptions

SMALL = os.environ.get("LIBKD_EXAMPLES_SMALL") == "1"  # the test suite's even smaller setting
CIFAR10 = os.environ.get("LIBKD_CIFAR10")  # optional: real CIFAR-10 (folder or tarball)
TRAIN_IMAGES, TEST_IMAGES = (128, 64) if SMALL else (384, 256)
TEACHER_EPOCHS, STUDENT_EPOCHS = (1, 2) if SMALL else (6, 10)
BATCH_SIZE = 64  # divides the image counts: every batch has one shape, so each step is traced once
IMAGE_SIZE = 32 if CIFAR10 else 16

WORK_DIR = Path(os.environ.get("LIBKD_EXAMPLES_OUT") or Path(tempfile.gettempdir()) / "libkd_examples")
WORK_DIR = WORK_DIR / "01_distill_from_stored_labels"
shutil.rmtree(WORK_DIR, ignore_errors=True)  # start afresh: teachers and store are rebuilt below
WORK_DIR.mkdir(parents=True)
keras.utils.set_random_seed(0)
print("artifacts in", WORK_DIR)

# %% [markdown]
# ## Data
#
# A `Split` holds one split in memory: uint8 images, labels, and for every image a stable
# integer id (its position in the split) that joins stored teacher outputs back to it, plus a
# fingerprint recorded in the store. Without real data we make a toy 10-class problem: each
# class has its own tint and stripe frequency; every image gets a random stripe orientation
# and phase, and noise.


# %%
def synthetic_split(n, split, seed, num_classes=10, size=IMAGE_SIZE):
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % num_classes
    yy, xx = np.mgrid[0:size, 0:size] / size
    tints = np.random.default_rng(42).uniform(-1, 1, size=(num_classes, 3))  # the same for every split
    images = np.empty((n, size, size, 3))
    for i, label in enumerate(labels):
        angle, phase = rng.uniform(0, np.pi), rng.uniform(0, 2 * np.pi)
        frequency = 1 + label % 4
        stripes = np.sin(2 * np.pi * frequency * (xx * np.cos(angle) + yy * np.sin(angle)) + phase)
        images[i] = 128 + 50 * tints[label] + 40 * stripes[..., None] + rng.normal(0, 25, (size, size, 3))
    images = np.clip(images, 0, 255).astype(np.uint8)
    names = [f"class_{k}" for k in range(num_classes)]
    return Split(images, labels, np.arange(n), names, name="synthetic", split=split)


if CIFAR10:
    train = load_split(CIFAR10, "train", limit=TRAIN_IMAGES)
    test = load_split(CIFAR10, "test", limit=TEST_IMAGES)
else:
    train, test = synthetic_split(TRAIN_IMAGES, "train", 0), synthetic_split(TEST_IMAGES, "test", 1)
print(train)
print(test)

# %% [markdown]
# ## Two teachers with different inductive biases
#
# `train_teacher` trains one teacher with the paper's recipe (SGD, momentum 0.9, coupled L2
# weight decay 5e-4, label smoothing 0.1, cosine decay; pad-and-crop + flip augmentation),
# resumably, and saves `<name>.keras` with a JSON of its Table 2/3 columns beside it.
#
# The real teachers are `resnet26` and `rednet26`; here we build narrower versions of the
# same families so they train in seconds.

# %%
teacher_dir = WORK_DIR / "teachers"
recipe = TeacherRecipe(epochs=TEACHER_EPOCHS, batch_size=BATCH_SIZE)
builders = {
    "resnet_s0": partial(resnet, blocks=(1, 1, 1, 1), widths=(16, 32, 32, 32), name="resnet_small"),
    "rednet_s0": partial(rednet, blocks=(1, 1, 1, 1), base_channels=16, stem_channels=32, name="rednet_small"),
}
teacher_metadata = {}
for name, builder in builders.items():
    meta = train_teacher(builder, train, test, teacher_dir, name=name, recipe=recipe, options=FitOptions(verbose=0))
    teacher_metadata[name] = {key: meta[key] for key in ("trainable_parameters", "size_mb", "top1_test_accuracy")}
    print(
        f"{name}: {meta['trainable_parameters']:,} parameters, "
        f"test top-1 {100 * meta['top1_test_accuracy']:.1f}% after {TEACHER_EPOCHS} epochs"
    )

# %% [markdown]
# ## Run every teacher once, store the logits
#
# `precompute` runs each teacher once over a split (`predict`, `training=False`) and writes
# the store. With `include_images=True` (the default) the store also keeps the images, so it
# alone can feed training. We also label the test split, to look at the teachers there.
#
# Logits are stored as float16 by default (half the size). Teachers trained for only a few
# steps, as here, can produce logits beyond float16's range on some images (a RedNet's
# BatchNorm statistics are still far from settled), which `precompute` refuses rather than
# storing infinities; float32 is the safe choice at this toy budget.

# %%
teachers = {name: keras.saving.load_model(teacher_dir / f"{name}.keras") for name in builders}
train_store = precompute(
    teachers,
    train,
    WORK_DIR / "store" / "train",
    dtype="float32",
    batch_size=BATCH_SIZE,
    teacher_metadata=teacher_metadata,
)
test_store = precompute(teachers, test, WORK_DIR / "store" / "test", dtype="float32", batch_size=BATCH_SIZE)
del teachers  # from here on, no teacher is in memory
print(train_store)

# %% [markdown]
# The store answers the paper's questions about the teachers without running them again:
# accuracy of each teacher and of their ensembles (soft averaging, majority vote), and how
# often the convolution and the involution teacher disagree (paper Figure 9).

# %%
for spec, score in analyses.teacher_accuracy(test_store).items():
    print(f"{spec:>14}: test top-1 {100 * score['top1']:.1f}%")
print("disagreement ResNet vs RedNet:", analyses.disagreement_matrix(test_store, ["resnet_s0", "rednet_s0"])[0, 1])

# %% [markdown]
# ## The student's training data
#
# `store.dataset(kd, ...)` yields `(image, {"label": ..., "teacher": ...})` batches ready for
# `fit`. The teacher target is built at read time from any subset of stored teachers:
# `ensemble="soft"` averages their probabilities, `kd = HardDistillation()` (the recipe's) keeps
# the one-hot of the ensemble's decision (the paper's hard distillation). Images stay raw pixels in [0, 255]: the
# models normalise inside.

# %%
store = TeacherStore.open(WORK_DIR / "store" / "train", expect=train)
student_recipe = baseline(batch_size=BATCH_SIZE, warmup_epochs=1)
batches = store.dataset(
    student_recipe.kd, teachers=["resnet_s0", "rednet_s0"], ensemble="soft", batch_size=BATCH_SIZE, seed=0
)
images, targets = next(iter(batches.take(1)))
print("images", images.shape, "labels", targets["label"].shape, "teacher rows", targets["teacher"].shape)
train_batches = student_augmentation(batches, student_recipe, store.num_classes, seed=0)  # flip + crop

# %% [markdown]
# ## Distil the student with `model.fit`
#
# The recipe gives the paper's student settings (AdamW with DeiT's learning-rate scaling,
# warm-up then cosine decay, weight decay 0.05, label smoothing 0.1, drop path) and builds
# the `Distiller`, a `keras.Model` whose `compute_loss` reads the teacher row from each batch.
# `make_student(..., variant=None, ...)` builds a DeiT of any size; `variant="tiny"` gives
# DeiT-Tiny.


# %%
def tiny_deit(distillation_token):
    return make_student(
        student_recipe,
        num_classes=store.num_classes,
        image_size=IMAGE_SIZE,
        patch_size=4,
        variant=None,
        dim=64,
        depth=4,
        num_heads=2,
        distillation_token=distillation_token,
    )


steps_per_epoch = int(np.ceil(len(store) / BATCH_SIZE))
student = tiny_deit(distillation_token=True)
distiller = distiller_for(student_recipe, student)  # alpha 0.5, hard distillation
distiller.compile(optimizer=student_optimizer(student_recipe, steps_per_epoch, STUDENT_EPOCHS))
history = distiller.fit(train_batches, epochs=STUDENT_EPOCHS, verbose=2)

# %% [markdown]
# ## Three ways to read the student
#
# The class head learnt from the labels, the distillation head from the teachers; DeiT
# averages them at inference (`student(x)`), and `student.heads(x)` returns both.

# %%
scores = evaluate_heads(student, test.images, test.labels)
for head in ("cls", "dist", "both"):
    print(f"{head:>4} head: test top-1 {100 * scores[head]['top1']:.1f}%")

# %% [markdown]
# ## The same budget without a teacher
#
# The baseline student has no distillation token and trains on the labels alone
# (`distillation="none"`), with the same recipe, data and epochs.

# %%
plain = tiny_deit(distillation_token=False)
plain_distiller = distiller_for(student_recipe.replace(distillation="none"), plain)
plain_distiller.compile(optimizer=student_optimizer(student_recipe, steps_per_epoch, STUDENT_EPOCHS))
plain_distiller.fit(train_batches, epochs=STUDENT_EPOCHS, verbose=0)
plain_top1 = evaluate_heads(plain, test.images, test.labels)["cls"]["top1"]
print(
    f"student alone: {100 * plain_top1:.1f}%   distilled: {100 * scores['both']['top1']:.1f}%  "
    f"(tiny budget: expect noise of several points)"
)

# %% [markdown]
# Distillation helps when the teachers know something the student does not learn alone:
# compare the teachers' test accuracy above with the student's class head. At this toy budget
# the teachers are undertrained (the RedNet most, and it is also the slowest to train on a
# CPU), so expect no clear gain here; the comparison the paper makes needs the real teachers
# and data (`libkd pipeline --preset budget`, and `libkd_keras.analysis.ablation` for Table 4).
#
# ## The student is a plain Keras model
#
# `distiller.student` holds no teacher: save it alone, load it anywhere (the package's layers
# are registered with Keras), and export it (see `03_export_to_litert`).

# %%
path = WORK_DIR / "student.keras"
student.save(path)
reloaded = keras.saving.load_model(path)
sample = test.images[:8].astype("float32")
same = np.allclose(keras.ops.convert_to_numpy(student(sample)), keras.ops.convert_to_numpy(reloaded(sample)), atol=1e-5)
print(f"saved {path.name}: {path.stat().st_size / 1024:.0f} KiB, reloaded predictions identical: {same}")
assert same
