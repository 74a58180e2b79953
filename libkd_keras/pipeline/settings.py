"""A resolved config as typed sections (`Config`), and what follows from it: teachers, teacher sets.

`Config.from_dict(resolved)` gives one frozen dataclass per TOML section (`config.teachers.epochs`
is `[teachers] epochs`), the teachers as `TeacherSpec`s and the students as `StudentEntry`s; the
dict it came from stays in `config.raw` (the run folder's `config.toml`). No TensorFlow here.

Example:
>>> config = Config.from_dict(resolve_config(preset="quick"))
>>> [t.name for t in config.teacher_specs], config.student.arch
"""

from dataclasses import dataclass

from libkd_keras.choices import OWN_TEACHER_FAMILY, TEACHER_FAMILIES
from libkd_keras.pipeline.schema import (
    CIFAR_DEFAULTS,
    SECTION_CLASSES,
    ConfigError,
    DataSection,
    ExportSection,
    RunSection,
    StoreSection,
    StudentRecipe,
    TeachersSection,
    did_you_mean,
    entry_settings,
)


@dataclass(frozen=True)
class TeacherSpec:
    """One configured teacher: `name` (e.g. "resnet26_s0", "resnet20_s1"), family, arch, seed, builder args.

    A teacher the user brings ([[teachers.models]]) has family "keras", its file in `path` and the pixel
    range its model expects in `pixels`; it is not trained (seed None, epochs 0).
    """

    name: str
    family: str
    arch: str
    seed: int
    kwargs: dict
    epochs: int
    path: str = ""
    pixels: str = "0-255"


@dataclass(frozen=True)
class StudentEntry:
    """One trained student: a [[students]] entry at one of its seeds.

    `name` is the entry's name, or `<entry>_s<seed>` when the entry has several seeds; `teachers`
    the teacher names (expanded); `settings` the [student] section with the entry's own keys (a
    `StudentRecipe`); `recipe` what it trains with.
    """

    name: str
    order: int
    teachers: tuple
    settings: StudentRecipe
    entry: str = ""  # the [[students]] entry's name
    seed: int = 0
    precision: str = "float32"  # run.precision

    @property
    def recipe(self):
        """The `StudentRecipe` it trains with: its settings at run.precision; distillation "none" without teachers."""
        changes = {} if self.teachers else {"distillation": "none"}
        return self.settings.replace(precision=self.precision, **changes)


def student_seeds(config, entry):
    """`[(student name, seed), ...]` of a [[students]] entry: one per seed ([] = [run.seed])."""
    seeds = list(student_settings(config, entry).get("seeds") or [config["run"]["seed"]])
    if len(seeds) == 1:
        return [(entry["name"], seeds[0])]
    return [(f"{entry['name']}_s{seed}", seed) for seed in seeds]


def teacher_base_name(family, arch, kwargs):
    """File-name stem of a family's teachers: "resnet26", "resnet" (ResNet-26 with builder args), "resnet20"."""
    if arch.endswith("_cifar"):
        args = {**CIFAR_DEFAULTS, **kwargs}
        width = args["width"]
        return f"{family}{args['depth']}" + ("" if width == 1 else f"x{width:g}")
    return family if kwargs else f"{family}26"


def teacher_specs(config):
    """The teachers of a config dict as `[(name, family, seed), ...]`, e.g. `("resnet26_s0", "resnet", 0)`.

    A paper architecture with builder arguments is named without the "26" (it is no longer ResNet-26);
    a CIFAR architecture is named by its depth (`resnet20_s0`). The user's [[teachers.models]] come
    last, as `(name, "keras", None)`.
    """
    specs = []
    for family in TEACHER_FAMILIES:
        seeds = config["teachers"][f"{family}_seeds"]
        if len(set(seeds)) != len(seeds):
            raise ConfigError(f"teachers.{family}_seeds holds a seed twice: {seeds}.")
        arch = config["teachers"].get(f"{family}_arch", f"{family}26")
        base = teacher_base_name(family, arch, config["teachers"][family])
        specs += [(f"{base}_s{seed}", family, seed) for seed in seeds]
    for entry in config["teachers"].get("models", []):
        name = entry["name"]
        clash = (
            "is the name of another teacher"
            if name in [n for n, _, _ in specs]
            else "is a word that selects teachers in students' teachers = [...]"
            if name in ("all", OWN_TEACHER_FAMILY, *TEACHER_FAMILIES)
            else "starts like a trained family's teachers (the ablation and report tell families apart by that prefix)"
            if name.lower().startswith(TEACHER_FAMILIES)
            else ""
        )
        if clash:
            raise ConfigError(
                f"[[teachers.models]] teacher name {name!r} (of {entry['path']!r}) {clash}; give it another name, "
                f'e.g. name = "my_{name}" or --teacher my_{name}=PATH.'
            )
        specs.append((name, OWN_TEACHER_FAMILY, None))
    return specs


def student_teachers(config, entry, specs=None):
    """Teacher names of a [[students]] entry, in config order ('all' and family names expanded)."""
    specs = teacher_specs(config) if specs is None else specs
    names = [name for name, _, _ in specs]
    families = (*TEACHER_FAMILIES, OWN_TEACHER_FAMILY)
    chosen = set()
    for item in entry["teachers"]:
        if item == "all":
            chosen.update(names)
        elif item in families:
            chosen.update(name for name, family, _ in specs if family == item)
        elif item in names:
            chosen.add(item)
        else:
            valid = ["all", *families, *names]
            raise ConfigError(
                f"Student {entry['name']!r}: unknown teacher {item!r}{did_you_mean(item, valid)}. "
                f"Valid: {', '.join(valid)}."
            )
    if entry["teachers"] and not chosen:
        raise ConfigError(
            f"Student {entry['name']!r} asks for teachers {entry['teachers']} but the config has none of "
            "them; set teachers.resnet_seeds / teachers.rednet_seeds, or bring your own with [[teachers.models]] "
            "or --teacher PATH."
        )
    return [name for name in names if name in chosen]


def teacher_epochs(config, family):
    """Training epochs of the teachers of `family` ("resnet" or "rednet")."""
    return config["teachers"][f"{family}_epochs"] or config["teachers"]["epochs"]


def student_settings(config, entry):
    """The [student] section with a [[students]] entry's own values applied (a dict)."""
    return {**config["student"], **entry_settings(entry)}


@dataclass(frozen=True)
class Config:
    """A resolved config as typed sections; build it with `Config.from_dict`."""

    run: RunSection
    data: DataSection
    teachers: TeachersSection
    store: StoreSection
    student: StudentRecipe
    export: ExportSection
    students: tuple  # StudentEntry (one per entry and seed), in config order
    teacher_specs: tuple  # TeacherSpec, in config order
    raw: dict  # the resolved dict (written as config.toml)

    @classmethod
    def from_dict(cls, config):
        if isinstance(config, Config):
            return config
        sections = {name: section(**config[name]) for name, section in SECTION_CLASSES.items()}
        specs = teacher_specs(config)
        own = {entry["name"]: entry for entry in config["teachers"].get("models", [])}
        teachers = [
            TeacherSpec(name, family, family, None, {}, 0, own[name]["path"], own[name]["pixels"])
            if family == OWN_TEACHER_FAMILY
            else TeacherSpec(
                name,
                family,
                config["teachers"][f"{family}_arch"],
                seed,
                dict(config["teachers"][family]),
                teacher_epochs(config, family),
            )
            for name, family, seed in specs
        ]
        students = []
        for order, entry in enumerate(config["students"]):
            chosen = tuple(student_teachers(config, entry, specs))
            settings = sections["student"].replace(**entry_settings(entry))
            precision = config["run"]["precision"]
            students += [
                StudentEntry(name, order, chosen, settings, entry["name"], seed, precision)
                for name, seed in student_seeds(config, entry)
            ]
        return cls(**sections, students=tuple(students), teacher_specs=tuple(teachers), raw=config)

    @property
    def teacher_names(self):
        return [t.name for t in self.teacher_specs]

    @property
    def student_names(self):
        return [s.name for s in self.students]

    def student_entry(self, name):
        """The trained student `name` (or the first seed of the [[students]] entry `name`)."""
        return next(s for s in self.students if name in (s.name, s.entry))

    def select_students(self, only=()):
        """The students named in `only` (student or [[students]] entry names; () = all), in config order."""
        names = self.student_names + [s.entry for s in self.students]
        unknown = sorted(set(only) - set(names))
        if unknown:
            raise ConfigError(
                f"Unknown student(s) {unknown}; this run's students: {', '.join(self.student_names)}."
                + not_a_file_hint(unknown)
            )
        return [s for s in self.students if not only or s.name in only or s.entry in only]


def not_a_file_hint(names):
    """For `--student FILE`: what to do instead (it takes a student's name; a file has no run to belong to)."""
    files = [n for n in names if n.endswith((".tflite", ".keras")) or "/" in n or "\\" in n]
    if not files:
        return ""
    return (
        f" --student takes the name of one of this run's students, not a file ({files[0]!r}). 'libkd export' "
        "measures the accuracy of each exported .tflite file (exports/<student>/export_report.json); for a file "
        "of your own, call libkd_keras.export.evaluate_litert(path, split) (or load a .keras file with "
        "keras.saving.load_model)."
    )
