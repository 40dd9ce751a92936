"""Save and load models as ``.npz`` (arrays) + JSON (architecture), never pickle.

``save(model, "run/model.npz")`` writes ``model.npz`` holding the flat ``weights`` and
``biases``, the architecture as a JSON string and the input normaliser's statistics,
and beside it ``model.json``, the same architecture for people to read. Both are
written atomically (temporary file in the same folder, then ``os.replace``), so a
crash never leaves a half-written file under the final name.

Loading trusts nothing in the file: the architecture is parsed and checked first, then
every array's shape and type is read from its ``.npy`` header and compared with what
the architecture needs, and only then is anything allocated or read. A file that
declares a huge network but holds small arrays costs a few kilobytes to refuse.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import numpy as np

from .data import Normaliser
from .files import atomic_write, strict_json, unreadable, write_json
from .graph import Model

FORMAT = "nodenet-model-1"
MAX_TEXT_CHARS = 10_000_000  # the JSON entries (architecture, checkpoint progress)


class ModelFileError(ValueError):
    """A model file is missing, truncated, corrupt, or does not fit its architecture."""


def save_arrays(path: str | os.PathLike, arrays: dict[str, np.ndarray]) -> Path:
    """Atomically write ``arrays`` as an uncompressed ``.npz`` (no object arrays)."""
    return atomic_write(path, lambda f: np.savez(f, **arrays))


def load_arrays(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read every array of a model or checkpoint ``.npz`` (``allow_pickle=False``) once
    each entry's header fits the architecture the file declares (see the module
    docstring); raises :class:`ModelFileError` naming the file and the entry."""
    path = Path(path)
    problem = unreadable(path)
    if problem:
        raise ModelFileError(f"{path}: {problem}")
    try:
        headers = read_headers(path)
        with np.load(path, allow_pickle=False) as npz:
            if "architecture" in headers:
                _check_text(path, "architecture", headers["architecture"])
                expected = expected_headers(parse_architecture(npz["architecture"], path))
                for name, (shape, dtype) in headers.items():
                    _check_entry(path, name, shape, dtype, expected)
            return {key: npz[key] for key in npz.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        if isinstance(exc, ModelFileError):
            raise
        raise ModelFileError(f"{path}: not a readable .npz file ({exc})") from exc


def read_headers(path: Path) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """``{entry: (shape, dtype)}`` of every array in an ``.npz``, from the ``.npy``
    headers alone (no array data is read)."""
    headers = {}
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            if info.compress_type != zipfile.ZIP_STORED:  # a zip bomb is a compressed entry
                raise ModelFileError(
                    f"{path}: {info.filename} is compressed; nodenet writes its files "
                    "uncompressed and reads no compressed entry"
                )
            with archive.open(info) as f:
                version = np.lib.format.read_magic(f)
                if version == (1, 0):
                    shape, _, dtype = np.lib.format.read_array_header_1_0(f)
                elif version == (2, 0):
                    shape, _, dtype = np.lib.format.read_array_header_2_0(f)
                else:
                    raise ModelFileError(f"{path}: {info.filename}: unsupported .npy {version}")
            headers[info.filename.removesuffix(".npy")] = (tuple(shape), np.dtype(dtype))
    return headers


def parse_architecture(entry: np.ndarray, path: str | os.PathLike) -> dict:
    """The architecture JSON as a dict with the fields a model needs, each checked;
    :class:`ModelFileError` names the field that is wrong."""
    try:
        description = json.loads(str(entry))
    except (json.JSONDecodeError, RecursionError) as exc:
        raise ModelFileError(f"{path}: the architecture is not valid JSON ({exc})") from exc
    if not isinstance(description, dict):
        raise ModelFileError(
            f"{path}: the architecture must be a JSON object, got {type(description).__name__}"
        )
    if description.get("format") != FORMAT:
        raise ModelFileError(f"{path}: unknown format {description.get('format')!r}")
    if description.get("dtype") not in ("float32", "float64"):
        raise ModelFileError(f"{path}: field 'dtype' must be float32 or float64")
    try:
        Model.from_config(description)  # checks input_size, loss, every layer
    except (ValueError, TypeError, AttributeError) as exc:
        raise ModelFileError(f"{path}: invalid architecture ({exc})") from exc
    return description


def expected_headers(description: dict) -> dict[str, tuple[tuple[int, ...], str]]:
    """What each entry of a file with this architecture must look like: shape and dtype
    kind (``"f"`` float of the model's dtype, ``"U"`` text). Checkpoint entries
    (``opt_0_*``, ``callback_*``, ...) follow the flat weights or biases."""
    model = Model.from_config(description)
    layout = model.layout
    dtype = description["dtype"]
    w, b = ((layout.n_weights,), dtype), ((layout.n_biases,), dtype)
    return {
        "weights": w,
        "biases": b,
        "running": ((layout.n_running,), dtype),
        "normaliser_mean": ((model.input_size,), "float32"),
        "normaliser_std": ((model.input_size,), "float32"),
        "opt_0_": w,
        "opt_1_": b,
        "callback_": w,  # or biases (see _check_entry)
    }


def _check_entry(path, name: str, shape, dtype: np.dtype, expected: dict) -> None:
    if name in ("architecture", "progress", "normaliser_kind"):
        _check_text(path, name, (shape, dtype))
        return
    if name == "opt_t":
        if shape != () or dtype.kind not in "iu":
            raise ModelFileError(f"{path}: entry 'opt_t' must be one integer")
        return
    key = next((k for k in expected if name == k or (k.endswith("_") and name.startswith(k))), None)
    if key is None:
        raise ModelFileError(f"{path}: unexpected entry {name!r}")
    allowed = [expected[key]]
    if key == "callback_":  # a callback may keep any of the flat arrays
        allowed += [expected["biases"], expected["running"]]
    if (shape, dtype.name) not in [(s, np.dtype(d).name) for s, d in allowed]:
        wanted = " or ".join(f"{d} {s}" for s, d in allowed)
        raise ModelFileError(
            f"{path}: entry {name!r} is {dtype} {shape}, but the architecture needs {wanted}"
        )


def _check_text(path, name: str, header) -> None:
    shape, dtype = header
    if shape != () or dtype.kind != "U" or dtype.itemsize // 4 > MAX_TEXT_CHARS:
        raise ModelFileError(f"{path}: entry {name!r} must be a JSON text of bounded size")


def model_arrays(model: Model, metadata: dict | None = None) -> dict[str, np.ndarray]:
    """Everything that describes ``model`` as plain arrays: ``weights``, ``biases``, the
    architecture as a JSON string and the normaliser's statistics."""
    flats = (("weights", model.weights), ("biases", model.biases), ("running", model.running))
    for name, flat in flats:
        if not np.isfinite(flat).all():
            raise ValueError(f"refusing to save a model whose {name} hold NaN or infinity")
    description = {"format": FORMAT, "dtype": str(model.dtype), **model.config()}
    if metadata:
        description["metadata"] = metadata
    arrays = {
        "weights": model.weights,
        "biases": model.biases,
        "architecture": np.array(strict_json(description)),
    }
    if model.running.size:  # batch-norm running statistics
        arrays["running"] = model.running
    if model.normaliser is not None:
        arrays.update({f"normaliser_{k}": v for k, v in model.normaliser.to_arrays().items()})
    return arrays


def model_from_arrays(arrays: dict[str, np.ndarray], path: str | os.PathLike) -> Model:
    """Rebuild the model that :func:`model_arrays` described; ``path`` names the file
    in errors (:class:`ModelFileError`)."""
    missing = {"architecture", "weights", "biases"} - set(arrays)
    if missing:
        raise ModelFileError(f"{path}: missing entry {', '.join(sorted(missing))}")
    description = parse_architecture(arrays["architecture"], path)
    model = Model.from_config(description)
    if model.layout.size != arrays["weights"].size + arrays["biases"].size:
        raise ModelFileError(
            f"{path}: weights {arrays['weights'].shape} and biases {arrays['biases'].shape} "
            f"do not fit the architecture {model.sizes}"
        )
    model.construct(seed=None, dtype=np.dtype(description["dtype"]))
    if model.running.size and "running" not in arrays:
        raise ModelFileError(f"{path}: missing entry running (the batch-norm statistics)")
    for name, expected in (
        ("weights", model.weights),
        ("biases", model.biases),
        ("running", model.running),
    ):
        value = arrays.get(name, expected)
        if value.shape != expected.shape:
            raise ModelFileError(
                f"{path}: {name} has shape {value.shape} but the architecture "
                f"{model.sizes} needs {expected.shape}"
            )
        if not np.isfinite(value).all():
            raise ModelFileError(f"{path}: {name} contain NaN or infinity")
        expected[...] = value
    for l, block in enumerate(model.layout.running):
        if block.stop > block.start and (block.view(model.running)[1] < 0).any():
            raise ModelFileError(
                f"{path}: running: layer {l}'s batch-norm running variance is negative"
            )
    prefix = "normaliser_"
    normaliser = {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)}
    if normaliser:
        try:
            model.normaliser = Normaliser.from_arrays(normaliser, model.input_size)
        except (KeyError, ValueError) as exc:
            raise ModelFileError(f"{path}: bad normaliser ({exc})") from exc
    return model


def load_metadata(path: str | os.PathLike) -> dict:
    """The ``metadata`` a model file was saved with (``{}`` if none); ``path`` as for
    :func:`load`."""
    path = Path(path)
    if path.is_dir():
        path = path / "model.npz"
    arrays = load_arrays(path)
    if "architecture" not in arrays:
        raise ModelFileError(f"{path}: missing entry architecture")
    metadata = parse_architecture(arrays["architecture"], path).get("metadata", {})
    return metadata if isinstance(metadata, dict) else {}


def save(model: Model, path: str | os.PathLike, metadata: dict | None = None) -> Path:
    """Write ``model`` to ``path`` (``.npz``; the suffix is added if missing) and the
    architecture to the ``.json`` beside it. Returns the ``.npz`` path."""
    path = Path(path)
    if path.suffix != ".npz":
        path = path.with_suffix(".npz")
    arrays = model_arrays(model, metadata)
    save_arrays(path, arrays)
    write_json(path.with_suffix(".json"), json.loads(str(arrays["architecture"])))
    return path


def load(path: str | os.PathLike) -> Model:
    """Read a model written by :func:`save` (a ``.npz`` file, or a folder holding
    ``model.npz``). Raises :class:`ModelFileError` on any problem with the file."""
    path = Path(path)
    if path.is_dir():
        path = path / "model.npz"
    return model_from_arrays(load_arrays(path), path)
