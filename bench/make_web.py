"""The real text of `zoo inspect`'s unit finding: the World English Bible (public domain, with quotation marks
and parentheses), one verse a line, its first `--chars` characters (1,000,000: Genesis into Judges).

    apt-get install diatheke sword-text-web
    python bench/make_web.py web.txt
"""

import argparse
from pathlib import Path

from make_bible import verses


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out")
    parser.add_argument("--chars", type=int, default=1_000_000)
    args = parser.parse_args()
    text = "\n".join(verses("engWEB2015eb").values())[: args.chars] + "\n"
    Path(args.out).write_text(text, encoding="utf-8")
    print(f"wrote {args.out}: {len(text):,} characters")


if __name__ == "__main__":
    main()
