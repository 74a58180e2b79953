"""The `libkd` command: one subcommand per step of LIB-KD, and `pipeline` for all of them.

    libkd pipeline --preset quick                  # teachers -> store -> students -> export -> report
    libkd pipeline --preset budget --dataset /data/cifar10-jpeg  # offline: a class-folder tree
    libkd distill --preset quick --set student.alpha=0.3 --name quick-alpha03
    libkd report saved_models/quick

Every step command resolves the same configuration (preset, then `--config`, then flags) and
works in the same run folder, so `train-teacher`, `precompute`, `distill`, `evaluate`, `export`
run the pipeline one step at a time; each skips what is already finished. Bad input (unknown
preset or key, missing data, a folder holding another run) is one paragraph on stderr and exit
code 2; an interruption is exit code 130 and the same command resumes.

TensorFlow is imported only once a command needs it, with its start-up noise hidden unless
`--verbose`; `--help` and `report` never import it.
"""

import contextlib
import io
import json
import sys
import traceback
from pathlib import Path

from libkd_keras.cli import precompute as precompute_options
from libkd_keras.cli.parser import (  # noqa: F401 - COMMANDS and the exit codes are part of the CLI's API
    COMMANDS,
    DEFAULT_PRESET,
    DEFAULT_ROOT,
    EXIT_BAD_INPUT,
    EXIT_INTERRUPTED,
    FLAG_KEYS,
    RUN_COMMANDS,
    build_parser,
    run_options_parser,
)
from libkd_keras.cli.quiet import import_pipeline, native_stderr_silenced, quiet_tensorflow
from libkd_keras.pipeline.config import resolve_config
from libkd_keras.pipeline.config_text import to_toml
from libkd_keras.pipeline.schema import ConfigError

# ---------------------------------------------------------------------------------------------
# Configuration and run folder


def flag_overrides(args):
    """`section.key=value` strings for the convenience flags that were given."""
    overrides = []
    for dest, keys in FLAG_KEYS.items():
        value = getattr(args, dest, None)
        if value is not None:
            text = json.dumps(value) if isinstance(value, str) else str(value)  # a TOML value
            overrides += [f"{key}={text}" for key in keys]
    return overrides


def config_from_out(args):
    """The config stored in the run folder `--out`, or None."""
    from libkd_keras.pipeline.run_folder import load_run_config

    return load_run_config(args.out) if args.out else None


def resolve_run(args):
    """`(config, run_dir)` for a run command; see `--preset` for where the config comes from."""

    overrides = flag_overrides(args) + list(args.overrides)
    stored = config_from_out(args)
    teachers = getattr(args, "teachers", [])  # --teacher [NAME=]PATH
    if stored is not None and args.preset is None and args.config is None:
        config = resolve_config(base=stored, overrides=overrides, teachers=teachers)
    else:
        config = resolve_config(
            preset=args.preset or DEFAULT_PRESET, config_file=args.config, overrides=overrides, teachers=teachers
        )
    run_dir = Path(args.out) if args.out else Path(DEFAULT_ROOT) / config["run"]["name"]
    return config, run_dir


def _run_in_folder(args, run_step, shared=False):
    """Resolves the config, checks everything it can, locks the run folder and runs `run_step(pipeline, args)`.

    Nothing is written, and `--overwrite` moves no old run aside, until every check that needs no
    training has passed: first the ones that need no TensorFlow (data path, `--teachers-from`, the
    output folder: all named in one message), then the data, the student's model and store.views.
    `shared`: open the run folder beside other workers instead (sharded precompute; no lock).
    """
    config, run_dir = resolve_run(args)
    if args.print_config:
        print(to_toml(config))
        return
    from libkd_keras.pipeline.run_folder import RunFolder, check_before_start

    check_before_start(config, run_dir, overwrite=args.overwrite)  # before TensorFlow is imported
    from libkd_keras.distribute import make_strategy

    strategy = make_strategy(getattr(args, "strategy", "default"))  # a bad TF_CONFIG fails here, first
    runner = import_pipeline(args.verbose)
    data = runner.RunData(runner.Config.from_dict(config))
    runner.prepare(config, data, run_dir)  # bad data, student model or store.views: before the folder is touched
    if shared:
        from libkd_keras.pipeline.store import open_shared

        opened = open_shared(run_dir, config)
    else:
        opened = RunFolder.open(run_dir, config, overwrite=args.overwrite)
    with opened as folder, strategy.scope():
        if folder.replaced:
            print(
                f"libkd: moved the run that was in {str(folder.root)!r} aside to {str(folder.replaced)!r}; it is "
                "deleted once this run finishes its first step (to keep it, stop this run before then, delete "
                f"{str(folder.root)!r} and rename {str(folder.replaced)!r} back)"
            )
        pipeline = runner.Pipeline(folder, config, data=data)  # models and optimizers: in the scope
        print(f"libkd: run folder {folder.root}")
        pipeline.load_data()  # loaded and checked above: no work
        pipeline.notice_damaged()  # model files damaged since their step finished: those steps run again
        run_step(pipeline, args)


# ---------------------------------------------------------------------------------------------
# Commands


def _step_command(run_step):
    """A handler that runs one step of the run's pipeline: `run_step(pipeline, args)`."""
    return lambda args: _run_in_folder(args, run_step)


_cmd_train_teacher = _step_command(lambda pipeline, args: pipeline.train_teachers(only=args.only))
_cmd_distill = _step_command(lambda pipeline, args: pipeline.distill(only=args.student))
_cmd_evaluate = _step_command(lambda pipeline, args: pipeline.evaluate(only=args.student))
_cmd_export = _step_command(lambda pipeline, args: pipeline.export(student=args.student))
_cmd_pipeline = _step_command(lambda pipeline, args: pipeline.run_all())


def _cmd_precompute(args):
    precompute_options.check_args(args)
    _run_in_folder(args, precompute_options.run_step, shared=precompute_options.is_shared(args))


def _cmd_ablate(args):
    if args.ablation_epochs is not None and args.ablation_epochs < 1:
        raise ConfigError(f"--ablation-epochs must be >= 1; got {args.ablation_epochs}.")
    _run_in_folder(
        args,
        lambda pipeline, args: pipeline.ablate(
            experiments=args.experiments, seeds=args.seeds, epochs=args.ablation_epochs, recipes=args.recipes
        ),
    )


def _cmd_analyze(args):
    from libkd_keras.pipeline.run_folder import RunFolder, load_run_config

    config = load_run_config(_existing_run(args.run_dir))
    if args.max_images < 2:
        raise ConfigError(f"--max-images must be >= 2; got {args.max_images}.")
    with RunFolder.open(Path(args.run_dir), config) as folder:
        import_pipeline(args.verbose).Pipeline(folder, config).analyze(max_images=args.max_images)


def _existing_run(run_dir):
    run_dir = Path(run_dir)
    if not (run_dir / "config.toml").is_file():
        raise ConfigError(
            f"{str(run_dir)!r} is not a libkd run folder (no config.toml); pass the folder a "
            "'libkd pipeline' run wrote, e.g. saved_models/quick."
        )
    return run_dir


def _cmd_report(args):
    from libkd_keras.analysis.report import write_report

    run_dir = _existing_run(args.run_dir)
    if args.summary_command and not args.summary_json:
        raise ConfigError("--command is what --summary-json records; pass --summary-json PATH with it.")
    summary = write_report(run_dir)
    print(summary.table)
    print(f"libkd: wrote {summary.path}")
    if args.summary_json:
        from libkd_keras.analysis.report.summary import write_summary

        write_summary(run_dir, args.summary_json, command=args.summary_command)
        print(f"libkd: wrote {args.summary_json}")


HANDLERS = {
    "train-teacher": _cmd_train_teacher,
    "precompute": _cmd_precompute,
    "distill": _cmd_distill,
    "evaluate": _cmd_evaluate,
    "export": _cmd_export,
    "pipeline": _cmd_pipeline,
    "report": _cmd_report,
    "ablate": _cmd_ablate,
    "analyze": _cmd_analyze,
}


# ---------------------------------------------------------------------------------------------
# Entry point


def _help_config(argv):
    """`(config, label)` that a run command's `--help` shows the values of, or `(None, None)`.

    The config the same command line would run with (`resolve_run`: the preset, `--config`, flags,
    `--set`, or the config stored in `--out`); the schema's defaults where it cannot be resolved.
    """
    if not argv or argv[0] not in RUN_COMMANDS or not {"-h", "--help"} & set(argv):
        return None, None
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            known, _ = run_options_parser().parse_known_args(argv[1:])
        config, _ = resolve_run(known)
    except (SystemExit, ConfigError):
        return None, None
    if known.preset is None and known.config is None and config_from_out(known) is not None:
        label = f"the run in {known.out}"
    else:
        label = f"the {known.preset or DEFAULT_PRESET} preset" + (f" with {known.config}" if known.config else "")
    if flag_overrides(known) or known.overrides:
        label += " and the flags given"
    return config, label


def main(argv=None):
    """Runs `libkd` with `argv` (default: sys.argv[1:]); returns the exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(*_help_config(argv))
    args = parser.parse_args(argv)
    args.handler = HANDLERS[args.command]
    quiet_tensorflow(args.verbose)
    try:
        with native_stderr_silenced(enabled=not args.verbose):
            args.handler(args)
    except KeyboardInterrupt:
        print("\nlibkd: interrupted; run the same command again to resume where it stopped.", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (ConfigError, ValueError, FileNotFoundError, NotADirectoryError) as error:
        # Bad input: DataError, store/Distiller/export argument errors, missing files.
        if args.verbose:
            traceback.print_exc()
        message = " ".join(str(error).split()) or type(error).__name__
        hint = "" if args.verbose else " (add --verbose for the traceback)"
        print(f"libkd {args.command}: error: {message}{hint}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
