"""The ``cellsynth`` command line: every command, its options and their help (the parser only).

Each command is one entry of :data:`COMMANDS`: its words, its handler in
:mod:`cellsynth.cli.commands`, its help and its options; options several commands take are
declared once in :data:`SHARED`.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import inspect
import typing
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

from cellsynth.cli import EXIT_BAD_INPUT
from cellsynth.cli import commands as handlers


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error (no usage block) and exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _seed(text: str) -> int:
    """A seed: a whole number >= 0 (an argparse type)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a seed is a whole number >= 0; got '{text}'") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"a seed is a whole number >= 0; got {value}")
    return value


def _path(text: str) -> Path:
    """A file or folder path; an empty one is refused (``Path('')`` would be the current folder)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty path; give a file or folder name")
    return Path(text)


def _lengths(text: str) -> list[float]:
    """``"10,50,100"`` → ``[10.0, 50.0, 100.0]`` (an argparse type)."""
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers (µm), e.g. 10,50,100; "
                                         f"got '{text}'") from None
    if not values:
        raise argparse.ArgumentTypeError("expected at least one number")
    return values


def _setting(text: str) -> tuple[str, object]:
    """``KEY=VALUE`` → ``(KEY, VALUE)``, the value read as YAML (``8``, ``[16, 64, 64]``, ``gan``; an argparse type)."""
    from cellsynth.config import parse_yaml
    from cellsynth.errors import ConfigError

    key, equals, value = text.partition("=")
    if not equals or not key.strip() or not all(part.isidentifier() for part in key.strip().split(".")):
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE with a dotted config key (e.g. volume.shape=[16,64,64]); "
                                         f"got '{text}'")
    try:
        return key.strip(), parse_yaml(value.encode(), f"--set {key.strip()}")
    except ConfigError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def opt(flags: str, help: str, **settings) -> tuple[list[str], dict]:
    """One option: its flags (space-separated), its help, and ``add_argument``'s other settings; a default
    that is a value (taken from the library, not restated) is shown at the end of the help."""
    default = settings.get("default")
    if default not in (None, False, argparse.SUPPRESS) and "(default" not in help:
        shown = " ".join(f"{v:g}" for v in default) if isinstance(default, (list, tuple)) else (
            f"{default:g}" if isinstance(default, float) else default)
        help = f"{help} (default {shown})"
    return flags.split(), {"help": help, **settings}


def library(module: str, name: str):
    """A value the library defines (a default, a list of choices), imported only when the options of a command
    that shows it are built: ``cellsynth --help`` imports none of the library."""
    return getattr(importlib.import_module(f"cellsynth.{module}"), name)


def default(module: str, function: str, parameter: str):
    """The default of ``parameter`` in the library's ``function``: the option's default, stated once."""
    value = inspect.signature(library(module, function)).parameters[parameter].default
    return list(value) if isinstance(value, tuple) else value


ZYX = {"nargs": 3, "type": float, "metavar": ("Z", "Y", "X")}
FLAG = {"action": "store_true"}
#: The options several commands take, declared once.
SHARED = {
    "quiet": opt("-q --quiet", "no progress bars", **FLAG, default=argparse.SUPPRESS),  # before or after the command
    "spacing": opt("--spacing", "voxel size in µm (required for files without one)", **ZYX),
    "resume": opt("--resume", "complete an interrupted run (same settings)", **FLAG),
    "seed": opt("--seed", "base seed (default 0)", type=_seed, default=0),
    "device": opt("--device", "auto (default: cuda when available), cpu or cuda", default="auto"),
    "partial": opt("--allow-partial", "use the finished samples of an unfinished dataset (refused by default)",
                   **FLAG),
    "new dataset": opt("--out", "new dataset folder", required=True, type=_path),
    "dataset": opt("dataset", "dataset folder", type=_path),
    "output config": opt("--config", "preset name or YAML file (its dataset.output options apply)"),
    "labels of images": opt("--labels", "their instance labels (default: classical segmentation)", nargs="+"),
    "overwrite": opt("--overwrite", "replace an existing output file (never one of the inputs)", **FLAG),
    "minutes": opt("--minutes", "time budget; stops at steps or minutes, whichever first", type=float),
}
#: What every command that makes a dataset from a config takes (generate, masks nuclei|membranes).
RUN = [opt("config", "YAML config file (default: the 'default' preset)", nargs="?"),
       opt("--preset", "a shipped preset instead of a file (see `cellsynth config list`)"),
       "new dataset", opt("--n", "number of samples (overrides dataset.n_samples)", type=int),
       opt("--seed", "base seed (overrides dataset.seed)", type=_seed), "resume",
       opt("--workers", "samples in parallel on a local dask cluster", type=int, default=1),
       opt("--scheduler", "address of a running dask.distributed scheduler to use instead"),
       opt("--set", "change one config value, KEY=VALUE (e.g. --set volume.shape=[16,64,64] --set "
                    "optics.camera.photons=80); repeatable; checked like the YAML", type=_setting, action="append",
           metavar="KEY=VALUE", dest="settings")]
def setting(flags: str, key: str, **settings) -> tuple[list[str], dict]:
    """An option that sets the config value ``key``: its help and shown default are the config schema's
    (:func:`~cellsynth.config.config_field`), its choices those of a ``Literal`` field; not given, the config's
    value stands."""
    field = library("config", "config_field")(key)
    choices = typing.get_args(field.annotation) if typing.get_origin(field.annotation) is typing.Literal else None
    shown = "" if field.default is None else f" (default {field.default})"
    return opt(flags, f"{field.description}{shown}; sets {key}", **({"choices": choices} if choices else {}),
               **settings)


def sampling() -> list:
    """The learned generators' options: the DDPM's sampling and the output units (generate, synthesize)."""
    return [setting("--sampler", "renderer.sampler"), setting("--steps", "renderer.steps", type=int),
            [setting("--t-start", "renderer.t_start", type=int, dest="t_start"),  # one of these
             setting("--strength", "renderer.strength", type=float), setting("--snr", "renderer.snr", type=float)],
            setting("--tile-batch", "patching.batch_size", type=int, dest="tile_batch"),
            setting("--units", "renderer.units")]


#: How a settings field's annotation is read from the command line.
_FIELD_TYPES = {"int": {"type": int}, "float": {"type": float}, "str": {}, "tuple[float, float, float]": ZYX,
                "tuple[float, ...]": {"type": float, "nargs": "+"}}
#: Flags that differ from the field's name (the same option as in the other commands).
_FLAGS = {"spacing_um": "--spacing"}


def settings_options(settings: type) -> list:
    """One option per field of a settings dataclass (:class:`~cellsynth.evaluate.settings.SegmenterSettings`):
    help from the field's ``metadata["help"]``, its default shown from the dataclass and left to it (an option
    not given is not passed on), the type read from the annotation."""
    options = []
    for field in dataclasses.fields(settings):
        annotation = field.type.split(" | ")[0]
        kind = {"type": _seed} if field.name == "seed" else _FIELD_TYPES[annotation]
        default = field.default
        if isinstance(default, tuple):
            default = " ".join(map(str, default))
        shown = "" if default is None else f" (default {default})"
        options.append(opt(_FLAGS.get(field.name, "--" + field.name.replace("_", "-")),
                           field.metadata["help"] + shown, dest=field.name, default=argparse.SUPPRESS, **kind))
    return options


def judge_options(steps: int, patch_um: tuple, patch: str, spacing: str) -> list:
    """The budget, patch, spacing, seed and device of the commands that train a judge (syn2real, realism)."""
    return [opt("--steps", "training steps", type=int, default=steps), "minutes",
            opt("--patch-um", f"{patch} in µm", **ZYX, default=list(patch_um)),
            opt("--spacing", spacing, **ZYX), "seed", "device"]


GROUPS = {"config": "list, show and check YAML configs", "dataset": "create, import and verify dataset folders",
          "train": "train a generator on your own (unlabelled) images",
          "masks": "simulate annotations (no images) and fit shape models",
          "evaluate": "judge synthetic data: image realism, Syn2Real segmentation"}
TRAINING = [opt("config", "training YAML (see README: data, masks, gan, ddpm) or a shipped training preset "
                          "(ddpm-cpu: learns texture on a 2-core CPU in 20 minutes)"),
            opt("--images", "training images (files, globs or one folder); replace the config's data.images",
                nargs="+"),
            opt("--out", "new run folder (or the one to --resume)", required=True, type=_path),
            opt("--resume", "continue the run in --out from its checkpoint", **FLAG),
            opt("--steps", "total steps (overrides steps; raise it to train longer)", type=int),
            opt("--device", "auto (default), cpu or cuda")]
MASKS = {"nuclei": "star-convex nuclei (spherical harmonics, ellipsoids or a shape model)",
         "membranes": "weighted-Voronoi cells with their membranes"}
#: Every command: words, handler, help, options; then a description and fixed values, if any.
COMMANDS = [
    ("config list", handlers.config_list, "names of the shipped presets", []),
    ("config show", handlers.config_show, "print a shipped preset", [opt("preset", "preset name")]),
    ("config check", handlers.config_check, "validate a YAML config file", [opt("file", "YAML config file")]),
    ("dataset import", handlers.dataset_import,
     "make a dataset from existing image + label files (e.g. a real segmentation)",
     [opt("out", "new dataset folder", type=_path),
      opt("--images", "image files, or one folder of them", nargs="+", required=True),
      opt("--labels", "label files, or one folder of them", nargs="+", required=True),
      opt("--spacing", "voxel size in µm (overrides the files' own; required for files without one)", **ZYX),
      "output config", "resume"],
     "Pairs come by identical name when --images and --labels are folders, else by order."),
    ("dataset example", handlers.dataset_example, "make a dataset from real example data (needs cellsynth[examples])",
     [opt("name", "cells3d: scikit-image's nuclei, 20 labelled", choices=["cells3d"]),
      opt("out", "new dataset folder", type=_path), "output config", "resume"]),
    ("dataset split", handlers.dataset_split, "cut every sample into two spatially disjoint datasets (train / test)",
     lambda: ["dataset", opt("--axis", "axis to cut along", default=default("dataset.split", "split_dataset", "axis"),
                             choices=["z", "y", "x"]),
      opt("--fraction", "share of the axis in the first part", type=float,
          default=default("dataset.split", "split_dataset", "fraction")),
      opt("--out", "two new dataset folders: the part before the cut and the part after it", nargs=2, required=True,
          type=_path, metavar=("FIRST", "SECOND"))],
     "Images, labels and optional volumes are cut along one axis; spacing and label ids are kept."),
    ("dataset verify", handlers.dataset_verify,
     "check every sample's files against their SHA-256 (exit 1 if any is missing or corrupt)", ["dataset"]),
    ("generate", handlers.generate, "simulate masks and render images: an annotated dataset",
     lambda: [*RUN, opt("--like", "calibrate the physics renderer and the masks on your real image(s) first (see "
                                  "`cellsynth calibrate`); the calibrated preset goes into the dataset folder",
                        nargs="+", metavar="IMAGE"),
      opt("--labels", "--like: label volumes of those images (default: classical segmentation)", nargs="+"),
      opt("--spacing", "--like: voxel size in µm of images without one", **ZYX),
      opt("--kind", "--like: what is stained (default nuclei)", choices=("nuclei", "membranes")),
      opt("--refine", "--like: also train a DDPM on the image(s) (CPU budget --minutes) and finish every physics "
                      "render with it; its run folder is OUT-refiner", **FLAG),
      opt("--minutes", "--refine: training budget in minutes (default 20)", type=float),
      setting("--renderer --generator", "renderer.name"), setting("--checkpoint", "renderer.checkpoint"),
      setting("--alpha", "renderer.alpha_um", type=_lengths, metavar="A[,A...]"), *sampling()],
     "The main job: from a preset or YAML config to image + label pairs, manifest and previews."),
    ("train gan", handlers.train, "the positionally-conditioned cGAN with adaptive discriminator augmentation",
     TRAINING, "Unpaired by default: real images plus simulated (or real) masks; checkpoint, log.csv and previews "
               "go to --out. Runs on a GPU when there is one (bf16), or under `accelerate launch`."),
    ("train ddpm", handlers.train, "a DDPM on unlabelled images (no masks at all)", TRAINING,
     "ε-prediction DDPM (cosine schedule, EMA) on random patches of data.images; the sketch statistics for "
     "generation are fitted to the images. Same run folder layout as train gan."),
    ("calibrate", handlers.calibrate, "measure your real image(s) and write a preset that makes data like them",
     lambda: [opt("images", "raw 3D image file(s) of one microscope setting", nargs="+"), "labels of images", "spacing",
      opt("--out", "preset file to write (PRESET.yaml)", required=True, type=_path),
      opt("--report", "folder for calibration.json and a real-vs-synthetic PNG", type=_path), "overwrite",
      opt("--n", "dataset.n_samples of the preset", type=int,
          default=default("synthesis.calibrate", "calibrate", "n_samples")),
      opt("--kind", "what is stained", choices=("nuclei", "membranes"),
          default=default("synthesis.calibrate", "calibrate", "kind"))],
     "Camera (photon transfer), background, attenuation, PSF, per-object brightness, rim, texture spectrum, "
     "nucleoli, and the masks' density, size, flattening and arrangement in z; each value in the YAML carries a "
     "comment saying how it was measured."),
    ("synthesize", handlers.synthesize, "one image from a label volume (e.g. a real segmentation) with any generator",
     lambda: [opt("labels", "instance label volume", type=_path),
      opt("--config", "preset name or YAML: render with its renderer (the physics renderer by default; e.g. a "
                      "`cellsynth calibrate` preset)"),
      opt("--checkpoint", "gan or ddpm checkpoint from `cellsynth train`; a ddpm one with --config refines the "
                          "config's physics render", type=_path),
      opt("--out", "image file to write (.tif, .ome.zarr)", required=True, type=_path), "overwrite", "spacing",
      opt("--foreground", "specimen mask (default: the closed labels)", type=_path),
      opt("--alpha", "positional-map α in µm (quality level)", type=_lengths, metavar="A"), "device",
      opt("--seed", "ddpm: seed of the sketch and the noise", type=_seed, default=0), *sampling()]),
    *((f"masks {kind}", handlers.masks_simulate, f"a masks-only dataset of {text}", RUN, None, {"kind": kind})
      for kind, text in MASKS.items()),
    ("masks fit-ssm", handlers.masks_fit_ssm, "fit a statistical shape model to label volumes",
     lambda: [opt("labels", "label files, or one folder of them", nargs="*"),
      opt("--example", "fit scikit-image's cells3d nuclei (cellsynth[examples])", choices=["cells3d"]),
      opt("--out", "model file MODEL.npz (MODEL.json goes beside it)", required=True, type=_path), "overwrite",
      "spacing",
      opt("--per", "instance: every labelled object; foreground: each volume's whole specimen",
          choices=["instance", "foreground"], default=default("masks.ssm", "fit_ssm", "per")),
      opt("--directions", "rays per shape", type=int, default=default("masks.ssm", "fit_ssm", "n_directions")),
      opt("--keep-border", "also fit objects cut by the volume border", **FLAG)],
     "Radii along quasi-uniform rays from each shape's centroid; mean, covariance, modes."),
    ("diversify", handlers.diversify, "a robustness benchmark: each sample at increasing noise levels",
     lambda: [opt("dataset", "dataset folder with images (real or synthetic)", type=_path), "new dataset",
      opt("--levels", "variance weights w_v", nargs="+", type=float, metavar="W_V",
          default=default("series", "diversify_dataset", "w_v_levels")),
      opt("--intensity-levels", "intensity weights w_i; every combination is written", nargs="+", type=float,
          default=default("series", "diversify_dataset", "w_i_levels"), metavar="W_I"),
      opt("--neighbourhood", "s_σ: odd cube edge in voxels (default 5)", type=int),
      opt("--neighbourhood-um", "s_σ in µm instead (odd voxel count per axis)", type=float),
      opt("--percentiles", "normalise each image to [0, 1] between these percentiles (0 100: min-max)", nargs=2,
          type=float, default=default("series", "diversify_dataset", "percentiles"), metavar=("LOW", "HIGH")),
      opt("--seed", "base seed of the noise", type=_seed, default=default("series", "diversify_dataset", "seed")),
      "resume", "partial"],
     "Probabilistic diversification (clip(N(0,1)·w_v·σ_x + w_i·I_x, 0, 1)) of every sample at every (w_i, w_v) "
     "level; labels unchanged, PSNR per level in the manifest."),
    ("evaluate images", handlers.evaluate_images,
     "compare a synthetic image with a real one (metrics.json + PNG plots)",
     lambda: [opt("--real", "real image file", required=True, type=_path),
      opt("--synthetic", "synthetic image file", required=True, type=_path),
      opt("--labels", "the real image's labels (foreground metrics)", type=_path), "spacing",
      opt("--normalization", "per-image intensity normalisation: percentile (1/99.8), min-max, zscore, none",
          default=default("evaluate.images", "evaluate_image_files", "normalization")),
      opt("--out", "folder for metrics.json and the plots", required=True, type=_path)],
     "Paired NRMSE/SSIM/ZNCC/PSNR (same shape: the synthetic image made from the real labels), whole volume and "
     "foreground, and unpaired histogram, spectra, depth and surface profiles."),
    ("evaluate syn2real", handlers.evaluate_syn2real, "train a 3D segmenter on one dataset, test it on another",
     lambda: [opt("--train", "dataset folder to train on (e.g. synthetic); repeat it to mix sets (real first: "
                             "validation is taken from it)", required=True, type=_path, action="append"),
      opt("--test", "dataset folder to test on (e.g. real)", required=True, type=_path),
      opt("--out", "new folder for report.json, weights, predictions", required=True, type=_path),
      *settings_options(library("evaluate.settings", "SegmenterSettings")),
      opt("--repeats", "K training seeds: mean ± sd of AP@0.5 and AP@0.75 with a bootstrap interval over test "
                       "objects (default 1: one run)", type=int, default=1),
      opt("--swap", "also train on --test and test on --train with each seed (Real2Real: both halves take both "
                    "roles); one --train set", **FLAG)],
     "A compact 3D U-Net (foreground + boundary, seeded watershed) trained with on-the-fly augmentation on --train "
     "and applied to --test with the patch engine; instance matching at IoU 0.1-0.9. Train on real data for the "
     "Real2Real baseline."),
    ("evaluate baseline", handlers.evaluate_baseline,
     "the untrained classical segmentation to beat (Otsu + distance watershed)",
     lambda: [opt("--test", "labelled dataset folder to segment and score", required=True, type=_path),
      opt("--out", "new folder for report.json and predictions", required=True, type=_path),
      *(opt(f"--{name.lower().replace('_', '-')}", help, type=float, default=library("masks.segment", name))
        for name, help in (("SMOOTHING_UM", "Gaussian σ in µm"),
                           ("MIN_SEED_DISTANCE_UM", "seeds are distance maxima within this half-width in µm"),
                           ("MIN_VOLUME_UM3", "smaller objects are dropped")))],
     "Gaussian smoothing, Otsu's threshold, holes filled, seeds at the maxima of the distance map, watershed; "
     "every parameter in µm. Writes the same report.json as syn2real."),
    ("evaluate realism", handlers.evaluate_realism,
     "can a classifier tell real from synthetic patches? (C2ST + statistics)",
     lambda: [opt("--real", "real image file(s), a folder of them or a dataset folder", required=True, type=_path,
          nargs="+"),
      opt("--synthetic", "synthetic image file(s), a folder of them or a dataset folder", required=True,
          type=_path, nargs="+"),
      opt("--out", "new folder for realism.json and the PNGs", required=True, type=_path),
      *judge_options(library("evaluate.settings", "C2ST_STEPS"), library("evaluate.settings", "C2ST_PATCH_UM"),
                     "classifier patch", "voxel size in µm of files without one"),
      opt("--repeats", "K classifier seeds, each in both orders of the train/test parts: mean ± sd of 2K runs "
                       "(default 1: one run)", type=int, default=1)],
     "Trains a small 3D CNN on spatially disjoint halves; held-out accuracy 0.5 = cannot tell, 1.0 = trivially "
     "told apart. REAL and SYNTHETIC are image files or dataset folders."),
    ("report", handlers.report_dataset, "a self-contained HTML page about a dataset (previews, statistics, plots)",
     ["dataset", opt("--out", "HTML file (default DATASET/report.html, replaced each time)", type=_path),
      "overwrite"]),
    ("export", handlers.export, "export a dataset for a segmentation tool",
     lambda: ["dataset", opt("--format", f"one of: {', '.join(library('dataset.exports', 'EXPORT_FORMATS'))}",
                             required=True),
      opt("--out", "new (or empty) folder", required=True, type=_path), "partial",
      opt("--layout", "; ".join(f"{fmt}: {' or '.join(names)} (default {names[0]})"
                                for fmt, names in library("dataset.exports", "LAYOUTS").items())
          + " (Cellpose trains in 2D; the CTC scorers need the samples as frames of one sequence)")]),
]


def _add_options(parser: argparse.ArgumentParser, options: list) -> None:
    for option in options:
        if isinstance(option, list):  # mutually exclusive
            _add_options(parser.add_mutually_exclusive_group(), option)
            continue
        flags, settings = SHARED[option] if isinstance(option, str) else option
        parser.add_argument(*flags, **settings)


def named_command(argv: Sequence[str]) -> str | None:
    """The command ``argv`` names (``"evaluate realism"``), or None: its first words that are not options."""
    words = []
    for word in argv:
        if word.startswith("-"):
            continue
        words.append(word)
        if any(entry[0] == " ".join(words) for entry in COMMANDS):
            return " ".join(words)
        if len(words) == 2:
            return None
    return None


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The argument parser; with ``argv``, only the options of the command it names are built (the rest of the
    library stays unimported), else every command's (to render every ``--help``)."""
    try:
        version = metadata.version("cellsynth")
    except metadata.PackageNotFoundError:
        version = "unknown"
    only = None if argv is None else named_command(argv)
    parser = _Parser(prog="cellsynth", description="Fully-annotated synthetic 3D fluorescence-microscopy datasets.")
    parser.add_argument("--version", action="version", version=f"cellsynth {version}")
    _add_options(parser, ["quiet"])
    top = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)
    groups = {}
    for words, handler, help, options, *rest in COMMANDS:
        description, defaults = (*rest, None, None)[:2]
        *group, name = words.split()
        if group and group[0] not in groups:
            groups[group[0]] = top.add_parser(group[0], help=GROUPS[group[0]]).add_subparsers(
                dest="action", required=True, metavar="ACTION", parser_class=_Parser)
        command = (groups[group[0]] if group else top).add_parser(name, help=help, description=description or help)
        if argv is None or words == only:
            # options given as a callable import the library to show its values: built only when needed
            _add_options(command, options() if callable(options) else options)
        _add_options(command, ["quiet"])
        command.set_defaults(func=handler, **(defaults or {}))
    return parser
