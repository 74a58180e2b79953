"""Step "data": the run's splits, loaded once, with data warnings folded into one notice line.

    train           the student's training images (data.train_limit)
    teacher_train   the teachers' training images (teachers.train_limit; = train when equal)
    test            every accuracy (data.test_limit)

`load_all` loads every split the run needs and checks what only the images can tell (the patch size
against the real image size), so bad data or a bad size fails before any training.
"""

import os
import warnings

import libkd_keras
from libkd_keras.data import load_split
from libkd_keras.pipeline.checks import check_patch_size


class RunData:
    """The splits of one run; `say` receives progress and notice lines."""

    def __init__(self, config, say=print):
        self.config, self.say = config, say
        self._splits, self._pending, self._loading = {}, [], False
        self.checked = False  # whether `pipeline.runner.prepare` ran the checks that need these splits

    def _limits(self):
        data, teachers = self.config.data, self.config.teachers
        return {
            "train": data.train_limit,
            "test": data.test_limit,
            "teacher_train": teachers.train_limit or data.train_limit,
        }

    def split(self, kind):
        """The `Split` of `kind`: "train" (the student's), "teacher_train" or "test"."""
        limits, data = self._limits(), self.config.data
        if kind == "teacher_train" and limits["teacher_train"] == limits["train"]:
            kind = "train"
        if kind not in self._splits:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                self._splits[kind] = load_split(
                    data.dataset,
                    "test" if kind == "test" else "train",
                    data_dir=data.data_dir or None,
                    limit=limits[kind] or None,
                    image_size=data.image_size or None,
                    seed=self.config.run.seed,
                )
            package = os.path.dirname(libkd_keras.__file__)
            self._pending += [" ".join(str(w.message).split()) for w in caught if str(w.filename).startswith(package)]
            if not self._loading:
                self._flush_notices()
            split = self._splits[kind]
            self.say(
                f"[data] {kind.replace('_', ' ')}: {len(split):,} images {split.image_shape[0]}x"
                f"{split.image_shape[1]}, {split.num_classes} classes, from {data.dataset}"
            )
        return self._splits[kind]

    def _flush_notices(self):
        """Data warnings (e.g. images of mixed sizes were resized) as one notice line."""
        if self._pending:
            self.say(f"libkd: notice: {' '.join(dict.fromkeys(self._pending))}")
            self._pending = []

    def load_all(self):
        """Loads every split the run needs and checks the patch size against the images."""
        self._loading = True
        try:
            train = self.split("train")
            self.split("test")
            if any(not t.path for t in self.config.teacher_specs):  # teachers to train (not the user's own)
                self.split("teacher_train")
        finally:
            self._loading = False
        self._flush_notices()
        height, width = train.image_shape[:2]
        for side in dict.fromkeys((height, width)):
            check_patch_size(self.config.student.patch_size, side, "the images' side")
