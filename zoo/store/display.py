"""Text from files and plugins zoo did not write (names, folder names, vocabularies, plugin descriptions,
distribution names and versions, metric strings, error messages) shown without harm: one rule for all.

A vocabulary entry `\x1b]0;...` printed raw would retitle the user's terminal, a newline in a folder
name would forge a row of `zoo runs`, a lone surrogate (`\ud800`, what Python makes of a file name that
is not UTF-8) ends a print in UnicodeEncodeError, and zero-width or bidirectional characters make two
different names look alike. So every character of these categories is shown as Python escapes it
(`\x1b`, `\u202e`, `\u200b`, `\ud800`): control characters (Cc), format characters (Cf: zero-width,
bidirectional marks and overrides, the byte-order mark), surrogates (Cs), and the line and paragraph
separators U+2028/U+2029 (Zl, Zp).
"""

from __future__ import annotations

import sys
import time
import unicodedata

ESCAPED = {"Cc", "Cf", "Cs", "Zl", "Zp"}  # the Unicode categories shown as escapes
# bidirectional embeddings, overrides and isolates (all Cf): they reorder what the terminal shows ("Trojan source")
BIDI = set("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def printable(text: str, newlines: bool = True) -> str:
    """`text` with the characters above escaped; newlines and tabs kept when `newlines` (a command's
    output), escaped too when not (a table cell, an error message: one line must stay one line)."""
    if not isinstance(text, str):
        text = str(text)
    if text.isprintable():
        return text
    kept = "\n\t" if newlines else ""

    def shown(ch: str) -> str:
        if ch in kept or unicodedata.category(ch) not in ESCAPED:
            return ch
        return ch.encode("unicode_escape", "backslashreplace").decode("ascii") if ch > "\x7f" else repr(ch)[1:-1]

    return "".join(map(shown, text))



def progress(line: str) -> None:
    """A line about a long computation in progress (a backtest's fold k of K), on stderr, so that a
    command's output (`zoo eval --json`) stays what it was."""
    print(f"[{time.strftime('%H:%M:%S')}] {printable(line, newlines=False)}", file=sys.stderr, flush=True)
