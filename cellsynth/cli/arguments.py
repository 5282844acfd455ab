"""The ``cellsynth`` command line: its commands, and their options read from the library (the parser only).

A command runs a library function, and most of its options are that function's parameters: the
help is the docstring's Parameters entry, the default and type come from the signature, so each is
stated once, in the library (:func:`parameter`). The options a command adds of its own, and those
several commands share (:data:`SHARED`), are declared here with :func:`opt`.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import inspect
import re
import typing
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import NamedTuple

from cellsynth.cli import EXIT_BAD_INPUT
from cellsynth.cli import commands as handlers
from cellsynth.cli.commands import library


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error (no usage block) and exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _seed(text: str) -> int:
    """A seed: a whole number >= 0 (an argparse type)."""
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"a seed is a whole number >= 0; got '{text}'")
    return int(text)


def _path(text: str) -> Path:
    """A file or folder path; an empty one is refused (``Path('')`` would be the current folder)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty path; give a file or folder name")
    return Path(text)


def _lengths(text: str) -> list[float]:
    """``"10,50,100"`` → ``[10.0, 50.0, 100.0]`` (an argparse type)."""
    try:
        return [float(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers (µm), e.g. 10,50,100; "
                                         f"got '{text}'") from None


def _setting(text: str) -> tuple[str, object]:
    """``KEY=VALUE`` → ``(KEY, VALUE)``, the value read as YAML (``8``, ``[16, 64, 64]``, ``gan``; an argparse type)."""
    from cellsynth.config import parse_yaml
    from cellsynth.errors import ConfigError

    key, equals, value = (part.strip() for part in text.partition("="))
    if not equals or not all(part.isidentifier() for part in key.split(".")):
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE with a dotted config key (e.g. volume.shape=[16,64,64]); "
                                         f"got '{text}'")
    try:
        return key, parse_yaml(value.encode(), f"--set {key}")
    except ConfigError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _shown(default) -> str:
    """A default as the help shows it: `` (default 5)``, or nothing for None and False."""
    if any(default is nothing for nothing in (None, False, argparse.SUPPRESS, inspect.Parameter.empty)):
        return ""
    values = default if isinstance(default, (list, tuple)) else [default]
    return " (default " + " ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in values) + ")"


def opt(flags: str, help: str, **settings) -> tuple[list[str], dict]:
    """An option of the command line's own: its flags (space-separated), its help and ``add_argument``'s
    settings; a default is shown at the end of the help."""
    return flags.split(), {"help": help + ("" if "(default" in help else _shown(settings.get("default"))), **settings}


_ROLE = re.compile(r":\w+:`~?(?:[\w.]*\.)?([^`]+)`")  # :func:`~cellsynth.x.name` → name
_SEE = re.compile(r"\s*\(:\w+:`[^`]+`\)")  # "(:func:`normalize`)": a pointer into the Python docs, not for the CLI


@functools.cache  # a command reads several parameters of one function: its docstring is parsed once
def parameter_docs(function: Callable) -> dict[str, tuple[str, str]]:
    """Each parameter's numpydoc type and description (reST roles and literals made plain), from the
    Parameters section of ``function``'s docstring; ``a, b : int`` documents both."""
    lines = inspect.cleandoc(function.__doc__ or "").splitlines() + [""]
    start = lines.index("Parameters") + 2 if "Parameters" in lines else len(lines)
    docs, names = {}, []
    for line, following in zip(lines[start:], lines[start + 1:], strict=False):
        if following and set(following) == {"-"}:  # the next section's heading
            break
        if line and not line[0].isspace():
            spec, _, kind = line.partition(" : ")
            names = [name.strip(" *") for name in spec.split(",")]
            docs.update({name: [kind, ""] for name in names})
        elif line.strip():
            for name in names:
                docs[name][1] += " " + line.strip()
    return {name: (kind, _ROLE.sub(r"\1", _SEE.sub("", text)).replace("``", "").strip())
            for name, (kind, text) in docs.items()}


def _argument_type(name: str, annotation: str, kind: str) -> dict:
    """How a parameter is read from the command line, from its annotation and numpydoc type."""
    choices = re.findall(r"""['"]([\w-]+)['"]""", kind.partition("}")[0]) if kind.startswith("{") else None
    first = annotation.split(" | ")[0]
    if name == "seed":
        return {"type": _seed}
    if "3 floats" in kind or first == "tuple[float, float, float]":
        return ZYX
    if "os.PathLike" in annotation or "path-like" in kind:
        many = "Sequence[str | os.PathLike]" in annotation or "sequence of path-like" in kind
        return {"type": _path, **({"nargs": "+"} if many else {})}
    if first == "bool":
        return FLAG
    many = first.startswith(("Sequence[", "tuple["))
    base = {"int": int, "float": float}.get(first.partition("[")[2].split(",")[0].rstrip("]") if many else first, str)
    return {"type": base, **({"nargs": "+"} if many else {}), **({"choices": choices} if choices else {})}


def parameter(spec: str, target: str, **settings) -> tuple[list[str], dict]:
    """An option for a parameter of the library function ``target``: ``"--real"`` (the parameter ``real``),
    ``"dataset:source"`` (a positional DATASET for ``source``), ``"--levels:w_v_levels"``. Help, shown default,
    type and choices are the library's; an option not given leaves the library's default."""
    flags, _, name = spec.partition(":")
    name = name or flags.lstrip("-").replace("-", "_")
    function = library(target)
    kind, help = parameter_docs(function).get(name, ("", ""))
    if not help:
        raise LookupError(f"{target} documents no parameter '{name}'")  # a maintainer's error, caught by the tests
    signature = inspect.signature(function).parameters[name]
    if flags.startswith("-"):
        settings = {"dest": name, "default": argparse.SUPPRESS,
                    **({"required": True} if signature.default is inspect.Parameter.empty else {}), **settings}
    else:
        settings = {"metavar": flags.upper(), **settings}
        flags = name
    reading = _argument_type(name, str(signature.annotation), kind)
    return flags.split(), {"help": help + _shown(signature.default), **reading, **settings}


ZYX = {"nargs": 3, "type": float, "metavar": ("Z", "Y", "X")}
FLAG = {"action": "store_true"}
#: The options several commands take, declared once.
SHARED = {
    "quiet": opt("-q --quiet", "no progress bars", **FLAG, default=argparse.SUPPRESS),  # before or after the command
    "resume": opt("--resume", "complete an interrupted run (same settings)", **FLAG),
    "allow_partial": opt("--allow-partial", "use the finished samples of an unfinished dataset (refused by "
                                            "default)", **FLAG),
    "dataset": opt("dataset", "dataset folder", type=_path),
    "output config": opt("--config", "preset name or YAML file (its dataset.output options apply)"),
    "overwrite": opt("--overwrite", "replace an existing output file (never one of the inputs)", **FLAG),
}


def run_options() -> list:
    """What every command that makes a dataset from a config takes (generate, masks nuclei|membranes)."""
    return [opt("config", "YAML config file (default: the 'default' preset)", nargs="?"),
            opt("--preset", "a shipped preset instead of a file (see `cellsynth config list`)"),
            setting("--n", "dataset.n_samples", type=int), setting("--seed", "dataset.seed", type=_seed), "resume",
            *(parameter(flags, "synthesis.pipeline:generate_dataset")
              for flags in ("--out", "--workers", "--scheduler")),
            opt("--set", "change one config value, KEY=VALUE (e.g. --set volume.shape=[16,64,64] --set "
                         "optics.camera.photons=80); repeatable; checked like the YAML", type=_setting,
                action="append", metavar="KEY=VALUE", dest="settings")]


def setting(flags: str, key: str, schema: str = "config:Config", **settings) -> tuple[list[str], dict]:
    """An option that sets the config value ``key`` (its ``dest``): its help and shown default are the schema's
    (:func:`~cellsynth.config.config_field`), its choices those of a ``Literal`` field; not given, the config's
    value stands."""
    field = library("config:config_field")(key, library(schema))
    choices = typing.get_args(field.annotation) if typing.get_origin(field.annotation) is typing.Literal else None
    shown = {"choices": choices} if choices else {"metavar": key.rsplit(".")[-1].upper()}
    return opt(flags, f"{field.description}{_shown(field.default)}; sets {key}", dest=key, default=argparse.SUPPRESS,
               **{**shown, **settings})


def sampling() -> list:
    """The learned generators' options: the DDPM's sampling and the output units (generate, synthesize)."""
    return [setting("--sampler", "renderer.sampler"), setting("--steps", "renderer.steps", type=int),
            [setting("--t-start", "renderer.t_start", type=int),  # one of these
             setting("--strength", "renderer.strength", type=float), setting("--snr", "renderer.snr", type=float)],
            setting("--tile-batch", "patching.batch_size", type=int),
            setting("--units", "renderer.units")]


def settings_options(settings: type) -> list:
    """One option per field of a settings dataclass (:class:`~cellsynth.evaluate.settings.SegmenterSettings`),
    its help the field's ``metadata["help"]``, its default and type the dataclass's."""
    return [opt("--spacing" if f.name == "spacing_um" else "--" + f.name.replace("_", "-"),
                f.metadata["help"] + _shown(f.default), dest=f.name, default=argparse.SUPPRESS,
                **_argument_type(f.name, f.type, "")) for f in dataclasses.fields(settings)]


class Command(NamedTuple):
    """A command: its words, what runs it (a handler of :mod:`.commands`), its help, the library function it runs
    (``"module:name"``, handed to the handler as ``args.target``), its options, a description and fixed values.

    An option is a :data:`SHARED` name, a spec of one of ``target``'s parameters (:func:`parameter`), an option
    made by :func:`opt`, :func:`setting` or :func:`parameter`, a list of mutually exclusive ones, or a callable
    giving options (what reads the library is built only for the command that runs)."""

    words: str
    run: Callable
    help: str
    target: str | None = None
    options: list = []
    description: str | None = None
    fixed: dict = {}


GROUPS = {"config": "list, show and check YAML configs", "dataset": "create, import and verify dataset folders",
          "train": "train a generator on your own (unlabelled) images",
          "masks": "simulate annotations (no images) and fit shape models",
          "evaluate": "judge synthetic data: image realism, Syn2Real segmentation"}


def training_options() -> list:
    """What train gan and train ddpm take."""
    schema = "config.training:TrainConfig"
    return [opt("config", "training YAML (see README: data, masks, gan, ddpm) or a shipped training preset (ddpm-cpu: "
                          "learns texture on a 2-core CPU in 20 minutes)"),
            opt("--images", "training images (files, globs or one folder); replace the config's data.images",
                nargs="+"),
            opt("--out", "new run folder (or the one to --resume)", required=True, type=_path),
            opt("--resume", "continue the run in --out from its checkpoint", **FLAG),
            setting("--steps", "steps", schema, type=int), setting("--device", "device", schema)]


def generate_options() -> list:
    """generate: a run from a config, or --like your images."""
    like = "synthesis.pipeline:generate_like"
    return [*run_options(), opt("--like", "calibrate the physics renderer and the masks on your real image(s) first "
                                          "(see `cellsynth calibrate`); the calibrated preset goes into the dataset "
                                          "folder", nargs="+", metavar="IMAGE"),
            *(parameter(flags, like) for flags in ("--labels", "--spacing", "--kind")),
            opt("--refine", "also train a DDPM on the image(s) (CPU budget --minutes) and finish every physics render "
                            "with it; its run folder is OUT-refiner", **FLAG),
            parameter("--minutes", "training.refine:generate_refined_like"),
            setting("--renderer --generator", "renderer.name"), setting("--checkpoint", "renderer.checkpoint"),
            setting("--alpha", "renderer.alpha_um", type=_lengths, metavar="A[,A...]"), *sampling()]


MASKS = {"nuclei": "star-convex nuclei (spherical harmonics, ellipsoids or a shape model)",
         "membranes": "weighted-Voronoi cells with their membranes"}
COMMANDS = [
    Command("config list", handlers.config_list, "names of the shipped presets"),
    Command("config show", handlers.config_show, "print a shipped preset", options=[opt("preset", "preset name")]),
    Command("config check", handlers.config_check, "validate a YAML config file",
            options=[opt("file", "YAML config file")]),
    Command("dataset import", handlers.dataset_import,
            "make a dataset from existing image + label files (e.g. a real segmentation)", "dataset:import_dataset",
            ["out", "--images", "--labels", "--spacing", "output config", "resume"]),
    Command("dataset example", handlers.dataset_example,
            "make a dataset from real example data (needs cellsynth[examples])", "dataset:example_dataset",
            [opt("name", "cells3d: scikit-image's nuclei, 20 labelled", choices=["cells3d"]), "out", "output config",
             "resume"]),
    Command("dataset split", handlers.dataset_split, "cut every sample into two spatially disjoint datasets",
            "dataset.split:split_dataset",
            ["dataset:source", "--axis", "--fraction", lambda: [parameter("--out:first", "dataset.split:split_dataset",
                                                                          nargs=2, metavar=("FIRST", "SECOND"),
                                                                          dest="out")]],
            "Images, labels and optional volumes are cut along one axis; spacing and label ids are kept."),
    Command("dataset verify", handlers.dataset_verify,
            "check every sample's files against their SHA-256 (exit 1 if any is missing or corrupt)",
            options=["dataset"]),
    Command("generate", handlers.generate, "simulate masks and render images: an annotated dataset",
            "synthesis.pipeline:generate_dataset", [generate_options],
            "The main job: from a preset or YAML config to image + label pairs, manifest and previews. --labels, "
            "--spacing, --kind, --refine and --minutes go with --like."),
    *(Command(f"train {model}", handlers.train, help, f"training.loop:train_{model}", [training_options], text)
      for model, help, text in (
          ("gan", "the positionally-conditioned cGAN with adaptive discriminator augmentation",
           "Unpaired by default: real images plus simulated (or real) masks; checkpoint, log.csv and previews go to "
           "--out. Runs on a GPU when there is one (bf16), or under `accelerate launch`."),
          ("ddpm", "a DDPM on unlabelled images (no masks at all)",
           "ε-prediction DDPM (cosine schedule, EMA) on random patches of data.images; the sketch statistics for "
           "generation are fitted to the images. Same run folder layout as train gan."))),
    Command("calibrate", handlers.calibrate, "measure your real image(s) and write a preset that makes data like them",
            "synthesis.calibrate:calibrate_files",
            ["images", "--labels", "--spacing", opt("--out", "preset file to write (PRESET.yaml)", required=True,
                                                    type=_path),
             opt("--report", "folder for calibration.json and a real-vs-synthetic PNG", type=_path), "overwrite",
             lambda: [parameter(flags, "synthesis.calibrate:calibrate") for flags in ("--n:n_samples", "--kind")]],
            "Camera (photon transfer), background, attenuation, PSF, per-object brightness, rim, texture spectrum, "
            "nucleoli, and the masks' density, size, flattening and arrangement in z; each value in the YAML carries "
            "a comment saying how it was measured."),
    Command("synthesize", handlers.synthesize, "one image from a label volume (e.g. a real segmentation)",
            "synthesis.pipeline:render_labels_file",
            ["labels", "--out", "--overwrite", "--spacing", "--foreground", "--device",
             opt("--config", "preset name or YAML: render with its renderer (the physics renderer by default; e.g. "
                             "a `cellsynth calibrate` preset)"),
             opt("--seed", "ddpm: seed of the sketch and the noise", type=_seed, default=0),
             lambda: [setting("--checkpoint", "renderer.checkpoint"),
                      setting("--alpha", "renderer.alpha_um", type=_lengths, metavar="A"), *sampling()]],
            "A gan or ddpm --checkpoint renders on its own; a ddpm one with --config refines the config's physics "
            "render; --alpha takes one value."),
    *(Command(f"masks {kind}", handlers.masks_simulate, f"a masks-only dataset of {text}",
              "synthesis.pipeline:generate_dataset", [run_options], fixed={"kind": kind})
      for kind, text in MASKS.items()),
    Command("masks fit-ssm", handlers.masks_fit_ssm, "fit a statistical shape model to label volumes",
            "masks.ssm:fit_ssm_files",
            [lambda: [parameter("labels:paths", "masks.ssm:fit_ssm_files", nargs="*"),
                      *(parameter(flags, "masks.ssm:fit_ssm") for flags in ("--per", "--directions:n_directions"))],
             opt("--example", "fit scikit-image's cells3d nuclei (cellsynth[examples])", choices=["cells3d"]),
             opt("--out", "model file MODEL.npz (MODEL.json goes beside it)", required=True, type=_path),
             "overwrite", "--spacing", opt("--keep-border", "also fit objects cut by the volume border", **FLAG)],
            "Radii along quasi-uniform rays from each shape's centroid; mean, covariance, modes."),
    Command("diversify", handlers.diversify, "a robustness benchmark: each sample at increasing noise levels",
            "series:diversify_dataset",
            ["dataset:source", "--out", "--levels:w_v_levels", "--intensity-levels:w_i_levels",
             ["--neighbourhood:size", "--neighbourhood-um:size_um"], "--percentiles", "--seed", "resume",
             "allow_partial"],
            "Probabilistic diversification (clip(N(0,1)·w_v·σ_x + w_i·I_x, 0, 1)) of every sample at every (w_i, "
            "w_v) level; labels unchanged, PSNR per level in the manifest."),
    Command("evaluate images", handlers.evaluate_images,
            "compare a synthetic image with a real one (metrics.json + PNG plots)",
            "evaluate.images:evaluate_image_files",
            ["--real", "--synthetic", "--labels", "--spacing", "--normalization", "--out"],
            "Paired NRMSE/SSIM/ZNCC/PSNR (same shape: the synthetic image made from the real labels), whole volume "
            "and foreground, and unpaired histogram, spectra, depth and surface profiles."),
    Command("evaluate syn2real", handlers.evaluate_syn2real, "train a 3D segmenter on one dataset, test it on another",
            "evaluate.syn2real:syn2real",
            [opt("--train", "dataset folder to train on (e.g. synthetic); repeat it to mix sets (real first: "
                            "validation is taken from it)", required=True, type=_path, action="append"),
             "--test", "--out", lambda: settings_options(library("evaluate.settings:SegmenterSettings")),
             "--repeats", "--swap"],
            "A compact 3D U-Net (foreground + boundary, seeded watershed) trained with on-the-fly augmentation on "
            "--train and applied to --test with the patch engine; instance matching at IoU 0.1-0.9. Train on real "
            "data for the Real2Real baseline."),
    Command("evaluate baseline", handlers.evaluate_baseline,
            "the untrained classical segmentation to beat (Otsu + distance watershed)", "evaluate.baseline:baseline",
            ["--test", "--out", "--smoothing-um", "--min-seed-distance-um", "--min-volume-um3"],
            "Gaussian smoothing, Otsu's threshold, holes filled, seeds at the maxima of the distance map, watershed; "
            "every parameter in µm. Writes the same report.json as syn2real."),
    Command("evaluate realism", handlers.evaluate_realism,
            "can a classifier tell real from synthetic patches? (C2ST + statistics)",
            "evaluate.realism:evaluate_realism",
            ["--real", "--synthetic", "--out", "--steps", "--minutes", "--patch-um", "--spacing", "--seed", "--device",
             "--repeats"],
            "Trains a small 3D CNN on spatially disjoint halves; held-out accuracy 0.5 = cannot tell, 1.0 = "
            "trivially told apart."),
    Command("report", handlers.report_dataset, "a self-contained HTML page about a dataset (previews, plots)",
            "evaluate.report:write_report", ["dataset:root", "--out", "--overwrite"]),
    Command("export", handlers.export, "export a dataset for a segmentation tool", "dataset.exports:export_dataset",
            ["dataset", "--format:fmt", "--out", "--layout", "allow_partial"]),
]


def _add_options(parser: argparse.ArgumentParser, options: list, target: str | None) -> None:
    for option in options:
        if callable(option):  # a list of options, made now
            _add_options(parser, option(), target)
        elif isinstance(option, list):  # mutually exclusive
            _add_options(parser.add_mutually_exclusive_group(), option, target)
        else:
            if isinstance(option, str):
                option = SHARED[option] if option in SHARED else parameter(option, target)
            parser.add_argument(*option[0], **option[1])


def named_command(argv: Sequence[str]) -> str | None:
    """The command ``argv`` names (``"evaluate realism"``), or None: its first words that are not options."""
    words = [word for word in argv if not word.startswith("-")][:2]
    return next((c.words for c in COMMANDS if c.words in (" ".join(words[:1]), " ".join(words))), None)


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
    _add_options(parser, ["quiet"], None)
    top = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)
    groups = {}
    for command in COMMANDS:
        *group, name = command.words.split()
        if group and group[0] not in groups:
            groups[group[0]] = top.add_parser(group[0], help=GROUPS[group[0]]).add_subparsers(
                dest="action", required=True, metavar="ACTION", parser_class=_Parser)
        sub = (groups[group[0]] if group else top).add_parser(name, help=command.help,
                                                              description=command.description or command.help)
        if argv is None or command.words == only:
            _add_options(sub, command.options, command.target)
        _add_options(sub, ["quiet"], None)
        sub.set_defaults(func=command.run, target=command.target, **command.fixed)
    return parser
