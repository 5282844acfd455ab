"""Volume I/O: exact round trips, the metadata other tools read, atomic writes."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr
from hypothesis import given, settings
from hypothesis import strategies as st

from cellsynth.checks import check_labels
from cellsynth.errors import FileFormatError, InputError
from cellsynth.io import atomic_path, read_volume, remove_partials, write_ome_zarr, write_volume

DTYPES = [np.uint8, np.uint16, np.uint32, np.float32]
SUFFIXES = [".tif", ".ome.tif", ".ome.zarr"]


def random_volume(dtype, shape=(3, 7, 9), seed=0):
    rng = np.random.default_rng(seed)
    if np.dtype(dtype).kind == "f":
        return rng.random(shape, dtype=np.float32)
    return rng.integers(0, np.iinfo(dtype).max, shape, dtype=dtype, endpoint=True)


@pytest.mark.parametrize("suffix", SUFFIXES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_round_trip_keeps_data_dtype_and_spacing(tmp_path, dtype, suffix):
    data = random_volume(dtype)
    spacing = (2.0, 0.1234567, 0.3333333)
    path = write_volume(tmp_path / f"vol{suffix}", data, spacing)
    back, back_spacing = read_volume(path)
    assert back.dtype == data.dtype
    np.testing.assert_array_equal(back, data)
    assert back_spacing == spacing


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_2d_image_is_a_volume_with_one_plane(tmp_path, suffix):
    image = random_volume(np.uint16, shape=(7, 9))
    back, spacing = read_volume(write_volume(tmp_path / f"plane{suffix}", image, (1.0, 0.5, 0.25)))
    assert back.shape == (1, 7, 9)
    np.testing.assert_array_equal(back[0], image)
    assert spacing == (1.0, 0.5, 0.25)


@settings(max_examples=40, deadline=None)
@given(spacing=st.tuples(*[st.floats(0.01, 50, allow_nan=False) for _ in range(3)]))
def test_any_spacing_survives_imagej_tiff(tmp_path_factory, spacing):
    path = tmp_path_factory.mktemp("h") / "v.tif"
    write_volume(path, np.zeros((2, 3, 4), np.uint16), spacing)
    assert read_volume(path)[1] == pytest.approx(spacing, rel=1e-9)


def test_imagej_metadata_is_what_fiji_reads(tmp_path):
    path = write_volume(tmp_path / "v.tif", random_volume(np.float32), (0.29, 0.26, 0.13))
    with tifffile.TiffFile(path) as tif:
        assert tif.is_imagej and not tif.is_ome
        meta = tif.imagej_metadata
        assert meta["unit"] == "um" and meta["spacing"] == 0.29
        assert meta["images"] == 3 and meta.get("slices") == 3
        assert tif.series[0].axes == "ZYX"
        xres, yres = (tif.pages[0].tags[t].value for t in ("XResolution", "YResolution"))
        assert xres[1] / xres[0] == pytest.approx(0.13) and yres[1] / yres[0] == pytest.approx(0.26)


def test_uint32_labels_go_to_ome_tiff_with_physical_sizes(tmp_path):
    labels = np.zeros((2, 4, 4), np.uint32)  # X = 4 must not be taken for RGBA samples
    labels[0, 0, 0] = 70_000
    path = write_volume(tmp_path / "labels.tif", labels, (1.5, 0.5, 0.5))
    with tifffile.TiffFile(path) as tif:
        assert tif.is_ome and not tif.is_imagej
        pixels = tifffile.xml2dict(tif.ome_metadata)["OME"]["Image"]["Pixels"]
        assert (pixels["PhysicalSizeZ"], pixels["PhysicalSizeX"]) == (1.5, 0.5)
        assert pixels["PhysicalSizeXUnit"] == "µm"
    back, spacing = read_volume(path)
    assert back.shape == (2, 4, 4) and back.max() == 70_000 and spacing == (1.5, 0.5, 0.5)


@pytest.mark.parametrize("suffix", [".tif", ".ome.tif"])
@pytest.mark.parametrize("x_size", [3, 4])
def test_last_axis_of_3_or_4_is_not_rgb(tmp_path, suffix, x_size):
    data = random_volume(np.uint16, shape=(2, 5, x_size))
    back, _ = read_volume(write_volume(tmp_path / f"v{suffix}", data, (1, 1, 1)))
    np.testing.assert_array_equal(back, data)


def test_rgb_tiff_is_refused(tmp_path):
    tifffile.imwrite(tmp_path / "rgb.tif", np.zeros((5, 6, 3), np.uint8), photometric="rgb")
    with pytest.raises(FileFormatError, match="single-channel"):
        read_volume(tmp_path / "rgb.tif", spacing=(1, 1, 1))


def test_zlib_tiff_round_trip(tmp_path):
    data = random_volume(np.uint16)
    path = write_volume(tmp_path / "z.tif", data, (1, 1, 1), compression="zlib")
    with tifffile.TiffFile(path) as tif:
        assert tif.pages[0].compression == tifffile.COMPRESSION.ADOBE_DEFLATE
    np.testing.assert_array_equal(read_volume(path)[0], data)


def test_ome_zarr_layout_image_at_0_labels_under_labels(tmp_path):
    image = random_volume(np.float32)
    cells = check_labels(random_volume(np.uint16) % 5)
    path = write_ome_zarr(tmp_path / "s.ome.zarr", image, (0.29, 0.26, 0.26), {"cells": cells})
    root = zarr.open_group(path, mode="r")
    multiscale = root.attrs["multiscales"][0]
    assert multiscale["version"] == "0.4"
    assert [a["name"] for a in multiscale["axes"]] == ["z", "y", "x"]
    assert {a["unit"] for a in multiscale["axes"]} == {"micrometer"}
    assert multiscale["datasets"] == [
        {"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [0.29, 0.26, 0.26]}]}
    ]
    assert root["labels"].attrs["labels"] == ["cells"]
    assert "image-label" in root["labels/cells"].attrs
    np.testing.assert_array_equal(root["0"][...], image)
    np.testing.assert_array_equal(read_volume(path / "labels" / "cells")[0], cells)
    labels_back, spacing = read_volume(path / "labels" / "cells")
    np.testing.assert_array_equal(labels_back, cells)
    assert spacing == (0.29, 0.26, 0.26)


def test_ome_zarr_is_readable_by_ome_zarr_py(tmp_path):
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Label, Multiscales, Reader

    image = random_volume(np.uint16)
    path = write_ome_zarr(tmp_path / "s.ome.zarr", image, (0.5, 0.2, 0.2), {"cells": image % 3})
    nodes = list(Reader(parse_url(str(path)))())
    image_node = next(n for n in nodes if n.specs and isinstance(n.specs[0], Multiscales))
    np.testing.assert_array_equal(np.asarray(image_node.data[0]), image)
    assert image_node.metadata["coordinateTransformations"][0][0]["scale"] == [0.5, 0.2, 0.2]
    assert any(isinstance(spec, Label) for n in nodes for spec in n.specs)


def test_ome_zarr_metadata_validates_against_ngff_models(tmp_path):
    from ome_zarr_models.v04.image import ImageAttrs
    from ome_zarr_models.v04.image_label import ImageLabelAttrs

    path = write_ome_zarr(tmp_path / "s.ome.zarr", random_volume(np.float32), (1, 1, 1),
                          {"cells": np.ones((3, 7, 9), np.uint16)})
    ImageAttrs.model_validate(json.loads((path / ".zattrs").read_text()))
    ImageLabelAttrs.model_validate(json.loads((path / "labels/cells/.zattrs").read_text()))


@pytest.mark.parametrize(("unit", "expected"), [("nanometer", (290.0, 260.0, 260.0)), ("pixel", None)])
def test_ome_zarr_units_are_converted_or_refused(tmp_path, unit, expected):
    path = write_ome_zarr(tmp_path / "s.ome.zarr", np.zeros((2, 3, 4), np.uint8), (290000, 260000, 260000))
    attrs = json.loads((path / ".zattrs").read_text())
    for axis in attrs["multiscales"][0]["axes"]:
        axis["unit"] = unit
    (path / ".zattrs").write_text(json.dumps(attrs))
    if expected is None:
        with pytest.raises(FileFormatError, match="carries no voxel spacing"):
            read_volume(path)
    else:
        assert read_volume(path)[1] == pytest.approx(expected)


def test_npy_spacing_from_argument_or_sidecar(tmp_path):
    data = random_volume(np.uint16)
    np.save(tmp_path / "a.npy", data)
    with pytest.raises(FileFormatError, match="carries no voxel spacing"):
        read_volume(tmp_path / "a.npy")
    assert read_volume(tmp_path / "a.npy", spacing=(1, 2, 3))[1] == (1.0, 2.0, 3.0)
    (tmp_path / "a.json").write_text(json.dumps({"spacing": [0.5, 0.1, 0.1]}))
    back, spacing = read_volume(tmp_path / "a.npy")
    np.testing.assert_array_equal(back, data)
    assert spacing == (0.5, 0.1, 0.1)


def test_npy_never_unpickles(tmp_path):
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(FileFormatError, match="not a readable .npy"):
        read_volume(tmp_path / "obj.npy", spacing=(1, 1, 1))


def test_multichannel_tiff_is_refused(tmp_path):
    tifffile.imwrite(tmp_path / "c.tif", np.zeros((3, 2, 5, 6), np.uint16), imagej=True,
                     metadata={"axes": "ZCYX"})
    with pytest.raises(FileFormatError, match="single-channel"):
        read_volume(tmp_path / "c.tif", spacing=(1, 1, 1))


def test_plain_tiff_without_spacing_needs_one(tmp_path):
    tifffile.imwrite(tmp_path / "plain.tif", np.zeros((2, 3, 4), np.uint8), photometric="minisblack")
    with pytest.raises(FileFormatError, match="pass spacing"):
        read_volume(tmp_path / "plain.tif")
    assert read_volume(tmp_path / "plain.tif", spacing=(3, 2, 1))[0].shape == (2, 3, 4)


@pytest.mark.parametrize(
    ("data", "spacing", "error", "match"),
    [
        (np.zeros((2, 2, 2, 2), np.uint8), (1, 1, 1), InputError, "2D .* or 3D"),
        (np.zeros((2, 2, 2), np.float64), (1, 1, 1), InputError, "accepted: uint8, uint16, uint32, float32"),
        (np.zeros((2, 2, 2), np.uint8), (1, -1, 1), InputError, "spacing"),
        (np.zeros((2, 2, 2), np.uint8), (1, 1), InputError, "spacing"),
    ],
)
def test_write_refuses_bad_input_and_writes_nothing(tmp_path, data, spacing, error, match):
    with pytest.raises(error, match=match):
        write_volume(tmp_path / "x.tif", data, spacing)
    assert list(tmp_path.iterdir()) == []


def test_unsupported_suffix_is_named(tmp_path):
    with pytest.raises(FileFormatError, match=r"accepted: \.tif"):
        write_volume(tmp_path / "x.png", np.zeros((1, 2, 2), np.uint8), (1, 1, 1))


def test_atomic_path_cleans_up_on_error_and_keeps_old_file(tmp_path):
    target = tmp_path / "f.tif"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("interrupted")
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.tif"]


def test_ome_zarr_rewrite_replaces_the_store(tmp_path):
    path = tmp_path / "s.ome.zarr"
    write_ome_zarr(path, np.zeros((1, 4, 4), np.uint8), (1, 1, 1), {"old": np.zeros((1, 4, 4), np.uint8)})
    write_ome_zarr(path, np.ones((1, 4, 4), np.uint8), (1, 1, 1))
    assert read_volume(path)[0].max() == 1
    assert not (path / "labels").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.ome.zarr"]


def test_remove_partials_sweeps_leftovers(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / ".a.tif.1234abcd.partial").write_bytes(b"x")
    (tmp_path / ".b.ome.zarr.5678.partial").mkdir()
    (tmp_path / "images" / "a.tif").write_bytes(b"keep")
    assert remove_partials(tmp_path) == 2
    assert [p.name for p in tmp_path.rglob("*")] == ["images", "a.tif"]


def test_atomic_path_sweeps_what_a_killed_writer_of_the_same_target_left(tmp_path):
    (tmp_path / ".export.0badc0de.partial").mkdir()  # SIGKILL during an export of 'export'
    (tmp_path / ".export.0badc0de.partial" / "x.tif").write_bytes(b"x")
    (tmp_path / ".other.1234.partial").write_bytes(b"y")  # another target's: not ours to remove
    with atomic_path(tmp_path / "export") as tmp:
        tmp.mkdir()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other.1234.partial", "export"]


def test_check_output_refuses_links_to_nothing_missing_parents_and_wrong_kinds(tmp_path):
    from cellsynth.checks import check_output

    (tmp_path / "link").symlink_to(tmp_path / "gone")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "a").write_bytes(b"")
    (tmp_path / "file").write_bytes(b"")
    cases = [(tmp_path / "link", True, "it is a link to"), (tmp_path / "no" / "x", False, "does not exist"),
             (tmp_path / "file", True, "it is a file, not a folder"), (tmp_path / "full", True, "not empty; do X"),
             (tmp_path / "full", False, "it is an existing folder")]
    for path, folder, message in cases:
        with pytest.raises(InputError, match=message):
            check_output(path, "thing", folder=folder, if_not_empty="do X")
    assert check_output(tmp_path / "new", "thing", folder=True) == tmp_path / "new"
    with pytest.raises(InputError, match="the file exists; pass --overwrite"):  # a user's file is never replaced
        check_output(tmp_path / "file", "thing", folder=False)
    assert check_output(tmp_path / "file", "thing", folder=False, overwrite=True) == tmp_path / "file"
    with pytest.raises(InputError, match="it is also an input"):  # not even with overwrite
        check_output(tmp_path / "file", "thing", folder=False, overwrite=True, inputs=[tmp_path / "file"])


def test_ome_zarr_passes_the_strict_ngff_requirements_and_has_a_pyramid_when_wide(tmp_path):
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Multiscales, Reader
    from ome_zarr_models.v04.image import Image
    from ome_zarr_models.v04.image_label import ImageLabel

    rng = np.random.default_rng(0)
    image = rng.integers(100, 4000, (3, 600, 300), dtype=np.uint16)
    cells = np.zeros(image.shape, np.uint16)
    cells[:, 10:200, 10:100], cells[:, 300:590, 150:290] = 4, 9
    path = write_ome_zarr(tmp_path / "wide.ome.zarr", image, (1.0, 0.25, 0.5), {"cells": cells})
    root = zarr.open_group(path, mode="r")
    Image.from_zarr(root)  # metadata and arrays agree (paths, dimensions)
    ImageLabel.from_zarr(root["labels/cells"])
    multiscale = root.attrs["multiscales"][0]
    assert {"version", "metadata", "type", "name"} <= set(multiscale)  # strict_image.schema
    label_attrs = root["labels/cells"].attrs["image-label"]
    assert {"version", "colors", "properties"} <= set(label_attrs)  # strict_label.schema (+ properties)
    assert [c["label-value"] for c in label_attrs["colors"]] == [0, 4, 9]
    assert label_attrs["colors"][0]["rgba"] == [0, 0, 0, 0]
    assert [p["voxels"] for p in label_attrs["properties"]][1:] == [3 * 190 * 90, 3 * 290 * 140]
    window = root.attrs["omero"]["channels"][0]["window"]
    assert 100 <= window["start"] < window["end"] <= 4000 and window["max"] == 65535
    # 600 wide > one 256 chunk: 600 → 300 → 150, y and x halved, z kept
    assert [root[str(i)].shape for i in range(3)] == [(3, 600, 300), (3, 300, 150), (3, 150, 75)]
    assert root["labels/cells/2"].shape == (3, 150, 75)
    level1 = [t for t in multiscale["datasets"][1]["coordinateTransformations"]]
    assert level1 == [{"type": "scale", "scale": [1.0, 0.5, 1.0]},
                      {"type": "translation", "translation": [0.0, 0.125, 0.25]}]
    block = image[:, :2, :2].astype(float).mean(axis=(1, 2))
    np.testing.assert_array_equal(root["1"][:, 0, 0], np.round(block).astype(np.uint16))
    assert set(np.unique(root["labels/cells/1"][...]).tolist()) == {0, 4, 9}  # ids never mixed
    np.testing.assert_array_equal(read_volume(path)[0], image)  # readers take the full resolution
    nodes = list(Reader(parse_url(str(path)))())
    image_node = next(n for n in nodes if n.specs and isinstance(n.specs[0], Multiscales))
    assert [tuple(level.shape) for level in image_node.data] == [(3, 600, 300), (3, 300, 150), (3, 150, 75)]


def test_check_output_refuses_a_parent_that_cannot_be_written(tmp_path, monkeypatch):
    from cellsynth.checks import check_output

    real_access = os.access  # root ignores chmod, so the file system's answer is faked
    monkeypatch.setattr(os, "access", lambda path, mode: False if Path(path) == tmp_path else real_access(path, mode))
    with pytest.raises(InputError, match="is not writable \\(read-only or no permission\\)"):
        check_output(tmp_path / "out", "dataset", folder=True)


def test_signed_integer_images_keep_their_values():
    from cellsynth.checks import check_image

    camera = np.array([[[0, 300, 32000]]], np.int16)
    kept = check_image(camera)
    assert kept.dtype == np.uint16 and kept.tolist() == camera.tolist()
    signed = np.array([[[-5, 300, 70000]]], np.int32)  # beyond uint16 either way: float32, values kept
    assert check_image(signed).dtype == np.float32 and check_image(signed).tolist() == [[[-5.0, 300.0, 70000.0]]]
