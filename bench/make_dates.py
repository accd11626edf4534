"""A rule-based translation corpus: dates written the ways people write them -> ISO 8601.

    python bench/make_dates.py dates.tsv [--pairs 20000] [--seed 0]

"March 3, 2021", "3 Mar 2021", "Wednesday, March 3, 2021", "03/03/2021" (month first), "3.3.2021"
(day first), "the 3rd of march, 2021", ... each -> "2021-03-03". Dates are uniform over 1950-2049;
repeated sources are dropped.
"""

import argparse
import datetime
import random

MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December"]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]


def ordinal(n: int) -> str:
    return f"{n}{'th' if 10 <= n % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"


def written(d: datetime.date, style: int) -> str:
    month, short, weekday = MONTHS[d.month - 1], MONTHS[d.month - 1][:3], DAYS[d.weekday()]
    return [
        f"{month} {d.day}, {d.year}",
        f"{d.day} {month} {d.year}",
        f"{short} {d.day}, {d.year}",
        f"{d.day} {short} {d.year}",
        f"{weekday}, {month} {d.day}, {d.year}",
        f"{d.month:02d}/{d.day:02d}/{d.year}",
        f"{d.day}.{d.month}.{d.year}",
        f"the {ordinal(d.day)} of {month.lower()}, {d.year}",
        f"{month.lower()} {ordinal(d.day)} {d.year}",
        f"{d.year}/{d.month}/{d.day}",
    ][style]


parser = argparse.ArgumentParser()
parser.add_argument("out")
parser.add_argument("--pairs", type=int, default=20000)
parser.add_argument("--seed", type=int, default=0)
args = parser.parse_args()
rng = random.Random(args.seed)
first, span = datetime.date(1950, 1, 1), (datetime.date(2049, 12, 31) - datetime.date(1950, 1, 1)).days
pairs = {}
while len(pairs) < args.pairs:
    d = first + datetime.timedelta(days=rng.randrange(span + 1))
    pairs.setdefault(written(d, rng.randrange(10)), d.isoformat())
with open(args.out, "w", encoding="utf-8") as f:
    f.writelines(f"{source}\t{target}\n" for source, target in pairs.items())
print(f"wrote {len(pairs)} pairs to {args.out}")
