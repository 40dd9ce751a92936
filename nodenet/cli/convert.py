"""``nodenet convert``: write a trained model as an ONNX graph (extra ``nodenet[onnx]``).

    nodenet convert --model runs/mnist --onnx runs/mnist/model.onnx

The graph includes the model's saved normaliser, so it takes the same raw inputs as
``nodenet predict`` (see :mod:`nodenet.onnx`).
"""

from __future__ import annotations

import argparse
import sys

from nodenet.files import FileWriteError
from nodenet.io import ModelFileError, load


def build_parser(prog: str = "nodenet convert") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description="Write a trained nodenet model, with its normaliser, as an ONNX graph.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--model", required=True, help="model.npz, or the folder holding it")
    p.add_argument("--onnx", required=True, metavar="FILE", help="the ONNX file to write")
    return p


def main(argv: list[str] | None = None, prog: str = "nodenet convert") -> int:
    args = build_parser(prog).parse_args(argv)
    try:
        from nodenet.onnx import save_onnx

        model = load(args.model)
        path = save_onnx(model, args.onnx)
    except (ImportError, ModelFileError, FileWriteError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{model!r} -> {path} (ONNX opset {_opset()}, input 'x', output 'y')")
    return 0


def _opset() -> int:
    from nodenet.onnx import OPSET

    return OPSET
