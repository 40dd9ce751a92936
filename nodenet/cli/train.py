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
import signal
import sys
from pathlib import Path

import numpy as np
from stopwatch import Stopwatch

from nodenet import Layer, Model, fit, settings
from nodenet.architectures import read_architecture
from nodenet.backend import prepare_backend
from nodenet.callbacks import DivergenceError, EpochLines
from nodenet.checkpoint import Checkpoint, load_checkpoint
from nodenet.data import (
    DataError,
    Normaliser,
    Split,
    train_validation_split,
)
from nodenet.files import FileWriteError, check_writable, folder_lock, write_json
from nodenet.io import ModelFileError, save
from nodenet.optimizers import OPTIMIZER_HYPERPARAMETERS
from nodenet.predict import evaluate, regression_scores
from nodenet.settings import SettingsError

from . import sources
from .train_flags import RUN_SETTINGS, build_parser, given_flags, resume_settings

#: the settings that describe the dense hidden layers, which --arch replaces
DENSE_ONLY = ("hidden", "activation", "dropout", "batch_norm")


def main(argv: list[str] | None = None, prog: str = "nodenet train") -> int:
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    if args.std_floor is None:
        args.std_floor = 0.0 if args.csv else "pooled"
    for flag, value, needs, ok in (
        ("--target", args.target, "--csv", args.csv),
        ("--test-csv", args.test_csv, "--csv", args.csv),
        ("--ray-address", args.ray_address, "--backend ray", args.backend == "ray"),
        ("--class-weight", args.class_weight, "classes", args.task == "classification"),
    ):
        if value is not None and not ok:
            parser.error(f"{flag} goes with {needs}; it would be ignored here")
    given = given_flags(parser, argv)
    if args.arch is not None:
        for key in DENSE_ONLY:
            if key in given:
                flag = "--" + key.replace("_", "-")
                parser.error(f"{flag} describes the dense network; --arch gives the whole network")
    if args.csv:  # what the run trains on is the CSV file
        args.dataset = None
    if args.out is None:
        args.out = f"runs/{Path(args.csv).stem if args.csv else args.dataset}"
    try:
        return run(args, given)
    except KeyboardInterrupt as exc:  # outside fit: before or after training
        print("\ninterrupted", file=sys.stderr)
        return 128 + getattr(exc, "signum", signal.SIGINT)


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
        if state.epoch >= args.epochs and (Path(args.out) / "model.npz").exists():
            print(
                f"the run in {args.resume} is complete ({state.epoch} of {args.epochs} epochs); "
                "give --epochs N to train it further"
            )
            return 0
        if state.epoch >= args.epochs:  # stopped after its last step, before its files:
            # fit runs no epoch, ends the run (averaged weights) and the files follow
            print(f"the run in {args.resume} trained every epoch: writing its files")
        for note in notes:
            print(f"resuming with {note}")
    out = Path(args.out)
    try:
        check_writable(out)
        with folder_lock(out):
            return train_into(out, args, state)
    except FileWriteError as exc:  # not writable, or in use by another run
        print(f"error: {exc}", file=sys.stderr)
        return 2


def train_into(out: Path, args: argparse.Namespace, state) -> int:
    """Load the data, train (or go on training the checkpoint ``state``) and write
    every file of the run into ``out``, which the caller holds; returns the exit code."""
    try:
        # the pool's fork server imports NumPy, numba and nodenet while the data loads
        prepare_backend(args.backend, args.workers)
        data = sources.load(args)
        if state is not None:
            sources.require_same_data(state.settings.get("data"), data.description, args)
    except (DataError, FileWriteError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    train, test = data.train, data.test
    training = {key: getattr(args, key) for key in settings.at(settings.FIT)}
    try:
        if state is None:
            model = new_model(args, data)
            # statistics of the training split only
            train_idx, _ = train_validation_split(len(train), args.validation, args.seed)
            model.normaliser = Normaliser.fit(
                args.normalise, train.x[train_idx], std_floor=args.std_floor
            )
            history, first_epoch, first_batch = None, 0, 0
        else:  # the run's own model, normaliser, optimizer and history, as saved
            model, history = state.model, state.history
            first_epoch, first_batch = state.epoch, state.batch
            training.update(dict.fromkeys(OPTIMIZER_HYPERPARAMETERS), optimizer=state.optimizer)
    except (ValueError, MemoryError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    stored = {key: getattr(args, key) for key in RUN_SETTINGS}
    # what the data was, so a resumed run can tell that the file changed under it
    checkpoint = Checkpoint(
        out, every=args.checkpoint_every, settings={**stored, "data": data.description}
    )
    callbacks = [checkpoint] if args.quiet else [checkpoint, EpochLines()]
    if state is not None:
        state.restore(callbacks)

    watch = Stopwatch()
    try:
        history = fit(
            model,
            train.x,
            train.y,
            callbacks=callbacks,
            initial_epoch=first_epoch,
            initial_batch=first_batch,
            history=history,
            progress=not args.quiet,
            **training,
        )
    except KeyboardInterrupt as exc:
        signum = getattr(exc, "signum", signal.SIGINT)
        print(
            f"\n{signal.Signals(signum).name}: {interrupt_message(checkpoint, out)}",
            file=sys.stderr,
        )
        return 128 + signum
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except DivergenceError as exc:
        kept = (
            f"; the last good checkpoint is {checkpoint.path}" if checkpoint.path.exists() else ""
        )
        print(f"error: {exc} (--lr){kept}", file=sys.stderr)
        return 1
    except (ValueError, RuntimeError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    watch.stop()

    split, where = test, "test"
    if test is None:  # a CSV without --test-csv: the validation rows fit held out
        _, rows = train_validation_split(len(train), args.validation, args.seed)
        split, where = Split(train.x[rows], train.y[rows]), "validation"
    score = evaluate if data.task == "classification" else regression_scores
    result = score(model, split.x, split.y) if len(split.y) else {}
    epochs = history.frame("epoch")
    metrics = {
        **{f"{where}_{k}": v for k, v in result.items() if k != "samples"},
        "training_seconds": float(epochs["seconds"].sum()),
        "wall_seconds": watch.duration,
        "samples_per_s": float(epochs["samples_per_s"].median()),
        "epochs": int(epochs["epoch"].max()),
        "parameters": model.parameter_count,
        "workers": history.params.get("workers", 0),
        # a run with --arch reports no dense network it did not build (its checkpoint
        # keeps the defaults, which --resume checks like any other setting)
        "settings": {**stored, **dict.fromkeys(DENSE_ONLY if args.arch is not None else ())},
    }
    try:
        save(model, out / "model.npz", metadata={"settings": stored, **data.description})
        history.to_csv(out / "history.csv")
        write_json(out / "metrics.json", metrics)
        if not args.no_plot:
            from nodenet.plots import plot_history

            plot_history(history, out / "training.png", title=repr(model))
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    shown = "  ".join(f"{where} {k} {v:.4f}" for k, v in result.items() if k != "samples")
    print(f"{shown}  ({metrics['training_seconds']:.1f} s training) -> {out}/")
    return 0


def new_model(args: argparse.Namespace, data) -> Model:
    """The network ``args`` describe for ``data``: hidden layers (dense, or ``--arch``),
    then a softmax (classification) or identity (regression) output layer."""
    width = data.train.x.shape[1]
    if args.arch is None:
        shape = width
        hidden = [Layer(n, args.activation, args.dropout, args.batch_norm) for n in args.hidden]
    else:
        shape, hidden = read_architecture(args.arch)
        if int(np.prod(shape)) != width:
            raise ValueError(
                f"--arch {args.arch} takes {shape} images ({int(np.prod(shape))} values) "
                f"but the data has {width} columns"
            )
    regression = data.task == "regression"
    output = Layer(data.outputs, "identity" if regression else "softmax")
    loss = "squared_error" if regression else "cross_entropy"
    model = Model(shape, loss, [*hidden, output])
    return model.construct(args.seed, args.init, np.dtype(args.dtype))


def interrupt_message(checkpoint: Checkpoint, out: Path) -> str:
    """What an interrupted run tells its user: only what was really saved."""
    if checkpoint.saved is None:
        return "stopped before any training step; nothing new to save" + (
            f" (the checkpoint in {out} is unchanged)" if checkpoint.path.exists() else ""
        )
    epoch, batch = checkpoint.saved
    where = f"epoch {epoch + 1}, batch {batch}" if batch else f"the end of epoch {epoch}"
    return f"checkpoint of {where} saved to {checkpoint.path}; continue with --resume {out}"
