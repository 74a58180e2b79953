"""The teacher-label store: teacher logits computed once, stored as TFRecord + manifest, read by tf.data.

`format.py` defines and documents the on-disk format. `write.py` holds every write, one explicit
function each: `write_store`, `add_teachers`, `rebuild_store` (a damaged store, replaced only when
the new one is whole), `write_share` and `finalize_store` (several workers), and `precompute`
(`write_store`, or `add_teachers` to the store already there). `read.py` holds the read-only
`TeacherStore` (its arrays and its tf.data batches) and the multi-view stores' views, replayed exactly.
Paths may be on any `tf.io.gfile` filesystem. The ensemble rules the store applies live in
`libkd_keras.ensembles`, shared with the Distiller.
"""

from libkd_keras.store import analyses
from libkd_keras.store.format import STORE_FORMAT_VERSION, StoreError
from libkd_keras.store.read import TeacherStore
from libkd_keras.store.write import (
    StoredViews,
    add_teachers,
    finalize_store,
    precompute,
    rebuild_store,
    remove_stale_files,
    write_share,
    write_store,
)

__all__ = [
    "STORE_FORMAT_VERSION",
    "StoreError",
    "StoredViews",
    "TeacherStore",
    "add_teachers",
    "analyses",
    "finalize_store",
    "precompute",
    "rebuild_store",
    "remove_stale_files",
    "write_share",
    "write_store",
]
