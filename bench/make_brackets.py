"""A text with nested brackets and quoted spans, for `zoo inspect --feature` to find the units that track them.

    python bench/make_brackets.py gen.txt --chars 300000
    zoo train lstm-stacked charlm --text gen.txt -o hidden_size=128 -o bptt=100 -e 40 --patience 0 --run-dir brackets
    zoo inspect brackets gen.txt --feature quotes --feature bracket-depth   # docs/inspect.md: r +0.93 and +0.95

Lines of made-up words; a group in brackets, ( [ or {, nests up to 4 deep and is closed in order;
a quoted span "..." holds words only and never crosses a bracket or a line. Seeded: the same text
every run.
"""

import argparse
import random

WORDS = ("alpha beta gamma delta epsilon zeta theta kappa lambda sigma omega tau rho phi chi psi nu mu xi "
         "red green blue cold warm fast slow big small old new").split()
OPEN, CLOSE = "([{", ")]}"


def words(rng: random.Random, low: int, high: int) -> list[str]:
    return [rng.choice(WORDS) for _ in range(rng.randint(low, high))]


def group(rng: random.Random, depth: int) -> str:
    """Words, quoted spans and (while depth < 4) nested groups, in one kind of bracket."""
    kind = rng.randrange(3)
    parts = []
    for _ in range(rng.randint(1, 4)):
        roll = rng.random()
        if roll < 0.3 and depth < 4:
            parts.append(group(rng, depth + 1))
        elif roll < 0.5:
            parts.append('"' + " ".join(words(rng, 1, 4)) + '"')
        else:
            parts.extend(words(rng, 1, 2))
    return OPEN[kind] + " ".join(parts) + CLOSE[kind]


def line(rng: random.Random) -> str:
    parts = []
    while sum(len(p) + 1 for p in parts) < rng.randint(40, 90):
        roll = rng.random()
        parts.append(group(rng, 1) if roll < 0.3 else '"' + " ".join(words(rng, 1, 5)) + '"' if roll < 0.45
                     else rng.choice(WORDS))
    return " ".join(parts) + "."


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out")
    parser.add_argument("--chars", type=int, default=300_000, help="stop after the line that reaches this length")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    lines, size = [], 0
    while size < args.chars:
        lines.append(line(rng))
        size += len(lines[-1]) + 1
    with open(args.out, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    print(f"wrote {args.out}: {size:,} characters, {len(lines):,} lines")


if __name__ == "__main__":
    main()
