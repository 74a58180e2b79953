"""What CKA compares: a model's layer activations, and minibatch CKA streamed from models.

`layer_representations(model, images)` reads, for a DeiT, the token sequence after the
embedding and after every block (`model.block_outputs`); for the ResNet/RedNet teachers, the
stem and every `stage*_block*_out`; each flattened to `(n, features)`.
`minibatch_cka_matrix` / `minibatch_cka_matrices` stream images through the models batch by
batch into the unbiased estimator of `estimators.py`, so no activation is kept whole.

Example:
>>> matrices, names = minibatch_cka_matrices({"deit": student, "resnet": teacher}, test_images,
...                                          pairs=[("deit", "deit"), ("deit", "resnet")])
"""

import numpy as np

from libkd_keras.analysis.cka.estimators import (
    MIN_UNBIASED_BATCH,
    MinibatchCKA,
    _as_matrix,
    _safe_ratio,
    _unbiased_hsic,
    _unbiased_terms,
)


def _images_array(images):
    """Float32 pixels in [0, 255], `(n, H, W, 3)`, from an array or anything with `.images`."""
    images = getattr(images, "images", images)
    images = np.asarray(images)
    if images.ndim != 4:
        raise ValueError(f"`images` must be (n, height, width, channels) pixels; got shape {images.shape}.")
    return images.astype(np.float32)


def representation_layers(model):
    """Names of the layers CKA reads from a ResNet/RedNet teacher: the stem, then every block.

    The stem's output is the last layer whose name starts with `stem` (`stem_relu`,
    `stem_3_relu` or `stem_pool`); blocks are the layers named `stage*_block*_out`.
    """
    names = [layer.name for layer in model.layers]
    stem = [n for n in names if n.startswith("stem")]
    blocks = [n for n in names if n.startswith("stage") and "_block" in n and n.endswith("_out")]
    return stem[-1:] + blocks


def _extractor(model, layers):
    """`(names, fn)` where `fn(batch)` returns one `(b, features)` array per layer."""
    from keras import ops  # imported here so the NumPy half of this module needs no backend

    if hasattr(model, "block_outputs"):  # DeiT: embedding, then one entry per block
        names = ["embed"] + [f"block{i}" for i in range(len(model.blocks))]
        keep = list(range(len(names)))
        if layers is not None:
            unknown = [layer for layer in layers if layer not in names]
            if unknown:
                raise ValueError(f"unknown DeiT layers {unknown}; available: {names}.")
            keep = [names.index(layer) for layer in layers]
            names = list(layers)

        def read(batch):
            outputs = model.block_outputs(batch, training=False)
            return [ops.convert_to_numpy(outputs[i]).reshape(len(batch), -1) for i in keep]

        return names, read

    import keras

    available = [layer.name for layer in getattr(model, "layers", [])]
    names = list(layers) if layers is not None else representation_layers(model)
    if not names:
        raise ValueError(
            f"model {model.name!r} has no layers named `stem*` or `stage*_block*_out`; pass `layers=` "
            f"with names among: {available}."
        )
    unknown = [name for name in names if name not in available]
    if unknown:
        raise ValueError(f"model {model.name!r} has no layers {unknown}; available: {available}.")
    inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs
    probe = keras.Model(inputs, [model.get_layer(name).output for name in names], name=f"{model.name}_cka")

    def read(batch):
        outputs = probe(batch, training=False)
        outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
        return [ops.convert_to_numpy(o).reshape(len(batch), -1) for o in outputs]

    return names, read


def iter_representations(model, images, layers=None, batch_size=64):
    """Yields, batch by batch, `(names, [(b, features) array per layer])` of `model` on `images`."""
    if not isinstance(batch_size, int) or batch_size <= 0:
        raise ValueError(f"`batch_size` must be a positive integer; got {batch_size!r}.")
    images = _images_array(images)
    names, read = _extractor(model, layers)
    for start in range(0, len(images), batch_size):
        yield names, read(images[start : start + batch_size])


def layer_representations(model, images, layers=None, batch_size=64):
    """`[(layer_name, (n, features) array)]`: what `cka_matrix` compares.

    - DeiT (anything with `block_outputs`): `embed` (patch + class/distillation tokens), then
      `block0`, `block1`, ... — the whole token sequence, flattened.
    - Functional ResNet/RedNet teachers: the stem, then every `stage*_block*_out`, flattened.
    `layers` picks a subset by name. `images` are raw pixels in [0, 255] (or a `Split`).

    Example:
    >>> student = DeiT(num_classes=10, image_size=16, patch_size=4, dim=32, depth=2, num_heads=2)
    >>> [name for name, _ in layer_representations(student, np.zeros((4, 16, 16, 3)))]
    ['embed', 'block0', 'block1']
    """
    names, chunks = None, []
    for names, batch in iter_representations(model, images, layers, batch_size):
        chunks.append(batch)
    if not chunks:
        raise ValueError("`images` is empty; give at least 2 images.")
    return [(name, np.concatenate([c[i] for c in chunks])) for i, name in enumerate(names)]


def minibatch_cka_matrix(model_a, images, model_b=None, layers_a=None, layers_b=None, batch_size=64):
    """Minibatch CKA between every layer of `model_a` and of `model_b` (or itself) on `images`.

    Streams `images` once through both models (`batch_size` at a time; use batches of at
    least a few dozen images, the estimator's noise grows as the batch shrinks) and returns
    `(matrix (La, Lb), names_a, names_b)`.

    Example:
    >>> matrix, rows, cols = minibatch_cka_matrix(student, test_images[:512], teacher, batch_size=128)
    """
    accumulator = MinibatchCKA()
    names_a = names_b = None
    batches_a = iter_representations(model_a, images, layers_a, batch_size)
    batches_b = None if model_b is None else iter_representations(model_b, images, layers_b, batch_size)
    for names_a, batch_a in batches_a:
        if batches_b is None:
            names_b, batch_b = names_a, None
        else:
            names_b, batch_b = next(batches_b)
        accumulator.update(batch_a, batch_b)
    if names_a is None:
        raise ValueError("`images` is empty; give at least a few batches of images.")
    return accumulator.result(), names_a, names_b


def minibatch_cka_matrices(models, images, pairs, layers=None, batch_size=64):
    """Minibatch CKA for many model pairs, running every model only once over `images`.

    - `models`: `{label: keras.Model}`; `pairs`: `[(label_a, label_b), ...]`, `(a, a)` for the
      layer-vs-layer matrix of one model; `layers`: optional `{label: [layer names]}`.

    Per minibatch, each model's layer grams are computed once and shared by every pair it is
    in, so comparing S students with T teachers costs S + T forward passes, not S * T.
    Returns `(matrices {pair: (La, Lb) array}, names {label: [layer names]})`.

    Example:
    >>> matrices, names = minibatch_cka_matrices({"deit": student, "resnet": teacher}, test_images,
    ...                                          pairs=[("deit", "deit"), ("deit", "resnet")])
    """
    pairs = [tuple(pair) for pair in pairs]
    unknown = sorted({label for pair in pairs for label in pair} - set(models))
    if unknown:
        raise ValueError(f"`pairs` name models {unknown} that are not in `models` ({sorted(models)}).")
    if not isinstance(batch_size, int) or batch_size < MIN_UNBIASED_BATCH:
        raise ValueError(f"`batch_size` must be an integer >= {MIN_UNBIASED_BATCH}; got {batch_size!r}.")
    images = _images_array(images)
    used = [label for label in models if any(label in pair for pair in pairs)]
    extractors = {label: _extractor(models[label], (layers or {}).get(label)) for label in used}
    cross = {pair: 0.0 for pair in pairs}
    self_hsic = {label: 0.0 for label in used}
    batches = 0
    for start in range(0, len(images), batch_size):
        batch = images[start : start + batch_size]
        n = len(batch)
        if n < MIN_UNBIASED_BATCH:
            continue  # the unbiased estimator needs at least 4 examples
        terms = {
            label: _unbiased_terms([a @ a.T for a in map(_as_matrix, read(batch))])
            for label, (_, read) in extractors.items()
        }
        for label, t in terms.items():
            within = _unbiased_hsic(t, t, n)
            self_hsic[label] = self_hsic[label] + np.diag(within)
            if (label, label) in cross:
                cross[(label, label)] = cross[(label, label)] + within
        for a, b in pairs:
            if a != b:
                cross[(a, b)] = cross[(a, b)] + _unbiased_hsic(terms[a], terms[b], n)
        batches += 1
    if not batches:
        raise ValueError(f"`images` holds {len(images)} images; minibatch CKA needs at least {MIN_UNBIASED_BATCH}.")
    matrices = {(a, b): _safe_ratio(cross[(a, b)], np.outer(self_hsic[a], self_hsic[b])) for a, b in pairs}
    return matrices, {label: list(extractors[label][0]) for label in used}
