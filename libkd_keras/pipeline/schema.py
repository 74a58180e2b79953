"""Every config key of a run, as typed dataclass sections: default, kind, help and allowed values.

A TOML key `[section] key = value` is the field `key` of the section class below (`[teachers]
epochs` is `TeachersSection.epochs`), and the pipeline reads it as `config.teachers.epochs`, so a
parameter can be followed from the file to the call. `SCHEMA` (the same facts as plain `Option`s)
is derived from these classes for validation, `--help` and TOML writing. No TensorFlow here.

Example:
>>> SCHEMA["student"]["alpha"].default
0.5
"""

import dataclasses
from dataclasses import dataclass, field

from libkd_keras import choices


class ConfigError(ValueError):
    """A preset, config file or override that cannot be used as it is (the message says why)."""


@dataclass(frozen=True)
class Option:
    """One config key: its default, type, help text and allowed values."""

    default: object
    kind: str  # "int", "float", "str", "bool", "auto_bool", "int_list", "str_list", "table", "table_list"
    help: str
    choices: tuple = ()
    minimum: float = None
    maximum: float = None
    keys: tuple = ()  # for kind="table": the keyword arguments it may hold; "table_list": each table's keys


def option(default, kind, help, **limits):
    """A dataclass field carrying its `Option` (lists and tables get a fresh copy per instance)."""
    opt = Option(default, kind, help, **limits)
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata={"option": opt})
    return field(default=default, metadata={"option": opt})


RESULTS = "benchmarks/RESULTS.md"  # where measured speeds live (no figures in help text)

# Keyword arguments a config may pass to the model builders, per architecture; the pipeline sets the
# rest (num_classes, input_shape / image_size, patch_size, distillation, drop_path_rate).
RESNET_KWARGS = ("blocks", "widths", "stem")
REDNET_KWARGS = ("blocks", "base_channels", "stem_channels", "expansion", "strides", "stem")
CIFAR_KWARGS = ("depth", "width")
CIFAR_DEFAULTS = {"depth": 20, "width": 1}  # He et al. 2016's ResNet-20 (6n+2 layers, widths 16/32/64 x width)
TEACHER_ARCH_KWARGS = {
    "resnet26": RESNET_KWARGS,
    "resnet_cifar": CIFAR_KWARGS,
    "rednet26": REDNET_KWARGS,
    "rednet_cifar": CIFAR_KWARGS,
}
# Each [[teachers.models]] entry: a saved Keras classifier the user brings as a teacher (not trained here).
TEACHER_MODEL_ENTRY = {
    "path": Option(
        None,
        "str",
        "a saved Keras classifier returning logits: a .keras file, or a KerasHub ImageClassifier preset folder "
        "(save_to_preset); relative paths are taken from the current folder (required)",
    ),
    "name": Option(
        "", "str", "the teacher's name in the store, the report and students' teachers = [...] ('' = the file's stem)"
    ),
    "pixels": Option(
        "0-255",
        "str",
        "the pixel range the model expects: 0-255 (raw pixels, as every libkd model takes) or 0-1 (libkd "
        "divides the raw pixels by 255 in front of it)",
        choices=choices.PIXEL_CONVENTIONS,
    ),
}
DEIT_KWARGS = ("dim", "depth", "num_heads", "mlp_ratio", "qkv_bias", "layer_norm_epsilon")


@dataclass(frozen=True)
class RunSection:
    name: str = option("", "str", "run folder name under saved_models/ ('' = the preset's or config file's name)")
    seed: int = option(0, "int", "seed for data order, augmentation and the students' initialization", minimum=0)
    precision: str = option(
        "auto",
        "str",
        "compute precision of training: float32, mixed_bfloat16, or auto (per model family, mixed_bfloat16 "
        "where it measured at least as fast: a GPU of compute capability >= 8.0, a CPU with AMX-BF16, and for "
        f"ResNets also AVX512-BF16; float32 elsewhere; speeds: {RESULTS})",
        choices=choices.PRECISIONS,
    )
    jit_compile: object = option(
        "auto",
        "auto_bool",
        'XLA-compile training and inference steps: true, false, or "auto" (the students\' steps with XLA '
        "on one device, except online-target students; teachers, inference and multi-replica runs as Keras "
        f"decides: XLA on a GPU, not on a CPU; libkd_keras/xla.py; speeds: {RESULTS})",
    )


@dataclass(frozen=True)
class DataSection:
    dataset: str = option(
        "cifar10",
        "str",
        "cifar10-sample (5,000/1,000 CIFAR-10 images shipped in the package, no network), cifar10, tf_flowers "
        "(through tensorflow-datasets) or a PATH: a class-folder tree (<root>/<split>/<class>/*.jpg|png) or the "
        "CIFAR-10 tarball",
    )
    data_dir: str = option("", "str", "tensorflow-datasets data dir holding prepared data (offline machines)")
    image_size: int = option(32, "int", "side images are resized to (0 = keep the source's size)", minimum=0)
    train_limit: int = option(0, "int", "training images the student sees (0 = all)", minimum=0)
    test_limit: int = option(0, "int", "test images used for every accuracy (0 = all)", minimum=0)


@dataclass(frozen=True)
class TeachersSection:
    resnet_seeds: list = option([0], "int_list", "one ResNet (CNN) teacher per seed ([] = none)")
    rednet_seeds: list = option([0], "int_list", "one RedNet (involution) teacher per seed ([] = none)")
    epochs: int = option(200, "int", "training epochs of each teacher", minimum=1)
    resnet_epochs: int = option(0, "int", "epochs of the ResNet teachers (0 = teachers.epochs)", minimum=0)
    rednet_epochs: int = option(
        0, "int", f"epochs of the RedNet teachers (0 = teachers.epochs; RedNet trains slower: {RESULTS})", minimum=0
    )
    batch_size: int = option(128, "int", "teacher batch size", minimum=1)
    learning_rate: float = option(0.1, "float", "SGD learning rate (cosine decay)", minimum=0.0)
    momentum: float = option(0.9, "float", "SGD momentum", minimum=0.0, maximum=1.0)
    weight_decay: float = option(5e-4, "float", "L2 weight decay", minimum=0.0)
    label_smoothing: float = option(0.1, "float", "label smoothing of the teachers' loss", minimum=0.0, maximum=0.99)
    warmup_epochs: int = option(
        0, "int", "linear warm-up epochs before the cosine decay (capped at epochs - 1)", minimum=0
    )
    augment: bool = option(True, "bool", "pad-4 random crop + flip (random resized crop + flip for large images)")
    random_erasing: float = option(
        0.0, "float", "with augment: probability that an image gets one random box erased", minimum=0.0, maximum=1.0
    )
    validate_every: int = option(
        1, "int", "score the test images every that many epochs, and always after the last", minimum=1
    )
    train_limit: int = option(
        0,
        "int",
        "training images the teachers see (0 = the student's data.train_limit); larger than the "
        "student's is a deviation from the paper, which trains both on the same set",
        minimum=0,
    )
    reuse_from: str = option(
        "",
        "str",
        'a run folder whose finished teachers this run copies instead of training them ("" = train '
        "here); refused unless the [teachers] settings, run.seed, precision and images are the same",
    )
    resnet_arch: str = option(
        "resnet26",
        "str",
        "CNN teacher: resnet26 (the paper's) or resnet_cifar (He et al. 2016, depth 6n+2)",
        choices=choices.TEACHER_ARCHS["resnet"],
    )
    rednet_arch: str = option(
        "rednet26",
        "str",
        "involution teacher: rednet26 (the paper's) or rednet_cifar (the CIFAR ResNet with involution)",
        choices=choices.TEACHER_ARCHS["rednet"],
    )
    models: list = option(
        [],
        "table_list",
        "your own saved Keras classifiers as teachers, beside or instead of the trained families: "
        '[[teachers.models]] tables with path, name and pixels (also --teacher [NAME=]PATH); family "keras"; '
        "used as they are, not trained",
        keys=tuple(TEACHER_MODEL_ENTRY),
    )
    resnet: dict = option(
        {},
        "table",
        "builder arguments of the ResNet arch: blocks, widths, stem for resnet26 "
        "({} = ResNet-26); depth, width for resnet_cifar ({} = depth 20, width 1)",
        keys=RESNET_KWARGS + CIFAR_KWARGS,
    )
    rednet: dict = option(
        {},
        "table",
        "builder arguments of the RedNet arch: blocks, base_channels, ... for "
        "rednet26 ({} = RedNet-26); depth, width for rednet_cifar ({} = depth 20, width 1)",
        keys=REDNET_KWARGS + CIFAR_KWARGS,
    )


@dataclass(frozen=True)
class StoreSection:
    dtype: str = option(
        "float32",
        "str",
        "precision of the stored teacher logits (float16 halves the logits files "
        "but refuses logits above 65504, which a briefly-trained RedNet can produce)",
        choices=choices.STORE_DTYPES,
    )
    batch_size: int = option(256, "int", "batch size of the teachers' single pass over the data", minimum=1)
    include_images: bool = option(True, "bool", "store the images too, so the store alone feeds training")
    views: int = option(
        0,
        "int",
        "also store the teachers' logits on this many flip-and-crop views of each training image, for "
        "student.targets = 'views' (0 = clean images only; 162 = every pad-4 flip and crop of a 32x32 image)",
        minimum=0,
    )


@dataclass(frozen=True)
class StudentSection:
    arch: str = option("deit_tiny", "str", "student size", choices=choices.STUDENT_ARCHS)
    patch_size: int = option(4, "int", "patch side in pixels (must divide the image size)", minimum=1)
    drop_path_rate: float = option(0.1, "float", "stochastic depth rate", minimum=0.0, maximum=0.99)
    model: dict = option({}, "table", "DeiT arguments overriding the arch's ({} = as named)", keys=DEIT_KWARGS)
    epochs: int = option(300, "int", "training epochs of each student", minimum=1)
    batch_size: int = option(128, "int", "student batch size", minimum=1)
    learning_rate: float = option(
        0.0, "float", "AdamW peak learning rate (0 = the recipe's 5e-4 * batch_size / 512)", minimum=0.0
    )
    weight_decay: float = option(0.05, "float", "AdamW weight decay", minimum=0.0)
    warmup_epochs: int = option(
        5, "int", "linear warm-up epochs before the cosine decay (capped at epochs - 1)", minimum=0
    )
    label_smoothing: float = option(0.1, "float", "label smoothing of the true-label loss", minimum=0.0, maximum=0.99)
    recipe: str = option(
        "baseline",
        "str",
        "augmentation recipe (superior: MixUp/CutMix, RandAugment, ...; mix: flip/crop + MixUp/CutMix only, "
        "which replayed store views follow exactly)",
        choices=choices.RECIPES,
    )
    distillation: str = option("hard", "str", "distillation target type", choices=choices.DISTILLATIONS)
    alpha: float = option(
        0.5, "float", "weight of the true-label loss (1 - alpha on the distillation token)", minimum=0.0, maximum=1.0
    )
    temperature: float = option(1.0, "float", "softmax temperature of soft distillation", minimum=1e-6)
    ensemble: str = option("soft", "str", "how several teachers are combined", choices=choices.ENSEMBLES)
    targets: str = option(
        "clean",
        "str",
        "where the teacher rows come from: clean (stored, clean images), views (stored on views the "
        "student replays; needs store.views) or online (the teachers run on each augmented batch)",
        choices=choices.TARGET_SOURCES,
    )
    validate_every: int = option(
        1, "int", "score the test images every that many epochs, and always after the last", minimum=1
    )
    seeds: list = option(
        [],
        "int_list",
        "one student per seed (initialization, data order, augmentation), named "
        "<name>_s<seed> when there are several ([] = [run.seed]: one student named <name>)",
        minimum=0,
    )


@dataclass(frozen=True)
class ExportSection:
    student: str = option("", "str", "student to export ('' = the distilled student with the best test top-1)")
    quantizations: list = option(
        list(choices.QUANTIZATIONS),
        "str_list",
        "LiteRT variants to write ([] = skip export)",
        choices=choices.QUANTIZATIONS,
    )
    representative_images: int = option(200, "int", "training images calibrating int8 quantization", minimum=1)
    latency_runs: int = option(50, "int", "timed batch-1 runs per variant (after warm-up)", minimum=1)
    threads: int = option(1, "int", "interpreter threads for the latency benchmark", minimum=1)


SECTION_CLASSES = {
    "run": RunSection,
    "data": DataSection,
    "teachers": TeachersSection,
    "store": StoreSection,
    "student": StudentSection,
    "export": ExportSection,
}
SCHEMA = {
    name: {f.name: f.metadata["option"] for f in dataclasses.fields(cls)} for name, cls in SECTION_CLASSES.items()
}

# Each [[students]] entry: a name, a teacher set, and optionally its own value of these [student] keys.
STUDENT_ENTRY_KEYS = ("recipe", "distillation", "alpha", "temperature", "ensemble", "targets", "epochs", "seeds")
STUDENT_ENTRY = {
    "name": Option(None, "str", "the student's name (file names, report rows)"),
    "teachers": Option(
        [], "str_list", "teacher set: 'all', a family ('resnet', 'rednet') or teacher names; [] = no teacher (baseline)"
    ),
    **{key: SCHEMA["student"][key] for key in STUDENT_ENTRY_KEYS},
}
DEFAULT_STUDENTS = [{"name": "baseline", "teachers": []}, {"name": "ensemble", "teachers": ["all"]}]
SECTIONS = tuple(SCHEMA) + ("students",)


def did_you_mean(word, valid):
    """` (did you mean 'x'?)` for the closest valid word, or ''."""
    import difflib

    close = difflib.get_close_matches(str(word), [str(v) for v in valid], n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
