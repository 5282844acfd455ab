"""One function per command: take the parsed arguments, call one library function, print what it made.

A handler returns nothing when it succeeds, or the exit status otherwise.

Library imports stay inside the functions, so ``cellsynth --help`` starts without torch.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from cellsynth.errors import InputError


def _report(dataset) -> None:
    counts = dataset.manifest["counts"]
    print(f"{dataset.root}: {counts['done']} of {len(dataset)} samples done")


def _one_or_all(paths: list) -> object:
    """One path as itself, several as the list (reports name a single input as it was given)."""
    return paths[0] if len(paths) == 1 else paths


def _optional_config(name: str | None):
    from cellsynth.config import Config, resolve_config

    return resolve_config(name) if name else Config()


def _run_config(args: argparse.Namespace, overrides: dict):
    """The config of a run: a YAML file or a preset (default 'default'), then the command-line flags."""
    from cellsynth.config import load_preset, resolve_config, with_overrides

    if args.config and args.preset:
        raise InputError("give a config file or --preset, not both")
    base = resolve_config(args.config) if args.config else load_preset(args.preset or "default")
    flags = {"dataset.n_samples": args.n, "dataset.seed": args.seed, **overrides}
    return with_overrides(base, {**dict(args.settings or []), **{k: v for k, v in flags.items() if v is not None}})


def _renderer_overrides(args: argparse.Namespace, model: str | None = None) -> dict:
    """The renderer flags as config overrides (generate and synthesize)."""
    return {"renderer.name": model or getattr(args, "renderer", None),
            "renderer.checkpoint": args.checkpoint and str(args.checkpoint),
            "renderer.alpha_um": args.alpha, "patching.batch_size": args.tile_batch,
            **{f"renderer.{key}": getattr(args, key) for key in ("sampler", "steps", "t_start", "strength", "snr",
                                                                   "units")}}


# ----------------------------------------------------------------------------- config and dataset


def config_list(args: argparse.Namespace) -> int | None:
    from cellsynth.config import preset_names

    print("\n".join(preset_names()))


def config_show(args: argparse.Namespace) -> int | None:
    from cellsynth.config import load_preset, preset_text

    load_preset(args.preset)  # a shipped preset must validate before we show it
    sys.stdout.write(preset_text(args.preset))


def config_check(args: argparse.Namespace) -> int | None:
    from cellsynth.config import load_config

    load_config(args.file)
    print(f"{args.file}: valid")


def dataset_import(args: argparse.Namespace) -> int | None:
    from cellsynth.dataset import import_dataset

    _report(import_dataset(args.out, args.images, args.labels, spacing=args.spacing, resume=args.resume,
                           output=_optional_config(args.config).dataset.output, progress=not args.quiet))


def dataset_example(args: argparse.Namespace) -> int | None:
    from cellsynth.dataset import example_dataset

    _report(example_dataset(args.out, output=_optional_config(args.config).dataset.output, resume=args.resume,
                            progress=not args.quiet))


def dataset_verify(args: argparse.Namespace) -> int | None:
    from cellsynth.dataset import Dataset

    dataset = Dataset.open(args.dataset)
    bad = dataset.pending()
    print(f"{dataset.root}: {len(dataset) - len(bad)} of {len(dataset)} samples verified"
          + (f"; to redo with --resume: {', '.join(dataset.name(i) for i in bad[:10])}"
             + (" ..." if len(bad) > 10 else "") if bad else ""))
    return 1 if bad else 0


def dataset_split(args: argparse.Namespace) -> int | None:
    from cellsynth.dataset.split import split_dataset

    for part in split_dataset(args.dataset, args.out[0], args.out[1], axis=args.axis, fraction=args.fraction,
                              progress=not args.quiet):
        _report(part)


# ----------------------------------------------------------------------------- masks, generate, calibrate


def masks_simulate(args: argparse.Namespace) -> int | None:
    from cellsynth.synthesis.pipeline import generate_dataset

    _report(generate_dataset(_run_config(args, {"masks.kind": args.kind}), args.out, resume=args.resume,
                             progress=not args.quiet, workers=args.workers, scheduler=args.scheduler))


def masks_fit_ssm(args: argparse.Namespace) -> int | None:
    from cellsynth.checks import check_output
    from cellsynth.masks.ssm import fit_ssm, fit_ssm_files

    if bool(args.labels) == bool(args.example):
        raise InputError("give label files or --example cells3d (one of the two)")
    if not str(args.out).endswith(".npz"):
        raise InputError(f"--out must name a .npz file (a .json goes beside it); got '{args.out}'")
    for path in (Path(args.out), Path(args.out).with_suffix(".json")):
        check_output(path, "shape model", folder=False, overwrite=args.overwrite, inputs=args.labels)
    options = {"per": args.per, "n_directions": args.directions, "exclude_border": not args.keep_border}
    if args.example:
        from cellsynth.examples import cells3d_nuclei

        _, labels, spacing = cells3d_nuclei()
        model = fit_ssm(labels, spacing, **options)
    else:
        model = fit_ssm_files(args.labels, args.spacing, **options)
    print(f"{model.save(args.out)}: {model.summary()}")


def generate(args: argparse.Namespace) -> int | None:
    from cellsynth.synthesis.pipeline import generate_dataset, generate_like, load_renderer

    if args.like is not None:
        if args.config or args.preset or args.renderer or args.checkpoint or args.settings:
            raise InputError("--like calibrates the physics renderer from your image; it takes no config, preset, "
                             "--set, renderer or checkpoint")
        given = {"kind": args.kind, "n_samples": args.n, "seed": args.seed, "minutes": args.minutes}
        options = {"labels": args.labels, "spacing": args.spacing, "resume": args.resume, "progress": not args.quiet,
                   "workers": args.workers, "scheduler": args.scheduler,
                   **{key: value for key, value in given.items() if value is not None}}  # else the library's defaults
        if args.refine:
            from cellsynth.training.refine import generate_refined_like, refiner_folder

            _report(generate_refined_like(args.like, args.out, **options))
            print(f"refiner: {refiner_folder(args.out) / 'checkpoint.safetensors'}")
        else:
            if args.minutes is not None:
                raise InputError("--minutes is the training budget of --refine")
            _report(generate_like(args.like, args.out, **options))
        print(f"calibrated preset: {Path(args.out) / 'calibration.yaml'}")
        return 0
    if args.labels or args.spacing or args.kind or args.refine or args.minutes is not None:
        raise InputError("--labels, --spacing, --kind, --refine and --minutes go with --like IMAGE")
    config = _run_config(args, _renderer_overrides(args))
    _report(generate_dataset(config, args.out, renderer=load_renderer(config), resume=args.resume,
                             progress=not args.quiet, workers=args.workers, scheduler=args.scheduler))
    if config.dataset.output.previews:
        print(f"previews: {Path(args.out) / 'previews'}")


def calibrate(args: argparse.Namespace) -> int | None:
    from cellsynth.checks import check_output, check_output_folder
    from cellsynth.evaluate.calibration import write_calibration_report
    from cellsynth.synthesis.calibrate import calibrate_files
    from cellsynth.synthesis.preset import write_calibration

    if not str(args.out).endswith((".yaml", ".yml")):
        raise InputError(f"--out must name a .yaml file; got '{args.out}'")
    check_output(args.out, "preset", folder=False, overwrite=args.overwrite,
                 inputs=[*args.images, *(args.labels or [])])
    if args.report is not None:
        check_output_folder(args.report)
    calibration = calibrate_files(args.images, args.labels, args.spacing, kind=args.kind, n_samples=args.n,
                                  progress=not args.quiet)
    write_calibration(calibration, args.out, sources=args.images)  # first: a failing report keeps the preset
    print(f"{args.out}: {calibration.summary()}; `cellsynth generate {args.out} --out DIR` makes data like it")
    if args.report is not None:
        write_calibration_report(calibration, calibration.config.volume.spacing_um, args.report)
        print(f"report: {args.report}")


def synthesize(args: argparse.Namespace) -> int | None:
    from cellsynth.checkpoints import read_checkpoint_info
    from cellsynth.config import with_overrides
    from cellsynth.synthesis.pipeline import render_labels_file

    if args.checkpoint is None and args.config is None:
        raise InputError("give --checkpoint (a trained gan or ddpm), --config (a preset or YAML: its renderer, "
                         "the physics renderer by default), or both (a physics preset refined by a ddpm)")
    model = read_checkpoint_info(args.checkpoint)["model"] if args.checkpoint else None
    if args.checkpoint and args.config:
        if model != "ddpm":
            raise InputError(f"--config with --checkpoint refines the preset's physics render with a ddpm; "
                             f"'{args.checkpoint}' is a {model} checkpoint")
        model = "refine"
    if args.alpha is not None and (len(args.alpha) != 1 or model != "gan"):
        raise InputError("--alpha takes one value (synthesize makes one image) and a gan checkpoint")
    config = with_overrides(_optional_config(args.config), _renderer_overrides(args, model))
    image = render_labels_file(args.labels, args.out, config, spacing=args.spacing, foreground=args.foreground,
                               device=args.device, rng=args.seed, overwrite=args.overwrite)
    print(f"image: {image}")


def train(args: argparse.Namespace) -> int | None:
    from cellsynth.config import resolve_training_config, with_overrides
    from cellsynth.training.loop import train_ddpm, train_gan
    from cellsynth.training.runs import end_processes

    config = with_overrides(resolve_training_config(args.config, args.images),
                            {"steps": args.steps, "device": args.device})
    checkpoint = (train_gan if args.action == "gan" else train_ddpm)(config, args.out, resume=args.resume,
                                                                     progress=not args.quiet)
    end_processes()
    print(f"checkpoint: {checkpoint}")


# ----------------------------------------------------------------------------- export, diversify, evaluate


def export(args: argparse.Namespace) -> int | None:
    from cellsynth.dataset.exports import export_dataset

    out = export_dataset(args.dataset, args.format, args.out, layout=args.layout,
                         allow_partial=args.allow_partial, progress=not args.quiet)
    print(f"exported {args.dataset} as {args.format} to {out}")


def diversify(args: argparse.Namespace) -> int | None:
    from cellsynth.series import diversify_dataset

    if args.neighbourhood is not None and args.neighbourhood_um is not None:
        raise InputError("give --neighbourhood (voxels) or --neighbourhood-um, not both")
    dataset = diversify_dataset(args.dataset, args.out, w_v_levels=args.levels, w_i_levels=args.intensity_levels,
                                size=args.neighbourhood, size_um=args.neighbourhood_um, percentiles=args.percentiles,
                                seed=args.seed, resume=args.resume, allow_partial=args.allow_partial,
                                progress=not args.quiet)
    _report(dataset)
    for level in dataset.manifest["levels"]:
        score = level["mean_psnr_db"]
        print(f"w_i {level['w_i']:g}, w_v {level['w_v']:g}: mean PSNR "
              + ("inf (unchanged)" if score is None else f"{score:.2f} dB"))


def evaluate_images(args: argparse.Namespace) -> int | None:
    from cellsynth.evaluate.images import evaluate_image_files

    result = evaluate_image_files(args.real, args.synthetic, args.out, labels=args.labels, spacing=args.spacing,
                                  normalization=args.normalization)
    for region, values in (result["paired"] or {}).items():
        if isinstance(values, dict):
            print(f"{region:>10}: " + ", ".join(f"{k} {v:.4g}" if v is not None else f"{k} inf"
                                                for k, v in values.items()))
    print(f"metrics and plots: {args.out}")


def report_dataset(args: argparse.Namespace) -> int | None:
    from cellsynth.evaluate.report import write_report

    print(f"report: {write_report(args.dataset, args.out, overwrite=args.overwrite)}")


def settings_given(args: argparse.Namespace, settings: type) -> dict:
    """The fields of ``settings`` given on the command line."""
    return {f.name: getattr(args, f.name) for f in dataclasses.fields(settings) if hasattr(args, f.name)}


def evaluate_syn2real(args: argparse.Namespace) -> int | None:
    from cellsynth.evaluate.settings import SegmenterSettings
    from cellsynth.evaluate.syn2real import syn2real, syn2real_summary

    settings = SegmenterSettings(**settings_given(args, SegmenterSettings))
    print(syn2real_summary(syn2real(_one_or_all(args.train), args.test, args.out, settings, repeats=args.repeats,
                                    swap=args.swap, progress=not args.quiet)))
    print(f"report: {Path(args.out) / 'report.json'}")


def evaluate_baseline(args: argparse.Namespace) -> int | None:
    from cellsynth.evaluate.baseline import baseline
    from cellsynth.evaluate.segmentation import matching_summary

    print(matching_summary(baseline(args.test, args.out, smoothing_um=args.smoothing_um,
                             min_seed_distance_um=args.min_seed_distance_um, min_volume_um3=args.min_volume_um3)))
    print(f"report: {Path(args.out) / 'report.json'}")


def evaluate_realism(args: argparse.Namespace) -> int | None:
    from cellsynth.evaluate.realism import evaluate_realism, realism_summary

    report = evaluate_realism(_one_or_all(args.real), _one_or_all(args.synthetic), args.out, spacing=args.spacing,
                              patch_um=args.patch_um, steps=args.steps, minutes=args.minutes, seed=args.seed,
                              device=args.device, repeats=args.repeats, progress=not args.quiet)
    print(realism_summary(report))
    print(f"realism.json and plots: {args.out}")
