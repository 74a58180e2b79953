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

import argparse
import contextlib
import io
import json
import logging
import os
import sys
import traceback
import warnings
from pathlib import Path

from libkd_keras.cli.config import (
    PRECISION_CHOICES, ConfigError, available_presets, describe_options, resolve_config, to_toml,
)

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130
DEFAULT_PRESET = "quick"
DEFAULT_ROOT = "saved_models"

# Convenience flags and the config keys each one sets (applied before --set).
FLAG_KEYS = {
    "dataset": ["data.dataset"],
    "data_dir": ["data.data_dir"],
    "image_size": ["data.image_size"],
    "train_limit": ["data.train_limit"],
    "test_limit": ["data.test_limit"],
    "epochs": ["teachers.epochs", "teachers.resnet_epochs", "teachers.rednet_epochs", "student.epochs"],
    "teacher_epochs": ["teachers.epochs", "teachers.resnet_epochs", "teachers.rednet_epochs"],
    "student_epochs": ["student.epochs"],
    "batch_size": ["teachers.batch_size", "student.batch_size"],
    "precision": ["run.precision"],
    "seed": ["run.seed"],
    "name": ["run.name"],
}


# ---------------------------------------------------------------------------------------------
# Parser


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    def __init__(self, prog):
        super().__init__(prog, max_help_position=34, width=100)


def _common_options():
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--verbose", action="store_true",
                        help="show TensorFlow's start-up messages and full tracebacks (default: off)")
    return parent


def _run_options():
    """Options shared by every command that works in a run folder."""
    parent = argparse.ArgumentParser(add_help=False)
    config = parent.add_argument_group("configuration (applied in this order)")
    config.add_argument(
        "--preset", metavar="NAME",
        help=f"shipped preset: {', '.join(available_presets())} (default: {DEFAULT_PRESET}, or the "
             "config stored in --out when it holds a run and neither --preset nor --config is given)",
    )
    config.add_argument("--config", metavar="FILE",
                        help="your own TOML file, merged over the preset (default: none)")
    config.add_argument("--set", metavar="KEY=VALUE", action="append", default=[], dest="overrides",
                        help="override one key, e.g. --set student.alpha=0.3 or --set "
                             "students.ensemble.recipe=superior; repeatable (default: none)")
    config.add_argument("--print-config", action="store_true",
                        help="print the resolved configuration as TOML and exit (default: off)")
    data = parent.add_argument_group("data")
    data.add_argument("--dataset", metavar="NAME|PATH",
                      help="cifar10, tf_flowers, or a class-folder tree / CIFAR-10 tarball path "
                           "(default: the preset's data.dataset, cifar10)")
    data.add_argument("--data-dir", metavar="DIR",
                      help="tensorflow-datasets data dir with prepared data, for offline machines "
                           "(default: the preset's data.data_dir, tfds' own)")
    data.add_argument("--image-size", type=int, metavar="N",
                      help="resize images to N x N; 0 keeps the source size (default: data.image_size, 32)")
    data.add_argument("--train-limit", type=int, metavar="N",
                      help="use N training images for the student; 0 = all (default: data.train_limit)")
    data.add_argument("--test-limit", type=int, metavar="N",
                      help="use N test images; 0 = all (default: data.test_limit)")
    training = parent.add_argument_group("training")
    training.add_argument("--epochs", type=int, metavar="N",
                          help="epochs of every teacher and student (default: teachers.epochs, student.epochs)")
    training.add_argument("--teacher-epochs", type=int, metavar="N",
                          help="epochs of every teacher (default: teachers.epochs, or the family's "
                               "teachers.resnet_epochs / rednet_epochs)")
    training.add_argument("--student-epochs", type=int, metavar="N",
                          help="epochs of each student (default: student.epochs)")
    training.add_argument("--batch-size", type=int, metavar="N",
                          help="batch size of teachers and students (default: 128 in every preset)")
    training.add_argument("--precision", choices=PRECISION_CHOICES,
                          help="compute precision; auto = mixed_bfloat16 where the CPU/GPU has bf16 units "
                               "(default: run.precision)")
    training.add_argument("--seed", type=int, metavar="N", help="run seed (default: run.seed, 0)")
    output = parent.add_argument_group("output")
    output.add_argument("--out", metavar="DIR",
                        help=f"run folder (default: {DEFAULT_ROOT}/<run name>)")
    output.add_argument("--name", metavar="NAME",
                        help="run name, i.e. the folder under saved_models/ (default: the preset's "
                             "name, or the --config file's name)")
    output.add_argument("--overwrite", action="store_true",
                        help="if --out holds a run with a different config, delete it and start again "
                             "(default: refuse)")
    return parent


COMMANDS = {
    "train-teacher": "train the configured ResNet-26 / RedNet-26 teachers (one per seed)",
    "precompute": "run every teacher once over the train and test splits and store their logits",
    "distill": "train the configured students from the stored teacher labels (and the baseline)",
    "evaluate": "evaluate the trained students on the test split (average, class and distillation heads)",
    "export": "export a student to LiteRT (float32, float16, dynamic, int8, int8_mixed) and measure it",
    "pipeline": "train teachers, precompute the store, distil, evaluate, export, report; rerun to resume",
    "report": "(re)write report.md, the plots and the summary table from a run folder's artifacts",
    "ablate": "Table 4's teacher sets and Figure 11's hard/soft/temperature runs from the run's one store",
    "analyze": "linear CKA between the layers of every trained model (paper Figures 1-2), into the report",
}


def build_parser():
    """The `libkd` argument parser (no TensorFlow import)."""
    common, run = _common_options(), _run_options()
    parser = argparse.ArgumentParser(
        prog="libkd", formatter_class=_HelpFormatter,
        description="LIB-KD: distil the inductive bias of cheap CNN (ResNet-26) and involution (RedNet-26) "
                    "teachers into a DeiT student through one distillation token, from teacher logits "
                    "computed once and stored; export the student to LiteRT.",
        epilog="Start with:  libkd pipeline --preset quick   (add --dataset PATH on offline machines)\n"
               "Run 'libkd <command> --help' for a command's options.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def add(name, parents, epilog="", **kwargs):
        return sub.add_parser(name, parents=parents, help=COMMANDS[name], description=COMMANDS[name] + ".",
                              epilog=epilog, formatter_class=_HelpFormatter, **kwargs)

    config_epilog = ("configuration keys (section.key = default -- meaning); set any with --set:\n"
                     + describe_options())
    p = add("train-teacher", [common, run], config_epilog)
    p.add_argument("--only", metavar="TEACHER", action="append", default=[],
                   help="train only this teacher, e.g. resnet26_s0; repeatable (default: all configured)")
    p.set_defaults(handler=_cmd_train_teacher)

    p = add("precompute", [common, run], config_epilog)
    p.add_argument("--split", choices=("train", "test"), action="append", default=[],
                   help="store only this split; repeatable (default: train and test)")
    p.set_defaults(handler=_cmd_precompute)

    p = add("distill", [common, run], config_epilog)
    p.add_argument("--student", metavar="NAME", action="append", default=[],
                   help="train only this [[students]] entry; repeatable (default: all configured)")
    p.set_defaults(handler=_cmd_distill)

    p = add("evaluate", [common, run], config_epilog)
    p.add_argument("--student", metavar="NAME", action="append", default=[],
                   help="evaluate only this student; repeatable (default: all trained)")
    p.set_defaults(handler=_cmd_evaluate)

    p = add("export", [common, run], config_epilog)
    p.add_argument("--student", metavar="NAME",
                   help="student to export (default: export.student, or the best distilled student)")
    p.set_defaults(handler=_cmd_export)

    p = add("pipeline", [common, run], config_epilog)
    p.set_defaults(handler=_cmd_pipeline)

    p = add("ablate", [common, run], config_epilog)
    p.add_argument("--experiments", choices=("table4", "figure11", "all"), default="table4",
                   help="which comparisons: Table 4's teacher sets, Figure 11's hard vs soft distillation and "
                        "temperature sweep, or both (default: table4)")
    p.add_argument("--recipes", nargs="+", choices=("baseline", "superior"), default=["baseline", "superior"],
                   help="student recipes of the Table 4 runs (default: baseline superior)")
    p.add_argument("--seeds", nargs="+", type=int, default=[0], metavar="N",
                   help="one student per seed; gains get their spread over seeds (default: 0)")
    p.add_argument("--ablation-epochs", type=int, metavar="N",
                   help="epochs of every ablation student (default: the run's student.epochs)")
    p.set_defaults(handler=_cmd_ablate)

    p = add("analyze", [common])
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run folder with trained models (required)")
    p.add_argument("--max-images", type=int, default=512, metavar="N",
                   help="test images the representations are computed on (default: 512)")
    p.set_defaults(handler=_cmd_analyze)

    p = add("report", [common])
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run folder, e.g. saved_models/quick (required)")
    p.set_defaults(handler=_cmd_report)
    return parser


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


def resolve_run(args):
    """`(config, run_dir)` for a run command; see `--preset` for where the config comes from."""
    from libkd_keras.cli.run_folder import load_run_config

    overrides = flag_overrides(args) + list(args.overrides)
    stored = load_run_config(args.out) if args.out else None
    if stored is not None and args.preset is None and args.config is None:
        config = resolve_config(base=stored, overrides=overrides)
    else:
        config = resolve_config(preset=args.preset or DEFAULT_PRESET, config_file=args.config, overrides=overrides)
    run_dir = Path(args.out) if args.out else Path(DEFAULT_ROOT) / config["run"]["name"]
    return config, run_dir


def _open_pipeline(args):
    config, run_dir = resolve_run(args)
    if args.print_config:
        print(to_toml(config))
        return None
    from libkd_keras.cli.run_folder import RunFolder

    folder = RunFolder.open(run_dir, config, overwrite=args.overwrite)
    pipeline = _import_pipeline(args.verbose).Pipeline(folder, config)
    print(f"libkd: run folder {folder.root}")
    pipeline.load_data()  # bad data fails here, before any step runs
    return pipeline


# ---------------------------------------------------------------------------------------------
# Commands


def _step_command(run_step):
    """A handler that opens the run's pipeline and runs one of its steps: `run_step(pipeline, args)`."""

    def handler(args):
        pipeline = _open_pipeline(args)
        if pipeline:
            run_step(pipeline, args)

    return handler


_cmd_train_teacher = _step_command(lambda pipeline, args: pipeline.train_teachers(only=args.only))
_cmd_precompute = _step_command(lambda pipeline, args: pipeline.precompute(splits=args.split or ("train", "test")))
_cmd_distill = _step_command(lambda pipeline, args: pipeline.distill(only=args.student))
_cmd_evaluate = _step_command(lambda pipeline, args: pipeline.evaluate(only=args.student))
_cmd_export = _step_command(lambda pipeline, args: pipeline.export(student=args.student))
_cmd_pipeline = _step_command(lambda pipeline, args: pipeline.run_all())


def _cmd_ablate(args):
    pipeline = _open_pipeline(args)
    if pipeline:
        if args.ablation_epochs is not None and args.ablation_epochs < 1:
            raise ConfigError(f"--ablation-epochs must be >= 1; got {args.ablation_epochs}.")
        pipeline.ablate(experiments=args.experiments, seeds=args.seeds, epochs=args.ablation_epochs,
                        recipes=args.recipes)


def _cmd_analyze(args):
    from libkd_keras.cli.run_folder import RunFolder, load_run_config

    config = load_run_config(_existing_run(args.run_dir))
    if args.max_images < 2:
        raise ConfigError(f"--max-images must be >= 2; got {args.max_images}.")
    pipeline = _import_pipeline(args.verbose).Pipeline(RunFolder(Path(args.run_dir), config), config)
    pipeline.analyze(max_images=args.max_images)


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

    summary = write_report(_existing_run(args.run_dir))
    print(summary.table)
    print(f"libkd: wrote {summary.path}")


# ---------------------------------------------------------------------------------------------
# Entry point


def quiet_tensorflow(verbose):
    """Hides TensorFlow's Python-side start-up noise (call before importing it)."""
    if verbose:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module=r"(tensorflow|keras|tensorflow_datasets|absl|google)(\.|$)")
    try:
        import absl.logging

        absl.logging.set_verbosity(absl.logging.ERROR)
    except ImportError:  # pragma: no cover - absl comes with TensorFlow
        pass


@contextlib.contextmanager
def native_stderr_silenced(enabled=True):
    """Sends file descriptor 2 to /dev/null while Python's `sys.stderr` keeps writing to the terminal.

    TensorFlow's C++ logging (start-up banners, CUDA probing, oneDNN notes) writes to fd 2 and
    ignores TF_CPP_MIN_LOG_LEVEL in recent releases; libkd's own messages, warnings and
    tracebacks go through `sys.stderr` and still show. Skipped when stderr is not the process's
    fd 2 (e.g. captured by pytest).
    """
    try:
        real = enabled and sys.stderr.fileno() == 2
    except (AttributeError, ValueError, io.UnsupportedOperation):
        real = False
    if not real:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)
    python_stderr = sys.stderr
    sys.stderr = open(saved, "w", buffering=1, closefd=False, encoding=python_stderr.encoding,
                      errors="backslashreplace")
    try:
        yield
    finally:
        sys.stderr.flush()
        sys.stderr = python_stderr
        os.dup2(saved, 2)
        os.close(saved)


def _import_pipeline(verbose):
    from libkd_keras.cli import pipeline

    if not verbose:
        import tensorflow

        tensorflow.get_logger().setLevel("ERROR")
    return pipeline


def main(argv=None):
    """Runs `libkd` with `argv` (default: sys.argv[1:]); returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
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
