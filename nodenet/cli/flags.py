"""Command-line flags made from rows of a settings table (:class:`nodenet.settings.Setting`):
each flag converts its text by the row's kind and checks it by the row's range, so a bad
value gets one line naming the flag and what it takes."""

from __future__ import annotations

import argparse

from nodenet import settings


def flag_type(row: settings.Setting):
    """An argparse ``type`` for ``row``: the text converted by the row's kind and checked
    by :meth:`~nodenet.settings.Setting.check`, so a bad flag gets a one-line message
    naming it; the row's extra values (``auto``, ``pooled``) are taken as they are."""
    convert = {"int": int, "ints": int, "float": float}.get(row.kind, str)

    def parse(text: str):
        if text in row.also:
            return text
        try:
            try:
                value = convert(text)
            except ValueError:  # the check names what the flag takes
                value = text
            if row.kind == "ints":
                return row.check([value], "value")[0]
            return row.check(value, "value")
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc).replace("value must", "must")) from None

    return parse


def add_flags(parser: argparse.ArgumentParser, rows: dict[str, settings.Setting]) -> None:
    """One flag per row of the settings table, in argument groups; each help ends with
    the default unless it says the default itself."""
    groups: dict[str, argparse._ArgumentGroup] = {}
    for name, row in rows.items():
        if row.group not in groups:
            groups[row.group] = parser.add_argument_group(row.group)
        text = row.help
        if "default" not in text and row.kind != "bool" and row.default is not None:
            shown = " ".join(map(str, row.default)) if row.kind == "ints" else row.default
            text += f" (default: {shown})"
        options: dict = {"dest": name, "default": row.default, "help": text}
        if row.kind == "bool":  # a switch; one that is on by default can be turned off
            options["action"] = argparse.BooleanOptionalAction if row.default else "store_true"
        else:
            options["metavar"] = row.metavar
            if row.choices and all(value is None for value in row.also):
                options["choices"] = row.choices
            else:
                options["type"] = flag_type(row)
            if row.kind == "ints":
                options["nargs"] = "+"
        groups[row.group].add_argument(row.flag, *row.aliases, **options)
