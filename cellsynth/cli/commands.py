"""One function per command: call the library with the parsed arguments, print what it made.

A handler returns nothing when it succeeds, or the exit status otherwise. The library is imported
inside the functions, so ``cellsynth --help`` starts without torch.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import sys
from pathlib import Path

from cellsynth.errors import InputError


def library(target: str):
    """``"module:name"`` → the library's object, imported only when a command that shows or runs it is built:
    ``cellsynth --help`` imports none of the library."""
    module, name = target.split(":")
    return getattr(importlib.import_module(f"cellsynth.{module}"), name)


def call(target: str, args: argparse.Namespace, **given):
    """Run the library function ``target`` with ``given`` and the arguments named like its parameters; one that
    is None or absent keeps the library's default; progress bars unless --quiet."""
    function = library(target)
    values = {"progress": not args.quiet, **vars(args)}
    named = {key: values.get(key) for key in inspect.signature(function).parameters if key not in given}
    return function(**{key: value for key, value in {**named, **given}.items() if value is not None})


def _one_or_all(paths: list) -> object:
    """One path as itself, several as the list (reports name a single input as it was given)."""
    return paths[0] if len(paths) == 1 else paths


def config_list(args: argparse.Namespace) -> int | None:
    print("\n".join(library("config:preset_names")()))


def config_show(args: argparse.Namespace) -> int | None:
    library("config:load_preset")(args.preset)  # a shipped preset must validate before we show it
    sys.stdout.write(library("config:preset_text")(args.preset))


def config_check(args: argparse.Namespace) -> int | None:
    library("config:load_config")(args.file)
    print(f"{args.file}: valid")


def dataset_import(args: argparse.Namespace) -> int | None:
    print(call(args.target, args, output=_config(args).dataset.output).summary())


def dataset_example(args: argparse.Namespace) -> int | None:
    print(call(args.target, args, output=_config(args).dataset.output).summary())


def dataset_verify(args: argparse.Namespace) -> int | None:
    dataset = library("dataset:Dataset").open(args.dataset)
    bad = dataset.pending()
    print(f"{dataset.root}: {len(dataset) - len(bad)} of {len(dataset)} samples verified"
          + (f"; to redo with --resume: {', '.join(dataset.name(i) for i in bad[:10])}"
             + (" ..." if len(bad) > 10 else "") if bad else ""))
    return 1 if bad else 0


def dataset_split(args: argparse.Namespace) -> int | None:
    for part in call(args.target, args, first=args.out[0], second=args.out[1]):
        print(part.summary())


def _config(args: argparse.Namespace, fixed: dict | None = None):
    """The config of a run: a YAML file or a preset, then --set, then the options that set a config value (their
    ``dest`` is its dotted key), then ``fixed``."""
    from cellsynth.config import Config, load_preset, resolve_config, with_overrides

    preset = getattr(args, "preset", None)
    if preset and args.config:
        raise InputError("give a config file or --preset, not both")
    if args.config:
        base = resolve_config(args.config)
    else:  # generate and masks start from the 'default' preset, synthesize from the schema's defaults
        base = load_preset(preset or "default") if hasattr(args, "preset") else Config()
    return with_overrides(base, {**dict(getattr(args, "settings", None) or []),
                                 **{key: value for key, value in vars(args).items() if "." in key}, **(fixed or {})})


def masks_simulate(args: argparse.Namespace) -> int | None:
    config = _config(args, {"masks.kind": args.kind})
    print(call(args.target, args, config=config).summary())


def masks_fit_ssm(args: argparse.Namespace) -> int | None:
    from cellsynth.checks import check_output

    if bool(args.paths) == bool(args.example):
        raise InputError("give label files or --example cells3d (one of the two)")
    if not str(args.out).endswith(".npz"):
        raise InputError(f"--out must name a .npz file (a .json goes beside it); got '{args.out}'")
    for path in (Path(args.out), Path(args.out).with_suffix(".json")):
        check_output(path, "shape model", folder=False, overwrite=args.overwrite, inputs=args.paths)
    options = {"exclude_border": not args.keep_border, "per": vars(args).get("per"),
               "n_directions": vars(args).get("n_directions")}
    if args.example:
        _, labels, spacing = library("examples:cells3d_nuclei")()
        model = call("masks.ssm:fit_ssm", args, volumes=labels, spacing=spacing, **options)
    else:
        model = call(args.target, args, **options)
    print(f"{model.save(args.out)}: {model.summary()}")


def generate(args: argparse.Namespace) -> int | None:
    if args.like is None:
        if args.refine or {"labels", "spacing", "kind", "minutes"} & vars(args).keys():
            raise InputError("--labels, --spacing, --kind, --refine and --minutes go with --like IMAGE")
        config = _config(args)
        renderer = library("synthesis.pipeline:load_renderer")(config)
        print(call(args.target, args, config=config, renderer=renderer).summary())
        if config.dataset.output.previews:
            print(f"previews: {Path(args.out) / 'previews'}")
        return 0
    flags = vars(args)
    if args.config or args.preset or args.settings or any(key.startswith(("renderer.", "patching.")) for key in flags):
        raise InputError("--like calibrates the physics renderer from your image; it takes no config, preset, "
                         "--set or renderer option")
    given = {"n_samples": flags.get("dataset.n_samples"), "seed": flags.get("dataset.seed")}
    if args.refine:
        print(call("training.refine:generate_refined_like", args, images=args.like, **given).summary())
        print(f"refiner: {library('training.refine:refiner_folder')(args.out) / 'checkpoint.safetensors'}")
    elif "minutes" in vars(args):
        raise InputError("--minutes is the training budget of --refine")
    else:
        print(call("synthesis.pipeline:generate_like", args, images=args.like, **given).summary())
    print(f"calibrated preset: {Path(args.out) / 'calibration.yaml'}")


def calibrate(args: argparse.Namespace) -> int | None:
    from cellsynth.checks import check_output, check_output_folder

    if not str(args.out).endswith((".yaml", ".yml")):
        raise InputError(f"--out must name a .yaml file; got '{args.out}'")
    check_output(args.out, "preset", folder=False, overwrite=args.overwrite,
                 inputs=[*args.images, *vars(args).get("labels", [])])
    if args.report is not None:
        check_output_folder(args.report)
    calibration = call(args.target, args, kind=vars(args).get("kind"), n_samples=vars(args).get("n_samples"),
                       progress=not args.quiet)
    library("synthesis.preset:write_calibration")(calibration, args.out, sources=args.images)  # a failing report
    print(f"{args.out}: {calibration.summary()}; `cellsynth generate {args.out} --out DIR` makes data like it")
    if args.report is not None:  # ... keeps the preset
        library("evaluate.calibration:write_calibration_report")(calibration, calibration.config.volume.spacing_um,
                                                                 args.report)
        print(f"report: {args.report}")


def synthesize(args: argparse.Namespace) -> int | None:
    checkpoint, alpha = vars(args).get("renderer.checkpoint"), vars(args).get("renderer.alpha_um")
    if checkpoint is None and args.config is None:
        raise InputError("give --checkpoint (a trained gan or ddpm), --config (a preset or YAML: its renderer, "
                         "the physics renderer by default), or both (a physics preset refined by a ddpm)")
    model = library("checkpoints:read_checkpoint_info")(checkpoint)["model"] if checkpoint else None
    if checkpoint and args.config:
        if model != "ddpm":
            raise InputError(f"--config with --checkpoint refines the preset's physics render with a ddpm; "
                             f"'{checkpoint}' is a {model} checkpoint")
        model = "refine"
    if alpha is not None and (len(alpha) != 1 or model != "gan"):
        raise InputError("--alpha takes one value (synthesize makes one image) and a gan checkpoint")
    config = _config(args, {"renderer.name": model} if model else {})
    print(f"image: {call(args.target, args, config=config, rng=args.seed)}")


def train(args: argparse.Namespace) -> int | None:
    from cellsynth.config import resolve_training_config, with_overrides

    given = {key: value for key, value in vars(args).items() if key in ("steps", "device")}
    config = with_overrides(resolve_training_config(args.config, args.images), given)
    checkpoint = call(args.target, args, config=config, images=None)  # in the config
    library("training.runs:end_processes")()
    print(f"checkpoint: {checkpoint}")


def export(args: argparse.Namespace) -> int | None:
    print(f"exported {args.dataset} as {args.fmt} to {call(args.target, args)}")


def diversify(args: argparse.Namespace) -> int | None:
    print(call(args.target, args).summary())


def evaluate_images(args: argparse.Namespace) -> int | None:
    print(library("evaluate.images:paired_summary")(call(args.target, args)))
    print(f"metrics and plots: {args.out}")


def report_dataset(args: argparse.Namespace) -> int | None:
    print(f"report: {call(args.target, args)}")


def evaluate_syn2real(args: argparse.Namespace) -> int | None:
    settings = library("evaluate.settings:SegmenterSettings")
    given = {key: value for key, value in vars(args).items() if key in settings.__dataclass_fields__}
    report = call(args.target, args, train=_one_or_all(args.train), settings=settings(**given))
    print(library("evaluate.syn2real:syn2real_summary")(report))
    print(f"report: {Path(args.out) / 'report.json'}")


def evaluate_baseline(args: argparse.Namespace) -> int | None:
    print(library("evaluate.segmentation:matching_summary")(call(args.target, args)))
    print(f"report: {Path(args.out) / 'report.json'}")


def evaluate_realism(args: argparse.Namespace) -> int | None:
    report = call(args.target, args, real=_one_or_all(args.real),
                  synthetic=_one_or_all(args.synthetic))
    print(library("evaluate.realism:realism_summary")(report))
    print(f"realism.json and plots: {args.out}")
