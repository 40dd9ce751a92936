"""The flags of ``nodenet train``, and how a resumed run takes its settings back."""

from __future__ import annotations

import argparse
import copy

from nodenet import settings

from .flags import add_flags

#: settings that define the run; --resume takes them from the checkpoint
RUN_SETTINGS = tuple(settings.at(settings.CHECKPOINT))
#: run settings that a resumed run may change (they do not change its past)
CHANGEABLE = tuple(name for name in RUN_SETTINGS if settings.SETTINGS[name].changeable)


def build_parser(prog: str = "nodenet train") -> argparse.ArgumentParser:
    """The ``nodenet train`` parser: every flag comes from :data:`nodenet.settings.SETTINGS`."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Train a nodenet MLP on MNIST, Fashion-MNIST or a CSV file and write the "
        "model, history, metrics and plot.",
    )
    add_flags(parser, settings.at(settings.CLI))
    return parser


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
