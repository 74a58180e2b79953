"""Linear CKA against a plain NumPy formula, its invariances, minibatch CKA, layer reading, heatmaps."""

import functools
import json

import numpy as np
import pytest

from libkd_keras.analysis.cka import (
    MinibatchCKA,
    analyze_run,
    cka_matrix,
    find_run_models,
    layer_representations,
    layerwise_cka,
    linear_cka,
    minibatch_cka_matrices,
    minibatch_cka_matrix,
    plot_cka_heatmap,
)
from tests import builders


def direct_cka(x, y):
    """Eq. 2 written plainly: HSIC(K, L) = tr(K H L H) / (n-1)^2 with K = X X^T, L = Y Y^T."""
    n = x.shape[0]
    h = np.eye(n) - np.ones((n, n)) / n
    k, ell = x @ x.T, y @ y.T

    def hsic(a, b):
        return np.trace(a @ h @ b @ h) / (n - 1) ** 2

    return hsic(k, ell) / np.sqrt(hsic(k, k) * hsic(ell, ell))


def direct_unbiased_hsic(k, ell):
    """Song et al. (2012), term by term with explicit loops over i != j."""
    n = k.shape[0]
    kt, lt = k.copy(), ell.copy()
    np.fill_diagonal(kt, 0.0)
    np.fill_diagonal(lt, 0.0)
    trace = sum(kt[i, j] * lt[j, i] for i in range(n) for j in range(n))
    ones = np.ones(n)
    return (
        trace + (ones @ kt @ ones) * (ones @ lt @ ones) / ((n - 1) * (n - 2)) - 2.0 / (n - 2) * (ones @ kt @ lt @ ones)
    ) / (n * (n - 3))


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.mark.parametrize("features", [(3, 5), (40, 70)])  # feature-space and example-space branches
def test_linear_cka_equals_direct_numpy(rng, features):
    x = rng.normal(size=(30, features[0]))
    y = x[:, :1] @ rng.normal(size=(1, features[1])) + rng.normal(size=(30, features[1]))
    assert linear_cka(x, y) == pytest.approx(direct_cka(x, y), rel=1e-10)
    assert 0.0 < linear_cka(x, y) < 1.0


def test_unbiased_cka_equals_direct_numpy(rng):
    x, y = rng.normal(size=(12, 4)), rng.normal(size=(12, 6))
    k, ell = x @ x.T, y @ y.T
    expected = direct_unbiased_hsic(k, ell) / np.sqrt(direct_unbiased_hsic(k, k) * direct_unbiased_hsic(ell, ell))
    assert linear_cka(x, y, unbiased=True) == pytest.approx(expected, rel=1e-10)


def test_identical_representations_give_one(rng):
    x = rng.normal(size=(50, 20))
    assert linear_cka(x, x) == pytest.approx(1.0)
    assert linear_cka(x, x, unbiased=True) == pytest.approx(1.0)


def test_invariant_to_orthogonal_transform_and_isotropic_scaling(rng):
    x = rng.normal(size=(60, 8))
    y = np.tanh(x @ rng.normal(size=(8, 10)))
    q, _ = np.linalg.qr(rng.normal(size=(10, 10)))
    reference = linear_cka(x, y)
    assert linear_cka(x, y @ q) == pytest.approx(reference, rel=1e-10)
    assert linear_cka(7.5 * x, 0.01 * y) == pytest.approx(reference, rel=1e-10)
    # ...but not to a general (anisotropic) linear map, so the checks above can fail.
    assert linear_cka(x, y * np.linspace(0.1, 10, 10)) != pytest.approx(reference, rel=1e-3)


def test_cka_matrix_matches_pairwise_linear_cka(rng):
    reps_a = [("a0", rng.normal(size=(25, 3))), ("a1", rng.normal(size=(25, 2, 4)))]
    reps_b = [rng.normal(size=(25, 5)), reps_a[0][1] * 3, rng.normal(size=(25, 7))]
    matrix = cka_matrix(reps_a, reps_b)
    assert matrix.shape == (2, 3)
    for i, (_, a) in enumerate(reps_a):
        for j, b in enumerate(reps_b):
            assert matrix[i, j] == pytest.approx(linear_cka(a, b), rel=1e-9)
    assert matrix[0, 1] == pytest.approx(1.0)
    within = cka_matrix(reps_a)
    np.testing.assert_allclose(np.diag(within), 1.0)
    np.testing.assert_allclose(within, within.T)
    unbiased = cka_matrix(reps_a, reps_b, unbiased=True)
    assert unbiased[1, 2] == pytest.approx(linear_cka(reps_a[1][1], reps_b[2], unbiased=True), rel=1e-9)


def test_minibatch_cka_approximates_full_cka_on_a_large_sample(rng):
    n = 2400
    x = rng.normal(size=(n, 6))
    y = np.concatenate([x[:, :3] + 0.8 * rng.normal(size=(n, 3)), rng.normal(size=(n, 4))], axis=1)
    z = rng.normal(size=(n, 5))
    full = cka_matrix([x, y, z])
    accumulator = MinibatchCKA()
    for start in range(0, n, 200):
        accumulator.update([x[start : start + 200], y[start : start + 200], z[start : start + 200]])
    approx = accumulator.result()
    assert accumulator.batches == 12 and accumulator.examples == n
    np.testing.assert_allclose(approx, full, atol=0.03)
    assert approx[0, 1] > 0.2 and abs(approx[0, 2]) < 0.05  # a related and an unrelated pair


def test_minibatch_cka_of_one_batch_is_the_unbiased_estimator(rng):
    x, y = rng.normal(size=(40, 3)), rng.normal(size=(40, 9))
    accumulator = MinibatchCKA()
    accumulator.update([x], [y])
    assert accumulator.result()[0, 0] == pytest.approx(linear_cka(x, y, unbiased=True), rel=1e-10)
    assert accumulator.update([x[:3]], [y[:3]]) is False  # too small for the estimator: skipped
    assert accumulator.batches == 1


def test_bad_inputs_are_refused(rng):
    with pytest.raises(ValueError, match="same examples"):
        linear_cka(rng.normal(size=(10, 2)), rng.normal(size=(11, 2)))
    with pytest.raises(ValueError, match="NaN"):
        linear_cka(np.full((10, 2), np.nan), rng.normal(size=(10, 2)))
    with pytest.raises(ValueError, match="no minibatch"):
        MinibatchCKA().result()
    assert np.isnan(linear_cka(np.ones((10, 3)), rng.normal(size=(10, 3))))  # constant: undefined


# The shared tiny builders in the shapes these tests read: a DeiT of 3 blocks of 16 dims (its token
# representations are 18 x 16 wide), seeded; a ResNet of width 8 and a RedNet whose residual branches start at 0.
tiny_deit = functools.partial(builders.tiny_deit, dim=16, depth=3, seed=0)
tiny_resnet = functools.partial(builders.tiny_resnet, widths=(8, 8, 8, 8), name="resnet_t")
tiny_rednet = functools.partial(builders.tiny_rednet, zero_init_residual=True, name="rednet_t")


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(1).integers(0, 256, size=(24, 16, 16, 3)).astype(np.uint8)


def test_layer_representations_of_a_tiny_deit(images):
    reps = layer_representations(tiny_deit(), images, batch_size=10)
    assert [name for name, _ in reps] == ["embed", "block0", "block1", "block2"]
    tokens = 16 + 2  # 4x4 patches, class and distillation tokens
    assert all(array.shape == (24, tokens * 16) for _, array in reps)
    picked = layer_representations(tiny_deit(), images, layers=["block2"])
    assert [name for name, _ in picked] == ["block2"]
    with pytest.raises(ValueError, match="available"):
        layer_representations(tiny_deit(), images, layers=["block9"])


def test_layer_representations_of_tiny_teachers(images):
    res = layer_representations(tiny_resnet(), images, batch_size=10)
    assert [name for name, _ in res] == ["stem_relu"] + [f"stage{s}_block1_out" for s in range(1, 5)]
    assert res[0][1].shape == (24, 16 * 16 * 8) and res[-1][1].shape == (24, 2 * 2 * 8)
    red = layer_representations(tiny_rednet(), images)
    assert [name for name, _ in red] == ["stem_3_relu"] + [f"stage{s}_block1_out" for s in range(1, 5)]


def test_minibatch_cka_matrix_on_models(images):
    student = tiny_deit()
    within, rows, cols = minibatch_cka_matrix(student, images, batch_size=12)
    assert within.shape == (4, 4) and rows == cols
    np.testing.assert_allclose(np.diag(within), 1.0, atol=1e-9)
    cross, rows, cols = minibatch_cka_matrix(student, images, tiny_resnet(), batch_size=12)
    assert cross.shape == (4, 5) and cols[0] == "stem_relu"
    # Streaming equals accumulating the stored representations batch by batch.
    reps_a = layer_representations(student, images)
    accumulator = MinibatchCKA()
    for start in (0, 12):
        accumulator.update([a[start : start + 12] for _, a in reps_a])
    np.testing.assert_allclose(within, accumulator.result(), rtol=1e-6)


def test_minibatch_cka_matrices_share_one_pass_per_model(images):
    student, teacher = tiny_deit(), tiny_resnet()
    matrices, names = minibatch_cka_matrices(
        {"s": student, "t": teacher}, images, pairs=[("s", "s"), ("s", "t")], batch_size=12
    )
    within, _, _ = minibatch_cka_matrix(student, images, batch_size=12)
    cross, rows, cols = minibatch_cka_matrix(student, images, teacher, batch_size=12)
    np.testing.assert_allclose(matrices[("s", "s")], within, rtol=1e-6)
    np.testing.assert_allclose(matrices[("s", "t")], cross, rtol=1e-6)
    assert names == {"s": rows, "t": cols}
    with pytest.raises(ValueError, match="not in `models`"):
        minibatch_cka_matrices({"s": student}, images, pairs=[("s", "x")])


def test_plot_cka_heatmap_writes_a_png(tmp_path, rng):
    path = plot_cka_heatmap(
        rng.uniform(size=(3, 4)), tmp_path / "map.png", title="t", xlabels=list("abcd"), ylabels=list("xyz")
    )
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["map.png"]  # no temporary left behind
    with pytest.raises(ValueError, match="labels"):
        plot_cka_heatmap(np.eye(2), tmp_path / "bad.png", xlabels=["only one"])


def test_analyze_run_finds_models_and_writes_heatmaps(tmp_path, images):
    (tmp_path / "teachers").mkdir()
    (tmp_path / "students").mkdir()
    (tmp_path / "checkpoints").mkdir()
    tiny_deit(distillation=False).save(tmp_path / "students" / "baseline.keras")
    tiny_deit(distillation=True, seed=1).save(tmp_path / "students" / "student.keras")
    tiny_resnet().save(tmp_path / "teachers" / "resnet26_s0.keras")
    tiny_resnet().save(tmp_path / "checkpoints" / "epoch1.keras")  # ignored
    (tmp_path / "ablation" / "models").mkdir(parents=True)
    tiny_deit(distillation=False).save(tmp_path / "ablation" / "models" / "baseline__seed0.keras")  # ignored
    found = find_run_models(tmp_path)
    assert list(found) == ["baseline", "student", "resnet26_s0"]  # students/ sorts before teachers/

    section = analyze_run(tmp_path, images, batch_size=8)
    out = tmp_path / "cka"
    expected = {
        "baseline.png",
        "student.png",
        "resnet26_s0.png",
        "baseline_vs_resnet26_s0.png",
        "student_vs_resnet26_s0.png",
        "student_pairs.png",
        "cka.json",
    }
    assert {p.name for p in out.iterdir()} == expected
    assert "](cka/student_vs_resnet26_s0.png)" in section and "| resnet26_s0 | teacher | 5 |" in section
    assert section.startswith("## Representation similarity")
    record = json.loads((out / "cka.json").read_text())
    assert np.asarray(record["cross"]["baseline_vs_resnet26_s0"]["matrix"]).shape == (4, 5)
    assert record["within"]["resnet26_s0"]["layers"][0] == "stem_relu"
    (pair,) = record["students"].values()  # two students: one pair, in the order they were found
    assert list(record["students"]) == ["baseline_vs_student"] and np.asarray(pair["matrix"]).shape == (4, 4)
    assert pair["layerwise"] == pytest.approx(np.mean(np.diag(pair["matrix"])))
    assert "Students against students" in section and "](cka/student_pairs.png)" in section


def test_layerwise_cka_reads_the_diagonal_of_same_layers_and_every_cell_otherwise():
    matrix = [[0.9, 0.1], [0.3, float("nan")]]
    assert layerwise_cka(matrix, ["a", "b"], ["a", "b"]) == pytest.approx(0.9)  # the NaN diagonal cell is left out
    assert layerwise_cka(matrix, ["a", "b"], ["x", "y"]) == pytest.approx((0.9 + 0.1 + 0.3) / 3)
    assert np.isnan(layerwise_cka([[float("nan")]], ["a"], ["a"]))
