"""Student helpers: the DeiT-from-config `student_builder`, and the record helpers
`heads_record` and `teacher_set_size` (used by `train_student` and the pipeline).

Example:
>>> build = student_builder("deit_tiny", num_classes=10, image_size=(32, 32), patch_size=4)
>>> model = build(True)  # with a distillation token
"""

from libkd_keras import choices
from libkd_keras.evaluation import evaluate_heads, save_predictions
from libkd_keras.models import DEIT_VARIANTS, STUDENT_BUILDERS, DeiT


def student_builder(arch, num_classes, image_size, patch_size=4, drop_path_rate=0.1, model=None):
    """`build(distillation_token: bool) -> DeiT` for a named student size, or with `model`'s DeiT arguments.

    Args:
        arch: str. One of `choices.STUDENT_ARCHS` ("deit_tiny", ...).
        num_classes: int. Classes of the data.
        image_size: int or (int, int). Image side(s); `patch_size` must divide them.
        patch_size: int. Patch side in pixels.
        drop_path_rate: float. Stochastic depth rate.
        model: dict. DeiT arguments over the arch's (dim, depth, num_heads, ...); None/{} = as named.
    """
    if arch not in STUDENT_BUILDERS:
        raise ValueError(f"Unknown student architecture {arch!r}; choose one of {', '.join(choices.STUDENT_ARCHS)}.")
    sides = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    if any(side % patch_size for side in sides):
        raise ValueError(
            f"patch size {patch_size} does not divide the image size {sides[0]}x{sides[1]}; "
            f"choose a patch size among {[p for p in range(1, min(sides) + 1) if not sides[0] % p]}."
        )
    common = dict(num_classes=num_classes, image_size=sides, patch_size=patch_size, drop_path_rate=drop_path_rate)

    def build(distillation_token):
        if model:
            variant = DEIT_VARIANTS.get(arch.removeprefix("deit_"), {})
            return DeiT(**{"depth": 12, **variant, **model}, **common, distillation=distillation_token)
        return STUDENT_BUILDERS[arch](**common, distillation=distillation_token)

    return build


def heads_record(student, split, predictions_path=None):
    """`{"split", "num_examples", "top1", "top5", "cls_top1", ...}` (fractions) of a student's heads on `split`.

    With `predictions_path`, also writes the inference output's class per image there (`save_predictions`),
    for the report's paired tests.
    """
    heads = evaluate_heads(student, split.images, split.labels, return_predictions=predictions_path is not None)
    if predictions_path is not None:
        save_predictions(predictions_path, heads["predictions"], split.labels, split.ids, split.num_classes)
    record = {"split": split.split, "num_examples": heads["n"]}
    for prefix, head in (("", "both"), ("cls_", "cls"), ("dist_", "dist")):
        scores = heads[head] or {}
        record[f"{prefix}top1"], record[f"{prefix}top5"] = scores.get("top1"), scores.get("top5")
    return record


def teacher_set_size(metadata, names):
    """`(trainable_parameters, size_mb)` of a teacher set, summed (Table 4's teacher columns).

    Args:
        metadata: a TeacherStore (its `teacher_metadata(name)`) or a dict `{name: teacher record}`.
        names: list of str. The teachers; none, or one whose count is unknown, gives `(None, None)`.
    """
    if not names:
        return None, None
    params = size = 0
    for name in names:
        meta = (metadata.teacher_metadata(name) if hasattr(metadata, "teacher_metadata") else metadata.get(name)) or {}
        count = meta.get("trainable_parameters", meta.get("params"))  # "params": records written before 0.2
        if count is None:
            return None, None
        params += int(count)
        size += float(meta.get("size_mb", int(count) * 4 / 2**20))
    return params, size
