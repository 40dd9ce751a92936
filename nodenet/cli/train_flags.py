"""The flags of ``nodenet train``, and how a resumed run takes its settings back."""

from __future__ import annotations

import argparse
import copy

from nodenet.activations import ACTIVATIONS
from nodenet.checks import require_int, require_number
from nodenet.data import check_std_floor
from nodenet.optimizers import OPTIMIZERS

#: settings that define the run; --resume takes them from the checkpoint
RUN_SETTINGS = (
    "dataset",
    "csv",
    "target",
    "task",
    "epochs",
    "hidden",
    "activation",
    "dropout",
    "batch_norm",
    "batch_size",
    "lr",
    "optimizer",
    "momentum",
    "rho",
    "beta1",
    "beta2",
    "eps",
    "weight_decay",
    "average",
    "lr_decay",
    "class_weight",
    "lr_decay_every",
    "init",
    "valid_fraction",
    "validate_every",
    "normalise",
    "std_floor",
    "dtype",
    "seed",
)
#: run settings that a resumed run may change (they do not change its past)
CHANGEABLE = ("epochs", "validate_every")


def checked(convert, *bounds, **options):
    """An argparse ``type``: ``convert(text)`` checked by ``require_int`` (for ``int``)
    or ``require_number``, so a bad flag gets a one-line message naming it."""

    def parse(text: str):
        try:
            value = convert(text)
            if convert is int:
                return require_int("value", value, *bounds)
            return require_number("value", value, *bounds, **options)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc).replace("value must", "must")) from None

    return parse


def workers_flag(text: str) -> int | str:
    """``--workers``: ``auto`` or an integer >= 0."""
    return text if text == "auto" else checked(int, 0)(text)


def std_floor(text: str) -> float | str:
    """``--std-floor``: ``pooled`` or a finite number >= 0 (the Normaliser's rule)."""
    try:
        return check_std_floor(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser(prog: str = "nodenet train") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description="Train a nodenet MLP on MNIST and write the model, history, metrics and plot.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    net = p.add_argument_group("network")
    net.add_argument(
        "--hidden",
        type=checked(int, 1),
        nargs="+",
        default=[128, 64],
        metavar="N",
        help="sizes of the hidden layers",
    )
    net.add_argument(
        "--activation",
        default="relu",
        choices=sorted(set(ACTIVATIONS) - {"softmax"}),
        help="activation of the hidden layers (the output layer is Softmax)",
    )
    net.add_argument(
        "--dropout",
        type=checked(float, 0, 1),
        default=0.0,
        metavar="RATE",
        help="inverted dropout on the hidden layers' activations while training",
    )
    net.add_argument(
        "--batch-norm",
        action="store_true",
        help="batch normalisation in the hidden layers (before the activation)",
    )
    net.add_argument(
        "--init",
        default="lecun",
        choices=["he", "xavier", "lecun"],
        help="weight initialisation (lecun: PyTorch's nn.Linear default, uniform +-1/sqrt(fan_in))",
    )
    net.add_argument(
        "--dtype",
        default="float32",
        choices=["float32", "float64"],
        help="floating-point type of the weights and the data",
    )

    opt = p.add_argument_group("optimisation")
    opt.add_argument(
        "--epochs", type=checked(int, 1), default=5, help="passes over the training split"
    )
    opt.add_argument(
        "--batch-size", type=checked(int, 1), default=128, help="samples per optimizer step"
    )
    opt.add_argument("--optimizer", default="adam", choices=sorted(OPTIMIZERS), help="update rule")
    opt.add_argument(
        "--lr", type=checked(float, 0, open_low=True), default=1e-3, help="learning rate"
    )
    opt.add_argument("--momentum", type=float, default=0.9, help="momentum / nesterov")
    opt.add_argument("--rho", type=float, default=0.9, help="rmsprop: decay of the squares")
    opt.add_argument("--beta1", type=float, default=0.9, help="adam / adamw")
    opt.add_argument("--beta2", type=float, default=0.999, help="adam / adamw")
    opt.add_argument("--eps", type=float, default=1e-8, help="rmsprop / adagrad / adam / adamw")
    opt.add_argument(
        "--weight-decay", type=float, default=0.0, help="L2 on the weights (decoupled for adamw)"
    )
    opt.add_argument(
        "--average",
        type=float,
        default=None,
        metavar="DECAY",
        help="keep a moving average of the weights with this decay per step (about the "
        "last 1/(1-DECAY) steps), validate and save it; 0: the last iterate (default "
        "0.995, and 0 with --batch-norm, whose statistics belong to the last iterate)",
    )
    opt.add_argument(
        "--lr-decay",
        type=checked(float, 0, 1, open_low=True, closed_high=True),
        default=1.0,
        metavar="FACTOR",
        help="multiply the learning rate by FACTOR every --lr-decay-every epochs",
    )
    opt.add_argument(
        "--lr-decay-every", type=checked(int, 1), default=1, metavar="N", help="see --lr-decay"
    )
    opt.add_argument(
        "--seed",
        type=checked(int, 0),
        default=0,
        help="seed of the initialisation, split and shuffles",
    )

    data = p.add_argument_group("data")
    data.add_argument(
        "--dataset",
        default="mnist",
        choices=["mnist", "fashion-mnist"],
        help="the IDX data set (its files are downloaded when missing, unless --no-download)",
    )
    data.add_argument(
        "--csv",
        default=None,
        metavar="FILE",
        help="train on this numeric CSV (a header row naming the columns) instead",
    )
    data.add_argument("--target", default=None, metavar="COLUMN", help="--csv: what to predict")
    data.add_argument(
        "--task",
        default="classification",
        choices=["classification", "regression"],
        help="--csv: class labels (softmax, cross-entropy) or numbers (identity, squared error)",
    )
    data.add_argument(
        "--test-csv",
        default=None,
        metavar="FILE",
        help="--csv: a test set with the same columns (default: report the validation split)",
    )
    data.add_argument(
        "--data-dir",
        default=None,
        help="folder holding mnist/ (default: $NODENET_DATA, else data/)",
    )
    data.add_argument(
        "--download", action="store_true", help="kept for old scripts: downloading is the default"
    )
    data.add_argument(
        "--no-download",
        action="store_true",
        help="never fetch missing data files (an error names them and where they belong)",
    )
    data.add_argument(
        "--class-weight",
        choices=["balanced"],
        default=None,
        help="weigh each class by n / (classes x its count) in the training loss",
    )
    data.add_argument(
        "--valid-fraction",
        type=checked(float, 0, 1),
        default=0.2,
        help="share of the training images held out for validation",
    )
    data.add_argument(
        "--validate-every",
        type=checked(int, 1),
        default=None,
        metavar="BATCHES",
        help="validate every this many batches (default: once per epoch)",
    )
    data.add_argument(
        "--normalise",
        default="zscore",
        choices=["scale", "zscore"],
        help="divide by 255, or z-score each input column with training statistics",
    )
    data.add_argument(
        "--std-floor",
        type=std_floor,
        default=None,
        help="zscore: the smallest std a column is divided by, in its units; 'pooled': the "
        "std of all training inputs together, so nearly constant border pixels are not "
        "blown up; 0: the textbook z-score (default: pooled for images, 0 for --csv)",
    )

    run = p.add_argument_group("execution and output")
    run.add_argument(
        "--backend",
        default=None,
        choices=["inprocess", "pool", "ray"],
        help="where training runs (default: from --workers); ray needs nodenet[ray]",
    )
    run.add_argument(
        "--ray-address",
        default=None,
        metavar="auto|HOST:PORT",
        help="a running Ray cluster for --backend ray (default: start Ray on this machine)",
    )
    run.add_argument(
        "--workers",
        type=workers_flag,
        default="auto",
        help="worker processes (0: train in this process; auto: the pool only where it is "
        "faster, by nodenet.backend.choose_workers)",
    )
    run.add_argument(
        "--chunk",
        type=checked(int, 1),
        default=None,
        help="samples per worker task (default: batch split evenly)",
    )
    run.add_argument(
        "--out", default=None, help="output folder (default: runs/<data set or CSV name>)"
    )
    run.add_argument(
        "--checkpoint-every",
        type=checked(int, 1),
        default=1,
        metavar="EPOCHS",
        help="write checkpoint.npz every this many epochs (and on Ctrl-C)",
    )
    run.add_argument(
        "--resume",
        default=None,
        metavar="DIR",
        help="continue the run whose checkpoint.npz is in DIR",
    )
    run.add_argument("--no-plot", action="store_true", help="do not draw training.png")
    run.add_argument("--quiet", action="store_true", help="no progress bar or epoch lines")
    return p


def resume_settings(args: argparse.Namespace, given: dict, stored: dict) -> list[str]:
    """Take the run's settings from its checkpoint (``stored``) into ``args``. A flag
    given now (``given``) that differs from a stored setting is applied when the run
    can change it (:data:`CHANGEABLE`), and reported; otherwise ``ValueError``."""
    notes = []
    for key in RUN_SETTINGS:
        if key not in stored:  # a setting added since keeps its value
            continue
        flag = "--" + key.replace("_", "-")
        if key in given and given[key] != stored[key]:
            if key not in CHANGEABLE:
                raise ValueError(
                    f"{flag} {given[key]} contradicts the run being resumed ({stored[key]}); "
                    f"a resumed run keeps it (start a new run with another --out instead)"
                )
            notes.append(f"{flag} {given[key]} (the run had {stored[key]})")
        else:
            setattr(args, key, stored[key])
    return notes


def given_flags(parser: argparse.ArgumentParser, argv: list[str] | None) -> dict:
    """The settings given on the command line (not left at their defaults)."""
    explicit = copy.deepcopy(parser)
    for action in explicit._actions:  # argparse has no public way to list its actions
        action.default = argparse.SUPPRESS
    return vars(explicit.parse_args(argv))
