import numpy as np
import pytest

from libkd_keras.data import DataError, Split, balanced_limit, split_fingerprint


def make_split(n=12, size=4, classes=3):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    return Split(images, np.arange(n) % classes, np.arange(n) * 10, tuple("abc"[:classes]), "toy", "train")


def test_fingerprint_covers_ids_labels_and_pixels():
    split = make_split()
    assert split.fingerprint == split_fingerprint(split.images, split.labels, split.ids)
    changed_pixel = split.images.copy()
    changed_pixel[3, 1, 1, 0] ^= 1
    assert Split(changed_pixel, split.labels, split.ids, split.class_names).fingerprint != split.fingerprint
    assert Split(split.images, split.labels[::-1], split.ids, split.class_names).fingerprint != split.fingerprint
    assert Split(split.images, split.labels, split.ids + 1, split.class_names).fingerprint != split.fingerprint


def test_subset_by_ids_and_indices_keeps_ids_and_recomputes_fingerprint():
    split = make_split()
    by_ids = split.subset(ids=[30, 0, 110])
    assert by_ids.ids.tolist() == [30, 0, 110]
    np.testing.assert_array_equal(by_ids.images, split.images[[3, 0, 11]])
    assert by_ids.fingerprint == split_fingerprint(by_ids.images, by_ids.labels, by_ids.ids)
    assert split.subset(indices=[3, 0, 11]).fingerprint == by_ids.fingerprint
    with pytest.raises(DataError, match="not in split"):
        split.subset(ids=[5])


def test_dataset_yields_float_pixels_and_every_example_once_per_epoch():
    split = make_split()
    ds = split.dataset(5, shuffle=True, seed=1)
    seen = []
    for images, labels in ds:
        assert images.dtype.name == "float32" and labels.dtype.name == "int64"
        seen += [int(i) for i in images.numpy()[:, 0, 0, 0]]
    assert sorted(seen) == sorted(split.images[:, 0, 0, 0].astype(int).tolist())
    first = [b[1].numpy().tolist() for b in split.dataset(12, shuffle=True, seed=1)]
    again = [b[1].numpy().tolist() for b in split.dataset(12, shuffle=True, seed=1)]
    assert first == again


def test_bad_arrays_are_refused():
    split = make_split()
    with pytest.raises(DataError, match="uint8"):
        Split(split.images.astype("float32"), split.labels, split.ids, split.class_names)
    with pytest.raises(DataError, match="unique"):
        Split(split.images, split.labels, np.zeros(len(split)), split.class_names)
    with pytest.raises(DataError, match="Labels must lie"):
        Split(split.images, split.labels + 5, split.ids, split.class_names)


def test_balanced_limit_takes_the_first_examples_of_each_class():
    labels = np.array([0, 1, 0, 1, 0, 2, 0, 1, 2, 0])
    assert balanced_limit(labels, 3, 6).tolist() == [0, 1, 2, 3, 5, 8]
    # class 2 has only two examples: its unused quota goes to the others
    assert np.bincount(labels[balanced_limit(labels, 3, 9)]).tolist() == [4, 3, 2]
    assert balanced_limit(labels, 3, None).tolist() == list(range(10))
    with pytest.raises(DataError, match="positive"):
        balanced_limit(labels, 3, 0)


def test_fingerprint_is_always_derived_from_the_arrays():
    """Issue 16.2: neither a replaced array nor a passed fingerprint can keep a stale or forged one."""
    import dataclasses

    split = make_split()
    flipped = dataclasses.replace(split, images=split.images[:, :, ::-1])
    assert flipped.fingerprint == split_fingerprint(flipped.images, flipped.labels, flipped.ids)
    assert flipped.fingerprint != split.fingerprint
    relabelled = dataclasses.replace(split, labels=split.labels[::-1])
    assert relabelled.fingerprint != split.fingerprint
    assert dataclasses.replace(split, name="renamed").fingerprint == split.fingerprint
    with pytest.raises(TypeError, match="fingerprint"):
        Split(flipped.images, split.labels, split.ids, split.class_names, fingerprint=split.fingerprint)
    with pytest.raises(ValueError, match="fingerprint"):
        dataclasses.replace(flipped, fingerprint=split.fingerprint)


def test_arrays_are_read_only_so_the_fingerprint_cannot_go_stale():
    split = make_split()
    for array in (split.images, split.labels, split.ids):
        with pytest.raises(ValueError, match="read-only"):
            array[0] = 0
    assert split.subset(indices=[0, 1]).images.shape[0] == 2  # derived splits still work


def test_epoch_seeded_batches_are_a_function_of_the_seed_and_the_epoch_number():
    """What a resumed run relies on: epoch e's order and crop/flip do not depend on the epochs before it."""
    from libkd_keras.data import teacher_augmentation
    from libkd_keras.data.epochs import EpochSeeds

    rng = np.random.default_rng(0)
    split = Split(
        rng.integers(0, 256, (30, 8, 8, 3), dtype=np.uint8), np.arange(30), np.arange(30), tuple(map(str, range(30)))
    )

    def batches(seeds, epoch):
        seeds.set_epoch(epoch)
        ds = split.dataset(12, shuffle=True, seed=seeds, augment=teacher_augmentation(8, padding=2))
        assert int(ds.cardinality()) == 3
        out = [(images.numpy(), labels.numpy()) for images, labels in ds]
        assert [len(labels) for _, labels in out] == [12, 12, 6]
        return np.concatenate([i for i, _ in out]), np.concatenate([lab for _, lab in out])

    run = EpochSeeds(7)
    epochs = [batches(run, e) for e in range(3)]
    for images, labels in epochs:
        assert sorted(labels.tolist()) == list(range(30))  # every example once per epoch
    assert epochs[0][1].tolist() != epochs[1][1].tolist()  # a new order every epoch
    resumed_images, resumed_labels = batches(EpochSeeds(7), 2)  # a fresh process starting at epoch 2
    np.testing.assert_array_equal(resumed_labels, epochs[2][1])
    np.testing.assert_array_equal(resumed_images, epochs[2][0])
    assert batches(EpochSeeds(8), 2)[1].tolist() != epochs[2][1].tolist()
    unshuffled = [lab.numpy().tolist() for _, lab in split.dataset(12, seed=run)]
    assert unshuffled == [list(range(12)), list(range(12, 24)), list(range(24, 30))]
    with pytest.raises(DataError, match="one iteration of the dataset is one epoch"):
        split.dataset(12, shuffle=True, seed=run, repeat=True)


def test_a_pipeline_that_loses_its_length_is_refused_before_training():
    from libkd_keras.data.epochs import check_epoch_length

    batches = make_split(n=30).dataset(12, shuffle=True, seed=1)
    check_epoch_length(batches, 3, "teacher t")  # ceil(30 / 12)
    with pytest.raises(ValueError, match="teacher t: the training data make an unknown number of batches"):
        check_epoch_length(batches.unbatch().batch(12), 3, "teacher t")
    with pytest.raises(ValueError, match="make 2 batches an epoch; expected exactly 3"):
        check_epoch_length(make_split(n=30).dataset(12, drop_remainder=True), 3, "teacher t")
