"""Seq2seq against the course's script, and on a real-sized corpus.

1. The course's four pairs: `zoo train seq2seq translate` (defaults) against bench/course_seq2seq.py,
   whole commands, round-robin; target: zoo in at most a third of the script's time, 4/4 exact.
2. Dates (bench/make_dates.py, 20,000 pairs, 85/5/10 split): a character-level GRU encoder-decoder
   with and without attention; held-out exact match and BLEU. Target: >= 99% exact with attention.

    python bench/seq2seq.py [--rounds 3] [--skip-dates]
"""

import argparse
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from zoo.store.checkpoint import read_header

here = Path(__file__).resolve().parent
parser = argparse.ArgumentParser()
parser.add_argument("--rounds", type=int, default=3)
parser.add_argument("--skip-dates", action="store_true")
args = parser.parse_args()
zoo = shutil.which("zoo") or sys.exit("zoo is not on PATH: pip install -e . first")


def timed(command):
    started = time.perf_counter()
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return time.perf_counter() - started, out


with tempfile.TemporaryDirectory() as tmp:
    weights = Path(tmp) / "translate.safetensors"
    commands = {"course script": [sys.executable, str(here / "course_seq2seq.py")],
                "zoo train seq2seq translate": [zoo, "train", "seq2seq", "translate", "-q", "--out", str(weights)]}
    times = {name: [] for name in commands}
    for _ in range(args.rounds):
        for name, command in commands.items():
            seconds, out = timed(command)
            times[name].append(seconds)
            if name == "course script":
                course_exact = re.search(r"exact (\d)/4", out).group(1)
    zoo_exact = json.loads(read_header(weights)[0]["metrics"])["exact_match"]
    median = {name: statistics.median(t) for name, t in times.items()}
    ratio = median["zoo train seq2seq translate"] / median["course script"]
    print(f"course's four pairs, whole commands, median of {args.rounds}:")
    print(f"  course script (5,000 single-pair SGD steps): {median['course script']:.2f} s, exact {course_exact}/4")
    print(f"  zoo train seq2seq translate: {median['zoo train seq2seq translate']:.2f} s, "
          f"exact {round(zoo_exact * 4)}/4")
    print(f"  zoo / course = {ratio:.2f} (target <= 0.33: {'met' if ratio <= 1 / 3 else 'MISSED'})")

    if not args.skip_dates:
        dates = Path(tmp) / "dates.tsv"
        subprocess.run([sys.executable, str(here / "make_dates.py"), str(dates)], check=True, capture_output=True)
        print("\ndates -> ISO, 20,000 pairs, character level, GRU 128, 10 one-cycle epochs to lr 0.003, batch 64:")
        for attention in ("none", "luong"):
            out = Path(tmp) / f"dates-{attention}.safetensors"
            seconds, _ = timed([zoo, "train", "seq2seq", "translate", "--pairs", str(dates), "--level", "char",
                                "--hidden-size", "128", "--attention", attention, "--epochs", "10", "--lr", "0.003",
                                "--schedule", "onecycle", "-q", "--out", str(out),
                                # the settings these figures were measured with, before files got fitted defaults
                                "--dropout", "0", "--grad-clip", "0", "--patience", "0", "--batch-size", "64"])
            m = json.loads(read_header(out)[0]["metrics"])
            print(f"  attention {attention:<5}: held-out exact match {m['exact_match']:.4f}, token accuracy "
                  f"{m['token_accuracy']:.4f}, BLEU {m['bleu']:.2f} ({m['split']} split), {seconds:.0f} s")
