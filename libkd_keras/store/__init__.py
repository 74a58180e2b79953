"""The teacher-label store: teacher logits computed once, stored as TFRecord + manifest, read by tf.data.

`format.py` defines and documents the on-disk format; `writer.py` is the one writer (`precompute`,
`add_teachers`, `force=True` rebuilds through `rebuild.py`), with `shares.py` for several workers
(`finalize_store`);
`reader.py` holds the read-only `TeacherStore`. Paths may be on any `tf.io.gfile` filesystem. The
ensemble rules the store applies live in `libkd_keras.ensembles`, shared with the Distiller.
"""

from libkd_keras.store import analyses
from libkd_keras.store.errors import StoreError
from libkd_keras.store.format import STORE_FORMAT_VERSION
from libkd_keras.store.reader import TeacherStore
from libkd_keras.store.shares import finalize_store
from libkd_keras.store.writer import add_teachers, precompute, remove_stale_files

__all__ = [
    "STORE_FORMAT_VERSION",
    "StoreError",
    "TeacherStore",
    "add_teachers",
    "analyses",
    "finalize_store",
    "precompute",
    "remove_stale_files",
]
