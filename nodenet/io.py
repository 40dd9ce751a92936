"""Save and load models as ``.npz`` (arrays) + JSON (architecture), never pickle.

``save(model, "run/model.npz")`` writes ``model.npz`` holding the flat ``weights`` and
``biases``, the architecture as a JSON string and the input normaliser's statistics,
and beside it ``model.json``, the same architecture for people to read. Both are
written atomically (temporary file in the same folder, then ``os.replace``), so a
crash never leaves a half-written file under the final name.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import numpy as np

from .data import Normaliser
from .files import atomic_write
from .graph import Model

FORMAT = "nodenet-model-1"


class ModelFileError(ValueError):
    """A model file is missing, truncated, corrupt, or does not fit its architecture."""


def save_arrays(path: str | os.PathLike, arrays: dict[str, np.ndarray]) -> Path:
    """Atomically write ``arrays`` as an uncompressed ``.npz`` (no object arrays)."""
    return atomic_write(path, lambda f: np.savez(f, **arrays))


def load_arrays(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read every array of an ``.npz`` with ``allow_pickle=False``; raises
    :class:`ModelFileError` naming the file when it is missing or unreadable."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: no such file")
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {key: npz[key] for key in npz.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        raise ModelFileError(f"{path}: not a readable .npz file ({exc})") from exc


def model_arrays(model: Model, metadata: dict | None = None) -> dict[str, np.ndarray]:
    """Everything that describes ``model`` as plain arrays: ``weights``, ``biases``, the
    architecture as a JSON string and the normaliser's statistics."""
    description = {"format": FORMAT, "dtype": str(model.dtype), **model.config()}
    if metadata:
        description["metadata"] = metadata
    arrays = {
        "weights": model.weights,
        "biases": model.biases,
        "architecture": np.array(json.dumps(description)),
    }
    if model.normaliser is not None:
        arrays.update({f"normaliser_{k}": v for k, v in model.normaliser.to_arrays().items()})
    return arrays


def model_from_arrays(arrays: dict[str, np.ndarray], path: str | os.PathLike) -> Model:
    """Rebuild the model that :func:`model_arrays` described; ``path`` names the file
    in errors (:class:`ModelFileError`)."""
    try:
        description = json.loads(str(arrays["architecture"]))
        if description.get("format") != FORMAT:
            raise ModelFileError(f"{path}: unknown format {description.get('format')!r}")
        model = Model.from_config(description)
        model.construct(seed=None, dtype=np.dtype(description["dtype"]))
        weights, biases = arrays["weights"], arrays["biases"]
    except KeyError as exc:
        raise ModelFileError(f"{path}: missing entry {exc}") from exc
    except (ValueError, TypeError) as exc:
        if isinstance(exc, ModelFileError):
            raise
        raise ModelFileError(f"{path}: invalid architecture ({exc})") from exc
    for name, value, expected in (
        ("weights", weights, model.weights),
        ("biases", biases, model.biases),
    ):
        if value.shape != expected.shape:
            raise ModelFileError(
                f"{path}: {name} has shape {value.shape} but the architecture "
                f"{model.sizes} needs {expected.shape}"
            )
        if not np.isfinite(value).all():
            raise ModelFileError(f"{path}: {name} contain NaN or infinity")
        expected[...] = value
    prefix = "normaliser_"
    normaliser = {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)}
    if normaliser:
        try:
            model.normaliser = Normaliser.from_arrays(normaliser, model.input_size)
        except (KeyError, ValueError) as exc:
            raise ModelFileError(f"{path}: bad normaliser ({exc})") from exc
    return model


def save(model: Model, path: str | os.PathLike, metadata: dict | None = None) -> Path:
    """Write ``model`` to ``path`` (``.npz``; the suffix is added if missing) and the
    architecture to the ``.json`` beside it. Returns the ``.npz`` path."""
    path = Path(path)
    if path.suffix != ".npz":
        path = path.with_suffix(".npz")
    arrays = model_arrays(model, metadata)
    save_arrays(path, arrays)
    text = json.dumps(json.loads(str(arrays["architecture"])), indent=2).encode()
    atomic_write(path.with_suffix(".json"), lambda f: f.write(text))
    return path


def load(path: str | os.PathLike) -> Model:
    """Read a model written by :func:`save` (a ``.npz`` file, or a folder holding
    ``model.npz``). Raises :class:`ModelFileError` on any problem with the file."""
    path = Path(path)
    if path.is_dir():
        path = path / "model.npz"
    return model_from_arrays(load_arrays(path), path)
