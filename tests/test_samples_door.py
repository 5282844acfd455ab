"""The one door to Samples (issue 27 #4): as_samples, read_sample / write_sample, calibration taking Samples."""

import numpy as np
import pytest

from cellsynth.config import OutputConfig
from cellsynth.dataset import build_dataset
from cellsynth.dataset.samples import as_samples, read_sample, write_sample
from cellsynth.errors import FileFormatError, InputError
from cellsynth.io import write_volume
from cellsynth.sample import Sample
from cellsynth.synthesis.preset import check_calibration_inputs

SPACING = (0.5, 0.25, 0.25)


def labelled(seed: int = 0) -> Sample:
    labels = np.zeros((6, 16, 16), np.uint16)
    labels[1:5, 2:8, 2:8], labels[1:5, 9:15, 8:14] = 1, 2
    image = (labels > 0) * 200.0 + np.random.default_rng(seed).random(labels.shape) * 20
    return Sample(labels, image.astype(np.float32), SPACING, name=f"s{seed}")


def test_as_samples_reads_files_folders_datasets_arrays_and_samples_in_the_order_given(tmp_path):
    write_volume(tmp_path / "one.tif", labelled(1).image, SPACING)
    (tmp_path / "folder").mkdir()
    for name in ("b.tif", "a.tif"):
        write_volume(tmp_path / "folder" / name, labelled(2).image, (1.0, 0.5, 0.5))
    dataset = build_dataset(tmp_path / "data", ["x"], lambda index, rng: labelled(3), config={}, seed=0,
                            output=OutputConfig(), progress=False)
    array, sample = labelled(4).image, labelled(5)

    volumes = as_samples([tmp_path / "one.tif", tmp_path / "folder", dataset.root, sample])

    assert [v.name for v in volumes] == ["one.tif", "a.tif", "b.tif", "x", "s5"]
    assert [v.spacing for v in volumes] == [SPACING, (1.0, 0.5, 0.5), (1.0, 0.5, 0.5), SPACING, SPACING]
    assert volumes[-1] is sample and volumes[0].labels is None
    assert np.array_equal(volumes[3].labels, labelled(3).labels)
    given = as_samples([tmp_path / "folder", array], spacing=SPACING)  # a given spacing overrides a file's own
    assert [v.spacing for v in given] == [SPACING] * 3 and np.array_equal(given[2].image, array)


def test_a_missing_spacing_is_refused_where_lengths_matter_never_assumed(tmp_path):
    image = labelled().image
    with pytest.raises(InputError, match=r"^--real: an array has no voxel spacing; give spacing") as err:
        as_samples(image, what="--real")
    assert "\n" not in str(err.value)
    kept = as_samples(image, need_spacing=False)[0]
    assert kept.spacing is None  # the transforms that need µm refuse it themselves
    np.save(tmp_path / "plain.npy", image)
    with pytest.raises(FileFormatError, match="carries no voxel spacing"):
        as_samples(tmp_path / "plain.npy")
    from cellsynth.evaluate.c2st import c2st

    with pytest.raises(InputError, match="real: an array has no voxel spacing"):
        c2st(image, image, steps=1)


def test_labels_are_required_only_where_asked_and_come_from_dataset_folders_or_ome_zarr(tmp_path):
    write_volume(tmp_path / "image.tif", labelled().image, SPACING)
    with pytest.raises(InputError, match="must be a cellsynth dataset folder"):
        as_samples(tmp_path / "image.tif", labels=True, what="--test")
    with pytest.raises(InputError, match="--train: every volume needs its instance labels"):
        as_samples(Sample(image=labelled().image, spacing=SPACING), labels=True, what="--train")
    write_sample(tmp_path / "sample.ome.zarr", labelled())
    (volume,) = as_samples(tmp_path / "sample.ome.zarr", labels=True)
    assert np.array_equal(volume.labels, labelled().labels) and volume.spacing == SPACING


@pytest.mark.parametrize("name", ["sample.ome.zarr", "sample.tif"])
def test_write_sample_and_read_sample_round_trip_image_labels_and_spacing(tmp_path, name):
    sample = labelled()
    label_path = None if name.endswith(".zarr") else tmp_path / "sample_labels.tif"
    write_sample(tmp_path / name, sample, labels=label_path)
    back = read_sample(tmp_path / name, labels=label_path)
    assert back.spacing == SPACING and back.name == name
    assert np.array_equal(back.image, sample.image) and np.array_equal(back.labels, sample.labels)


def test_write_sample_refuses_before_writing_anything(tmp_path):
    with pytest.raises(InputError, match="give labels=<path>"):
        write_sample(tmp_path / "image.tif", labelled())
    with pytest.raises(InputError, match="needs the sample's image"):
        write_sample(tmp_path / "image.tif", Sample(labelled().labels, spacing=SPACING))
    with pytest.raises(InputError, match="voxel spacing is unknown"):
        write_sample(tmp_path / "image.ome.zarr", Sample(image=labelled().image))
    with pytest.raises(InputError, match="folder .* does not exist"):
        write_sample(tmp_path / "image.tif", labelled(), labels=tmp_path / "missing" / "labels.tif")
    assert list(tmp_path.iterdir()) == []


def test_read_sample_refuses_labels_of_another_shape(tmp_path):
    write_volume(tmp_path / "image.tif", labelled().image, SPACING)
    write_volume(tmp_path / "labels.tif", labelled().labels[:, :8], SPACING)
    with pytest.raises(InputError, match="do not match image"):
        read_sample(tmp_path / "image.tif", labels=tmp_path / "labels.tif")


def test_calibration_takes_samples_with_their_spacing_and_labels_as_it_takes_arrays():
    samples = [labelled(0), labelled(1)]
    from_samples = check_calibration_inputs(samples, None, None)
    from_arrays = check_calibration_inputs([s.image for s in samples], [s.labels for s in samples], SPACING)
    assert from_samples[2] == from_arrays[2] == SPACING
    for ours, theirs in zip(from_samples[:2], from_arrays[:2], strict=True):
        assert all(np.array_equal(a, b) for a, b in zip(ours, theirs, strict=True))
    unlabelled = [Sample(image=s.image, spacing=SPACING) for s in samples]
    assert check_calibration_inputs(unlabelled, None, None)[1] is None  # then the classical segmentation
    with pytest.raises(InputError, match="differ in voxel spacing"):
        check_calibration_inputs([samples[0], samples[1].replace(spacing=(1.0, 0.25, 0.25))], None, None)
    with pytest.raises(InputError, match="calibration: an array has no voxel spacing"):
        check_calibration_inputs([s.image for s in samples], None, None)
