"""translate on a real corpus: the defaults fitted to a file against the course's toy settings, with
and without attention, each given the same training time.

The corpus: verses of the King James Version with their Reina-Valera 1909 translation (English ->
Spanish, both public domain), those of at most 16 words on both sides: 3,869 pairs, 85/5/10 split
(bench/make_bible.py builds it from Debian's diatheke, sword-text-kjv and sword-text-sparv).

Each setting first trains one epoch to time it, then trains floor(BUDGET / that time) epochs from
scratch (early stopping may end the fitted ones sooner). Reported: held-out (test split) BLEU and
exact match, the epochs and the training seconds.

    python bench/translate_real.py [--pairs kjv-rv.tsv] [--budget 300]
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from zoo.checkpoint import read_header

here = Path(__file__).resolve().parent
parser = argparse.ArgumentParser()
parser.add_argument("--pairs", help="a pairs file; default: built with bench/make_bible.py")
parser.add_argument("--budget", type=float, default=300, help="training seconds per setting")
args = parser.parse_args()
zoo = shutil.which("zoo") or sys.exit("zoo is not on PATH: pip install -e . first")
COURSE = ["--hidden-size", "16", "--dropout", "0", "--lr", "0.01", "--batch-size", "64", "--max-vocab", "0",
          "--fallback", "unk", "--grad-clip", "0", "--patience", "0"]  # the course's toy, whatever the file
SETTINGS = {
    "course's toy, no attention": [*COURSE, "--attention", "none"],
    "course's toy, luong attention": [*COURSE, "--attention", "luong"],
    "file defaults, no attention": ["--attention", "none"],
    "file defaults (luong attention)": [],
}


def train(pairs, extra, run, epochs):
    out = subprocess.run([zoo, "train", "seq2seq", "translate", "--pairs", str(pairs), *extra, "-e", str(epochs),
                          "--run-dir", str(run), "-q"], check=True, capture_output=True, text=True,
                         env={**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")})
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return out.stdout, rows, json.loads(read_header(run / "model.safetensors")[0]["metrics"])


with tempfile.TemporaryDirectory() as tmp:
    pairs = Path(args.pairs) if args.pairs else Path(tmp) / "kjv-rv.tsv"
    if not args.pairs:
        subprocess.run([sys.executable, str(here / "make_bible.py"), str(Path(tmp) / "kjv.txt"), str(pairs),
                        "--words", "16"], check=True)
    print(f"{sum(1 for _ in open(pairs, encoding='utf-8')):,} pairs; {args.budget:.0f} s of training per setting; "
          f"load {os.getloadavg()[0]:.1f}")
    print("| setting | epochs | training s | test BLEU | test exact match | test token accuracy |")
    print("| --- | --- | --- | --- | --- | --- |")
    for number, (name, extra) in enumerate(SETTINGS.items()):
        _, rows, _ = train(pairs, extra, Path(tmp) / f"time-{number}", 1)
        epochs = max(1, int(args.budget // rows[0]["seconds"]))
        out, rows, m = train(pairs, extra, Path(tmp) / f"run-{number}", epochs)
        stopped = f" (stopped early at {len(rows)})" if len(rows) < epochs else ""
        print(f"| {name} | {epochs}{stopped} | {sum(r['seconds'] for r in rows):.0f} | {m['bleu']:.2f} | "
              f"{m['exact_match']:.4f} | {m['token_accuracy']:.4f} |", flush=True)
    print(f"load at the end {os.getloadavg()[0]:.1f}")
