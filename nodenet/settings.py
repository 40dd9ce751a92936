"""The one table of settings: name, type, range, default and help of everything a run
can be told, in the spirit of scikit-learn's ``_parameter_constraints``.

It is the single source of

- ``fit``'s keywords (the rows with ``"fit"`` among their doors), checked by
  :func:`resolve`;
- the ``nodenet train`` flags (``"cli"``), declared by :func:`add_flags`;
- what a checkpoint stores so that ``--resume`` continues the same run
  (``"checkpoint"``), selected by :func:`stored`;
- the defaults of ``Model.construct`` (``init``, ``dtype``).

A setting added here appears at every door it names, with nothing else to edit. The
scikit-learn estimators map their own names onto these rows in one written table
(``nodenet.sklearn.SKLEARN_NAMES``).

``None`` as a default means "decided by something else", said in the help: an optimizer
hyperparameter left at ``None`` takes that optimizer's own default (Adam's ``lr`` is
1e-3, SGD's 0.01), the same in the library and on the command line.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .activations import ACTIVATIONS
from .checks import require_int, require_number
from .optimizers import OPTIMIZERS, Optimizer

FIT, CLI, CHECKPOINT = "fit", "cli", "checkpoint"
EVERY_DOOR = frozenset({FIT, CLI, CHECKPOINT})


class SettingsError(ValueError):
    """A setting's value is out of its range, or settings contradict each other. The
    command line answers it with exit code 2, as for a bad flag."""


@dataclass(frozen=True)
class Setting:
    """One row of the table.

    ``kind``: ``"int"``, ``"float"``, ``"str"``, ``"bool"`` (a switch on the command
    line) or ``"ints"`` (one or more integers); ``low``/``high`` (with ``open_low``,
    ``closed_high``) bound numbers; ``choices`` lists the strings allowed; ``also`` lists
    extra values allowed besides the kind (``None``, ``"auto"``, ...); ``objects``: types
    of Python objects the library also takes (an ``Optimizer``, a tuple of arrays), which
    the command line cannot give. ``doors``: where the setting appears. ``changeable``: a
    resumed run may take a new value. ``flag``: the command-line spelling (by default
    ``--name-with-dashes``), ``aliases`` older spellings still accepted.
    """

    name: str
    kind: str
    default: Any
    help: str
    group: str
    doors: frozenset = EVERY_DOOR
    low: float | None = None
    high: float = math.inf
    open_low: bool = False
    closed_high: bool = False
    choices: tuple = ()
    also: tuple = ()
    objects: tuple[type, ...] = ()
    changeable: bool = False
    metavar: str | None = None
    aliases: tuple[str, ...] = ()

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def check(self, value: Any, label: str | None = None) -> Any:
        """``value`` validated (an int given for a float becomes one); ``ValueError``
        naming the setting, and every kind of value it takes, otherwise."""
        label = label or self.name
        if any(_same(value, allowed) for allowed in self.also):
            return value
        if self.objects and isinstance(value, self.objects):
            return value
        try:
            return self._check_kind(value, label)
        except ValueError as exc:
            others = [repr(v) for v in self.also] + [f"a {t.__name__}" for t in self.objects]
            if not others:
                raise SettingsError(str(exc)) from None
            head, got = str(exc).rsplit(", got ", 1)
            if len(others) > 1:
                alternatives = f"{', '.join(others[:-1])} or {others[-1]}"
            else:
                alternatives = f"or {others[0]}"
            raise SettingsError(f"{head}, {alternatives}, got {got}") from None

    def _check_kind(self, value: Any, label: str) -> Any:
        if self.kind == "int":
            return require_int(label, value, int(self.low if self.low is not None else 0))
        if self.kind == "float":
            low = -math.inf if self.low is None else self.low
            return require_number(
                label,
                value,
                low,
                self.high,
                open_low=self.open_low,
                closed_high=self.closed_high,
            )
        if self.kind == "bool":
            if not isinstance(value, bool):
                raise ValueError(f"{label} must be True or False, got {value!r}")
            return value
        if self.kind == "ints":
            if isinstance(value, int | str) or not isinstance(value, Iterable):
                raise ValueError(f"{label} must be a list of integers, got {value!r}")
            values = [require_int(label, v, int(self.low or 0)) for v in value]
            if not values:
                raise ValueError(f"{label} must name at least one integer, got {value!r}")
            return values
        if self.kind == "str":
            if not isinstance(value, str) or (self.choices and value not in self.choices):
                expected = f"one of {list(self.choices)}" if self.choices else "a string"
                raise ValueError(f"{label} must be {expected}, got {value!r}")
            return value
        raise TypeError(f"setting {self.name} has an unknown kind {self.kind!r}")


def _same(value: Any, allowed: Any) -> bool:
    """``value`` is ``allowed`` (``True`` is not ``1``, ``0`` is not ``False``; types are
    compared first, so an array is never compared with ``==``)."""
    return type(value) is type(allowed) and value == allowed


def _settings(*rows: Setting) -> dict[str, Setting]:
    return {row.name: row for row in rows}


NETWORK, OPTIMISATION, DATA, EXECUTION = "network", "optimisation", "data", "execution and output"
HIDDEN_ACTIVATIONS = tuple(sorted(set(ACTIVATIONS) - {"softmax"}))
CLI_ONLY = frozenset({CLI})
STORED_FLAG = frozenset({CLI, CHECKPOINT})
NOT_STORED = frozenset({FIT, CLI})

#: every setting, in the order ``--help`` shows them
SETTINGS: dict[str, Setting] = _settings(
    # ------------------------------------------------------------------ network
    Setting("arch", "str", None, "a convolutional network instead of dense hidden layers: a name (lenet5) or a JSON file {\"input_shape\": [C, H, W], \"layers\": [...]} (see docs/guide.md); the output layer is added for the data", NETWORK, STORED_FLAG, also=(None,), metavar="NAME|FILE"),
    Setting("hidden", "ints", [128, 64], "sizes of the hidden layers", NETWORK, STORED_FLAG, low=1, metavar="N"),
    Setting("activation", "str", "relu", "activation of the hidden layers (the output layer is Softmax)", NETWORK, STORED_FLAG, choices=HIDDEN_ACTIVATIONS),
    Setting("dropout", "float", 0.0, "inverted dropout on the hidden layers' activations while training", NETWORK, STORED_FLAG, low=0, high=1, metavar="RATE"),
    Setting("batch_norm", "bool", False, "batch normalisation in the hidden layers (before the activation)", NETWORK, STORED_FLAG),
    Setting("init", "str", "lecun", "weight initialisation (lecun: PyTorch's nn.Linear default, uniform +-1/sqrt(fan_in); he: normal sqrt(2/fan_in); xavier: uniform +-sqrt(6/(fan_in+fan_out)); glorot: scikit-learn's, xavier with uniform biases, factor 2 for sigmoid)", NETWORK, STORED_FLAG, choices=("lecun", "he", "xavier", "glorot")),
    Setting("dtype", "str", "float32", "floating-point type of the weights and the data", NETWORK, STORED_FLAG, choices=("float32", "float64")),
    # ------------------------------------------------------------- optimisation
    Setting("epochs", "int", 5, "passes over the training split", OPTIMISATION, low=1, changeable=True),
    Setting("batch_size", "int", 128, "samples per optimizer step", OPTIMISATION, low=1),
    Setting("shuffle", "bool", True, "shuffle the training rows every epoch (with the seed); --no-shuffle keeps their order", OPTIMISATION),
    Setting("optimizer", "str", "adam", "update rule (the library also takes an Optimizer object; then leave the hyperparameters below at None)", OPTIMISATION, choices=tuple(OPTIMIZERS), objects=(Optimizer,)),
    Setting("lr", "float", None, "learning rate (default: the optimizer's own: 1e-3 for adam, adamw and rmsprop, 0.01 for the others)", OPTIMISATION, low=0, open_low=True, also=(None,)),
    Setting("momentum", "float", None, "momentum, nesterov: momentum (default 0.9)", OPTIMISATION, low=0, high=1, also=(None,)),
    Setting("rho", "float", None, "rmsprop: decay of the squares (default 0.9)", OPTIMISATION, low=0, high=1, also=(None,)),
    Setting("beta1", "float", None, "adam, adamw: decay of the mean (default 0.9)", OPTIMISATION, low=0, high=1, also=(None,)),
    Setting("beta2", "float", None, "adam, adamw: decay of the squares (default 0.999)", OPTIMISATION, low=0, high=1, also=(None,)),
    Setting("eps", "float", None, "rmsprop, adagrad, adam, adamw: added to the root (default 1e-8)", OPTIMISATION, low=0, open_low=True, also=(None,)),
    Setting("weight_decay", "float", None, "L2 on the weights, decoupled for adamw (default 0, adamw 0.01)", OPTIMISATION, low=0, also=(None,)),
    Setting("average", "float", None, "keep a moving average of the weights with this decay per step (about the last 1/(1-DECAY) steps), validate and end with it; 0: the last iterate (default: 0.995, and 0 for a model with batch norm, whose statistics belong to the last iterate)", OPTIMISATION, low=0, high=1, also=(None,), metavar="DECAY"),
    Setting("lr_decay", "float", 1.0, "multiply the learning rate by FACTOR every lr_decay_every epochs", OPTIMISATION, low=0, high=1, open_low=True, closed_high=True, metavar="FACTOR"),
    Setting("lr_decay_every", "int", 1, "see lr_decay", OPTIMISATION, low=1, metavar="N"),
    Setting("seed", "int", 0, "seed of the initialisation, split, shuffles and dropout masks (the library also takes None: fresh entropy, recorded)", OPTIMISATION, low=0, also=(None,)),
    # --------------------------------------------------------------------- data
    Setting("dataset", "str", "mnist", "the IDX data set (its files are downloaded when missing, unless --no-download; none with --csv)", DATA, STORED_FLAG, choices=("mnist", "fashion-mnist"), also=(None,)),
    Setting("csv", "str", None, "train on this numeric CSV (a header row naming the columns) instead", DATA, STORED_FLAG, also=(None,), metavar="FILE"),
    Setting("target", "str", None, "--csv: what to predict", DATA, STORED_FLAG, also=(None,), metavar="COLUMN"),
    Setting("task", "str", "classification", "--csv: class labels (softmax, cross-entropy) or numbers (identity, squared error)", DATA, STORED_FLAG, choices=("classification", "regression")),
    Setting("test_csv", "str", None, "--csv: a test set with the same columns (default: report the validation split)", DATA, CLI_ONLY, also=(None,), metavar="FILE"),
    Setting("data_dir", "str", None, "folder holding mnist/ (default: $NODENET_DATA, else data/)", DATA, CLI_ONLY, also=(None,)),
    Setting("no_download", "bool", False, "never fetch missing data files (an error names them and where they belong)", DATA, CLI_ONLY),
    Setting("class_weight", "str", None, "weigh each class by n / (classes x its count) in the training loss (the library also takes a {label: weight} dict)", DATA, choices=("balanced",), also=(None,), objects=(dict,)),
    Setting("validation", "float", 0.2, "share of the training rows held out for validation (the library also takes (x_valid, y_valid))", DATA, low=0, high=1, objects=(tuple,), metavar="FRACTION", aliases=("--valid-fraction",)),
    Setting("validate_every", "int", None, "validate every this many batches (default: once per epoch)", DATA, low=1, also=(None,), changeable=True, metavar="BATCHES"),
    Setting("normalise", "str", "zscore", "divide by 255, or z-score each input column with training statistics", DATA, STORED_FLAG, choices=("scale", "zscore")),
    Setting("std_floor", "float", None, "zscore: the smallest std a column is divided by, in its units; 'pooled': the std of all training inputs together, so nearly constant border pixels are not blown up; 0: the textbook z-score (default: pooled for images, 0 for --csv)", DATA, STORED_FLAG, low=0, also=(None, "pooled")),
    # ---------------------------------------------------------------- execution
    Setting("backend", "str", None, "where training runs: inprocess, pool, ray (needs nodenet[ray]) or any registered name (default: decided by the workers setting; the library also takes a factory)", EXECUTION, NOT_STORED, also=(None,), objects=(Callable,), metavar="NAME"),
    Setting("workers", "int", 0, "worker processes (0: train in this process; auto: the pool only where it is faster, by nodenet.backend.choose_workers)", EXECUTION, NOT_STORED, also=("auto",)),
    Setting("chunk", "int", None, "samples per worker task (default: the batch split evenly)", EXECUTION, NOT_STORED, low=1, also=(None,)),
    Setting("max_failures", "int", 3, "lost workers a run survives (an exception a worker raises is never retried)", EXECUTION, NOT_STORED),
    Setting("ray_address", "str", None, "a running Ray cluster for backend ray, auto or HOST:PORT (default: start Ray on this machine)", EXECUTION, NOT_STORED, also=(None,), metavar="auto|HOST:PORT"),
    Setting("out", "str", None, "output folder (default: runs/<data set or CSV name>)", EXECUTION, CLI_ONLY, also=(None,)),
    Setting("checkpoint_every", "int", 1, "write checkpoint.npz every this many epochs (and on Ctrl-C)", EXECUTION, CLI_ONLY, low=1, metavar="EPOCHS"),
    Setting("resume", "str", None, "continue the run whose checkpoint.npz is in DIR", EXECUTION, CLI_ONLY, also=(None,), metavar="DIR"),
    Setting("no_plot", "bool", False, "do not draw training.png", EXECUTION, CLI_ONLY),
    Setting("quiet", "bool", False, "no progress bar or epoch lines", EXECUTION, CLI_ONLY),
)  # fmt: skip


def at(door: str) -> dict[str, Setting]:
    """The settings that appear at ``door`` (``"fit"``, ``"cli"`` or ``"checkpoint"``)."""
    return {name: row for name, row in SETTINGS.items() if door in row.doors}


def resolve(door: str, given: Mapping[str, Any], caller: str = "fit") -> dict[str, Any]:
    """Every setting of ``door``: ``given`` ones checked, the rest at their defaults. A
    name not in the table raises ``TypeError`` as Python does for an unknown keyword."""
    rows = at(door)
    unknown = sorted(set(given) - set(rows))
    if unknown:
        raise TypeError(f"{caller}() got an unexpected keyword argument {unknown[0]!r}")
    return {name: row.check(given[name]) if name in given else _copy(row.default) for name, row in rows.items()}  # fmt: skip


def stored(values: Mapping[str, Any]) -> dict[str, Any]:
    """The checkpoint's share of ``values``: settings with the ``"checkpoint"`` door whose
    value is plain JSON (an object given to the library, such as an Optimizer or a
    validation tuple, is the library's own to give again)."""
    rows = at(CHECKPOINT)
    return {k: v for k, v in values.items() if k in rows and _json_plain(v)}


def _json_plain(value: Any) -> bool:
    if isinstance(value, list):
        return all(_json_plain(v) for v in value)
    return (
        value is None
        or isinstance(value, str | bool | int)
        or (isinstance(value, float) and math.isfinite(value))
    )


def _copy(value: Any) -> Any:
    return list(value) if isinstance(value, list) else value


def settings_doc(door: str) -> str:
    """A numpydoc-like list of the settings at ``door``, for a docstring."""
    lines = ["", "    Settings (:data:`nodenet.settings.SETTINGS`)", "    " + "-" * 44]
    for name, row in at(door).items():
        lines.append(f"    {name} = {row.default!r}")
        lines.append(f"        {row.help}")
    return "\n".join(lines) + "\n"


def with_settings(function: Callable, door: str) -> inspect.Signature:
    """``function``'s signature with its ``**settings`` replaced by one keyword-only
    parameter per setting at ``door``, each with its default."""
    signature = inspect.signature(function)
    kept = [p for p in signature.parameters.values() if p.kind is not p.VAR_KEYWORD]
    added = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=row.default)
        for name, row in at(door).items()
    ]
    return signature.replace(parameters=[*kept, *added])


def markdown_table() -> str:
    """The table as Markdown: one row per setting with its doors and default (the
    README's "Settings and defaults" holds this text; a test keeps them equal)."""
    rows = ["| setting | `nodenet train` flag | `fit` keyword | checkpoint | default | meaning |"]
    rows.append("|---|---|---|---|---|---|")
    for name, row in SETTINGS.items():
        flag = f"`{row.flag}`" if CLI in row.doors else ""
        keyword = f"`{name}`" if FIT in row.doors else ""
        kept = "yes" if CHECKPOINT in row.doors else ""
        default = " ".join(map(str, row.default)) if row.kind == "ints" else row.default
        rows.append(f"| {name} | {flag} | {keyword} | {kept} | `{default}` | {row.help} |")
    return "\n".join(rows) + "\n"
