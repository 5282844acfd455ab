"""One annotated volume as it moves through cellsynth: simulate → render → augment → write.

The mask simulators return a :class:`Sample` with labels (and organism foreground, membranes), a
renderer returns the same sample with its image filled in, the augmentations transform it, and the
dataset writer writes it. Its voxel spacing travels with it, so no step asks for it again.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Sequence

import numpy as np

from cellsynth.checks import Spacing, as_volume, check_image, check_labels, check_spacing
from cellsynth.errors import InputError

#: The volumes a sample may carry besides its labels, each of the labels' shape.
VOLUMES = ("labels", "image", "foreground", "membranes", "semantic", "local_std")


@dataclasses.dataclass
class Sample:
    """An instance-label volume with its voxel spacing and, as they become known, its image and extras.

    Construction validates: ``image`` becomes a ZYX uint8/uint16/float32 volume with finite values,
    ``labels`` a uint16/uint32 ZYX volume, ``spacing`` three positive µm, and every volume present
    must have one shape. Each refusal is one line naming the problem.

    Attributes
    ----------
    labels : ndarray of uint16 or uint32, or None
        ZYX instance ids, 0 = background (nuclei or cells); None for an image-only sample.
    image : ndarray or None
        ZYX intensities: float32 in [0, 1] from the renderers, uint16 ADU in camera units, or a real
        image; None until rendered.
    spacing : tuple of 3 float or None
        Voxel size ``(z, y, x)`` in µm; None only where nothing downstream needs a length.
    foreground : ndarray of bool or None
        The organism (where cells may be); None means the whole volume.
    membranes : ndarray of bool or None
        Membrane voxels (membrane simulations).
    semantic : ndarray or None
        Three-class map (background, interior, boundary); the writer derives it from the labels
        when it is None.
    local_std : ndarray of float32 or None
        ``σ_x`` cached for :class:`cellsynth.augment.Diversify`; geometric transforms move it with
        the image so it is computed once per volume.
    params : dict
        JSON-able parameters of what made the sample (the simulator's counts, the generator, the
        source); the dataset manifest records them.
    name : str
        What reports call it: a dataset sample's name, an image file's name; "" when it has none.

    Examples
    --------
    >>> labels = np.zeros((4, 8, 8), np.uint16); labels[1:3, 2:6, 2:6] = 1
    >>> sample = Sample(labels, spacing=(0.5, 0.2, 0.2))
    >>> sample.shape, sample.spacing
    ((4, 8, 8), (0.5, 0.2, 0.2))
    >>> sample.replace(image=np.zeros((4, 8, 8))).image.dtype
    dtype('float32')
    >>> Sample(labels, image=np.zeros((4, 8, 9)))
    Traceback (most recent call last):
    ...
    cellsynth.errors.InputError: labels shape (4, 8, 8) and image shape (4, 8, 9) differ; they must be equal
    """

    labels: np.ndarray | None = None
    image: np.ndarray | None = None
    spacing: Spacing | None = None
    foreground: np.ndarray | None = None
    membranes: np.ndarray | None = None
    semantic: np.ndarray | None = None
    local_std: np.ndarray | None = None
    params: dict = dataclasses.field(default_factory=dict)
    name: str = ""

    def __post_init__(self) -> None:
        self._validate([field.name for field in dataclasses.fields(self)])

    def _validate(self, names: Sequence[str]) -> None:
        """Check (and coerce) the fields ``names``; then, if a volume is among them, that the shapes agree."""
        if "spacing" in names and self.spacing is not None:
            self.spacing = check_spacing(self.spacing)
        if "labels" in names and self.labels is not None:
            self.labels = check_labels(self.labels)
        if "image" in names and self.image is not None:
            self.image = check_image(self.image)
        for name in ("foreground", "membranes"):
            if name in names and getattr(self, name) is not None:
                setattr(self, name, as_volume(getattr(self, name), name).astype(bool, copy=False))
        if "semantic" in names and self.semantic is not None:
            self.semantic = as_volume(self.semantic, "semantic")
        if "local_std" in names and self.local_std is not None:
            self.local_std = as_volume(self.local_std, "local_std").astype(np.float32, copy=False)
        if not set(names) & set(VOLUMES):
            return
        present = self.volumes()
        if not present:
            raise InputError("a sample needs labels or an image (ZYX arrays); got neither")
        (first, shape), *rest = ((name, volume.shape) for name, volume in present.items())
        for name, other in rest:
            if other != shape:
                raise InputError(f"{first} shape {shape} and {name} shape {other} differ; "
                                 "they must be equal")

    @property
    def shape(self) -> tuple[int, int, int]:
        """ZYX shape in voxels, shared by every volume of the sample."""
        return next(iter(self.volumes().values())).shape

    def volumes(self) -> dict[str, np.ndarray]:
        """The sample's volumes that are present, by name (in :data:`VOLUMES` order)."""
        return {name: getattr(self, name) for name in VOLUMES if getattr(self, name) is not None}

    def replace(self, **changes) -> Sample:
        """A copy with some fields replaced; only those are validated again (a Sample is trusted after
        construction), and the arrays are shared, not copied.

        Examples
        --------
        >>> sample = Sample(np.ones((2, 4, 4), np.uint16), spacing=(1.0, 0.5, 0.5))
        >>> sample.replace(image=np.zeros((2, 4, 4))).image.dtype
        dtype('float32')
        >>> sample.replace(image=np.zeros((2, 4, 5)))
        Traceback (most recent call last):
        ...
        cellsynth.errors.InputError: labels shape (2, 4, 4) and image shape (2, 4, 5) differ; they must be equal
        """
        unknown = set(changes) - {field.name for field in dataclasses.fields(self)}
        if unknown:
            raise TypeError(f"Sample has no field(s) {', '.join(sorted(unknown))}")
        copied = copy.copy(self)
        for name, value in changes.items():
            setattr(copied, name, value)
        copied._validate(list(changes))
        return copied

    def voxel_spacing(self) -> Spacing:
        """The spacing (µm); one line naming the problem when the sample has none."""
        if self.spacing is None:
            raise InputError("the sample's voxel spacing is unknown: give spacing (z, y, x) in µm")
        return self.spacing

    def whole_foreground(self) -> np.ndarray:
        """The organism foreground, or the whole volume when the sample has none."""
        return np.ones(self.shape, bool) if self.foreground is None else self.foreground


def as_sample(item: Sample | np.ndarray, spacing: Sequence[float] | None = None) -> Sample:
    """``item`` itself if it is a :class:`Sample`, else a sample holding ``item`` as its image.

    Examples
    --------
    >>> as_sample(np.zeros((2, 4, 4))).image.shape
    (2, 4, 4)
    """
    return item if isinstance(item, Sample) else Sample(image=item, spacing=spacing)
