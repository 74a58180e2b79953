"""One harness for the round trips of libkd_keras' layers and models (in the style of keras-hub's `TestCase`).

- `run_registration_test(obj)`: every libkd_keras class in the object's serialized form is registered under
  `libkd_keras>Name` and resolves back to that class (what loading a `.keras` file needs);
- `run_serialization_test(obj, kwargs)`: `get_config` is JSON, keeps every constructor argument, and
  `from_config` / `serialize_keras_object` + `deserialize_keras_object` rebuild an object with the same config;
- `run_saving_test(model, x, folder)`: a `.keras` save and load gives the same class, the same weights (each
  one perturbed first, so a weight that is not saved shows) and the same outputs;
- `run_litert_export_test(model, x, folder)`: the float32 LiteRT file has builtin ops only and gives
  Keras' outputs.

`tests/test_round_trips.py` runs them on every layer of `libkd_keras.layers` and every model family.
"""

import copy
import json

import keras
import numpy as np

PACKAGE = "libkd_keras"


def _plain(value):
    """Tuples as lists, as a config holds them once through JSON."""
    return json.loads(json.dumps(value))


def libkd_classes(serialized):
    """`{registered_name: (module, class_name)}` of every libkd_keras object inside a serialized config."""
    found = {}
    if isinstance(serialized, dict):
        if str(serialized.get("module", "")).startswith(PACKAGE) or str(
            serialized.get("registered_name") or ""
        ).startswith(f"{PACKAGE}>"):
            found[serialized.get("registered_name")] = (serialized.get("module"), serialized.get("class_name"))
        for value in serialized.values():
            found.update(libkd_classes(value))
    elif isinstance(serialized, list):
        for value in serialized:
            found.update(libkd_classes(value))
    return found


def run_registration_test(obj):
    """Returns the registered names of the libkd_keras classes that `obj` is made of (at least one)."""
    found = libkd_classes(keras.saving.serialize_keras_object(obj))
    assert found, f"{obj!r} holds no libkd_keras object"
    for name, (module, class_name) in found.items():
        assert name == f"{PACKAGE}>{class_name}", f"{module}.{class_name} is not registered as {PACKAGE}>{class_name}"
        cls = keras.saving.get_registered_object(name)
        assert cls is not None and cls.__name__ == class_name and cls.__module__ == module, name
        assert keras.saving.get_registered_name(cls) == name
    return set(found)


def run_serialization_test(obj, kwargs=None):
    """`kwargs`: the constructor arguments `obj` was made with; each must be in its config, unchanged."""
    cls = type(obj)
    config = obj.get_config()
    json.dumps(config)  # a TypeError unless it is JSON, as a .keras file stores it
    for key, value in (kwargs or {}).items():
        assert key in config, f"{cls.__name__}.get_config() lacks the argument {key!r}"
        assert _plain(config[key]) == _plain(value), f"{cls.__name__}: {key}={config[key]!r}, made with {value!r}"
    clone = cls.from_config(copy.deepcopy(config))  # Keras' functional from_config empties the dict it gets
    assert type(clone) is cls and _plain(clone.get_config()) == _plain(config)
    serialized = json.loads(json.dumps(keras.saving.serialize_keras_object(obj)))
    restored = keras.saving.deserialize_keras_object(serialized)
    assert type(restored) is cls and _plain(restored.get_config()) == _plain(config)
    return clone


def perturb_weights(model, seed=0):
    """Moves every weight (non-trainable ones too) off its initial value; variances stay positive."""
    rng = np.random.default_rng(seed)
    for variable in model.weights:
        value = keras.ops.convert_to_numpy(variable)
        noise = rng.normal(size=value.shape)
        if "variance" in variable.path:
            value = np.abs(value + 0.1 * noise) + 0.1
        else:
            value = value * (1 + 0.1 * noise) + 0.05 * rng.normal(size=value.shape)
        variable.assign(value.astype(variable.dtype))


def _outputs(model, x):
    outputs = model.predict(x, verbose=0)
    return [np.asarray(o) for o in (outputs if isinstance(outputs, (list, tuple)) else [outputs])]


def run_saving_test(model, x, folder):
    """Saves `model` (weights perturbed first) to `folder/<name>.keras`, loads it; returns the loaded model."""
    perturb_weights(model)
    path = folder / f"{model.name}.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert type(loaded) is type(model)
    assert [w.path for w in loaded.weights] == [w.path for w in model.weights]
    for saved, restored in zip(model.weights, loaded.weights):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(restored), keras.ops.convert_to_numpy(saved))
    expected = _outputs(model, x)
    assert all(np.isfinite(e).all() and np.ptp(e) > 0 for e in expected)  # the outputs see the weights
    for got, want in zip(_outputs(loaded, x), expected, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    return loaded


def run_litert_export_test(model, x, folder):
    """Converts `model` to a float32 LiteRT file; returns its metadata (op types, ...)."""
    from libkd_keras.export import LiteRTModel, to_litert

    meta = to_litert(model, folder / f"{model.name}.tflite", "float32")
    assert meta["builtin_ops_only"] is True
    assert all(op.isupper() and not op.startswith(("FLEX", "CUSTOM", "CALL")) for op in meta["op_types"])
    expected = np.asarray(model(x, training=False))
    np.testing.assert_allclose(LiteRTModel(meta["path"]).predict(x), expected, rtol=1e-4, atol=1e-4)
    return meta
