"""The paper's teacher analyses on a store: accuracy of teachers and ensembles, disagreement rates.

Predictors are named by *specs*:

- `"<teacher>"`: one stored teacher (its logits);
- `"ensemble:<pattern>"` or `"soft:<pattern>"`: soft average of the stored teachers whose names match
  the shell pattern (e.g. `"ensemble:resnet26_*"`);
- `"vote:<pattern>"`: their majority vote, ties broken by the soft average.

On the student's training store, `label_information` says how much a target set can add beyond
the labels: teachers that memorised those images give targets that agree with every label and
put most of the probability on it.

Example (paper Tables 2-3 and Figure 9):
>>> teacher_accuracy(store, ["resnet26_seed0", "resnet26_seed1", "resnet26_seed2"])
>>> disagreement_matrix(store, ["ensemble:resnet26_*", "ensemble:rednet26_*"])[0, 1]   # paper: 0.07431
"""

import fnmatch

import keras
import numpy as np

from libkd_keras.ensembles import soft_average, vote_counts
from libkd_keras.evaluation import TopK
from libkd_keras.store.format import StoreError

ENSEMBLE_PREFIXES = {"ensemble": "soft", "soft": "soft", "vote": "vote"}


def _matching(store, pattern):
    names = [n for n in store.teacher_names if fnmatch.fnmatchcase(n, pattern)]
    if not names:
        raise StoreError(f"No stored teacher matches {pattern!r}; stored teachers: {store.teacher_names}.")
    return names


def ensemble_scores(logits, rule):
    """Scores `(N, C)` whose ranking is the ensemble's: probabilities (soft) or votes + soft tie-break (vote)."""
    probabilities = keras.ops.convert_to_numpy(soft_average(logits))
    if rule == "soft":
        return probabilities
    return keras.ops.convert_to_numpy(vote_counts(logits)) + 0.5 * probabilities


def scores(store, spec):
    """Scores `(N, C)` of a predictor spec (see module docstring); the prediction is their argmax."""
    prefix, _, pattern = spec.partition(":")
    if pattern and prefix in ENSEMBLE_PREFIXES:
        return ensemble_scores(store.logits(_matching(store, pattern)), ENSEMBLE_PREFIXES[prefix])
    return store.logits([spec])[:, 0]


def _accuracy(scores, labels):
    result = TopK(5).update(scores, labels).result()  # top-5 is top-C with fewer classes
    return {"top1": result["top1"], "top5": result["top5"]}


def teacher_accuracy(store, names=None, ensemble=None):
    """Top-1 / top-5 accuracy of each predictor in `names` and of their ensembles on the stored split.

    Args:
        names: teacher names or specs (default: every stored teacher).
        ensemble: `"soft"`, `"vote"`, a list of them, or `()`; default both when `names` has more than
            one plain teacher. Ensembles are over the plain teacher names in `names`.

    Returns `{spec: {"top1": float, "top5": float}}`, ensembles keyed `"soft ensemble"` / `"vote ensemble"`.
    """
    names = list(store.teacher_names if names is None else ([names] if isinstance(names, str) else names))
    plain = [n for n in names if ":" not in n]
    rules = ("soft", "vote") if ensemble is None and len(plain) > 1 else ensemble or ()
    rules = (rules,) if isinstance(rules, str) else tuple(rules)
    labels = store.labels
    results = {}
    for spec in names:
        results[spec] = _accuracy(scores(store, spec), labels)
    for rule in rules:
        if rule not in ("soft", "vote"):
            raise StoreError(f"`ensemble` rules are 'soft' and 'vote'; got {rule!r}.")
        if not plain:
            raise StoreError("Ensembles need plain teacher names in `names`.")
        results[f"{rule} ensemble"] = _accuracy(ensemble_scores(store.logits(plain), rule), labels)
    return results


def disagreement(pred_a, pred_b):
    """Fraction of examples where two predictors disagree; each is class ids `(N,)` or scores `(N, C)`."""
    a, b = (np.asarray(p) for p in (pred_a, pred_b))
    a = a.argmax(axis=-1) if a.ndim == 2 else a
    b = b.argmax(axis=-1) if b.ndim == 2 else b
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(
            f"Predictions must both be (N,) ids or (N, C) scores of the same N; got {a.shape} and {b.shape}."
        )
    return float(np.mean(a != b))


def disagreement_matrix(store, names):
    """`(K, K)` disagreement rates between the predictor specs `names` (teachers or ensembles)."""
    predictions = [scores(store, spec).argmax(axis=1) for spec in names]
    matrix = np.zeros((len(names), len(names)))
    for i, a in enumerate(predictions):
        for j, b in enumerate(predictions):
            matrix[i, j] = disagreement(a, b)
    return matrix


def label_information(store, members, temperature):
    """How far the soft targets of `members` (soft average at `temperature`) are from the labels.

    Returns `{"agreement": fraction of examples whose target's argmax is the label,
    "true_class_probability": mean probability the target gives the label}`; both near 1 mean
    the targets say little the labels do not.
    """
    labels = np.asarray(store.labels)
    targets = keras.ops.convert_to_numpy(soft_average(store.logits(list(members)), temperature))
    return {
        "agreement": float(np.mean(targets.argmax(axis=1) == labels)),
        "true_class_probability": float(np.mean(targets[np.arange(len(labels)), labels])),
    }
