"""Planning an ablation: the experiments of Table 4 and Figure 11, from the stored teacher names.

An `Experiment` names a set of stored teachers, the distillation type (`none` = the student
baseline, `hard`, `soft` at a temperature), the student recipe (`baseline`, or `superior` with
MixUp/CutMix and friends) and alpha. Families are matched by the name prefixes `resnet` /
`rednet` (`resnet26_s0`, `rednet26_s1`, ...):

- `table4_experiments(names)`: no teacher, single ResNet, single RedNet, 1 RedNet + 1 ResNet (ours,
  not in the paper), 2 ResNets, 3 RedNets, 3 ResNets, 2 RedNets + 1 ResNet, 2 ResNets + 1 RedNet,
  4 ResNets; each with the `baseline` and the `superior` recipe. A set the store cannot provide
  is kept, marked skipped, with a note saying which teachers it lacks.
- `figure11_experiments(names)`: hard vs soft distillation and a temperature sweep of soft
  distillation, from one teacher set.

Example:
>>> [e.name for e in table4_experiments(["resnet26_s0", "rednet26_s0"], recipes=("baseline",))][:3]
['baseline', 't4-single-resnet', 't4-single-rednet']
"""

import dataclasses
import re

from libkd_keras import choices

DISTILLATIONS = ("none", *choices.DISTILLATIONS)  # "none": the student baseline, no distillation token
RECIPES = choices.RECIPES
FAMILIES = choices.TEACHER_FAMILIES

# Table 4 of the paper, in its order: (label, ResNets, RedNets). "1 RedNet + 1 ResNet" is ours, not
# the paper's: the smallest complementary set, the only mixed one a store with one teacher per family can run.
TABLE4_SETS = (
    ("none", 0, 0),
    ("single ResNet", 1, 0),
    ("single RedNet", 0, 1),
    ("1 RedNet + 1 ResNet", 1, 1),
    ("2 ResNets", 2, 0),
    ("3 RedNets", 0, 3),
    ("3 ResNets", 3, 0),
    ("2 RedNets + 1 ResNet", 1, 2),
    ("2 ResNets + 1 RedNet", 2, 1),
    ("4 ResNets", 4, 0),
)
FIGURE11_TEMPERATURES = (1.0, 2.0, 4.0, 8.0, 16.0)

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")


@dataclasses.dataclass(frozen=True)
class Experiment:
    """One student to train from the store.

    - `name`: unique, used for the result file (letters, digits, `_ . + -`).
    - `teachers`: stored teacher names whose ensemble is the target; `()` for the baseline.
    - `teacher_set`: the label in the table (e.g. "2 RedNets + 1 ResNet").
    - `distillation`: "none" (student baseline, no distillation token), "hard" or "soft".
    - `recipe`: "baseline" or "superior" (MixUp/CutMix, RandAugment, ...; Table 4's lower half).
    - `alpha`: weight of the true-label loss; `temperature`: for soft distillation.
    - `ensemble`: how stored teachers are combined, "soft" (averaging) or "vote".
    - `group`: which figure or table it belongs to ("table4", "figure11", ...).
    - `skip`: why it cannot run on this store ("" when it can).
    """

    name: str
    teachers: tuple = ()
    teacher_set: str = ""
    distillation: str = "hard"
    recipe: str = "baseline"
    alpha: float = 0.5
    temperature: float = 1.0
    ensemble: str = "soft"
    group: str = "custom"
    skip: str = ""

    def __post_init__(self):
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise ValueError(
                f"experiment name {self.name!r} must start with a letter or digit and hold only letters, "
                "digits and `_ . + -` (it names the result file)."
            )
        object.__setattr__(self, "teachers", tuple(self.teachers))
        if self.distillation not in DISTILLATIONS:
            raise ValueError(
                f"experiment {self.name!r}: `distillation` must be one of {DISTILLATIONS}; got {self.distillation!r}."
            )
        if self.recipe not in RECIPES:
            raise ValueError(f"experiment {self.name!r}: `recipe` must be one of {RECIPES}; got {self.recipe!r}.")
        if not self.skip and (self.distillation == "none") != (not self.teachers):
            raise ValueError(
                f"experiment {self.name!r}: distillation='none' goes with no teachers and 'hard'/'soft' with "
                f"at least one; got distillation={self.distillation!r} and teachers={self.teachers}."
            )
        if not 0.0 <= float(self.alpha) <= 1.0:
            raise ValueError(f"experiment {self.name!r}: `alpha` must be in [0, 1]; got {self.alpha!r}.")
        if not float(self.temperature) > 0:
            raise ValueError(f"experiment {self.name!r}: `temperature` must be positive; got {self.temperature!r}.")
        object.__setattr__(self, "alpha", float(self.alpha))
        object.__setattr__(self, "temperature", float(self.temperature))
        if not self.teacher_set:
            object.__setattr__(self, "teacher_set", describe_teacher_set(self.teachers))

    @property
    def is_baseline(self):
        return self.distillation == "none"

    def settings(self):
        """What determines the result (a stored result with other settings is recomputed)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in ("name", "group", "skip", "teacher_set")}


# ---------------------------------------------------------------------------- teacher families


def _natural_key(name):
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def teacher_families(teacher_names):
    """`{"resnet": [...], "rednet": [...]}`: stored names by family prefix, naturally sorted.

    Example:
    >>> teacher_families(["rednet26_s1", "resnet26_s10", "resnet26_s2"])
    {'resnet': ['resnet26_s2', 'resnet26_s10'], 'rednet': ['rednet26_s1']}
    """
    families = {family: [] for family in FAMILIES}
    for name in sorted(teacher_names, key=_natural_key):
        for family in FAMILIES:
            if name.lower().startswith(family):
                families[family].append(name)
    return families


def describe_teacher_set(teachers):
    """A Table 4 style label: "none", "single ResNet", "2 RedNets + 1 ResNet", ..."""
    if not teachers:
        return "none"
    families = teacher_families(teachers)
    others = len(teachers) - sum(len(v) for v in families.values())
    parts = []
    for family, word in (("rednet", "RedNet"), ("resnet", "ResNet")):
        count = len(families[family])
        if count:
            parts.append(f"{count} {word}s" if count > 1 else f"1 {word}")
    if others:
        parts.append(f"{others} other" + ("s" if others > 1 else ""))
    if len(teachers) == 1:
        return "single " + parts[0][2:]
    # The larger family first, as the paper writes "2 RedNets + 1 ResNet".
    return " + ".join(sorted(parts, key=lambda p: -int(p.split()[0])))


def _slug(label):
    return re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")


def _pick(families, resnets, rednets):
    """The first `resnets` ResNets and `rednets` RedNets, or the reason they are not there."""
    missing = []
    for family, word, count in (("resnet", "ResNet", resnets), ("rednet", "RedNet", rednets)):
        have = families[family]
        if count > len(have):
            missing.append(
                f"{count} {word}{'s' if count > 1 else ''} (the store has {len(have)}"
                + (f": {', '.join(have)}" if have else "")
                + ")"
            )
    if missing:
        return None, "needs " + " and ".join(missing)
    return tuple(families["resnet"][:resnets] + families["rednet"][:rednets]), ""


def baseline_experiment(recipe="baseline"):
    """The student alone (no distillation token, no teacher) with `recipe`; gains are measured against it."""
    return Experiment(
        name="baseline" if recipe == "baseline" else f"baseline-{recipe}",
        teachers=(),
        teacher_set="none",
        distillation="none",
        recipe=recipe,
        group="baseline",
    )


def table4_experiments(teacher_names, recipes=choices.TABLE4_RECIPES, alpha=0.5, distillation="hard", ensemble="soft"):
    """Table 4's teacher sets (rows in the paper's order), once per recipe.

    Teachers are the first stored names of each family (natural order: `resnet26_s0`,
    `resnet26_s1`, ...). Sets needing more teachers of a family than the store holds come back
    with `skip` set to a note such as "needs 3 RedNets (the store has 1: rednet26_s0)". Stored
    teachers of no family (the user's own, `[[teachers.models]]`) add a row each ("single NAME",
    `t4-own-NAME`) and one with every stored teacher ("all N teachers", `t4-all-teachers`).

    Example:
    >>> [e.name for e in table4_experiments(["resnet26_s0", "rednet26_s0"], recipes=("baseline",))][:3]
    ['baseline', 't4-single-resnet', 't4-single-rednet']
    """
    families = teacher_families(teacher_names)
    experiments = []
    for recipe in recipes:
        suffix = "" if recipe == "baseline" else f"-{recipe}"
        for label, resnets, rednets in TABLE4_SETS:
            if not resnets and not rednets:
                experiments.append(dataclasses.replace(baseline_experiment(recipe), group="table4"))
                continue
            teachers, skip = _pick(families, resnets, rednets)
            experiments.append(
                Experiment(
                    name=f"t4-{_slug(label)}{suffix}",
                    teachers=teachers or (),
                    teacher_set=label,
                    distillation=distillation,
                    recipe=recipe,
                    alpha=alpha,
                    ensemble=ensemble,
                    group="table4",
                    skip=skip,
                )
            )
        experiments += _own_teacher_rows(teacher_names, families, suffix, recipe, alpha, distillation, ensemble)
    return experiments


def _own_teacher_rows(teacher_names, families, suffix, recipe, alpha, distillation, ensemble):
    """Table 4 rows of the stored teachers outside the ResNet/RedNet families: each alone, then all teachers."""
    in_families = {name for members in families.values() for name in members}
    own = [name for name in sorted(teacher_names, key=_natural_key) if name not in in_families]
    sets = [(f"t4-own-{name}", (name,), f"single {name}") for name in own]
    if own and len(teacher_names) > 1:
        every = tuple(sum(families.values(), [])) + tuple(own)
        sets.append(("t4-all-teachers", every, f"all {len(every)} teachers"))
    common = dict(distillation=distillation, recipe=recipe, alpha=alpha, ensemble=ensemble, group="table4")
    return [
        Experiment(name=name + suffix, teachers=teachers, teacher_set=label, **common) for name, teachers, label in sets
    ]


def figure11_experiments(
    teacher_names,
    teachers=None,
    temperatures=FIGURE11_TEMPERATURES,
    alpha=0.5,
    recipe="baseline",
    ensemble="soft",
    include_baseline=True,
):
    """Figure 11: hard vs soft distillation, and soft distillation across `temperatures`.

    All from one teacher set: `teachers` (names) or, by default, every stored teacher (the
    complementary ResNet + RedNet ensemble). Every trained student is evaluated with the class
    head, the distillation head and both (Figure 11b-c) by `run_ablation` itself. With
    `include_baseline`, the student baseline of `recipe` is added so gains can be computed.

    Example:
    >>> [e.name for e in figure11_experiments(["resnet26_s0", "rednet26_s0"], temperatures=(1, 4))]
    ['baseline', 'f11-hard', 'f11-soft-t1', 'f11-soft-t4']
    """
    stored = list(teacher_names)
    chosen = tuple(stored if teachers is None else teachers)
    unknown = [t for t in chosen if t not in stored]
    if unknown or not chosen:
        raise ValueError(
            f"figure 11 teachers {list(chosen) or '[]'} are not all in the store; stored teachers: {stored}."
        )
    label = describe_teacher_set(chosen)
    experiments = [dataclasses.replace(baseline_experiment(recipe), group="figure11")] if include_baseline else []
    suffix = "" if recipe == "baseline" else f"-{recipe}"
    experiments.append(
        Experiment(
            name=f"f11-hard{suffix}",
            teachers=chosen,
            teacher_set=label,
            distillation="hard",
            recipe=recipe,
            alpha=alpha,
            ensemble=ensemble,
            group="figure11",
        )
    )
    for temperature in temperatures:
        experiments.append(
            Experiment(
                name=f"f11-soft-t{float(temperature):g}{suffix}",
                teachers=chosen,
                teacher_set=label,
                distillation="soft",
                temperature=temperature,
                recipe=recipe,
                alpha=alpha,
                ensemble=ensemble,
                group="figure11",
            )
        )
    return experiments


def unique_experiments(experiments):
    """Experiments by name, in order; the same name twice must mean the same experiment."""
    seen = {}
    for experiment in experiments:
        if not isinstance(experiment, Experiment):
            raise TypeError(f"`experiments` must hold Experiment objects; got {type(experiment).__name__}.")
        previous = seen.get(experiment.name)
        if previous is not None and previous.settings() != experiment.settings():
            raise ValueError(f"two different experiments are named {experiment.name!r}; rename one.")
        seen.setdefault(experiment.name, experiment)
    return list(seen.values())
