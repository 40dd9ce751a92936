"""The ``nodenet`` command: ``nodenet train | predict | profile | gradcheck | convert``.

Each subcommand is a module with ``main(argv, prog) -> exit code``, imported only when
it runs, so ``nodenet --help`` stays quick. ``profile`` belongs to the worker pool: like
the backends, it is found through an entry-point group (``nodenet.commands``, see
``setup.cfg``), so this package never imports ``nodenet.workers``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from importlib import metadata

from nodenet import __version__

ENTRY_POINT_GROUP = "nodenet.commands"

#: built-in subcommands: name -> (module, one line of help)
COMMANDS = {
    "train": ("nodenet.cli.train", "train an MLP on MNIST, Fashion-MNIST or a CSV file"),
    "predict": ("nodenet.cli.predict", "predict a CSV file with a trained model"),
    "gradcheck": ("nodenet.gradcheck", "check backprop against finite differences"),
    "convert": ("nodenet.cli.convert", "write a trained model as an ONNX graph"),
}


def _installed() -> dict[str, metadata.EntryPoint]:
    return {ep.name: ep for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)}


def _parser(installed: dict) -> argparse.ArgumentParser:
    lines = [f"  {name:<10} {text}" for name, (_, text) in COMMANDS.items()]
    lines += [
        f"  {name:<10} from {ep.value.split(':')[0]} (nodenet {name} --help)"
        for name, ep in installed.items()
    ]
    parser = argparse.ArgumentParser(
        prog="nodenet",
        description="nodenet: a multi-layer perceptron you can read, trained on every core.",
        epilog="commands:\n" + "\n".join(lines) + "\n\n'nodenet COMMAND --help' for its flags",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"nodenet {__version__}")
    parser.add_argument(
        "command", nargs="?", choices=sorted({*COMMANDS, *installed}), metavar="COMMAND"
    )
    parser.add_argument("args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``nodenet COMMAND ARGS...``; returns the subcommand's exit code."""
    argv = sys.argv[1:] if argv is None else argv
    installed = _installed()
    parser = _parser(installed)
    args = parser.parse_args(argv)
    if args.command is None:  # plain `nodenet`: what there is to type
        parser.print_help()
        return 0
    prog = f"nodenet {args.command}"
    if args.command in COMMANDS:
        run = importlib.import_module(COMMANDS[args.command][0]).main
    else:
        run = installed[args.command].load()
    return run(args.args, prog=prog)
