"""Label-safe 3D augmentations: alignment, kept ids, physical units, combiners, determinism."""

from __future__ import annotations

import numpy as np
import pytest

from cellsynth.augment import (
    BrightnessContrast,
    CopyPaste,
    CropResize,
    Diversify,
    Elastic,
    Gamma,
    GaussianBlur,
    GaussianNoise,
    LateralStretch,
    PoissonNoise,
    RandomChoice,
    RandomFlip,
    RandomRotate,
    RandomRotate90,
    Stacked,
    local_std,
)
from cellsynth.augment.strategies import AUGMENTATIONS, STRATEGIES, augmentation
from cellsynth.errors import InputError
from cellsynth.sample import Sample

ANISOTROPIC = (1.0, 0.5, 0.5)


def blobs(shape=(12, 24, 24), spacing=ANISOTROPIC) -> np.ndarray:
    """Three ellipsoidal instances (ids 3, 5, 9), round in µm."""
    grid = np.stack(np.meshgrid(*[np.arange(n) * s for n, s in zip(shape, spacing, strict=True)], indexing="ij"))
    labels = np.zeros(shape, np.uint16)
    for label, centre, radius in ((3, (4, 4, 4), 2.5), (5, (7, 7, 7.5), 2.0), (9, (6, 3, 8.5), 2.2)):
        inside = ((grid - np.reshape(centre, (3, 1, 1, 1))) ** 2).sum(0) <= radius**2
        labels[inside] = label
    return labels


def item_from_labels(spacing=ANISOTROPIC, shape=(12, 24, 24)) -> Sample:
    """An image that *is* its labels (ids as intensities): any misalignment shows."""
    labels = blobs(shape, spacing)
    return Sample(labels, labels.astype(np.float32), spacing)


GEOMETRIC = [
    RandomFlip(),
    RandomRotate90(),
    RandomRotate(image_order=0, fill=0),
    RandomRotate(max_tilt_deg=40, image_order=0, fill=0),
    LateralStretch(max_factor=1.6, image_order=0),
    CropResize(scale=(0.5, 0.9), image_order=0),
    CropResize(scale=(0.6, 0.9), axes=(0, 1, 2), image_order=0),
    Elastic(alpha_um=1.5, sigma_um=3.0, image_order=0),
]


@pytest.mark.parametrize("transform", GEOMETRIC, ids=lambda t: repr(t)[:40])
@pytest.mark.parametrize("spacing", [ANISOTROPIC, (0.5, 0.5, 0.5)])
def test_geometric_transforms_keep_image_and_labels_aligned(transform, spacing):
    item = item_from_labels(spacing)
    changed = 0
    for seed in range(4):
        out = transform(item, seed)
        assert out.image.shape == item.image.shape and out.spacing == item.spacing
        np.testing.assert_array_equal(out.image, out.labels)  # nearest image order: exactly aligned
        assert set(np.unique(out.labels)) <= {0, 3, 5, 9}  # ids kept, none invented
        changed += not np.array_equal(out.labels, item.labels)
    assert changed >= 2


@pytest.mark.parametrize("transform", [RandomRotate(max_tilt_deg=30), LateralStretch(), CropResize(),
                                       Elastic(alpha_um=1.0, sigma_um=3.0)], ids=lambda t: type(t).__name__)
def test_linear_image_interpolation_stays_aligned_with_nearest_labels(transform):
    item = item_from_labels()
    item = item.replace(image=(item.labels > 0).astype(np.float32))
    for seed in range(3):
        out = transform(item, seed)
        boundary = np.abs(out.image - 0.5) < 0.05  # a linear image is ambiguous only where it is ~0.5
        agree = np.mean(((out.image > 0.5) == (out.labels > 0))[~boundary])
        assert agree > 0.99


def test_flip_and_rotate90_equal_numpy():
    item = item_from_labels((0.5, 0.5, 0.5), shape=(12, 24, 24))
    for seed in range(8):
        out = RandomFlip(axes=(2,))(item, seed)
        assert np.array_equal(out.labels, item.labels) or np.array_equal(out.labels, item.labels[:, :, ::-1])
    for seed in range(8):
        out = RandomRotate90()(item, seed)
        candidates = [np.rot90(item.labels, k, plane) for plane in ((1, 2), (0, 1), (0, 2)) for k in range(4)]
        assert any(np.array_equal(out.labels, c) for c in candidates)


def test_rotate90_stays_in_plane_when_anisotropic():
    item = item_from_labels(ANISOTROPIC)
    for seed in range(12):
        out = RandomRotate90()(item, seed)
        assert any(np.array_equal(out.labels, np.rot90(item.labels, k, (1, 2))) for k in range(4))


def test_rotate90_never_changes_the_shape_of_a_non_square_plane():
    labels = blobs((12, 24, 20), (0.5, 0.5, 0.5))
    item = Sample(labels, labels.astype(np.float32), (0.5, 0.5, 0.5))
    assert all(RandomRotate90()(item, seed).image.shape == (12, 24, 20) for seed in range(12))


def test_zero_rotation_is_the_identity():
    item = item_from_labels()
    out = RandomRotate(max_angle_deg=0, max_tilt_deg=0)(item, 0)
    np.testing.assert_array_equal(out.image, item.image)
    np.testing.assert_array_equal(out.labels, item.labels)


def _principal_lengths_um(labels: np.ndarray, spacing) -> np.ndarray:
    points = np.argwhere(labels > 0) * np.asarray(spacing)
    return np.sqrt(np.sort(np.linalg.eigvalsh(np.cov(points.T))))


def test_rotation_turns_the_physical_volume_of_an_anisotropic_stack():
    spacing = (1.0, 0.4, 0.4)
    shape = (24, 60, 60)
    grid = np.stack(np.meshgrid(*[(np.arange(n) - n / 2) * s for n, s in zip(shape, spacing, strict=True)],
                                indexing="ij"))
    rod = ((grid[0] ** 2 + grid[1] ** 2 <= 1.5**2) & (np.abs(grid[2]) <= 8)).astype(np.uint16)
    item = Sample(rod, rod.astype(np.float32), spacing)
    before = _principal_lengths_um(rod, spacing)
    for seed in range(3):
        out = RandomRotate(max_tilt_deg=60)(item, seed)
        np.testing.assert_allclose(_principal_lengths_um(out.labels, spacing), before, rtol=0.1)


def test_stretch_and_crop_resize_scale_a_ramp_by_their_factor():
    ramp = np.broadcast_to(np.arange(40, dtype=np.float32), (4, 40, 40)).copy()
    item = Sample(image=ramp, spacing=(1, 1, 1))
    crop = CropResize(scale=(0.5, 0.5))(item, 0).image
    np.testing.assert_allclose(np.diff(crop, axis=2), 0.5, atol=1e-4)
    stretched = [LateralStretch(max_factor=2)(Sample(image=np.swapaxes(ramp, 1, 2).copy() * 0 + ramp), s).image
                 for s in range(6)]
    slopes = {round(float(np.median(np.diff(s, axis=2))), 3) for s in stretched}
    assert 1.0 in slopes and any(0.5 <= slope < 1 for slope in slopes)  # x untouched when y was stretched


def test_elastic_displacement_rms_and_kept_planes():
    elastic = Elastic(alpha_um=2.0, sigma_um=4.0, axes=(1, 2))
    field = elastic.displacement((16, 48, 48), (2.0, 0.5, 0.5), np.random.default_rng(0))
    assert np.all(field[0] == 0)
    assert np.sqrt(np.mean(field[1] ** 2)) == pytest.approx(2.0 / 0.5, rel=1e-4)  # µm → voxels
    assert np.abs(np.diff(field[1], axis=1)).max() < 0.25 * np.abs(field[1]).max()  # smooth
    item = item_from_labels()
    assert np.array_equal(Elastic(alpha_um=0)(item, 0).labels, item.labels)


def test_intensity_transforms_follow_their_formulas_and_leave_labels():
    item = item_from_labels()
    image = item.image / 9
    item = item.replace(image=image)
    out = BrightnessContrast(brightness=(0.1, 0.1), contrast=(2, 2))(item, 0)
    np.testing.assert_allclose(out.image, (image - image.mean()) * 2 + image.mean() + 0.1, rtol=1e-5, atol=1e-6)
    out = Gamma(gamma=(2, 2))(item, 0)
    np.testing.assert_allclose(out.image, image**2, rtol=1e-5, atol=1e-7)
    flat = item.replace(image=np.full(image.shape, 0.5, np.float32))
    assert GaussianNoise(std=(0.1, 0.1))(flat, 0).image.std() == pytest.approx(0.1, rel=0.05)
    shot = PoissonNoise(photons=(100, 100))(flat, 0).image
    assert shot.mean() == pytest.approx(0.5, abs=0.01) and shot.var() == pytest.approx(0.5 / 100, rel=0.1)
    for transform in (BrightnessContrast(), Gamma(), GaussianNoise(), PoissonNoise()):
        assert np.array_equal(transform(item, 1).labels, item.labels)


def test_diversify_transform_uses_the_cached_local_std_and_the_curriculum():
    item = item_from_labels()
    item = item.replace(image=item.image / 9)
    cached = item.replace(local_std=np.zeros(item.image.shape, np.float32))
    out = Diversify(w_i=(0.5, 0.5), w_v=(8, 8))(cached, 0)  # zero σ: only the intensity weight acts
    np.testing.assert_allclose(out.image, item.image * 0.5, rtol=1e-6)
    computed = Diversify(w_i=(1, 1), w_v=(2, 2), size=3)(item, 0)
    np.testing.assert_array_equal(computed.local_std, local_std(item.image, 3))
    curriculum = Diversify(epochs_to_full=10)
    np.testing.assert_array_equal(curriculum(item, 0).image, item.image)  # epoch 0: neutral element
    curriculum.set_epoch(5)
    assert curriculum.limits() == ((pytest.approx(0.6), pytest.approx(1.4)), (0.0, 4.0))


def test_geometric_transforms_move_the_cached_local_std_with_the_image():
    item = item_from_labels()
    item = item.replace(local_std=item.image.copy())
    out = RandomRotate(image_order=1, fill=0)(item, 3)
    np.testing.assert_allclose(out.local_std, out.image, atol=1e-5)


def test_copy_paste_adds_relabelled_instances_without_overlap():
    target = item_from_labels()
    source_labels = np.zeros_like(target.labels)
    source_labels[9:12, 18:23, 18:23] = 1  # free space in the target
    source_labels[3:6, 3:6, 6:10] = 2  # overlaps target instance 3
    source = Sample(source_labels, np.where(source_labels > 0, 7.0, 0).astype(np.float32), ANISOTROPIC)
    out = CopyPaste([source], p=1.0)(target, 0)
    assert set(np.unique(out.labels)) == {0, 3, 5, 9, 10}
    np.testing.assert_array_equal(out.labels[target.labels > 0], target.labels[target.labels > 0])
    pasted = out.labels == 10
    np.testing.assert_array_equal(pasted, source_labels == 1)
    assert np.all(out.image[pasted] == 7.0)
    np.testing.assert_array_equal(out.image[~pasted], target.image[~pasted])
    assert np.array_equal(CopyPaste([source], p=0.0)(target, 0).labels, target.labels)


def test_copy_paste_crops_a_larger_source():
    target = item_from_labels()
    big = blobs((16, 30, 30))
    out = CopyPaste([Sample(big, big.astype(np.float32), ANISOTROPIC)], p=1.0)(target, 4)
    assert out.labels.shape == target.labels.shape
    np.testing.assert_array_equal(out.labels[target.labels > 0], target.labels[target.labels > 0])


def test_combiners():
    item = item_from_labels()
    flip = RandomFlip(axes=(2,))
    assert np.array_equal(Stacked([flip, RandomRotate90()], p=0.0)(item, 0).labels, item.labels)
    composed = Stacked([GaussianNoise(std=(0.1, 0.1)), Gamma(gamma=(2, 2))], p=1.0)
    rng = np.random.default_rng(7)
    rng.random()
    step = GaussianNoise(std=(0.1, 0.1)).apply(item, rng)
    rng.random()
    np.testing.assert_array_equal(composed(item, 7).image, Gamma(gamma=(2, 2)).apply(step, rng).image)
    only_second = RandomChoice([RandomRotate90(), BrightnessContrast((1, 1), (1, 1))], weights=[0, 1])
    np.testing.assert_allclose(only_second(item, 3).image, item.image + 1)
    pipeline = Stacked([RandomFlip(), RandomRotate(), Elastic(sigma_um=3.0), GaussianNoise(), Diversify()], p=0.5)
    first, second = pipeline(item.replace(image=item.image / 9), 11), pipeline(item.replace(image=item.image / 9), 11)
    np.testing.assert_array_equal(first.image, second.image)
    np.testing.assert_array_equal(first.labels, second.labels)
    assert [type(t).__name__ for t in pipeline.walk()][:2] == ["Stacked", "RandomFlip"]


@pytest.mark.parametrize(("make", "fragment"), [
    (lambda: Sample(np.zeros((4, 5, 7), np.uint16), np.zeros((4, 5, 6))), "labels shape (4, 5, 7) and image shape"),
    (lambda: Sample(np.zeros((4, 5, 6), np.float32), np.zeros((4, 5, 6))), "must hold integer instance ids"),
    (lambda: Diversify(w_i=(1.8, 0.2)), "w_i limits are reversed"),
    (lambda: Diversify(w_v=(-1, 8)), "w_v limits must be finite and >= 0"),
    (lambda: Diversify(size=4), "must be odd voxel counts from 3 to 1001"),
    (lambda: Diversify(strategy="structured"), "unknown diversification strategy 'structured'"),
    (lambda: RandomRotate(max_angle_deg=270), "must lie in [0, 180] degrees"),
    (lambda: RandomRotate(image_order=2), "image_order must be 0"),
    (lambda: RandomFlip(axes=(3,)), "axes must be distinct values among 0 (z), 1 (y), 2 (x)"),
    (lambda: CropResize(scale=(0.5, 1.5)), "crop scale must lie in (0, 1]"),
    (lambda: LateralStretch(max_factor=0.5), "max_factor must be >= 1"),
    (lambda: Elastic(sigma_um=0), "sigma_um > 0"),
    (lambda: GaussianNoise(std=(0.2, 0.1)), "low <= high"),
    (lambda: Gamma(gamma=(0, 1)), "gamma must be > 0"),
    (lambda: Stacked([], p=0.5), "non-empty list"),
    (lambda: Stacked([RandomFlip()], p=1.5), "probability in [0, 1]"),
    (lambda: RandomChoice([RandomFlip()], weights=[0]), "not all 0"),
    (lambda: CopyPaste([]), "non-empty pool"),
    (lambda: CopyPaste([item_from_labels()])(Sample(image=np.zeros((12, 24, 24))), 0), "needs the target's labels"),
    (lambda: CopyPaste([item_from_labels()])(item_from_labels(shape=(12, 30, 24)), 0), "smaller than the target"),
    (lambda: Diversify()(item_from_labels(), 0), "must be normalised to [0, 1]"),
])
def test_bad_transform_inputs(make, fragment):
    with pytest.raises(InputError) as error:
        make()
    assert fragment in str(error.value)


@pytest.mark.parametrize("strategy", [*STRATEGIES, *AUGMENTATIONS, "flip,gamma,blur"])
def test_every_augmentation_strategy_is_label_safe(strategy):
    labels = np.zeros((8, 24, 24), np.uint16)
    labels[2:6, 3:11, 3:11], labels[2:6, 13:21, 12:20] = 4, 9
    item = Sample(labels, np.where(labels > 0, 0.8, 0.1).astype(np.float32), (1.0, 0.5, 0.5))
    transform = augmentation(strategy)
    for seed in range(6):
        out = transform(item, rng=seed)
        assert out.shape == item.shape and set(np.unique(out.labels)) <= {0, 4, 9}
        inside, outside = out.image[out.labels > 0], out.image[out.labels == 0]
        if inside.size and outside.size:  # the image moved with its labels
            assert inside.mean() > outside.mean() + 0.2


def test_a_bare_array_has_no_spacing_and_transforms_in_um_refuse_it():
    image = np.random.default_rng(0).random((4, 16, 16)).astype(np.float32)
    assert RandomFlip()(image, rng=0).spacing is None  # no µm involved: applies
    for transform in (RandomRotate(), Elastic(), GaussianBlur(sigma_um=(0.5, 0.5)), Diversify()):
        with pytest.raises(InputError, match="voxel spacing is unknown"):
            transform(image, rng=0)


def test_each_transform_records_what_it_drew_and_those_parameters_replay_it():
    import json

    from cellsynth.augment import (
        BrightnessContrast,
        CopyPaste,
        CropResize,
        Gamma,
        GaussianBlur,
        LateralStretch,
        RandomFlip,
        RandomRotate,
        RandomRotate90,
        Stacked,
    )

    labels = np.zeros((8, 24, 24), np.uint16)
    labels[2:6, 4:12, 4:10], labels[1:7, 14:20, 12:22] = 1, 2
    image = np.where(labels > 0, 0.8, 0.1).astype(np.float32) + 0.05 * np.random.default_rng(0).random(labels.shape)
    item = Sample(labels, image.astype(np.float32), (1.0, 0.5, 0.5))
    source = Sample(labels[:, ::-1].copy(), image[:, ::-1].astype(np.float32), (1.0, 0.5, 0.5))
    for transform in (BrightnessContrast(), Gamma(), GaussianBlur(sigma_um=(0.3, 0.8)), RandomFlip(), RandomRotate90(),
                      RandomRotate(max_angle_deg=40, max_tilt_deg=10), LateralStretch(), CropResize(),
                      CopyPaste([source], p=0.8)):
        out = transform(item, rng=3)
        record = out.params["augmentations"][-1]
        assert record["transform"] == type(transform).__name__ and json.loads(json.dumps(record)) == record
        again = transform.apply_params(item, {k: v for k, v in record.items() if k != "transform"})
        assert np.array_equal(again.image, out.image) and np.array_equal(again.labels, out.labels), record
    stacked = Stacked([RandomFlip(), Gamma(), RandomRotate90()], p=1.0)(item, rng=0)
    assert [r["transform"] for r in stacked.params["augmentations"]] == ["RandomFlip", "Gamma", "RandomRotate90"]


def test_flips_and_quarter_turns_are_undone_by_their_inverse_and_the_others_say_they_cannot_be():
    from cellsynth.augment import RandomFlip, RandomRotate, RandomRotate90

    labels = np.zeros((6, 16, 16), np.uint16)
    labels[1:4, 2:9, 3:14] = 1
    item = Sample(labels, np.random.default_rng(1).random(labels.shape).astype(np.float32), (1.0, 0.5, 0.5))
    for transform, params in ((RandomFlip(), {"axes": [0, 2]}), (RandomRotate90(), {"k": 1, "plane": [1, 2]}),
                              (RandomRotate90(), {"k": 3, "plane": [1, 2]})):
        moved = transform.apply_params(item, params)
        assert not np.array_equal(moved.labels, labels)
        back = transform.inverse(moved, params)
        assert np.array_equal(back.labels, labels) and np.array_equal(back.image, item.image)
    with pytest.raises(InputError, match="RandomRotate cannot be undone exactly"):
        RandomRotate().inverse(item, {"angle_deg": 10.0, "tilt_y_deg": 0.0, "tilt_x_deg": 0.0})


def test_the_old_names_of_the_random_flips_and_turns_warn_and_do_the_same():
    """Issue 27 #5: Flip, Rotate90 and Rotate drew at random under deterministic names (MONAI: Flip vs RandFlip)."""
    from cellsynth.augment import Flip, RandomFlip, RandomRotate, RandomRotate90, Rotate, Rotate90

    labels = np.zeros((6, 16, 16), np.uint16)
    labels[1:4, 2:9, 3:14] = 1
    item = Sample(labels, np.random.default_rng(1).random(labels.shape).astype(np.float32), (1.0, 0.5, 0.5))
    for old, new, settings in ((Flip, RandomFlip, {}), (Rotate90, RandomRotate90, {}),
                               (Rotate, RandomRotate, {"max_angle_deg": 30})):
        with pytest.warns(DeprecationWarning, match=f"{old.__name__} is now {new.__name__}"):
            transform = old(**settings)
        assert isinstance(transform, new)
        assert np.array_equal(transform(item, rng=5).image, new(**settings)(item, rng=5).image)

