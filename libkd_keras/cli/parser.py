"""The `libkd` argument parser: one subcommand per step, the run options they share. No TensorFlow."""

import argparse
import importlib.metadata
import json
import re

from libkd_keras import choices
from libkd_keras.cli import precompute as precompute_options
from libkd_keras.distribute import STRATEGIES
from libkd_keras.pipeline.config import available_presets, resolve_config
from libkd_keras.pipeline.config_text import describe_options
from libkd_keras.pipeline.settings import teacher_specs

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
    "teachers_from": ["teachers.reuse_from"],
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
    parent.add_argument(
        "--verbose", action="store_true", help="show TensorFlow's start-up messages and full tracebacks (default: off)"
    )
    return parent


def _run_options():
    """Options shared by every command that works in a run folder."""
    parent = argparse.ArgumentParser(add_help=False)
    config = parent.add_argument_group("configuration (applied in this order)")
    config.add_argument(
        "--preset",
        metavar="NAME",
        help=f"shipped preset: {', '.join(available_presets())} (default: {DEFAULT_PRESET}, or the "
        "config stored in --out when it holds a run and neither --preset nor --config is given)",
    )
    config.add_argument("--config", metavar="FILE", help="your own TOML file, merged over the preset (default: none)")
    config.add_argument(
        "--set",
        metavar="KEY=VALUE",
        action="append",
        default=[],
        dest="overrides",
        help="override one key, e.g. --set student.alpha=0.3 or --set "
        "students.ensemble.recipe=superior; repeatable (default: none)",
    )
    config.add_argument(
        "--print-config", action="store_true", help="print the resolved configuration as TOML and exit (default: off)"
    )
    data = parent.add_argument_group("data")
    data.add_argument(
        "--dataset",
        metavar="NAME|PATH",
        help="cifar10-sample (shipped, offline), cifar10, tf_flowers, or a class-folder tree / "
        "CIFAR-10 tarball path (default: the preset's data.dataset)",
    )
    data.add_argument(
        "--data-dir",
        metavar="DIR",
        help="tensorflow-datasets data dir with prepared data, for offline machines "
        "(default: the preset's data.data_dir, tfds' own)",
    )
    data.add_argument(
        "--image-size",
        type=int,
        metavar="N",
        help="resize images to N x N; 0 keeps the source size (default: data.image_size, 32)",
    )
    data.add_argument(
        "--train-limit",
        type=int,
        metavar="N",
        help="use N training images for the student; 0 = all (default: data.train_limit)",
    )
    data.add_argument(
        "--test-limit", type=int, metavar="N", help="use N test images; 0 = all (default: data.test_limit)"
    )
    training = parent.add_argument_group("training")
    training.add_argument(
        "--epochs",
        type=int,
        metavar="N",
        help="epochs of every teacher and student (default: teachers.epochs, student.epochs)",
    )
    training.add_argument(
        "--teacher-epochs",
        type=int,
        metavar="N",
        help="epochs of every teacher (default: teachers.epochs, or the family's "
        "teachers.resnet_epochs / rednet_epochs)",
    )
    training.add_argument(
        "--student-epochs", type=int, metavar="N", help="epochs of each student (default: student.epochs)"
    )
    training.add_argument(
        "--batch-size",
        type=int,
        metavar="N",
        help="batch size of teachers and students (default: teachers.batch_size, student.batch_size)",
    )
    training.add_argument(
        "--precision",
        choices=choices.PRECISIONS,
        help="compute precision; auto = per model family, bf16 where it measured faster (default: run.precision)",
    )
    training.add_argument("--seed", type=int, metavar="N", help="run seed (default: run.seed, 0)")
    training.add_argument(
        "--teachers-from",
        metavar="RUN",
        help="copy the finished teachers of run folder RUN instead of training them, where its teacher "
        "settings and images are this run's (default: teachers.reuse_from, train here)",
    )
    training.add_argument(
        "--teacher",
        metavar="[NAME=]PATH",
        action="append",
        default=[],
        dest="teachers",
        help="your own saved Keras classifier as a teacher (a .keras file returning logits on raw [0, 255] "
        "pixels, or a KerasHub ImageClassifier preset folder), beside the trained families; NAME defaults to "
        "the file's stem; repeatable; [[teachers.models]] in --config also sets its pixel range (default: none)",
    )
    training.add_argument(
        "--strategy",
        choices=STRATEGIES,
        default="default",
        help="tf.distribute strategy for training: default (one device), mirrored (all local "
        "GPUs), multi_worker (MultiWorkerMirroredStrategy; needs TF_CONFIG on every worker, "
        "see README 'Scaling out') (default: default)",
    )
    output = parent.add_argument_group("output")
    output.add_argument("--out", metavar="DIR", help=f"run folder (default: {DEFAULT_ROOT}/<run name>)")
    output.add_argument(
        "--name",
        metavar="NAME",
        help="run name, i.e. the folder under saved_models/ (default: the preset's name, or the --config file's name)",
    )
    output.add_argument(
        "--overwrite",
        action="store_true",
        help="if --out holds a run with a different config, start again there: the old run is moved aside to "
        "<out>.replaced-<date>-<time> and deleted once the new run finishes its first step (default: refuse)",
    )
    return parent


COMMANDS = {
    "train-teacher": "train the configured ResNet and RedNet teachers (teachers.resnet_arch / rednet_arch), "
    "one per seed",
    "precompute": "run every teacher once over the train and test splits and store their logits",
    "distill": "train the configured students from the stored teacher labels (and the baseline)",
    "evaluate": "evaluate the trained students on the test split (average, class and distillation heads)",
    "export": f"export a student to LiteRT ({', '.join(choices.QUANTIZATIONS)}) and measure it",
    "pipeline": "train teachers, precompute the store, distil, evaluate, export, report; rerun to resume",
    "report": "(re)write report.md, the plots and the summary table from a run folder's artifacts",
    "ablate": "Table 4's teacher sets and Figure 11's hard/soft/temperature runs from the run's one store",
    "analyze": "linear CKA between the layers of every trained model (paper Figures 1-2), into the report",
}


def version():
    """The installed package's version (importlib.metadata), else `libkd_keras.__version__` (a source checkout)."""
    try:
        return importlib.metadata.version("libkd_keras")
    except importlib.metadata.PackageNotFoundError:
        import libkd_keras

        return libkd_keras.__version__


FAMILY_NAMES = {"resnet": "ResNet", "rednet": "RedNet"}


def _teacher_words(config):
    """`"ResNet-8 and RedNet-8"`: the teachers a config trains, each architecture once."""
    words = []
    for name, family, _ in teacher_specs(config):
        rest = name.rsplit("_s", 1)[0][len(family) :]
        word = FAMILY_NAMES.get(family, family) + (f"-{rest}" if rest else "")
        words += [] if word in words else [word]
    return " and ".join(words) or "no"


def _with_values(parser, config, label):
    """Shows `config`'s values (the run the command line asks for) in the "(default: ...)" of each config flag."""
    for action in parser._actions:
        keys = FLAG_KEYS.get(action.dest)
        if keys and action.help:
            values = ", ".join(f"{key} = {_flag_value(config, key)}" for key in keys)
            action.help = re.sub(r"\(default: [^()]*\)$", f"(default: {values}: {label})", action.help)
    return parser


def _flag_value(config, key):
    section, name = key.split(".")
    value = config[section][name]
    return json.dumps(value) if isinstance(value, str) else value


RUN_COMMANDS = ("train-teacher", "precompute", "distill", "evaluate", "export", "pipeline", "ablate")


def run_options_parser():
    """A parser of the run options alone (no help, no subcommands): what `--help` reads before it is shown."""
    return argparse.ArgumentParser(add_help=False, parents=[_run_options()])


def build_parser(config=None, label=None):
    """The `libkd` argument parser (no TensorFlow import).

    `config`: the resolved config the command line asks for (`--preset`, `--config`, flags, `--set`);
    a run command's `--help` then shows its values instead of the schema's defaults, `label` saying
    whose they are (e.g. "the quick preset").
    """
    common, run = _common_options(), _run_options()
    quick = resolve_config(preset=DEFAULT_PRESET)
    parser = argparse.ArgumentParser(
        prog="libkd",
        formatter_class=_HelpFormatter,
        description="LIB-KD: distil the inductive bias of CNN (ResNet) and involution (RedNet) teachers into a "
        "DeiT student through one distillation token, from teacher logits computed once and stored; export "
        f"the student to LiteRT. The {DEFAULT_PRESET} preset (the default) trains {_teacher_words(quick)} "
        f"teachers and a {quick['student']['arch']} student on the CIFAR-10 sample shipped with the package, "
        "offline; the paper presets train ResNet-26 and RedNet-26 teachers.",
        epilog=f"Start with:  libkd pipeline --preset {DEFAULT_PRESET}   (no network needed; --dataset PATH for "
        "your own class folders or CIFAR-10 tarball)\n"
        "Run 'libkd <command> --help' for a command's options; 'libkd <command> --preset NAME --help' shows "
        "that preset's values.",
    )
    parser.add_argument("--version", action="version", version=f"libkd {version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def add(name, parents, epilog="", **kwargs):
        return sub.add_parser(
            name,
            parents=parents,
            help=COMMANDS[name],
            description=COMMANDS[name] + ".",
            epilog=epilog,
            formatter_class=_HelpFormatter,
            **kwargs,
        )

    if config is None:
        config_epilog = "configuration keys (section.key = default -- meaning); set any with --set:\n"
    else:
        config_epilog = f"configuration keys (section.key = value of {label} -- meaning); set any with --set:\n"
    config_epilog += describe_options(config)
    if config is not None:
        run = _with_values(run, config, label)
    p = add("train-teacher", [common, run], config_epilog)
    p.add_argument(
        "--only",
        metavar="TEACHER",
        action="append",
        default=[],
        help="train only this teacher, e.g. resnet26_s0; repeatable (default: all configured)",
    )

    precompute_options.add_arguments(add("precompute", [common, run], config_epilog))

    p = add("distill", [common, run], config_epilog)
    p.add_argument(
        "--student",
        metavar="NAME",
        action="append",
        default=[],
        help="train only this [[students]] entry; repeatable (default: all configured)",
    )

    p = add("evaluate", [common, run], config_epilog)
    p.add_argument(
        "--student",
        metavar="NAME",
        action="append",
        default=[],
        help="evaluate only this student; repeatable (default: all trained)",
    )

    p = add("export", [common, run], config_epilog)
    p.add_argument(
        "--student", metavar="NAME", help="student to export (default: export.student, or the best distilled student)"
    )

    add("pipeline", [common, run], config_epilog)

    p = add("ablate", [common, run], config_epilog)
    p.add_argument(
        "--experiments",
        choices=("table4", "figure11", "all"),
        default="table4",
        help="which comparisons: Table 4's teacher sets, Figure 11's hard vs soft distillation and "
        "temperature sweep, or both (default: table4)",
    )
    p.add_argument(
        "--recipes",
        nargs="+",
        choices=choices.RECIPES,
        default=list(choices.TABLE4_RECIPES),
        help="student recipes of the Table 4 runs (default: baseline superior)",
    )
    p.add_argument(
        "--seeds",
        nargs="+",
        type=int,
        default=[0],
        metavar="N",
        help="one student per seed; gains get their spread over seeds (default: 0)",
    )
    p.add_argument(
        "--ablation-epochs",
        type=int,
        metavar="N",
        help="epochs of every ablation student (default: the run's student.epochs)",
    )

    p = add("analyze", [common])
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run folder with trained models (required)")
    p.add_argument(
        "--max-images",
        type=int,
        default=512,
        metavar="N",
        help="test images the representations are computed on (default: 512)",
    )

    p = add("report", [common])
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run folder, e.g. saved_models/quick (required)")
    p.add_argument(
        "--summary-json",
        metavar="PATH",
        help="also write the run's results as JSON to PATH: teachers, and students per entry with per-seed "
        "top-1 and wall time (schema: libkd_keras/analysis/report/summary.py)",
    )
    p.add_argument(
        "--command",
        dest="summary_command",
        metavar="TEXT",
        help="the command that made the run, for --summary-json (default: one that reproduces it from its config)",
    )
    return parser
