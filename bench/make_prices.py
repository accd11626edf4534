"""A long trending price series for the stock benchmark: a geometric random walk with drift.

    python bench/make_prices.py FILE [--days 4000] [--drift 0.0006] [--volatility 0.015] [--seed 0]

Daily log returns are normal (mean `drift`, sd `volatility`: about +16% a year, the volatility of a
large stock); Open, High, Low and Volume are drawn around each day's close. Written in the common
download format (Date,Open,High,Low,Close,Adj Close,Volume), oldest first, trading days only.
Starting at 100, the close ends near 100 x exp(4000 x 0.0006) = 1100: the test days lie far above
anything the training days saw, which is what a level-scaled model cannot cope with.
"""

import argparse
import datetime

import numpy as np

parser = argparse.ArgumentParser()
parser.add_argument("file")
parser.add_argument("--days", type=int, default=4000)
parser.add_argument("--drift", type=float, default=0.0006)
parser.add_argument("--volatility", type=float, default=0.015)
parser.add_argument("--seed", type=int, default=0)
args = parser.parse_args()

rng = np.random.default_rng(args.seed)
close = 100 * np.exp(np.cumsum(rng.normal(args.drift, args.volatility, args.days)))
previous = np.concatenate([[100.0], close[:-1]])
open_ = previous * np.exp(rng.normal(0, args.volatility / 3, args.days))  # overnight gap
high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0, args.volatility / 2, args.days)))
low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0, args.volatility / 2, args.days)))
volume = np.round(1e6 * np.exp(rng.normal(0, 0.3, args.days) + 5 * np.abs(np.log(close / previous))))
day, dates = datetime.date(2000, 1, 3), []
while len(dates) < args.days:
    if day.weekday() < 5:
        dates.append(day.isoformat())
    day += datetime.timedelta(days=1)
with open(args.file, "w") as out:
    out.write("Date,Open,High,Low,Close,Adj Close,Volume\n")
    for row in zip(dates, open_, high, low, close, close, volume):
        out.write(f"{row[0]},{row[1]:.4f},{row[2]:.4f},{row[3]:.4f},{row[4]:.4f},{row[5]:.4f},{row[6]:.0f}\n")
print(f"wrote {args.days} days to {args.file}: close {close[0]:.2f} -> {close[-1]:.2f}")
