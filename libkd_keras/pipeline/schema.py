"""Every config key of a run, as typed dataclass sections: default, kind, help and allowed values.

A TOML key `[section] key = value` is the field `key` of the section class below (`[teachers]
epochs` is `TeachersSection.epochs`), and the pipeline reads it as `config.teachers.epochs`, so a
parameter can be followed from the file to the call. The [student] section is `StudentRecipe` and
the [teachers] section extends `TeacherRecipe` (`libkd_keras/recipes.py`): the library's recipes are
the config sections, declared once. `SCHEMA` (the same facts as plain `Option`s) is derived from these
classes for validation, `--help`, `--set`, `[[students]]` entries and TOML writing. No TensorFlow here.

Example:
>>> SCHEMA["student"]["alpha"].default
0.5
"""

from dataclasses import dataclass

from libkd_keras import choices
from libkd_keras.recipes import RESULTS, Option, StudentRecipe, TeacherRecipe, option, options


class ConfigError(ValueError):
    """A preset, config file or override that cannot be used as it is (the message says why)."""


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
class TeachersSection(TeacherRecipe):
    """The [teachers] section: the teachers' training recipe (`TeacherRecipe`'s fields) and which teachers."""

    resnet_seeds: list = option([0], "int_list", "one ResNet (CNN) teacher per seed ([] = none)")
    rednet_seeds: list = option([0], "int_list", "one RedNet (involution) teacher per seed ([] = none)")
    resnet_epochs: int = option(0, "int", "epochs of the ResNet teachers (0 = teachers.epochs)", minimum=0)
    rednet_epochs: int = option(
        0, "int", f"epochs of the RedNet teachers (0 = teachers.epochs; RedNet trains slower: {RESULTS})", minimum=0
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
    "student": StudentRecipe,  # the [student] section is the student recipe itself
    "export": ExportSection,
}
SCHEMA = {name: options(cls) for name, cls in SECTION_CLASSES.items()}

# Each [[students]] entry: a name, a teacher set, and optionally its own value of any [student] key a
# student may have alone (`Option.entry`; not the run-wide architecture).
STUDENT_ENTRY = {
    "name": Option(None, "str", "the student's name (file names, report rows)"),
    "teachers": Option(
        [], "str_list", "teacher set: 'all', a family ('resnet', 'rednet') or teacher names; [] = no teacher (baseline)"
    ),
    **{key: opt for key, opt in SCHEMA["student"].items() if opt.entry},
}


def entry_settings(entry):
    """The [student] keys a (normalized) [[students]] entry sets itself: all its keys but name and teachers."""
    return {key: value for key, value in entry.items() if key not in ("name", "teachers")}


DEFAULT_STUDENTS = [{"name": "baseline", "teachers": []}, {"name": "ensemble", "teachers": ["all"]}]
SECTIONS = tuple(SCHEMA) + ("students",)


def did_you_mean(word, valid):
    """` (did you mean 'x'?)` for the closest valid word, or ''."""
    import difflib

    close = difflib.get_close_matches(str(word), [str(v) for v in valid], n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
