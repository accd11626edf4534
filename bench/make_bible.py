"""Build the real corpora of the charlm and translate benchmarks from Debian's Bible packages.

    apt-get install diatheke sword-text-kjv sword-text-sparv
    python bench/make_bible.py kjv.txt kjv-rv.tsv

`kjv.txt`: the King James Version (public domain), one verse a line, its first `--chars` characters
(1,000,000: about Genesis to Judges). `kjv-rv.tsv`: English (KJV) <TAB> Spanish (Reina-Valera 1909,
public domain) for every verse of at most `--words` words on both sides, in Bible order.
"""

import argparse
import re
import subprocess

VERSE = re.compile(r"^\s*(.+? \d+:\d+): (.*)$")


def verses(module: str) -> dict[str, str]:
    """Verse reference -> plain text, from `diatheke` (lines that are not a verse continue the last one)."""
    out = subprocess.run(["diatheke", "-b", module, "-f", "plain", "-k", "Genesis 1:1-Revelation 22:21"],
                         capture_output=True, text=True, check=True).stdout
    found: dict[str, str] = {}
    last = None
    for line in out.splitlines():
        match = VERSE.match(line)
        if match:
            last = match.group(1)
            found[last] = match.group(2)
        elif last and line.strip() and not line.startswith("("):
            found[last] += " " + line
    return {ref: " ".join(text.split()) for ref, text in found.items() if text.strip()}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("text")
    parser.add_argument("pairs")
    parser.add_argument("--chars", type=int, default=1_000_000)
    parser.add_argument("--words", type=int, default=12)
    args = parser.parse_args()
    english, spanish = verses("engKJV2006eb"), verses("spaRV1909eb")
    text = "\n".join(english.values()) + "\n"
    with open(args.text, "w", encoding="utf-8") as f:
        f.write(text[: args.chars])
    pairs = [(e, spanish[ref]) for ref, e in english.items()
             if ref in spanish and len(e.split()) <= args.words and len(spanish[ref].split()) <= args.words]
    with open(args.pairs, "w", encoding="utf-8") as f:
        f.writelines(f"{e}\t{s}\n" for e, s in pairs)
    print(f"{args.text}: {min(len(text), args.chars):,} characters of {len(english):,} verses; "
          f"{args.pairs}: {len(pairs):,} pairs of at most {args.words} words")


if __name__ == "__main__":
    main()
