"""Reading torch files as plain data: `torch.load(weights_only=True)` with one-line errors.

Loading never executes code from the file: a file that holds Python objects is refused. Callers
(checkpoints, the digit classifier) then check what they got before building anything from it.
"""
from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import torch

from pipeline.errors import UserError


def read_plain(path: str | os.PathLike, what: str, fix: str) -> tuple[object, str]:
    """Read `path` as plain torch data -> (data, sha256 of the bytes).

    what: how to name the file in errors ("checkpoint", "digit classifier"); fix: the advice every
    error ends with. Raises UserError on a missing, unreadable, non-torch, truncated or code-holding file.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise UserError(f"{what} {path} not found; {fix}") from None
    except OSError as e:
        raise UserError(f"cannot read {what} {path}: {e.strerror or e}; {fix}") from None
    digest = hashlib.sha256(raw).hexdigest()
    # torch.save writes a zip archive (older versions: a pickle, protocol 2+ starts with 0x80).
    if raw[:4] != b"PK\x03\x04" and raw[:1] != b"\x80":
        kind = "an empty file" if not raw else "not a torch file"
        raise UserError(f"{what} {path} is {kind}; {fix}")
    try:
        data = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    except Exception as e:  # torch.load raises many types (RuntimeError, UnpicklingError, EOFError, ...)
        text = str(e)
        if "weights only" in text.lower() or "weights_only" in text.lower():
            raise UserError(f"{what} {path} holds Python objects, not plain data; refusing to load it; "
                            f"{fix}") from None
        first = (text.strip().splitlines() or [type(e).__name__])[0]
        raise UserError(f"{what} {path} is truncated or corrupt ({first}); {fix}") from None
    return data, digest
