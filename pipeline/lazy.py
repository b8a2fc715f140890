"""Lazy package exports: `from pipeline.render import Renderer` works, but importing the package alone (for a
constant, or for the CLI's --help) does not import torch."""
from __future__ import annotations

import importlib


def exports(package: str, table: dict[str, str]):
    """A module `__getattr__` for `package` that imports table[name] (a submodule) on first use of `name`."""
    def __getattr__(name: str):
        module = table.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        setattr(importlib.import_module(package), name, value)  # later lookups skip __getattr__
        return value

    return __getattr__
