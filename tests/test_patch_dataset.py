"""The training data pipeline: random augmented patches, reproducible per seed and across workers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import SPACING, boxes_labels

from cellsynth.augment import Diversify, GaussianNoise, PatchDataset, RandomFlip, Stacked, local_std
from cellsynth.config import OutputConfig
from cellsynth.dataset import build_dataset
from cellsynth.errors import DatasetError, InputError
from cellsynth.sample import Sample

PIPELINE = Stacked([RandomFlip(), Diversify(size=3), GaussianNoise()], p=0.7)


def test_patches_from_a_dataset_folder(make_dataset):
    dataset = make_dataset(n=3)
    patches = PatchDataset(dataset.root, (4, 8, 8), transform=PIPELINE, samples_per_epoch=10, seed=1)
    assert len(patches) == 10
    item = patches[0]
    assert item["image"].shape == (1, 4, 8, 8) and item["image"].dtype == torch.float32
    assert item["labels"].shape == (4, 8, 8) and item["labels"].dtype == torch.int64
    assert set(item["labels"].unique().tolist()) <= {0, 1, 2, 7}


def test_same_seed_same_patches_and_epochs_differ(make_dataset):
    root = make_dataset(n=2).root
    first, second = (PatchDataset(root, (4, 8, 8), transform=PIPELINE, samples_per_epoch=6, seed=4) for _ in range(2))
    for i in range(6):
        a, b = first[i], second[i]
        assert torch.equal(a["image"], b["image"]) and torch.equal(a["labels"], b["labels"])
    before = first[0]["image"].clone()
    first.set_epoch(1)
    assert not torch.equal(first[0]["image"], before)
    assert not torch.equal(second[0]["image"], second[1]["image"])


def test_workers_give_the_same_batches_as_the_main_process(make_dataset):
    patches = PatchDataset(make_dataset(n=2).root, (4, 8, 8), transform=PIPELINE, samples_per_epoch=8, seed=2)
    serial = list(torch.utils.data.DataLoader(patches, batch_size=4))
    parallel = list(torch.utils.data.DataLoader(patches, batch_size=4, num_workers=2))
    for a, b in zip(serial, parallel, strict=True):
        assert torch.equal(a["image"], b["image"]) and torch.equal(a["labels"], b["labels"])


def test_foreground_patches_and_padding_of_small_volumes():
    labels = boxes_labels((4, 16, 20))
    volume = Sample(labels, np.where(labels > 0, 0.8, 0.1).astype(np.float32), SPACING)
    centred = PatchDataset([volume], (2, 4, 4), foreground_fraction=1.0, samples_per_epoch=30)
    assert all(centred[i]["labels"].any() for i in range(30))
    padded = PatchDataset([volume], (6, 16, 24), samples_per_epoch=2, percentiles=None)
    item = padded[0]
    assert item["image"].shape == (1, 6, 16, 24)
    assert torch.all(item["labels"][4:] == 0) and torch.all(item["image"][0, 4:] == 0.1)


def test_local_std_is_computed_once_per_whole_volume(make_dataset):
    patches = PatchDataset(make_dataset(n=1).root, (4, 8, 8), transform=PIPELINE)
    volume = patches.items[0]
    np.testing.assert_array_equal(volume.local_std, local_std(volume.image, 3))
    assert PatchDataset(make_dataset(n=1, name="other").root, (4, 8, 8)).items[0].local_std is None


def test_targets_are_added_and_the_curriculum_follows_the_epoch(make_dataset):
    curriculum = Diversify(epochs_to_full=4)
    patches = PatchDataset(make_dataset(n=1).root, (4, 8, 8), transform=curriculum,
                           targets=lambda labels, spacing: {"foreground": (labels > 0).astype(np.float32)})
    item = patches[0]
    assert torch.equal(item["foreground"], (item["labels"] > 0).float())
    patches.set_epoch(2)
    assert curriculum.epoch == 2


def test_bad_pipeline_inputs(make_dataset, tmp_path):
    root = make_dataset(n=1).root
    with pytest.raises(InputError, match="patch_size must be three voxel counts"):
        PatchDataset(root, (4, 8))
    with pytest.raises(InputError, match="foreground_fraction must lie in"):
        PatchDataset(root, (4, 8, 8), foreground_fraction=2)
    with pytest.raises(InputError, match="transform must be a cellsynth.augment transform"):
        PatchDataset(root, (4, 8, 8), transform=lambda x: x)
    masks_only = build_dataset(tmp_path / "masks", ["m"], lambda i, rng: Sample(boxes_labels(), spacing=SPACING),
                               config={}, seed=0, output=OutputConfig(), progress=False)
    with pytest.raises(DatasetError, match="holds masks only"):
        PatchDataset(masks_only.root, (4, 8, 8))
    with pytest.raises(InputError, match="needs its instance labels"):
        PatchDataset([Sample(image=np.zeros((4, 8, 8)), spacing=SPACING)], (4, 8, 8))


def test_volume_weights_set_the_share_of_patches_drawn_from_each():
    labels = np.zeros((4, 16, 16), np.uint16)
    labels[1:3, 4:12, 4:12] = 1
    volumes = [Sample(labels, np.full(labels.shape, level, np.float32), SPACING) for level in (0.2, 0.8)]
    patches = PatchDataset(volumes, (4, 8, 8), samples_per_epoch=2000, percentiles=None, weights=[3, 1], seed=0)
    first = np.mean([patches.patch(i).image.mean() < 0.5 for i in range(len(patches))])
    assert first == pytest.approx(0.75, abs=0.03)
    with pytest.raises(InputError, match="weights must be 2 finite numbers >= 0"):
        PatchDataset(volumes, (4, 8, 8), weights=[1, -1])
