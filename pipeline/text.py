"""Text from files made safe to print: a checkpoint's metadata, a sidecar's or preset's strings, an error
message quoting them. A control character printed raw can forge lines (CR, LF), move the cursor or recolour
the terminal (ESC), or reorder what is shown (bidirectional overrides), so each is written as an escape."""
from __future__ import annotations

import difflib
import unicodedata

SIMILAR = 0.75  # difflib's ratio a suggestion needs, dashes aside: --lop -> --loop (0.86), never --zoom -> --loop (0.5)

# Not category Cc, but they change how the text around them reads: line and paragraph separators, and the
# bidirectional embeddings, overrides and isolates (the "Trojan Source" characters).
_INVISIBLE = {"\u2028", "\u2029", *map(chr, range(0x202A, 0x202F)), *map(chr, range(0x2066, 0x206A)),
              "\u200e", "\u200f", "\u061c"}


def close_matches(word: str, options, n: int = 3) -> list[str]:
    """The options close enough to `word` to suggest for a typo, best first: compared without their leading dashes
    (every flag shares "--", which made difflib's default 0.6 suggest --classes for --lossless) at SIMILAR."""
    options = [str(o) for o in options]
    bare = {o.lstrip("-"): o for o in options}
    return [bare[m] for m in difflib.get_close_matches(str(word).lstrip("-"), list(bare), n=n, cutoff=SIMILAR)]


def _escape(ch: str) -> str:
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text, keep_newlines: bool = False) -> str:
    """`text` (anything: str() of it) with every control character escaped: "a\\r\\nsha256: x" prints on one
    line as `a\\x0d\\x0asha256: x`. keep_newlines: LF stays a line break (for messages made of lines), every
    other control character is still escaped."""
    text = str(text)
    out = []
    for ch in text:
        if ch == "\n" and keep_newlines:
            out.append(ch)
        elif ch in _INVISIBLE or unicodedata.category(ch) == "Cc":
            out.append(_escape(ch))
        else:
            out.append(ch)
    return "".join(out)
