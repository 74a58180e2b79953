import pytest

from tests.store.helpers import TableTeacher, logit_table, make_split


@pytest.fixture(scope="module")
def split():
    return make_split()


@pytest.fixture(scope="module")
def tables():
    return {"alpha": logit_table(10), "beta": logit_table(11), "gamma": logit_table(12)}


@pytest.fixture(scope="module")
def store(tmp_path_factory, split, tables):
    """A store of `split` with teachers alpha and beta, float32 logits, images, 4 shards."""
    from libkd_keras.store import precompute

    teachers = {name: TableTeacher(tables[name]) for name in ("alpha", "beta")}
    path = tmp_path_factory.mktemp("stores") / "toy"
    return precompute(
        teachers, split, path, dtype="float32", shard_size=16, batch_size=16, teacher_metadata={"alpha": {"seed": 1}}
    )
