"""Image measurements the calibration is built from, with no config: the camera (how the images store
its counts, noise correlation, photon transfer, the dark level under a textured background), texture
spectra, robust spreads, and the coordinate search the PSF and membrane fits share.

Examples
--------
>>> round(log_spread(np.exp([-0.1, 0.0, 0.1, 0.05, -0.05, 3.0])), 3)
0.111
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
from scipy import ndimage as ndi
from skimage.filters import threshold_otsu

from cellsynth.checks import Spacing
from cellsynth.errors import InputError

#: Frequency bins (cycles/µm) of the texture spectrum.
N_SPECTRUM_BINS = 12
#: Grids of the PSF fit (Gaussian σ, µm) and the haze scales tried (µm).
LATERAL_SIGMAS = np.round(np.arange(0.0, 1.21, 0.05), 3)
AXIAL_SIGMAS = np.round(np.arange(0.0, 3.01, 0.1), 3)
HAZE_SCALES_UM = (1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0)


def noise_correlation(image: np.ndarray, labels: np.ndarray, spacing: Sequence[float]) -> dict:
    """Lag-1 correlation of the noise along y and x, far (> 2 µm) from objects, and the Gaussian σ (µm) it implies.

    Structure is removed by a fourth difference across the axis measured (the second difference
    ``x − (left + right) / 2`` applied twice along the other lateral axis): smooth background
    texture all but vanishes, while noise whose correlation is separable keeps its lag-1
    correlation along the measured axis. Gaussian-blurred white noise of σ voxels has lag-1
    correlation ``exp(−1 / (4σ²))``.

    Parameters
    ----------
    image : ndarray
        Raw image (camera units).
    labels : ndarray
        Objects to stay away from.
    spacing : 3 floats
        Voxel size (z, y, x) in µm.

    Returns
    -------
    dict
        ``rho`` (lag-1 correlation along y and x) and ``sigma_um``.

    Examples
    --------
    >>> image = np.random.default_rng(0).normal(100, 5, (8, 64, 64)).astype(np.float32)
    >>> correlation = noise_correlation(image, np.zeros(image.shape, np.uint16), (1.0, 0.25, 0.25))
    >>> correlation['rho'], correlation['sigma_um']
    ([0.0, 0.0], 0.0)
    """
    smooth = ndi.gaussian_filter(image, [1.0 / s for s in spacing])
    bright = (labels > 0) | (smooth > threshold_otsu(smooth))  # objects the labels may have missed, too
    far = ndi.distance_transform_edt(~bright, sampling=spacing) > 2.0
    correlations = []
    for axis, across in ((1, 2), (2, 1)):
        residual = image
        for _ in range(2):
            residual = residual - 0.5 * (np.roll(residual, 1, across) + np.roll(residual, -1, across))
        usable = ndi.minimum_filter1d(far, 5, axis=across, mode="constant", cval=0)  # no wrapped neighbours
        usable &= np.roll(usable, -1, axis)
        usable[(slice(None),) * axis + (-1,)] = False
        a, b = residual[usable], np.roll(residual, -1, axis)[usable]
        usable_pair = a.size > 100 and a.std() > 0 and b.std() > 0
        correlations.append(float(np.corrcoef(a, b)[0, 1]) if usable_pair else 0.0)
    rho = float(np.clip(np.mean(correlations), 0.0, 0.5))  # beyond, it is structure, not detector noise
    sigma_voxels = 1 / (2 * math.sqrt(math.log(1 / rho))) if rho > 0.02 else 0.0
    return {"rho": correlations, "sigma_um": sigma_voxels * float(np.mean(spacing[1:]))}


@dataclass(frozen=True)
class CameraFit:
    """What photon transfer measured (:func:`photon_transfer`): the noise variance of a camera pixel is
    ``intercept + gain · mean`` (ADU², the mean in ADU).

    Attributes
    ----------
    gain : float
        ADU per electron (the variance line's slope).
    offset : float
        The dark level, ADU.
    read_noise : float
        Electrons RMS at ``offset`` (from the variance line).
    intercept : float
        ADU², the variance line's value at mean 0.
    fine_texture : float
        Relative RMS of the specimen's fine texture (the square term of the fit; 0 when it was not fitted).
    points : list of [mean, variance]
        The binned flat-region measurements the line was fitted to.
    offset_how : str
        How ``offset`` was found.

    Examples
    --------
    >>> camera = CameraFit(gain=2.0, offset=100.0, read_noise=1.118, intercept=-195.0, fine_texture=0.0, points=[])
    >>> lowered = camera.with_offset(98.0, "the level without light")
    >>> round(lowered.read_noise, 3), lowered.offset_how
    (0.5, 'the level without light')
    """

    gain: float
    offset: float
    read_noise: float
    intercept: float
    fine_texture: float
    points: list
    offset_how: str = "dark level: 0.5th percentile of the 1 µm-smoothed image"

    def with_offset(self, offset: float, how: str) -> CameraFit:
        """This camera with its dark level at ``offset`` (ADU; found ``how``) and the read noise that the same
        variance line gives there, so every level keeps its measured noise."""
        read_noise = math.sqrt(max(self.intercept + self.gain * offset, 0.0)) / self.gain
        return replace(self, offset=float(offset), read_noise=read_noise, offset_how=how)


def photon_transfer(image: np.ndarray, spacing: Sequence[float], saturation: float | None = None,
                    rho: Sequence[float] = (0.0, 0.0), structure: np.ndarray | None = None) -> dict:
    """Gain, offset and read noise from the noise variance against the mean in flat regions (module doc).

    ``structure`` (optional, the image's noise-free model) is then each voxel's mean, and is
    subtracted before the high-pass residual: thin bright structures (membranes) leave too few flat
    voxels at high intensities.

    Parameters
    ----------
    image : ndarray
        Raw image (camera units).
    spacing : 3 floats
        Voxel size (z, y, x) in µm.
    saturation : float, optional
        Voxels at or above it are left out.
    rho : 2 floats
        Lag-1 noise correlation along y and x (:func:`noise_correlation`).
    structure : ndarray, optional
        The image's noise-free model.

    Returns
    -------
    CameraFit

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> signal = np.repeat(np.linspace(20, 400, 16), 32 * 64).reshape(16, 32, 64)
    >>> image = (100 + 2.0 * rng.poisson(signal)).astype(np.float32)
    >>> round(photon_transfer(image, (1.0, 0.25, 0.25)).gain, 1)
    2.0
    """
    image = image.astype(np.float64)
    residual_sq = np.zeros_like(image)
    noise = image if structure is None else image - structure
    for axis, r in zip((1, 2), rho, strict=True):
        neighbours = 0.5 * (np.roll(noise, 1, axis) + np.roll(noise, -1, axis))
        # residual variance over the noise variance: 1.5 for white noise, less when neighbours correlate
        residual_sq += (noise - neighbours) ** 2 / (1.5 - 2 * r + 0.5 * r**4)
    residual_sq /= 2
    if structure is None:
        mean = ndi.uniform_filter(image, (3, 5, 5))
        smooth = ndi.gaussian_filter(image, [0.5 / s for s in spacing])
        slope = np.sqrt(sum(g**2 for g in np.gradient(smooth, *spacing)))
    else:  # the model is each voxel's expected value: every voxel counts
        mean, slope = structure, np.zeros_like(image)
    valid = np.ones(image.shape, bool)
    valid[:, [0, -1], :] = valid[:, :, [0, -1]] = False
    if saturation is not None:
        valid &= ndi.maximum_filter(image, 3) < saturation
    means, noise, flat = mean[valid], residual_sq[valid], slope[valid]
    edges = np.unique(np.quantile(means, np.linspace(0, 1, 25)))
    points = []
    for low, high in zip(edges[:-1], edges[1:], strict=True):
        inside = (means >= low) & (means < high)
        if inside.sum() < 200:
            continue
        flattest = flat[inside] <= np.quantile(flat[inside], 0.3)  # all of them when flat is 0
        points.append((float(means[inside][flattest].mean()), float(noise[inside][flattest].mean()),
                       int(flattest.sum())))
    if len(points) < 3:
        raise InputError("too few flat regions to measure the camera's noise; the image needs some extent "
                         "of background and of object interiors")
    m, v, n = (np.array(c) for c in zip(*points, strict=True))
    offset = float(np.percentile(ndi.gaussian_filter(image, [1.0 / s for s in spacing]), 0.5))
    # var = read² + gain·signal + (k·signal)²: fine texture of the specimen (or a pixel-response pattern)
    # grows with the square of the signal; fitted with it, the slope is the shot noise's alone
    square, gain, constant = np.polyfit(m - offset, v, 2, w=np.sqrt(n))
    if not (square > 0 and gain > 0):
        square, (gain, constant) = 0.0, np.polyfit(m - offset, v, 1, w=np.sqrt(n))
    if not gain > 0:
        raise InputError("the noise does not grow with the intensity (photon transfer slope <= 0); "
                         "is this a raw, unprocessed fluorescence image?")
    intercept = constant - gain * offset
    read_noise = math.sqrt(max(constant, 0.0)) / gain
    return CameraFit(float(gain), offset, float(read_noise), float(intercept), math.sqrt(square),
                     [[round(a, 3), round(b, 3)] for a, b in zip(m, v, strict=True)])


def log_spread(values) -> float:
    """Robust standard deviation (1.4826 × the median absolute deviation) of ``log(values)``: the spread
    of a log-normal, unmoved by a few fragments or mitoses among the objects.

    Examples
    --------
    >>> round(log_spread(np.exp([-0.1, 0.0, 0.1, 0.05, -0.05, 3.0])), 3)
    0.111
    """
    logs = np.log(np.asarray(values, np.float64))
    return float(1.4826 * np.median(np.abs(logs - np.median(logs))))


#: The camera range floating-point images that are not whole camera counts are measured in (16 bits).
FLOAT_FULL_SCALE = 65535.0


@dataclass(frozen=True)
class Storage:
    """How calibration images store the camera's counts, and how generated images store them back.

    The calibration measures in camera units (ADU): the stored values times ``scale``. Integer
    images and floating-point images of whole counts up to 65535 are camera units already
    (``scale`` 1); other floating-point images (scaled to 0–1, or beyond 16 bits) are stretched so
    that their largest value is 65535, and generated images are divided back (``output_scale``), so
    that what is generated is in the user's units and type.

    Attributes
    ----------
    dtype : str
        The images' storage type.
    top : float
        Their largest stored value.
    scale : float
        Camera units per stored unit.
    bits : int
        The camera's bit depth: its full scale ``2**bits − 1`` ADU is where values saturate.
    output_dtype : {"uint8", "uint16", "float32"}
        The type generated images are written in.
    """

    dtype: str
    top: float
    scale: float
    bits: int
    output_dtype: str

    @property
    def saturation(self) -> float:
        """ADU at which the camera clips."""
        return float(2**self.bits - 1)

    @property
    def output_scale(self) -> float | None:
        """Stored units per ADU of a float32 output (None for integer outputs)."""
        return 1.0 / self.scale if self.output_dtype == "float32" else None

    def to_camera(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        """``images`` in ADU (the same arrays when ``scale`` is 1)."""
        return [image * self.scale if self.scale != 1 else image for image in images]

    def camera_config(self) -> dict:
        """The camera keys that give generated images this storage."""
        return {"bit_depth": self.bits, "output_dtype": self.output_dtype, "output_scale": self.output_scale}

    def describe(self) -> str:
        how = ("whole camera counts" if self.scale == 1 else
               f"not whole counts: measured × {self.scale:.6g} (largest value → {FLOAT_FULL_SCALE:g} ADU), "
               "generated images divided back")
        return f"{self.dtype} data up to {self.top:g} ({how}); generated as {self.output_dtype}"


def camera_storage(images: Sequence[np.ndarray]) -> Storage:
    """How ``images`` store the camera's counts (:class:`Storage`).

    Raises
    ------
    InputError
        If a value is negative (background-subtracted data: the camera model counts from 0).

    Examples
    --------
    >>> camera_storage([np.array([[[0, 300, 4000]]], np.uint16)]).bits
    12
    >>> storage = camera_storage([np.array([[[0.0, 0.25, 0.5]]], np.float32)])
    >>> storage.scale, storage.output_dtype, round(storage.output_scale * 65535, 6)
    (131070.0, 'float32', 0.5)
    """
    dtype = np.result_type(*images)
    top = float(max(i.max() for i in images))
    lowest = float(min(i.min() for i in images))
    if lowest < 0:
        raise InputError(f"the image has negative values (down to {lowest:g}); calibration models a camera's counts "
                         "from 0: give the raw image, not a background-subtracted or normalised one")
    if top <= 0:
        raise InputError("the image is 0 everywhere: there is nothing to measure")
    whole = dtype.kind in "iu" or all(np.array_equal(i, np.round(i)) for i in images)
    if whole and top <= FLOAT_FULL_SCALE and (dtype.kind in "iu" or top > 1):
        bits = 8 if dtype == np.uint8 else int(np.clip(math.ceil(math.log2(top + 1)), 8, 16))
        output = "float32" if dtype.kind == "f" else ("uint8" if bits == 8 and dtype == np.uint8 else "uint16")
        return Storage(dtype.name, top, 1.0, bits, output)
    return Storage(dtype.name, top, FLOAT_FULL_SCALE / top, 16, "float32")


def measure_camera(images: Sequence[np.ndarray], labels: np.ndarray, spacing: Spacing, saturation: float,
                   structure: np.ndarray | None = None) -> tuple[dict, CameraFit]:
    """The camera of the first image (in ADU, values at ``saturation`` excluded): its noise correlation far
    from ``labels`` (:func:`noise_correlation`) and the photon transfer (:func:`photon_transfer`, less
    ``structure``)."""
    image = images[0].astype(np.float64)
    correlation = noise_correlation(image, labels, spacing)
    return correlation, photon_transfer(image, spacing, saturation, correlation["rho"], structure)


def coordinate_search(error, grids: dict, start: dict, rounds: int = 2) -> tuple[float, dict]:
    """The grid point of least ``error(**point)``, one parameter at a time in ``grids``' order, ``rounds`` times.

    Examples
    --------
    >>> coordinate_search(lambda a, b: (a - 2) ** 2 + (b - 1) ** 2, {"a": [0, 1, 2, 3], "b": [0, 1, 2]},
    ...                   {"a": 0, "b": 0})
    (0, {'a': 2, 'b': 1})
    """
    point = dict(start)
    for _ in range(rounds):
        for name, grid in grids.items():
            point[name] = min(grid, key=lambda value, name=name: error(**{**point, name: value}))
    return error(**point), point


def radial_average(power: np.ndarray, spacing: Sequence[float], n_bins: int, *,
                   counts: bool = False) -> tuple[np.ndarray, ...]:
    """Mean of an unshifted ``fftn``-layout array over shells of equal frequency magnitude (cycles/µm).

    The shells span 0 to the coarsest non-flat axis' Nyquist frequency.

    Returns
    -------
    frequency, mean : ndarray
        Shell centres in cycles/µm and the mean of ``power`` in each (0 for an empty shell).
    count : ndarray
        With ``counts=True``: the number of frequencies in each shell.

    Examples
    --------
    >>> centres, mean = radial_average(np.ones((4, 8, 8)), (1.0, 1.0, 1.0), 4)
    >>> centres.tolist(), mean.tolist()
    ([0.0625, 0.1875, 0.3125, 0.4375], [1.0, 1.0, 1.0, 1.0])
    """
    grids = np.meshgrid(*[np.fft.fftfreq(n, d) for n, d in zip(power.shape, spacing, strict=True)], indexing="ij",
                        sparse=True)
    radius = np.sqrt(sum(g**2 for g in grids))
    nyquist = min(0.5 / d for d, n in zip(spacing, power.shape, strict=True) if n > 1)
    edges = np.linspace(0, nyquist, n_bins + 1)
    which = np.digitize(np.broadcast_to(radius, power.shape).ravel(), edges) - 1
    valid = (which >= 0) & (which < n_bins)
    sums = np.bincount(which[valid], power.ravel()[valid], n_bins)
    sizes = np.bincount(which[valid], minlength=n_bins)
    mean = np.divide(sums, sizes, out=np.zeros(n_bins), where=sizes > 0)
    return ((edges[:-1] + edges[1:]) / 2, mean, sizes) if counts else ((edges[:-1] + edges[1:]) / 2, mean)


def texture_spectrum(image: np.ndarray, mask: np.ndarray, spacing: Spacing, expected: np.ndarray, camera: CameraFit,
                     psf: tuple[float, float], labels: np.ndarray | None = None,
                     unit: np.ndarray | float | None = None) -> dict:
    """The texture in ``mask`` before the PSF: amplitude, spectrum knots and per-object spread (module doc).

    The residual ``(image − expected) / unit`` over ``mask`` (``unit`` default: the signal
    ``expected − offset``, a relative texture; 1: camera units), less the camera's white-noise floor,
    undone of the PSF's transfer; ``labels`` give the per-object spread.
    """
    offset, gain, read = camera.offset, camera.gain, camera.read_noise
    signal = np.maximum(expected - offset, 1e-9)
    unit = signal if unit is None else unit
    relative = np.where(mask, (image - expected) / unit, 0.0)
    noise = (gain * signal + gain**2 * read**2) / np.square(unit)
    floor = float(noise[mask].mean())
    fraction = mask.mean()
    power = np.abs(np.fft.fftn(relative - relative[mask].mean() * mask)) ** 2 / (relative.size * fraction)
    frequencies = np.meshgrid(*[np.fft.fftfreq(n, s) for n, s in zip(image.shape, spacing, strict=True)],
                              indexing="ij", sparse=True)
    axial, lateral = psf
    otf_sq = np.exp(-4 * np.pi**2 * (axial**2 * frequencies[0] ** 2 + lateral**2 * (frequencies[1] ** 2 +
                                                                                     frequencies[2] ** 2)))
    usable = otf_sq > 0.05  # beyond, the PSF passes too little to tell texture from noise
    # shell means first, the noise floor removed after: clipping single periodogram values at 0 would
    # turn pure noise into texture (a bias of a third of the floor per frequency)
    centres, fraction_usable, sizes = radial_average(usable.astype(np.float64), spacing, N_SPECTRUM_BINS,
                                                     counts=True)
    seen = np.divide(radial_average(np.where(usable, power, 0.0), spacing, N_SPECTRUM_BINS)[1], fraction_usable,
                     out=np.zeros(N_SPECTRUM_BINS), where=fraction_usable > 0)
    transfer = np.divide(radial_average(np.where(usable, otf_sq, 0.0), spacing, N_SPECTRUM_BINS)[1],
                         fraction_usable, out=np.ones(N_SPECTRUM_BINS), where=fraction_usable > 0)
    psd = np.maximum(seen - floor, 0) / np.maximum(transfer, 1e-12)
    amplitude = float(np.sqrt((psd * fraction_usable * sizes).sum() / power.size))
    knots_amplitude = np.sqrt(psd / max(psd.max(), 1e-300))
    spectrum = [[0.0, round(float(knots_amplitude[0]), 4)]] + [
        [round(float(c), 4), round(float(a), 4)] for c, a in zip(centres, knots_amplitude, strict=True)]
    per_object = []
    for object_id in np.unique(labels[mask]) if labels is not None else ():
        inside = mask & (labels == object_id)
        if inside.sum() >= 200:
            variance = relative[inside].var() - noise[inside].mean()
            if variance > 0:
                per_object.append(math.sqrt(variance))
    spread = log_spread(per_object) if len(per_object) >= 5 else 0.0
    return {"amplitude": amplitude, "spectrum": spectrum, "spread": spread, "noise_floor": floor,
            "post_blur_amplitude": float(math.sqrt(max((power - floor).mean(), 0)))}


#: Largest relative amplitude of the ambient texture: beyond, ``max(0, 1 + a·n)`` clips more than 0.2 % of voxels.
MAX_AMBIENT_TEXTURE = 0.35


def dark_level_below(camera: CameraFit, rms: float, level: float) -> CameraFit:
    """``camera`` with its offset lowered when the ambient light (``level``, camera units) varies (``rms``, camera
    units) by more than :data:`MAX_AMBIENT_TEXTURE` of its height above the offset, else ``camera`` itself.

    A textured background has no dark voxels: its darkest smoothed level (the offset's first
    estimate) is a dip of the texture. Photon transfer only fixes ``offset − gain·read_noise²``
    (the variance line's zero, the least offset possible); the offset moves down towards it until
    the texture's amplitude is :data:`MAX_AMBIENT_TEXTURE`, and the read noise follows from the
    same line (:meth:`CameraFit.with_offset`).
    """
    if rms <= MAX_AMBIENT_TEXTURE * (level - camera.offset):
        return camera
    lowered = max(-camera.intercept / camera.gain, level - rms / MAX_AMBIENT_TEXTURE)
    if lowered >= camera.offset:
        return camera
    return camera.with_offset(lowered, f"lowered from the darkest 1 µm-smoothed level ({camera.offset:.1f}) until the "
                                       f"ambient texture is {MAX_AMBIENT_TEXTURE} of the ambient light above it (a "
                                       "textured background has no dark voxels), not below the photon-transfer "
                                       "line's zero")
