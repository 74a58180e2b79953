"""The settings of a student and of a teacher, each declared once: default, kind, help and allowed values.

`StudentRecipe` is, at once, the config's [student] section, the settings of a [[students]] entry
(any key of it but the run-wide `arch`, `patch_size` and `model`), an ablation experiment's student,
and what `distill.train_student(recipe=...)` trains with. `TeacherRecipe` is the [teachers] section's
training settings and what `teachers.train_teacher(recipe=...)` trains with. Each field carries its
`Option` (help text, kind, range, choices): the config's validation, `--help`, `--set`,
`--print-config` and the run folder's `config.toml` are all derived from these fields
(`pipeline/schema.py`). The behaviour lives beside the code that uses it: the optimizer, schedule,
augmentation and Distiller of a student in `distill/`, L2SGD and the teacher schedule in `teachers/`.
No TensorFlow here.

The named student recipes (`recipe = "baseline" | "superior" | "mix"`) are sets of field values
(`NAMED_RECIPES`) applied under the fields you set yourself: a field left unset (None) takes the
named recipe's value, so `superior(mixup_alpha=0.2)` (or `--set student.mixup_alpha=0.2` with
`recipe = "superior"`) is superior with a MixUp alpha of 0.2.

- `baseline()`: DeiT's recipe as the paper's table gives it: AdamW, lr 5e-4 scaled by
  batch / 512 as DeiT does (5e-4 * 128 / 512 = 1.25e-4 at batch 128), weight decay 0.05 (not on
  biases, norms, tokens and position embedding, as timm), drop path 0.1, batch 128, label
  smoothing 0.1, 5 warmup epochs from 1e-6 then cosine to 1e-5, pad-and-crop + flip. With its
  default `distillation="hard"` it is the paper's "KD baseline"; `baseline(distillation="none")`
  is the "Student baseline".
- `superior()`: baseline + MixUp 0.8, CutMix 1.0 (one or the other per batch, probability 0.5),
  repeated augmentation (3 copies, DeiT's RASampler, see `distill/augment.py`), colour jitter 0.3,
  random erasing 0.25, RandAugment (2 ops). timm switches colour jitter off when RandAugment is on;
  the paper lists both and so do we.
- `mix()`: baseline + MixUp 0.8 / CutMix 1.0 and nothing else: every op of it can follow a stored
  view (flip and crop are replayed from a multi-view store, MixUp/CutMix mix the stored rows with
  the pixels), so a student of `targets="views"` gets the teacher's row on exactly the image it
  sees, at stored cost (Beyer et al. 2022's "consistent" teaching; `superior`'s RandAugment and
  colour jitter break that match).

Example:
>>> superior(mixup_alpha=0.2).mixup_alpha, superior().mixup_alpha
(0.2, 0.8)
>>> baseline(mixup_alpha=0.2).replace(recipe="superior").repeats    # unset fields follow the recipe
3
"""

import dataclasses
from dataclasses import dataclass, field

from libkd_keras import choices


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
    entry: bool = True  # [student] only: a [[students]] entry may set it (False: one value for the whole run)


def option(default, kind, help, **limits):
    """A dataclass field carrying its `Option` (lists and tables get a fresh copy per instance)."""
    opt = Option(default, kind, help, **limits)
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata={"option": opt})
    return field(default=default, metadata={"option": opt})


def options(cls):
    """`{field name: Option}` of a recipe or section class (its config keys), in declaration order."""
    return {f.name: f.metadata["option"] for f in dataclasses.fields(cls) if "option" in f.metadata}


RESULTS = "benchmarks/RESULTS.md"  # where measured speeds live (no figures in help text)
DEIT_KWARGS = ("dim", "depth", "num_heads", "mlp_ratio", "qkv_bias", "layer_norm_epsilon")

# The named student recipes: each gives a value to every field declared `recipe_option` below. A new
# named recipe is one entry here (and its name in `choices.RECIPES`).
NAMED_RECIPES = {
    "baseline": dict(
        rand_augment_ops=0, color_jitter=0.0, random_erasing=0.0, mixup_alpha=0.0, cutmix_alpha=0.0, repeats=1
    ),
    "superior": dict(
        rand_augment_ops=2, color_jitter=0.3, random_erasing=0.25, mixup_alpha=0.8, cutmix_alpha=1.0, repeats=3
    ),
    "mix": dict(rand_augment_ops=0, color_jitter=0.0, random_erasing=0.0, mixup_alpha=0.8, cutmix_alpha=1.0, repeats=1),
}
if tuple(NAMED_RECIPES) != choices.RECIPES:  # pragma: no cover - a developer's slip, caught at import
    raise AssertionError(f"NAMED_RECIPES {tuple(NAMED_RECIPES)} and choices.RECIPES {choices.RECIPES} differ.")


def recipe_option(kind, help, **limits):
    """A field whose default is the named recipe's value (None = unset: `NAMED_RECIPES[recipe]` fills it)."""
    return option(None, kind, f"{help} (unset: the recipe's value, see student.recipe)", **limits)


def _recipe_help():
    sets = "; ".join(
        f"{name}: " + ", ".join(f"{k} {v:g}" for k, v in values.items()) for name, values in NAMED_RECIPES.items()
    )
    return f"named set of augmentation values, applied under the keys you set yourself ({sets})"


def check_options(instance, extra_choices=None):
    """`ValueError` naming the field when a value of `instance` does not fit its `Option` (kind, choices, range)."""
    extra_choices = extra_choices or {}
    kinds = {
        "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "float": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
        "str": lambda v: isinstance(v, str),
        "bool": lambda v: isinstance(v, bool),
        "int_list": lambda v: isinstance(v, (list, tuple)) and all(kinds["int"](x) for x in v),
        "table": lambda v: isinstance(v, dict),
    }
    for name, opt in options(type(instance)).items():
        value = getattr(instance, name)
        if opt.kind in kinds and not kinds[opt.kind](value):
            raise ValueError(f"`{name}` must be of kind {opt.kind}; got {value!r}.")
        for item in value if isinstance(value, (list, tuple)) else [value]:
            allowed = tuple(opt.choices) + tuple(extra_choices.get(name, ()))
            if opt.choices and item not in allowed:
                raise ValueError(f"`{name}` must be one of {allowed}; got {item!r}.")
            if opt.minimum is not None and isinstance(item, (int, float)) and item < opt.minimum:
                raise ValueError(f"`{name}` must be >= {opt.minimum}; got {item!r}.")
            if opt.maximum is not None and isinstance(item, (int, float)) and item > opt.maximum:
                raise ValueError(f"`{name}` must be <= {opt.maximum}; got {item!r}.")
        if opt.kind == "table" and opt.keys:
            unknown = sorted(set(value) - set(opt.keys))
            if unknown:
                raise ValueError(f"`{name}` may hold {', '.join(opt.keys)}; got {', '.join(unknown)}.")


@dataclass(frozen=True)
class StudentRecipe:
    """Every setting of a student: model, optimisation, loss, augmentation (see the module docstring).

    Build one with `baseline(...)`, `superior(...)` or `mix(...)`; change one with `recipe.replace(...)`,
    which keeps the fields you set and lets the unset ones follow a changed `recipe`.
    """

    # model (run-wide: a run's students share one architecture, so the report compares them at equal size)
    arch: str = option("deit_tiny", "str", "student size", choices=choices.STUDENT_ARCHS, entry=False)
    patch_size: int = option(4, "int", "patch side in pixels (must divide the image size)", minimum=1, entry=False)
    drop_path_rate: float = option(0.1, "float", "stochastic depth rate", minimum=0.0, maximum=0.99)
    model: dict = option(
        {}, "table", "DeiT arguments overriding the arch's ({} = as named)", keys=DEIT_KWARGS, entry=False
    )
    # optimisation
    epochs: int = option(300, "int", "training epochs of each student", minimum=1)
    batch_size: int = option(128, "int", "student batch size", minimum=1)
    learning_rate: float = option(
        0.0,
        "float",
        "AdamW peak learning rate (0 = student.base_learning_rate * batch_size / 512, DeiT's scaling)",
        minimum=0.0,
    )
    weight_decay: float = option(0.05, "float", "AdamW weight decay (not on biases, norms and tokens)", minimum=0.0)
    warmup_epochs: int = option(
        5, "int", "linear warm-up epochs before the cosine decay (at most half of the run)", minimum=0
    )
    label_smoothing: float = option(0.1, "float", "label smoothing of the true-label loss", minimum=0.0, maximum=0.99)
    recipe: str = option("baseline", "str", _recipe_help(), choices=choices.RECIPES)
    # loss
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
    base_learning_rate: float = option(
        5e-4, "float", "AdamW learning rate at batch 512 (used when student.learning_rate = 0)", minimum=1e-12
    )
    warmup_learning_rate: float = option(1e-6, "float", "learning rate the warm-up starts from", minimum=1e-12)
    min_learning_rate: float = option(1e-5, "float", "learning rate the cosine decay ends at", minimum=1e-12)
    clip_grad_norm: float = option(
        0.0,
        "float",
        "clip the global L2 norm of all gradients to this value, as timm's --clip-grad (0 = no clipping)",
        minimum=0.0,
    )
    # augmentation
    flip_crop: bool = option(True, "bool", "random horizontal flip and pad-and-crop (reflect padding)")
    crop_padding: int = option(4, "int", "pixels of padding of the random crop", minimum=0)
    rand_augment_ops: int = recipe_option("int", "RandAugment ops per image (0 = off)", minimum=0)
    rand_augment_factor: float = option(
        0.1, "float", "RandAugment strength of every op (Keras' factor; 0.1: rotations up to 36 degrees)", minimum=0.0
    )
    color_jitter: float = recipe_option(
        "float", "colour jitter strength: brightness, contrast, saturation (0 = off)", minimum=0.0, maximum=0.99
    )
    random_erasing: float = recipe_option(
        "float", "probability that an image gets one random box erased", minimum=0.0, maximum=1.0
    )
    mixup_alpha: float = recipe_option("float", "MixUp Beta(alpha, alpha) (0 = off)", minimum=0.0)
    cutmix_alpha: float = recipe_option("float", "CutMix Beta(alpha, alpha) (0 = off)", minimum=0.0)
    mix_switch_prob: float = option(
        0.5, "float", "with MixUp and CutMix both on: probability of CutMix for a batch", minimum=0.0, maximum=1.0
    )
    repeats: int = recipe_option("int", "repeated augmentation: copies of each image in a batch (1 = off)", minimum=1)
    # Not a config key: the pipeline sets it from run.precision; "auto" is resolved for DeiT here.
    precision: str = field(default="float32")

    def __post_init__(self):
        if self.recipe not in NAMED_RECIPES:
            raise ValueError(f"`recipe` must be one of {tuple(NAMED_RECIPES)}; got {self.recipe!r}.")
        unset = frozenset(name for name in NAMED_RECIPES[self.recipe] if getattr(self, name) is None)
        for name in unset:
            object.__setattr__(self, name, NAMED_RECIPES[self.recipe][name])
        object.__setattr__(self, "_unset", unset)  # not a field: what `replace` lets follow the recipe
        check_options(self, {"distillation": ("none",)})  # "none": the student alone (no teacher)
        if self.precision not in choices.PRECISIONS:
            raise ValueError(f"`precision` must be one of {choices.PRECISIONS}; got {self.precision!r}.")
        from libkd_keras.precision import resolve_precision  # TensorFlow only to resolve "auto"

        object.__setattr__(self, "precision", resolve_precision(self.precision, "deit"))  # students are DeiTs

    @property
    def peak_learning_rate(self):
        """`learning_rate`, or `base_learning_rate * batch_size / 512` when it is 0 (DeiT's linear scaling)."""
        base = self.learning_rate * 512 / self.batch_size if self.learning_rate else self.base_learning_rate
        return base * self.batch_size / 512

    @property
    def kd(self):
        """The distillation it trains with: `HardDistillation()`, `SoftDistillation(temperature)`, or None ("none")."""
        from libkd_keras.distill.losses import distillation_for  # Keras only when a student is built

        return distillation_for(self.distillation, self.temperature)

    def replace(self, **changes):
        """A copy with `changes`; fields left unset keep following the (possibly changed) named recipe."""
        return dataclasses.replace(self, **{name: None for name in self._unset if name not in changes}, **changes)

    def record(self):
        """The recipe as a student's record holds it: every field, `name` (the recipe) and the peak learning rate."""
        return {**dataclasses.asdict(self), "name": self.recipe, "learning_rate": self.peak_learning_rate}


def baseline(**overrides):
    """The paper's student / KD baseline recipe (see the module docstring)."""
    return StudentRecipe(**{"recipe": "baseline", **overrides})


def superior(**overrides):
    """The paper's "KD superior" recipe (see the module docstring)."""
    return StudentRecipe(**{"recipe": "superior", **overrides})


def mix(**overrides):
    """The baseline recipe with MixUp/CutMix only: consistent with replayed store views (module docstring)."""
    return StudentRecipe(**{"recipe": "mix", **overrides})


RECIPES = {"baseline": baseline, "superior": superior, "mix": mix}


@dataclass(frozen=True)
class TeacherRecipe:
    """The teachers' training settings (LIB-KD Tables 1-3, the mmcls CIFAR recipe): SGD + cosine decay.

    The [teachers] section is this recipe plus which teachers to train (`pipeline/schema.py`). The
    optimizer, schedule and loss are made in `teachers/recipe.py`.

    Example:
    >>> recipe = TeacherRecipe(epochs=200)          # the paper's setting
    >>> quick = TeacherRecipe(epochs=2, batch_size=32)
    """

    epochs: int = option(200, "int", "training epochs of each teacher", minimum=1)
    batch_size: int = option(128, "int", "teacher batch size", minimum=1)
    learning_rate: float = option(
        0.1,
        "float",
        "SGD learning rate at teachers.base_batch_size, scaled linearly with batch_size; cosine decay to 0",
        minimum=0.0,
    )
    base_batch_size: int = option(128, "int", "batch size teachers.learning_rate is given for", minimum=1)
    momentum: float = option(0.9, "float", "SGD momentum", minimum=0.0, maximum=1.0)
    weight_decay: float = option(
        5e-4, "float", "coupled L2 weight decay, as PyTorch's SGD(weight_decay=...) (teachers/recipe.py)", minimum=0.0
    )
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

    def __post_init__(self):
        check_options(self)

    @property
    def scaled_learning_rate(self):
        """`learning_rate * batch_size / base_batch_size` (0.1 at 128, 0.2 at 256)."""
        return self.learning_rate * self.batch_size / self.base_batch_size

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)

    def record(self):
        """The training settings as a teacher's record holds them (without the section's teacher lists)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(TeacherRecipe)}
