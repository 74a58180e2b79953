"""Every choice list of the library, in one TensorFlow-free place.

The config schema, the CLI, the model registry and the code that acts on a choice all import
these tuples, so adding a choice edits one line here (and the code that implements it).

Example:
>>> from libkd_keras.choices import STUDENT_ARCHS
>>> "deit_tiny" in STUDENT_ARCHS
True
"""

from libkd_keras.precision import CHOICES as PRECISIONS  # float32, mixed_bfloat16, auto

# Teacher families (one list of seeds each in the config) and the architectures of each family.
TEACHER_FAMILIES = ("resnet", "rednet")
TEACHER_ARCHS = {
    "resnet": ("resnet26", "resnet_cifar"),  # paper's ResNet-26; He et al. 2016 CIFAR ResNet (6n+2)
    "rednet": ("rednet26", "rednet_cifar"),  # paper's RedNet-26; the CIFAR ResNet with involution
}
# Teachers the user brings ([[teachers.models]], --teacher): their family, and the pixel ranges their
# models may expect (libkd always feeds raw [0, 255] pixels; "0-1" models get them divided by 255).
OWN_TEACHER_FAMILY = "keras"
PIXEL_CONVENTIONS = ("0-255", "0-1")
STUDENT_ARCHS = ("deit_micro", "deit_tiny", "deit_small", "deit_base")

RECIPES = ("baseline", "superior", "mix")  # student augmentation recipes (distill/recipes.py)
TABLE4_RECIPES = ("baseline", "superior")  # the two halves of the paper's Table 4 (`libkd ablate --recipes`)
DISTILLATIONS = ("hard", "soft")  # distillation target types (distill/losses.py)
ENSEMBLES = ("soft", "vote")  # how several teachers' predictions are combined (ensembles.py)
# Where a student's teacher rows come from: stored on the clean images, stored on replayed views
# (store/views.py), or the teachers run on each augmented batch (Distiller(teachers=...)).
TARGET_SOURCES = ("clean", "views", "online")
QUANTIZATIONS = ("float32", "float16", "dynamic", "int8", "int8_mixed")  # LiteRT variants (export/)
STORE_DTYPES = ("float16", "float32")  # precision of stored teacher logits

__all__ = [
    "DISTILLATIONS",
    "ENSEMBLES",
    "OWN_TEACHER_FAMILY",
    "PIXEL_CONVENTIONS",
    "PRECISIONS",
    "QUANTIZATIONS",
    "RECIPES",
    "TABLE4_RECIPES",
    "STORE_DTYPES",
    "STUDENT_ARCHS",
    "TEACHER_ARCHS",
    "TARGET_SOURCES",
    "TEACHER_FAMILIES",
]
