"""``nodenet train``: train an MLP from the command line (``scripts/train_mnist.py`` is
this command too).

    nodenet train                                 # 784-128-64-10, Adam 1e-3, 5 epochs
    nodenet train --hidden 512 200 50 --epochs 10 --workers 2
    nodenet train --resume runs/mnist             # continue from the last checkpoint

Writes into --out: model.npz (+ model.json), history.csv, metrics.json, training.png and
checkpoint.npz. Ctrl-C saves a checkpoint, stops the workers and exits.
"""

from __future__ import annotations

import argparse
import copy
import os
import signal
import sys
from pathlib import Path

import numpy as np
from stopwatch import Stopwatch

from nodenet import Layer, Model, fit
from nodenet.activations import ACTIVATIONS
from nodenet.backend import choose_workers
from nodenet.callbacks import DivergenceError, EpochLines, StepDecay
from nodenet.checkpoint import Checkpoint, load_checkpoint
from nodenet.checks import require_int, require_number
from nodenet.data import (
    DataError,
    Normaliser,
    check_std_floor,
    load_mnist,
    train_validation_split,
)
from nodenet.files import FileWriteError, check_writable, write_json
from nodenet.io import ModelFileError, save
from nodenet.optimizers import OPTIMIZERS, get_optimizer, optimizer_settings
from nodenet.predict import evaluate

#: settings that define the run; --resume takes them from the checkpoint
RUN_SETTINGS = (
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
        "--data-dir",
        default=None,
        help="folder holding mnist/ (default: $NODENET_DATA, else data/)",
    )
    data.add_argument("--download", action="store_true", help="fetch MNIST if missing")
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
        help="divide by 255, or z-score each pixel with training statistics",
    )
    data.add_argument(
        "--std-floor",
        type=std_floor,
        default="pooled",
        help="zscore: the smallest std a pixel is divided by, in pixel units (0..255); "
        "'pooled': the std of all training pixels together, so nearly constant border "
        "pixels are not blown up; 0: the textbook z-score",
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
    run.add_argument("--out", default="runs/mnist", help="output folder")
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


def main(argv: list[str] | None = None, prog: str = "nodenet train") -> int:
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    if args.average is None:
        args.average = 0.0 if args.batch_norm else 0.995
    elif args.average and args.batch_norm:
        parser.error(
            "--batch-norm needs --average 0 (the running statistics "
            "belong to the last iterate, not to the averaged weights)"
        )
    try:
        return run(args, given_flags(parser, argv))
    except KeyboardInterrupt as exc:  # outside fit: before or after training
        print("\ninterrupted", file=sys.stderr)
        return 128 + getattr(exc, "signum", signal.SIGINT)


def given_flags(parser: argparse.ArgumentParser, argv: list[str] | None) -> dict:
    """The settings given on the command line (not left at their defaults)."""
    explicit = copy.deepcopy(parser)
    for action in explicit._actions:  # argparse has no public way to list its actions
        action.default = argparse.SUPPRESS
    return vars(explicit.parse_args(argv))


def run(args: argparse.Namespace, given: dict) -> int:
    """Train (or resume) the run ``args`` describes; returns the exit code."""
    state = None
    if args.resume:
        try:
            state = load_checkpoint(args.resume)
            notes = resume_settings(args, given, state.settings)
        except (ModelFileError, ValueError) as exc:
            print(f"error: cannot resume: {exc}", file=sys.stderr)
            return 2
        if "out" not in given:
            args.out = args.resume
        if state.epoch >= args.epochs:
            print(
                f"the run in {args.resume} is complete ({state.epoch} of {args.epochs} epochs); "
                "give --epochs N to train it further"
            )
            return 0
        for note in notes:
            print(f"resuming with {note}")
    settings = {key: getattr(args, key) for key in RUN_SETTINGS}
    out = Path(args.out)
    try:
        check_writable(out)
        train, test = load_mnist(args.data_dir, download=args.download)
    except (DataError, FileWriteError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if state is None:  # statistics of the training split only
        train_idx, _ = train_validation_split(len(train), args.valid_fraction, args.seed)
        normaliser = Normaliser.fit(args.normalise, train.x[train_idx], std_floor=args.std_floor)
    else:  # the run's own statistics, as saved with it
        normaliser = state.model.normaliser
    dtype = np.dtype(args.dtype)
    x = normaliser(train.x, dtype)

    try:
        if state is None:
            hidden = [Layer(n, args.activation, args.dropout, args.batch_norm) for n in args.hidden]
            layers = [*hidden, Layer(10, "softmax")]
            model = Model(784, "cross_entropy", layers).construct(args.seed, args.init, dtype)
            optimizer = get_optimizer(
                args.optimizer,
                **{key: getattr(args, key) for key in optimizer_settings(args.optimizer)},
            )
            history, first_epoch, first_batch = None, 0, 0
        else:
            model, optimizer, history = state.model, state.optimizer, state.history
            first_epoch, first_batch = state.epoch, state.batch
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    model.normaliser = normaliser
    checkpoint = Checkpoint(out, every=args.checkpoint_every, settings=settings)
    callbacks = [checkpoint] if args.quiet else [checkpoint, EpochLines()]
    if args.lr_decay < 1:
        callbacks.append(StepDecay(args.lr_decay, args.lr_decay_every))
    if state is not None:
        state.restore(callbacks)
    if args.backend in ("ray", "pool"):
        args.workers = (os.cpu_count() or 2) if args.workers in ("auto", 0) else args.workers
        why = f"{args.workers} {'Ray actors' if args.backend == 'ray' else 'workers'}"
    elif args.backend == "inprocess":
        args.workers, why = 0, "in this process"
    elif args.workers == "auto":
        args.workers, why = choose_workers(model, args.batch_size)
    else:
        why = f"{args.workers} workers" if args.workers else "in this process"
    options = {"address": args.ray_address} if args.backend == "ray" else {}
    if not args.quiet:
        print(f"{model}\n{model.parameter_count:,} parameters, {optimizer!r}, {why}")

    watch = Stopwatch()
    try:
        history = fit(
            model,
            x,
            train.y,
            epochs=args.epochs,
            batch_size=args.batch_size,
            optimizer=optimizer,
            validation=args.valid_fraction,
            class_weight=args.class_weight,
            validate_every=args.validate_every,
            workers=args.workers,
            chunk=args.chunk,
            seed=args.seed,
            callbacks=callbacks,
            initial_epoch=first_epoch,
            initial_batch=first_batch,
            history=history,
            progress=not args.quiet,
            backend=args.backend,
            **options,
        )
    except KeyboardInterrupt as exc:
        signum = getattr(exc, "signum", signal.SIGINT)
        print(
            f"\n{signal.Signals(signum).name}: {interrupt_message(checkpoint, out)}",
            file=sys.stderr,
        )
        return 128 + signum
    except DivergenceError as exc:
        kept = (
            f"; the last good checkpoint is {checkpoint.path}" if checkpoint.path.exists() else ""
        )
        print(f"error: {exc}{kept}", file=sys.stderr)
        return 1
    except (ValueError, RuntimeError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    watch.stop()

    result = evaluate(model, test.x, test.y)
    epochs = history.frame("epoch")
    metrics = {
        "test_loss": result["loss"],
        "test_accuracy": result["accuracy"],
        "training_seconds": float(epochs["seconds"].sum()),
        "wall_seconds": watch.duration,
        "samples_per_s": float(epochs["samples_per_s"].median()),
        "epochs": int(epochs["epoch"].max()),
        "parameters": model.parameter_count,
        "workers": args.workers,
        "settings": settings,
    }
    try:
        save(model, out / "model.npz", metadata={"settings": settings})
        history.to_csv(out / "history.csv")
        write_json(out / "metrics.json", metrics)
        if not args.no_plot:
            from nodenet.plots import plot_history

            plot_history(history, out / "training.png", title=repr(model))
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(
        f"test accuracy {result['accuracy']:.4f}  test loss {result['loss']:.4f}  "
        f"({metrics['training_seconds']:.1f} s training) -> {out}/"
    )
    return 0


def interrupt_message(checkpoint: Checkpoint, out: Path) -> str:
    """What an interrupted run tells its user: only what was really saved."""
    if checkpoint.saved is None:
        return "stopped before any training step; nothing new to save" + (
            f" (the checkpoint in {out} is unchanged)" if checkpoint.path.exists() else ""
        )
    epoch, batch = checkpoint.saved
    where = f"epoch {epoch + 1}, batch {batch}" if batch else f"the end of epoch {epoch}"
    return f"checkpoint of {where} saved to {checkpoint.path}; continue with --resume {out}"
