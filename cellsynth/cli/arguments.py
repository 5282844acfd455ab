"""The ``cellsynth`` command line: every command, its arguments and their help (the parser only).

Each command's ``func`` is its handler in :mod:`cellsynth.cli.commands`.
"""

from __future__ import annotations

import argparse
from importlib import metadata
from pathlib import Path

from cellsynth.cli import EXIT_BAD_INPUT
from cellsynth.cli import commands as handlers


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error (no usage block) and exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _version() -> str:
    try:
        return metadata.version("cellsynth")
    except metadata.PackageNotFoundError:
        return "unknown"


def _seed(text: str) -> int:
    """A seed: a whole number >= 0 (an argparse type)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a seed is a whole number >= 0; got '{text}'") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"a seed is a whole number >= 0; got {value}")
    return value


def _lengths(text: str) -> list[float]:
    """``"10,50,100"`` → ``[10.0, 50.0, 100.0]`` (an argparse type)."""
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers (µm), e.g. 10,50,100; "
                                         f"got '{text}'") from None
    if not values:
        raise argparse.ArgumentTypeError("expected at least one number")
    return values


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (also used to render ``--help``)."""
    from cellsynth.dataset.exports import CELLPOSE_LAYOUTS, EXPORT_FORMATS

    common = _Parser(add_help=False)
    common.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
                        help="no progress bars")
    parser = _Parser(prog="cellsynth", parents=[common],
                     description="Fully-annotated synthetic 3D fluorescence-microscopy datasets.")
    parser.add_argument("--version", action="version", version=f"cellsynth {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)

    config = commands.add_parser("config", help="list, show and check YAML configs")
    config_commands = config.add_subparsers(dest="action", required=True, metavar="ACTION")
    config_commands.add_parser("list", help="names of the shipped presets").set_defaults(func=handlers.config_list)
    show = config_commands.add_parser("show", help="print a shipped preset")
    show.add_argument("preset")
    show.set_defaults(func=handlers.config_show)
    check = config_commands.add_parser("check", help="validate a YAML config file")
    check.add_argument("file")
    check.set_defaults(func=handlers.config_check)

    dataset = commands.add_parser("dataset", help="create, import and verify dataset folders")
    dataset_commands = dataset.add_subparsers(dest="action", required=True, metavar="ACTION")
    imp = dataset_commands.add_parser(
        "import", parents=[common],
        help="make a dataset from existing image + label files (e.g. a real segmentation)",
        description="Pairs come by identical name when --images and --labels are folders, else by order.",
    )
    imp.add_argument("out", type=Path, help="new dataset folder")
    imp.add_argument("--images", nargs="+", required=True, help="image files, or one folder of them")
    imp.add_argument("--labels", nargs="+", required=True, help="label files, or one folder of them")
    imp.add_argument("--spacing", nargs=3, type=float, metavar=("Z", "Y", "X"),
                     help="voxel size in µm (overrides the files' own; required for files without one)")
    imp.add_argument("--config", help="preset name or YAML file (its dataset.output options apply)")
    imp.add_argument("--resume", action="store_true", help="complete an interrupted import")
    imp.set_defaults(func=handlers.dataset_import)
    example = dataset_commands.add_parser(
        "example", parents=[common], help="make a dataset from real example data (needs cellsynth[examples])"
    )
    example.add_argument("name", choices=["cells3d"], help="cells3d: scikit-image's nuclei, 20 labelled")
    example.add_argument("out", type=Path, help="new dataset folder")
    example.add_argument("--config", help="preset name or YAML file (its dataset.output options apply)")
    example.add_argument("--resume", action="store_true", help="complete an interrupted run")
    example.set_defaults(func=handlers.dataset_example)
    split = dataset_commands.add_parser(
        "split", parents=[common], help="cut every sample into two spatially disjoint datasets (train / test)",
        description="Images, labels and optional volumes are cut along one axis; spacing and label ids are kept.",
    )
    split.add_argument("dataset", type=Path, help="dataset folder to split")
    split.add_argument("--axis", default="x", choices=["z", "y", "x"], help="axis to cut along (default x)")
    split.add_argument("--fraction", type=float, default=0.5, help="share of the axis in the first part (default 0.5)")
    split.add_argument("--out", nargs=2, required=True, type=Path, metavar=("FIRST", "SECOND"),
                       help="two new dataset folders: the part before the cut and the part after it")
    split.set_defaults(func=handlers.dataset_split)
    verify = dataset_commands.add_parser("verify", help="check every sample's files against their SHA-256 "
                                                        "(exit 1 if any is missing or corrupt)")
    verify.add_argument("dataset", type=Path)
    verify.set_defaults(func=handlers.dataset_verify)

    run = _Parser(add_help=False)  # the options of every command that makes a dataset from a config
    run.add_argument("config", nargs="?", help="YAML config file (default: the 'default' preset)")
    run.add_argument("--preset", help="a shipped preset instead of a file (see `cellsynth config list`)")
    run.add_argument("--out", required=True, type=Path, help="new dataset folder")
    run.add_argument("--n", type=int, help="number of samples (overrides dataset.n_samples)")
    run.add_argument("--seed", type=_seed, help="base seed (overrides dataset.seed)")
    run.add_argument("--resume", action="store_true", help="complete an interrupted run (same config and seed)")
    run.add_argument("--workers", type=int, default=1, help="samples in parallel on a local dask cluster")
    run.add_argument("--scheduler", help="address of a running dask.distributed scheduler to use instead")

    generate = commands.add_parser(
        "generate", parents=[common, run], help="simulate masks and render images: an annotated dataset",
        description="The main job: from a preset or YAML config to image + label pairs, manifest and previews.",
    )
    generate.add_argument("--like", nargs="+", metavar="IMAGE",
                          help="calibrate the physics renderer and the masks on your real image(s) first (see "
                               "`cellsynth calibrate`); the calibrated preset goes into the dataset folder")
    generate.add_argument("--labels", nargs="+", help="--like: label volumes of those images (default: classical "
                                                      "segmentation)")
    generate.add_argument("--spacing", nargs=3, type=float, metavar=("Z", "Y", "X"),
                          help="--like: voxel size in µm of images without one")
    generate.add_argument("--kind", choices=("nuclei", "membranes"),
                          help="--like: what is stained (default nuclei)")
    generate.add_argument("--generator", help="optics (default, no training), gan or ddpm (need --checkpoint)")
    generate.add_argument("--checkpoint", help="a cellsynth checkpoint for gan or ddpm")
    generate.add_argument("--alpha", type=_lengths, metavar="A[,A...]",
                          help="gan: positional-map α in µm; several (e.g. 10,50,100,500,1000) = every sample at "
                               "each quality level")
    _sampling_arguments(generate)
    generate.set_defaults(func=handlers.generate)

    train = commands.add_parser("train", help="train a generator on your own (unlabelled) images")
    train_commands = train.add_subparsers(dest="model", required=True, metavar="MODEL")
    training = _Parser(add_help=False)  # what both training commands take
    training.add_argument("config", type=Path, help="training YAML (see README: data, masks, gan, ddpm)")
    training.add_argument("--out", required=True, type=Path, help="new run folder (or the one to --resume)")
    training.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    training.add_argument("--steps", type=int, help="total steps (overrides steps; raise it to train longer)")
    training.add_argument("--device", help="auto (default), cpu or cuda")
    train_commands.add_parser(
        "gan", parents=[common, training],
        help="the positionally-conditioned cGAN with adaptive discriminator augmentation",
        description="Unpaired by default: real images plus simulated (or real) masks; checkpoint, log.csv and "
                    "previews go to --out. Runs on a GPU when there is one (bf16), or under `accelerate launch`.",
    ).set_defaults(func=handlers.train)
    train_commands.add_parser(
        "ddpm", parents=[common, training], help="a DDPM on unlabelled images (no masks at all)",
        description="ε-prediction DDPM (cosine schedule, EMA) on random patches of data.images; the sketch "
                    "statistics for generation are fitted to the images. Same run folder layout as train gan.",
    ).set_defaults(func=handlers.train)

    calibrate = commands.add_parser(
        "calibrate", parents=[common], help="measure your real image(s) and write a preset that makes data like them",
        description="Camera (photon transfer), background, attenuation, PSF, per-object brightness, rim, texture "
                    "spectrum, nucleoli, and the masks' density, size, flattening and arrangement in z; each value "
                    "in the YAML carries a comment saying how it was measured.",
    )
    calibrate.add_argument("images", nargs="+", help="raw 3D image file(s) of one microscope setting")
    calibrate.add_argument("--labels", nargs="+", help="their instance labels (default: classical segmentation)")
    calibrate.add_argument("--spacing", nargs=3, type=float, metavar=("Z", "Y", "X"),
                           help="voxel size in µm (required for files without one)")
    calibrate.add_argument("--out", required=True, type=Path, help="preset file to write (PRESET.yaml)")
    calibrate.add_argument("--report", type=Path, help="folder for calibration.json and a real-vs-synthetic PNG")
    calibrate.add_argument("--n", type=int, default=8, help="dataset.n_samples of the preset (default 8)")
    calibrate.add_argument("--kind", choices=("nuclei", "membranes"), default="nuclei",
                           help="what is stained (default nuclei)")
    calibrate.set_defaults(func=handlers.calibrate)

    synthesize = commands.add_parser("synthesize", parents=[common],
                                     help="one image from a label volume (e.g. a real segmentation) with any generator")
    synthesize.add_argument("labels", type=Path, help="instance label volume")
    synthesize.add_argument("--config", help="preset name or YAML: render with its generator (the physics "
                                             "renderer by default; e.g. a `cellsynth calibrate` preset)")
    synthesize.add_argument("--checkpoint", type=Path,
                            help="gan or ddpm checkpoint from `cellsynth train`")
    synthesize.add_argument("--out", required=True, type=Path, help="image file to write (.tif, .ome.zarr)")
    synthesize.add_argument("--spacing", nargs=3, type=float, metavar=("Z", "Y", "X"),
                            help="voxel size in µm (required for files without one)")
    synthesize.add_argument("--foreground", type=Path, help="specimen mask (default: the closed labels)")
    synthesize.add_argument("--alpha", type=_lengths, metavar="A", help="positional-map α in µm (quality level)")
    synthesize.add_argument("--device", default="auto", help="auto (default), cpu or cuda")
    synthesize.add_argument("--seed", type=_seed, default=0, help="ddpm: seed of the sketch and the noise")
    _sampling_arguments(synthesize)
    synthesize.set_defaults(func=handlers.synthesize)

    masks = commands.add_parser("masks", help="simulate annotations (no images) and fit shape models")
    masks_commands = masks.add_subparsers(dest="action", required=True, metavar="ACTION")
    for kind, text in (("nuclei", "star-convex nuclei (spherical harmonics, ellipsoids or a shape model)"),
                       ("membranes", "weighted-Voronoi cells with their membranes")):
        simulate = masks_commands.add_parser(kind, parents=[common, run], help=f"a masks-only dataset of {text}")
        simulate.set_defaults(func=handlers.masks_simulate, kind=kind)
    fit = masks_commands.add_parser(
        "fit-ssm", parents=[common], help="fit a statistical shape model to label volumes",
        description="Radii along quasi-uniform rays from each shape's centroid; mean, covariance, modes.",
    )
    fit.add_argument("labels", nargs="*", help="label files, or one folder of them")
    fit.add_argument("--example", choices=["cells3d"], help="fit scikit-image's cells3d nuclei (cellsynth[examples])")
    fit.add_argument("--out", required=True, type=Path, help="model file MODEL.npz (MODEL.json goes beside it)")
    fit.add_argument("--spacing", nargs=3, type=float, metavar=("Z", "Y", "X"),
                     help="voxel size in µm (required for files without one)")
    fit.add_argument("--per", choices=["instance", "foreground"], default="instance",
                     help="instance: every labelled object; foreground: each volume's whole specimen")
    fit.add_argument("--directions", type=int, default=512, help="rays per shape (default 512)")
    fit.add_argument("--keep-border", action="store_true", help="also fit objects cut by the volume border")
    fit.set_defaults(func=handlers.masks_fit_ssm)

    diversify = commands.add_parser(
        "diversify", parents=[common], help="a robustness benchmark: each sample at increasing noise levels",
        description="Probabilistic diversification (clip(N(0,1)·w_v·σ_x + w_i·I_x, 0, 1)) of every sample "
                    "at every (w_i, w_v) level; labels unchanged, PSNR per level in the manifest.",
    )
    diversify.add_argument("dataset", type=Path, help="dataset folder with images (real or synthetic)")
    diversify.add_argument("--out", required=True, type=Path, help="new dataset folder")
    diversify.add_argument("--levels", nargs="+", type=float, default=[0.0, 1.0, 2.0, 4.0, 8.0], metavar="W_V",
                           help="variance weights w_v (default 0 1 2 4 8)")
    diversify.add_argument("--intensity-levels", nargs="+", type=float, default=[1.0], metavar="W_I",
                           help="intensity weights w_i (default 1); every combination is written")
    diversify.add_argument("--neighbourhood", type=int, help="s_σ: odd cube edge in voxels (default 5)")
    diversify.add_argument("--neighbourhood-um", type=float, help="s_σ in µm instead (odd voxel count per axis)")
    diversify.add_argument("--percentiles", nargs=2, type=float, default=[0.0, 100.0], metavar=("LOW", "HIGH"),
                           help="normalise each image to [0, 1] between these percentiles (default 0 100: min-max)")
    diversify.add_argument("--seed", type=_seed, default=0, help="base seed of the noise (default 0)")
    diversify.add_argument("--resume", action="store_true", help="complete an interrupted run")
    diversify.add_argument("--allow-partial", action="store_true",
                           help="use the finished samples of an unfinished dataset (refused by default)")
    diversify.set_defaults(func=handlers.diversify)

    evaluate = commands.add_parser("evaluate", help="judge synthetic data: image realism, Syn2Real segmentation")
    evaluate_commands = evaluate.add_subparsers(dest="action", required=True, metavar="ACTION")
    images = evaluate_commands.add_parser(
        "images", parents=[common], help="compare a synthetic image with a real one (metrics.json + PNG plots)",
        description="Paired NRMSE/SSIM/ZNCC/PSNR (same shape: the synthetic image made from the real labels), "
                    "whole volume and foreground, and unpaired histogram, spectra, depth and surface profiles.",
    )
    images.add_argument("--real", required=True, type=Path, help="real image file")
    images.add_argument("--synthetic", required=True, type=Path, help="synthetic image file")
    images.add_argument("--labels", type=Path, help="the real image's labels (foreground metrics)")
    images.add_argument("--spacing", nargs=3, type=float, metavar=("Z", "Y", "X"),
                        help="voxel size in µm (required for files without one)")
    images.add_argument("--normalization", default="percentile",
                        help="per-image intensity normalisation: percentile (1/99.8, default), min-max, zscore, none")
    images.add_argument("--out", required=True, type=Path, help="folder for metrics.json and the plots")
    images.set_defaults(func=handlers.evaluate_images)

    s2r = evaluate_commands.add_parser(
        "syn2real", parents=[common], help="train a 3D segmenter on one dataset, test it on another",
        description="A compact 3D U-Net (foreground + boundary, seeded watershed) trained with on-the-fly "
                    "augmentation on --train and applied to --test with the patch engine; instance matching "
                    "at IoU 0.1-0.9. Train on real data for the Real2Real baseline.",
    )
    s2r.add_argument("--train", required=True, type=Path, help="dataset folder to train on (e.g. synthetic)")
    s2r.add_argument("--test", required=True, type=Path, help="dataset folder to test on (e.g. real)")
    s2r.add_argument("--out", required=True, type=Path, help="new folder for report.json, weights, predictions")
    _training_arguments(s2r, steps=2000, patch_um=(16.0, 32.0, 32.0), what="training patch",
                        spacing="working voxel size in µm (default: the data's coarsest, at least 0.5)")
    s2r.add_argument("--batch-size", type=int, default=2, help="patches per step (default 2)")
    s2r.add_argument("--learning-rate", type=float, default=2e-3, help="Adam's peak learning rate (default 2e-3)")
    s2r.add_argument("--validation-fraction", type=float, default=0.2,
                     help="share of each training volume held out to pick weights and thresholds (default 0.2)")
    s2r.add_argument("--precision", default="auto", choices=["auto", "bf16", "fp32"],
                     help="autocast: auto = bf16 where the CPU or GPU computes it natively")
    s2r.set_defaults(func=handlers.evaluate_syn2real)

    base = evaluate_commands.add_parser(
        "baseline", parents=[common], help="the untrained classical segmentation to beat (Otsu + distance watershed)",
        description="Gaussian smoothing, Otsu's threshold, holes filled, seeds at the maxima of the distance map, "
                    "watershed; every parameter in µm. Writes the same report.json as syn2real.",
    )
    base.add_argument("--test", required=True, type=Path, help="labelled dataset folder to segment and score")
    base.add_argument("--out", required=True, type=Path, help="new folder for report.json and predictions")
    base.add_argument("--smoothing-um", type=float, default=1.0, help="Gaussian σ in µm (default 1)")
    base.add_argument("--min-seed-distance-um", type=float, default=5.0,
                      help="seeds are distance maxima within this half-width in µm (default 5)")
    base.add_argument("--min-volume-um3", type=float, default=50.0, help="smaller objects are dropped (default 50)")
    base.set_defaults(func=handlers.evaluate_baseline)

    realism = evaluate_commands.add_parser(
        "realism", parents=[common], help="can a classifier tell real from synthetic patches? (C2ST + statistics)",
        description="Trains a small 3D CNN on spatially disjoint halves; held-out accuracy 0.5 = cannot tell, "
                    "1.0 = trivially told apart. REAL and SYNTHETIC are image files or dataset folders.",
    )
    realism.add_argument("--real", required=True, type=Path, help="real image file or dataset folder")
    realism.add_argument("--synthetic", required=True, type=Path, help="synthetic image file or dataset folder")
    realism.add_argument("--out", required=True, type=Path, help="new folder for realism.json and the PNGs")
    _training_arguments(realism, steps=400, patch_um=(5.0, 8.0, 8.0), what="classifier patch",
                        spacing="voxel size in µm of files without one")
    realism.set_defaults(func=handlers.evaluate_realism)

    report = commands.add_parser("report", parents=[common],
                                 help="a self-contained HTML page about a dataset (previews, statistics, plots)")
    report.add_argument("dataset", type=Path, help="dataset folder")
    report.add_argument("--out", type=Path, help="HTML file (default DATASET/report.html)")
    report.set_defaults(func=handlers.report_dataset)

    export = commands.add_parser("export", parents=[common], help="export a dataset for a segmentation tool")
    export.add_argument("dataset", type=Path, help="dataset folder")
    export.add_argument("--format", required=True, help=f"one of: {', '.join(EXPORT_FORMATS)}")
    export.add_argument("--out", required=True, type=Path, help="new (or empty) folder")
    export.add_argument("--allow-partial", action="store_true",
                        help="use the finished samples of an unfinished dataset (refused by default)")
    export.add_argument("--cellpose-layout", default="slices",
                        help=f"Cellpose only: {' or '.join(CELLPOSE_LAYOUTS)} (default slices: Cellpose trains in 2D)")
    export.set_defaults(func=handlers.export)
    return parser


def _training_arguments(parser: argparse.ArgumentParser, *, steps: int, patch_um: tuple, what: str,
                        spacing: str) -> None:
    """The budget, patch, spacing, seed and device of the commands that train a judge (syn2real, realism)."""
    parser.add_argument("--steps", type=int, default=steps, help=f"training steps (default {steps})")
    parser.add_argument("--minutes", type=float, help="time budget; stops at steps or minutes, whichever first")
    parser.add_argument("--patch-um", nargs=3, type=float, default=list(patch_um), metavar=("Z", "Y", "X"),
                        help=f"{what} in µm (default {' '.join(f'{p:g}' for p in patch_um)})")
    parser.add_argument("--spacing", nargs=3, type=float, metavar=("Z", "Y", "X"), help=spacing)
    parser.add_argument("--seed", type=_seed, default=0)
    parser.add_argument("--device", default="auto", help="auto (default: cuda when available), cpu or cuda")


def _sampling_arguments(parser: argparse.ArgumentParser) -> None:
    """The learned generators' options: the DDPM's sampling and the output units (generate and synthesize)."""
    parser.add_argument("--sampler", help="ddpm: dpmsolver (default), ddim, or ddpm (ancestral, the reference)")
    parser.add_argument("--steps", type=int, help="ddpm: denoising steps (default 25)")
    start = parser.add_mutually_exclusive_group()
    start.add_argument("--t-start", type=int, dest="t_start", help="ddpm: start timestep (default 400 of 1000)")
    start.add_argument("--strength", type=float, help="ddpm: start at strength·T instead")
    start.add_argument("--snr", type=float, help="ddpm: start where the signal-to-noise ratio ᾱ/(1−ᾱ) is this")
    parser.add_argument("--tile-batch", type=int, dest="tile_batch",
                        help="tiles per network call (default: 1 on the CPU, as many as fit on a GPU)")
    parser.add_argument("--units", help="gan, ddpm: normalised ([0, 1], default) or camera (the training images' "
                                        "units, through the checkpoint's percentile mapping)")
