"""Physics renderer: fluorophores → optics → camera, in physical units, with no training.

The image of a simulated annotation is made in five steps, each a small function:

1. **Fluorophores** (:func:`fluorophore_density`): every cell gets a brightness drawn from a
   log-normal distribution (median 1, spread ``brightness_sigma``); nuclei are filled, membrane
   cells light up on their membranes (plus a dim cytoplasm). Optional nucleus texture multiplies
   the density by ``1 + texture · n`` with ``n`` band-pass noise (difference of Gaussians between
   two length scales in µm, unit variance).
2. **Background**: autofluorescence ``background`` everywhere in the organism (``background_outside``
   elsewhere) plus out-of-focus haze, a wide blur of the signal scaled by ``haze``.
3. **Depth attenuation** (:func:`depth_um`): ``exp(−depth / attenuation_length_um)``, with depth
   the µm distance below the organism surface (Euclidean distance transform with the true
   spacing), or below the top plane ``z = 0`` (the coverslip) when the organism fills the volume.
4. **PSF**: a Gaussian approximation of a widefield PSF (Zhang et al., Appl. Opt. 2007):
   ``σ_xy = 0.21 λ / NA`` and ``σ_z = 0.66 λ n / NA²`` (µm), divided by √2 for a confocal
   (pinhole-limited) system, sampled on the voxel grid and applied by FFT convolution through the
   patch engine (tiles cropped by the kernel radius, so the result equals a whole-volume
   convolution up to rounding).
5. **Camera** (:func:`camera`): Poisson shot noise at ``photons`` expected photo-electrons per unit
   density, Gaussian read noise (electrons), gain (ADU per electron) and offset (ADU), clipped to
   ``bit_depth``. The image is the ADU as uint16 or uint8, or float32 ADU × ``output_scale`` (by default
   1 / full scale, so in [0, 1]; a calibration on floating-point images sets it to their units).

The defaults resemble the nuclei channel of scikit-image's ``cells3d`` (confocal, 0.29 × 0.26 ×
0.26 µm): background ≈ 1/3 of the nuclear signal, per-nucleus brightness CV ≈ 0.18, textured
chromatin.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from scipy import ndimage, signal

from cellsynth.config import OpticsConfig, PatchingConfig
from cellsynth.masks.derived import centreness, depth_below_surface_um
from cellsynth.sample import Sample
from cellsynth.synthesis.patching import apply_patched

#: Widefield Gaussian-PSF constants (Zhang et al. 2007): σ_xy = A λ/NA, σ_z = B λ n / NA².
_LATERAL, _AXIAL = 0.21, 0.66


def psf_sigma_um(numerical_aperture: float, wavelength_um: float, refractive_index: float,
                 confocal: bool = True) -> tuple[float, float, float]:
    """Gaussian PSF standard deviations (z, y, x) in µm.

    Parameters
    ----------
    numerical_aperture : float
    wavelength_um : float
        Emission wavelength in µm.
    refractive_index : float
        Of the immersion medium.
    confocal : bool
        Pinhole-limited (σ / √2).

    Returns
    -------
    (sigma_z, sigma_y, sigma_x)
        µm.

    Examples
    --------
    >>> [round(float(s), 3) for s in psf_sigma_um(1.4, 0.52, 1.518, True)]  # confocal, oil, GFP
    [0.188, 0.055, 0.055]
    """
    lateral = _LATERAL * wavelength_um / numerical_aperture
    axial = _AXIAL * wavelength_um * refractive_index / numerical_aperture**2
    factor = 1 / np.sqrt(2) if confocal else 1.0
    return axial * factor, lateral * factor, lateral * factor


def gaussian_psf(sigma_um: Sequence[float], spacing: Sequence[float], truncate: float = 3.0) -> np.ndarray:
    """A normalised 3D Gaussian kernel on the voxel grid, odd-sized, ``truncate`` σ in each direction."""
    axes = []
    for sigma, step in zip(sigma_um, spacing, strict=True):
        radius = int(np.ceil(truncate * sigma / step))
        offsets = np.arange(-radius, radius + 1) * step
        profile = np.exp(-0.5 * (offsets / sigma) ** 2) if sigma > 0 else (offsets == 0).astype(float)
        axes.append(profile / profile.sum())
    kernel = axes[0][:, None, None] * axes[1][None, :, None] * axes[2][None, None, :]
    return (kernel / kernel.sum()).astype(np.float32)


def bandpass_noise(shape: Sequence[int], spacing: Sequence[float], scales_um: tuple[float, float],
                   rng=None) -> np.ndarray:
    """Unit-variance noise with structure between ``scales_um[0]`` and ``scales_um[1]`` (µm)."""
    rng = np.random.default_rng(rng)
    white = rng.standard_normal(tuple(shape), dtype=np.float32)
    spacing = np.asarray(spacing)
    fine = ndimage.gaussian_filter(white, scales_um[0] / spacing / 2, mode="reflect")
    coarse = ndimage.gaussian_filter(white, scales_um[1] / spacing / 2, mode="reflect")
    band = fine - coarse
    return band / max(float(band.std()), 1e-12)


def spectral_noise(shape: Sequence[int], spacing: Sequence[float], spectrum: Sequence[Sequence[float]],
                   rng=None) -> np.ndarray:
    """Unit-variance noise whose amplitude spectrum follows ``spectrum`` (cycles/µm, relative amplitude knots).

    White noise is filtered in Fourier space by the amplitude interpolated at each frequency's
    magnitude (µm⁻¹, from the spacing, so anisotropic grids get isotropic texture); beyond the
    last knot the amplitude is the last knot's.

    Examples
    --------
    >>> noise = spectral_noise((8, 32, 32), (0.5, 0.25, 0.25), [[0, 0], [1, 1], [2, 0]], rng=0)
    >>> round(float(noise.std()), 3), noise.dtype
    (1.0, dtype('float32'))
    """
    rng = np.random.default_rng(rng)
    knots = np.asarray(spectrum, float)
    white = rng.standard_normal(tuple(shape), dtype=np.float32)
    axes = [np.fft.fftfreq(n, d) for n, d in zip(shape[:-1], spacing[:-1], strict=True)]
    axes.append(np.fft.rfftfreq(shape[-1], spacing[-1]))
    frequency = np.sqrt(sum(g**2 for g in np.meshgrid(*axes, indexing="ij", sparse=True)))
    amplitude = np.interp(frequency, knots[:, 0], knots[:, 1]).astype(np.float32)
    filtered = np.fft.irfftn(np.fft.rfftn(white) * amplitude, s=tuple(shape), axes=(0, 1, 2)).astype(np.float32)
    filtered -= filtered.mean()
    return filtered / max(float(filtered.std()), 1e-12)


def texture_noise(shape: Sequence[int], spacing: Sequence[float], spectrum: Sequence[Sequence[float]] | None,
                  scales_um: Sequence[float], rng=None) -> np.ndarray:
    """Unit-variance noise following a measured ``spectrum`` (:func:`spectral_noise`), else band-pass
    between ``scales_um`` (:func:`bandpass_noise`)."""
    rng = np.random.default_rng(rng)
    if spectrum is not None:
        return spectral_noise(shape, spacing, spectrum, rng=rng)
    return bandpass_noise(shape, spacing, scales_um, rng=rng)


def inclusion_balls(labels: np.ndarray, spacing: Sequence[float], *, per_object: float,
               radius_um: float, radius_std_um: float, depth: np.ndarray, rng=None) -> np.ndarray:
    """Inclusions (nucleoli, chromocenters): a Poisson number of balls per object, centred at normalised depth > 0.4.

    Returns a boolean mask, clipped to the object each ball belongs to.
    """
    rng = np.random.default_rng(rng)
    from cellsynth.masks.nuclei import EllipsoidShape, rasterize_shapes

    ids = np.flatnonzero(np.bincount(labels.ravel()))
    ids = ids[ids > 0]
    counts = rng.poisson(per_object, len(ids))
    deep = np.flatnonzero((depth > 0.4).ravel())
    owner = labels.ravel()[deep]
    centres, shapes, parents = [], [], []
    for object_id, count in zip(ids, counts, strict=True):
        candidates = deep[owner == object_id]
        if count == 0 or len(candidates) == 0:
            continue
        for flat in rng.choice(candidates, count):
            radius = max(float(rng.normal(radius_um, radius_std_um)), 0.25 * radius_um)
            centres.append(np.asarray(np.unravel_index(flat, labels.shape)) * np.asarray(spacing))
            shapes.append(EllipsoidShape((radius, radius, radius), np.eye(3)))
            parents.append(object_id)
    if not shapes:
        return np.zeros(labels.shape, bool)
    balls, _ = rasterize_shapes(labels.shape, spacing, np.asarray(centres), shapes)
    parent_of = np.concatenate([[0], parents])
    return (balls > 0) & (parent_of[balls] == labels)


def fluorophore_density(
    labels: np.ndarray,
    spacing: Sequence[float],
    *,
    brightness_sigma: float = 0.0,
    membranes: np.ndarray | None = None,
    cytoplasm: float = 0.05,
    interior_profile: Sequence[Sequence[float]] | None = None,
    inclusions: Sequence[Mapping] = (),
    texture: float = 0.0,
    texture_spectrum: Sequence[Sequence[float]] | None = None,
    texture_scales_um: Sequence[float] = (0.4, 2.0),
    texture_law: str = "additive",
    texture_sigma: float = 0.0,
    rng=None,
) -> np.ndarray:
    """Relative fluorophore density (1 = a median cell), float32, before background and optics.

    Per object: a log-normal brightness (spread ``brightness_sigma``), the ``interior_profile``
    against normalised depth (rim), dark and bright ``inclusions`` (mappings of
    :func:`inclusion_balls`' keywords and a ``factor``), and texture ``max(0, 1 + a·n)`` or
    ``exp(a·n − a²/2)`` (``texture_law``) with ``n`` unit-variance noise (``texture_spectrum``, or
    band-pass between ``texture_scales_um``) and ``a`` = ``texture``, log-normal per object
    (``texture_sigma``). Membrane cells (``membranes`` given) are 1 on their membranes and
    ``cytoplasm`` inside. Features left at their defaults draw nothing.

    Parameters
    ----------
    labels : ndarray
        Instance labels.
    spacing : 3 floats
        Voxel size (z, y, x) in µm.
    brightness_sigma : float
        Log-normal spread of the per-object brightness.
    membranes : ndarray, optional
        Membrane voxels: membrane cells.
    cytoplasm : float
        Density inside membrane cells.
    interior_profile : list of [depth, factor], optional
        Density against normalised depth.
    inclusions : sequence of mapping
        Dark or bright balls inside objects.
    texture : float
        Texture amplitude ``a``.
    texture_spectrum : list of [cycles/µm, amplitude], optional
        Its spectrum.
    texture_scales_um : 2 floats
        Band-pass of the texture without a spectrum.
    texture_law : {'additive', 'lognormal'}
    texture_sigma : float
        Log-normal spread of ``a`` per object.
    rng : None, int or numpy.random.Generator
        Source of randomness.

    Returns
    -------
    ndarray
        float32, the shape of ``labels``.

    Examples
    --------
    >>> labels = np.zeros((4, 8, 8), np.uint16); labels[1:3, 2:6, 2:6] = 1
    >>> density = fluorophore_density(labels, (1, 1, 1), rng=0)
    >>> float(density[2, 3, 3]), float(density[0, 0, 0])
    (1.0, 0.0)
    """
    rng = np.random.default_rng(rng)
    n_ids = int(labels.max()) + 1
    brightness = np.exp(rng.normal(0.0, brightness_sigma, n_ids)).astype(np.float32)
    brightness[0] = 0
    per_voxel = brightness[labels]
    if membranes is not None:
        density = per_voxel * np.where(membranes, 1.0, cytoplasm).astype(np.float32)
    else:
        density = per_voxel
    depth = None
    if interior_profile is not None or inclusions:
        depth = centreness(labels, spacing)
    if interior_profile is not None:
        knots = np.asarray(interior_profile, np.float32)
        density = density * np.interp(depth, knots[:, 0], knots[:, 1]).astype(np.float32)
    for kind in inclusions:
        balls = inclusion_balls(labels, spacing, per_object=kind["per_object"], radius_um=kind["radius_um"],
                                radius_std_um=kind["radius_std_um"], depth=depth, rng=rng)
        density = np.where(balls, density * np.float32(kind["factor"]), density)
    if texture > 0:
        noise = texture_noise(labels.shape, spacing, texture_spectrum, texture_scales_um, rng=rng)
        amplitude = np.full(n_ids, texture, np.float32)
        if texture_sigma > 0:
            amplitude *= np.exp(rng.normal(0.0, texture_sigma, n_ids)).astype(np.float32)
        a = amplitude[labels]
        if texture_law == "lognormal":
            density = density * np.exp(a * noise - a * a / 2)
        else:
            density = density * np.clip(1 + a * noise, 0, None)
    return density.astype(np.float32)


def depth_um(foreground: np.ndarray, spacing: Sequence[float]) -> np.ndarray:
    """µm below the organism surface; below the plane z = 0 when the organism fills the volume."""
    if foreground.all():
        return np.broadcast_to((np.arange(foreground.shape[0]) * spacing[0])[:, None, None],
                               foreground.shape).astype(np.float32)
    return depth_below_surface_um(foreground, spacing).astype(np.float32)


def camera(signal_image: np.ndarray, *, photons: float, read_noise: float = 0.0, gain: float = 1.0,
           offset: float = 0.0, bit_depth: int = 16, noise_correlation_um: float = 0.0,
           spacing: Sequence[float] | None = None, rng=None) -> np.ndarray:
    """Photo-electrons (Poisson, ``photons`` per unit signal) + read noise (electrons) → ADU (``gain`` per
    electron, plus ``offset``), clipped to ``bit_depth`` (float64 ADU).

    With ``noise_correlation_um`` > 0 (needs ``spacing``, µm) the noise (electrons minus their
    expectation) is blurred by a Gaussian of that σ and scaled back to its variance per voxel, as
    detectors and scanners that spread each count over neighbouring pixels do.

    Parameters
    ----------
    signal_image : ndarray
        Expected signal per voxel, in units of ``photons``.
    photons : float
        Expected photo-electrons per unit signal.
    read_noise : float
        Electrons RMS.
    gain : float
        ADU per electron.
    offset : float
        ADU.
    bit_depth : int
        ADC bits (full scale 2^bits − 1).
    noise_correlation_um : float
        σ in µm of the noise's correlation between voxels (0: independent).
    spacing : 3 floats, optional
        Voxel size in µm (needed with a correlation).
    rng : None, int or numpy.random.Generator
        Source of randomness.

    Returns
    -------
    ndarray
        float64 ADU, the shape of ``signal_image``.

    Examples
    --------
    >>> adu = camera(np.full((1, 4, 4), 2.0), photons=100, gain=2.0, offset=10, rng=0)
    >>> 300 < float(adu.mean()) < 520
    True
    """
    rng = np.random.default_rng(rng)
    expected = np.clip(signal_image, 0, None).astype(np.float64) * photons
    electrons = rng.poisson(expected) + rng.normal(0.0, read_noise, signal_image.shape)
    if noise_correlation_um > 0:
        noise = electrons - expected
        sigma = [noise_correlation_um / s for s in spacing]
        kernel_norm = np.sqrt((gaussian_psf(sigma, (1.0, 1.0, 1.0)) ** 2).sum())  # std of blurred unit noise
        electrons = expected + ndimage.gaussian_filter(noise, sigma) / kernel_norm
    return np.clip(offset + gain * electrons, 0, 2**bit_depth - 1)


class OpticsRenderer:
    """The default generator: a physical model of a fluorescence microscope (module docstring).

    Staged as microsim names the stages, each reachable on its own: :meth:`ground_truth` (the light
    the specimen sends: fluorophore density, ambient light and out-of-focus haze, attenuation),
    :meth:`optical_image` (the PSF) and :meth:`digital_image` (the camera, in the output's units);
    :meth:`render` runs the three.

    Parameters
    ----------
    optics : OpticsConfig
        Specimen, microscope and camera sections (µm, photons, electrons, ADU).
    patching : PatchingConfig
        Tile size for the PSF convolution (the crop is the kernel radius, at least).

    Examples
    --------
    >>> from cellsynth.sample import Sample
    >>> labels = np.zeros((8, 32, 32), np.uint16); labels[2:6, 8:20, 8:20] = 1
    >>> sample = OpticsRenderer().render(Sample(labels, spacing=(0.5, 0.25, 0.25)), rng=0)
    >>> sample.image.dtype, sample.image.shape, bool(sample.image[labels > 0].mean() > sample.image[labels == 0].mean())
    (dtype('float32'), (8, 32, 32), True)
    """

    name = "optics"

    def __init__(self, optics: OpticsConfig | None = None, patching: PatchingConfig | None = None):
        self.optics = optics or OpticsConfig()
        self.patching = patching or PatchingConfig()

    def describe(self) -> dict:
        return {"name": self.name, "optics": self.optics.model_dump(mode="json"),
                "patching": self.patching.model_dump(mode="json")}

    def ground_truth(self, sample: Sample, rng: np.random.Generator) -> np.ndarray:
        """The light the specimen sends, per voxel (float32, in units of a median object's density).

        Fluorophore density of the labels (and membranes), the ambient light (autofluorescence inside
        the foreground, less outside) with the out-of-focus haze of the objects and the ambient
        texture over both, attenuated with depth below the foreground's surface. (The haze is drawn
        here, not in :meth:`optical_image`, because the ambient texture modulates it.)
        """
        spacing, foreground = sample.voxel_spacing(), sample.whole_foreground()
        specimen, scope = self.optics.specimen, self.optics.microscope
        density = fluorophore_density(
            sample.labels, spacing, brightness_sigma=specimen.brightness_sigma, membranes=sample.membranes,
            cytoplasm=specimen.cytoplasm, interior_profile=specimen.interior_profile,
            inclusions=[kind.model_dump() for kind in specimen.inclusions], texture=specimen.texture,
            texture_spectrum=specimen.texture_spectrum, texture_scales_um=specimen.texture_scales_um,
            texture_law=specimen.texture_law, texture_sigma=specimen.texture_sigma, rng=rng)
        ambient = np.where(foreground, specimen.background, specimen.background_outside).astype(np.float32)
        if scope.haze > 0:
            ambient = ambient + scope.haze * ndimage.gaussian_filter(density, scope.haze_scale_um / np.asarray(spacing))
        if specimen.ambient_texture > 0:
            ambient = ambient * np.clip(1 + specimen.ambient_texture * texture_noise(
                density.shape, spacing, specimen.ambient_spectrum, specimen.texture_scales_um, rng=rng), 0, None)
        density += ambient
        if specimen.attenuation_length_um is not None:
            density *= np.exp(-depth_um(foreground, spacing) / specimen.attenuation_length_um)
        return density

    def optical_image(self, light: np.ndarray, spacing: Sequence[float]) -> np.ndarray:
        """The PSF convolution of ``light``, tile by tile through the patch engine."""
        scope = self.optics.microscope
        sigma = scope.psf_sigma_um or psf_sigma_um(scope.numerical_aperture, scope.wavelength_um,
                                                   scope.refractive_index, scope.confocal)
        kernel = gaussian_psf(sigma, spacing)
        radius = [k // 2 for k in kernel.shape]
        crop = [max(self.patching.crop, r) for r in radius]
        patch = [max(p, o_ + 2 * c + 1) for p, o_, c in zip(self.patching.patch, (self.patching.overlap,) * 3, crop,
                                                              strict=True)]

        def convolve(batch: np.ndarray) -> np.ndarray:
            return np.stack([signal.fftconvolve(tile[0], kernel, mode="same")[None] for tile in batch])

        blurred, _ = apply_patched(convolve, light, patch=patch, overlap=self.patching.overlap, crop=crop,
                                   window=self.patching.window, batch_size=self.patching.batch_size or 1)
        return blurred

    def digital_image(self, optical: np.ndarray, spacing: Sequence[float], rng: np.random.Generator) -> np.ndarray:
        """The camera's image of ``optical`` (shot and read noise, gain, offset, bit depth), in the output's
        type and units (:meth:`from_adu`)."""
        detector = self.optics.camera
        adu = camera(optical, photons=detector.photons, read_noise=detector.read_noise, gain=detector.gain,
                     offset=detector.offset, bit_depth=detector.bit_depth,
                     noise_correlation_um=detector.noise_correlation_um, spacing=spacing, rng=rng)
        return self.from_adu(adu)

    def render(self, sample: Sample, rng=None) -> Sample:
        """``sample`` with its image (``camera.output_dtype``: float32 ADU × ``output_scale``, or integer ADU).

        The sample's labels, membranes and foreground (default: the whole volume) are drawn at its
        spacing (µm); ``rng``: a numpy Generator, a seed or None; the same state gives the same
        image (the stages draw from it in turn).
        """
        spacing = sample.voxel_spacing()
        rng = np.random.default_rng(rng)
        light = self.ground_truth(sample, rng)
        return sample.replace(image=self.digital_image(self.optical_image(light, spacing), spacing, rng))

    @property
    def output_scale(self) -> float:
        """Units of a float32 output per ADU (``camera.output_scale``, default 1 / full scale)."""
        camera_ = self.optics.camera
        return camera_.output_scale if camera_.output_scale is not None else 1.0 / (2**camera_.bit_depth - 1)

    def from_adu(self, adu: np.ndarray) -> np.ndarray:
        """Camera counts as this renderer outputs them (``camera.output_dtype``; integers rounded)."""
        dtype = self.optics.camera.output_dtype
        if dtype == "float32":
            return (adu * self.output_scale).astype(np.float32)
        return np.rint(adu).astype(dtype)

    def to_adu(self, image: np.ndarray) -> np.ndarray:
        """The inverse of :meth:`from_adu`, float64.

        Examples
        --------
        >>> renderer = OpticsRenderer(OpticsConfig(camera={"bit_depth": 8}))
        >>> renderer.to_adu(renderer.from_adu(np.array([0.0, 51.0, 255.0]))).round(3)
        array([  0.,  51., 255.])
        """
        adu = image.astype(np.float64)
        return adu / self.output_scale if image.dtype.kind == "f" else adu
