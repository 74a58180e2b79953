"""`make_strategy` / `--strategy`: a missing or malformed TF_CONFIG is one clear error with an example."""

import json

import pytest

from libkd_keras import distribute
from libkd_keras.cli.main import EXIT_BAD_INPUT, main

GOOD = {"cluster": {"worker": ["127.0.0.1:2000", "127.0.0.1:2001"]}, "task": {"type": "worker", "index": 1}}


@pytest.mark.parametrize(
    "raw, words",
    [
        (None, "TF_CONFIG is not set"),
        ("{not json", "it is not JSON"),
        ("[1, 2]", "must be a JSON object"),
        (json.dumps({"task": GOOD["task"]}), 'no "cluster" object'),
        (json.dumps({**GOOD, "cluster": {"worker": ["127.0.0.1"]}}), '"host:port" strings'),
        (json.dumps({"cluster": GOOD["cluster"]}), 'no "task" object'),
        (json.dumps({**GOOD, "task": {"type": "chief", "index": 0}}), "task type 'chief' is not in the cluster"),
        (json.dumps({**GOOD, "task": {"type": "worker", "index": 2}}), "task index 2 is not in [0, 2)"),
    ],
)
def test_bad_tf_config_names_the_problem_and_shows_an_example(raw, words):
    environ = {} if raw is None else {"TF_CONFIG": raw}
    with pytest.raises(ValueError) as error:
        distribute.check_tf_config(environ)
    assert words in str(error.value) and '"cluster": {"worker": ["host0:12345"' in str(error.value)


def test_good_tf_config_and_strategy_names():
    assert distribute.check_tf_config({"TF_CONFIG": json.dumps(GOOD)}) == GOOD
    with pytest.raises(ValueError, match="Unknown strategy 'mirroed'.*'multi_worker'"):
        distribute.make_strategy("mirroed")
    with pytest.raises(ValueError, match="Unknown shard policy"):
        distribute.shard_policy(None, "rows")


def test_outside_multi_worker_training_nothing_changes():
    import keras

    assert distribute.is_chief() and distribute.worker_task() == ("worker", 0)
    assert distribute.worker_dir("run/backup/") == "run/backup"
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    assert distribute.fit_view(model) is model  # the MWMS view only under MultiWorkerMirroredStrategy


def test_the_cli_refuses_multi_worker_without_tf_config_before_writing(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    out = tmp_path / "run"
    code = main(["pipeline", "--preset", "quick", "--strategy", "multi_worker", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == EXIT_BAD_INPUT and "TF_CONFIG is not set" in err and "Traceback" not in err
    assert not out.exists()


def test_synchronized_batch_norm_only_with_several_replicas_and_only_while_training():
    import keras

    inputs = keras.Input((4,))
    plain, already = keras.layers.BatchNormalization(), keras.layers.BatchNormalization(synchronized=True)
    model = keras.Model(inputs, already(plain(inputs)))
    with distribute.synchronized_batch_norm(model) as switched:  # one replica: nothing to synchronize
        assert switched == [] and not plain.synchronized

    class TwoReplicas:
        num_replicas_in_sync = 2

    with distribute.synchronized_batch_norm(model, TwoReplicas()) as switched:
        assert switched == [plain] and plain.synchronized and already.synchronized
    assert not plain.synchronized and already.synchronized  # as built: the saved config is unchanged
    assert not model.get_config()["layers"][1]["config"]["synchronized"]
