"""Checking plain values (a preset's TOML, a sidecar's or a request's JSON) against the type hints of a settings
dataclass: what each option must be, and how to say what it is instead ("expected a whole number, got a string
'32'"). Ranges and choices are then the settings' own `validate`, the same one the CLI's options go through."""
from __future__ import annotations

import types
import typing
from dataclasses import fields, is_dataclass

from pipeline.errors import UserError
from pipeline.text import close_matches

_TOML_TYPES = ((bool, "a boolean"), (int, "a whole number"), (float, "a number"), (str, "a string"),
               (list, "a list"), (dict, "a table"))  # bool first: it is an int too


def toml_type(value) -> str:
    """How a TOML value reads to a user: "a whole number", "a string", ..."""
    return next((name for kind, name in _TOML_TYPES if isinstance(value, kind)), f"a {type(value).__name__}")


def show(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


class Mismatch(Exception):
    def __init__(self, expected: str):
        self.expected = expected


def convert(value, hint):
    """value (from TOML) checked against a type hint -> the value for the dataclass; raises Mismatch."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        expected = []
        for option in options:
            try:
                return convert(value, option)
            except Mismatch as e:
                expected.append(e.expected)
        raise Mismatch(" or ".join(dict.fromkeys(expected)))  # TOML has no null: "omit it" is the None
    if origin in (tuple, list):
        args = [a for a in typing.get_args(hint) if a is not Ellipsis] or [object]
        item = args[0]
        if not isinstance(value, list):
            raise Mismatch(f"a list of {plural(item)}")
        try:
            items = [convert(v, item) for v in value]
        except Mismatch:
            raise Mismatch(f"a list of {plural(item)}") from None
        return tuple(items) if origin is tuple else items
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise Mismatch("true or false")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise Mismatch("a whole number")
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise Mismatch("a number")
    if hint is str:
        if isinstance(value, str):
            return value
        raise Mismatch("a string")
    if is_dataclass(hint):
        if isinstance(value, dict):
            return value  # nested tables are checked field by field by the caller
        raise Mismatch("a table")
    return value


def plural(hint) -> str:
    return {int: "whole numbers", float: "numbers", str: "strings", bool: "booleans"}.get(hint, "values")


def suggest(key: str, valid) -> str:
    close = close_matches(key, valid, n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def checked_fields(cls, values: dict, where: str) -> dict:
    """The entries of `values` that are fields of the settings dataclass `cls`, converted to its type hints
    (others, from another version, are left out); the first mismatch -> UserError "<where>: <key>: expected
    ..., got ..." about that key."""
    if not isinstance(values, dict):
        raise UserError(f"{where}: expected a table of settings, got {toml_type(values)} {show(values)}")
    hints = typing.get_type_hints(cls)
    out = {}
    for f in fields(cls):
        if f.name not in values:
            continue
        value = values[f.name]
        if value is None:
            out[f.name] = None if _optional(hints[f.name]) else f.default
            continue
        try:
            out[f.name] = convert(value, hints[f.name])
        except Mismatch as e:
            raise UserError(f"{where}: {f.name}: expected {e.expected}, got {toml_type(value)} {show(value)}",
                            key=f.name) from None
    return out


def _optional(hint) -> bool:
    return typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in typing.get_args(hint)
