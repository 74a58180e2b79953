"""The teacher-label store: teacher logits computed once, stored as TFRecord + manifest, read by tf.data.

The on-disk format is defined and documented in `libkd_keras/store/format.py`.
"""

from libkd_keras.store import analyses, ensembles
from libkd_keras.store.errors import StoreError
from libkd_keras.store.format import STORE_FORMAT_VERSION
from libkd_keras.store.precompute import precompute
from libkd_keras.store.teacher_store import TeacherStore

__all__ = ["STORE_FORMAT_VERSION", "StoreError", "TeacherStore", "analyses", "ensembles", "precompute"]
