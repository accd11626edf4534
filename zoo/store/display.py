"""Text from files zoo did not write (names, vocabularies, error messages) shown without harm.

A vocabulary entry `\\x1b]0;...` printed raw would retitle the user's terminal, and other escape
sequences can rewrite what is on the screen; control characters and bidirectional overrides are
therefore shown escaped, as Python writes them (`\\x1b`, `\\u202e`).
"""

from __future__ import annotations

import sys
import time
import unicodedata

# bidirectional embeddings, overrides and isolates: they reorder what the terminal shows ("Trojan source")
BIDI = set("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def printable(text: str, newlines: bool = True) -> str:
    """`text` with control characters escaped; newlines and tabs kept when `newlines` (a command's output),
    escaped too when not (an error message, which must stay one line)."""
    kept = "\n\t" if newlines else ""

    def shown(ch: str) -> str:
        if ch in kept or not (ch in BIDI or unicodedata.category(ch) == "Cc"):
            return ch
        return repr(ch)[1:-1]  # '\x1b' -> \x1b

    return "".join(map(shown, text)) if not text.isprintable() else text


def progress(line: str) -> None:
    """A line about a long computation in progress (a backtest's fold k of K), on stderr, so that a
    command's output (`zoo eval --json`) stays what it was."""
    print(f"[{time.strftime('%H:%M:%S')}] {printable(line, newlines=False)}", file=sys.stderr, flush=True)
