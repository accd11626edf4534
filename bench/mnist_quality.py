"""zoo's defaults on (Fashion-)MNIST: test accuracy, whole-command wall time and peak memory.

Each model trains in its own `zoo train MODEL TASK` process with the task's defaults; the peak
resident memory is that process's (os.wait4). The accuracy is on the official test split.

    python bench/mnist_quality.py [--models lstm,rnn,gru,lstm-bi] [--task fashion-mnist] [-- zoo train options]
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from zoo.checkpoint import read_header

parser = argparse.ArgumentParser()
parser.add_argument("--models", default="lstm,rnn,gru,lstm-bi")
parser.add_argument("--task", default="fashion-mnist")
parser.add_argument("options", nargs="*", help="passed on to zoo train, after --")
args = parser.parse_args()
zoo = shutil.which("zoo") or sys.exit("zoo is not on PATH: pip install -e . first")

print(f"{'model':<10} {'test accuracy':>13} {'wall s':>8} {'peak RSS MiB':>13}  precision", flush=True)
with tempfile.TemporaryDirectory() as tmp:
    for model in args.models.split(","):
        out = Path(tmp) / f"{model}.safetensors"
        with open(Path(tmp) / "log", "w+") as log:
            started = time.perf_counter()
            process = subprocess.Popen([zoo, "train", model, args.task, "--out", str(out), "-q", *args.options],
                                       stdout=log, stderr=subprocess.STDOUT)
            _, status, usage = os.wait4(process.pid, 0)
            wall = time.perf_counter() - started
            if status != 0:
                log.seek(0)
                sys.exit(f"zoo train {model} {args.task} failed:\n{log.read()}")
        metadata = read_header(out)[0]
        metrics, versions = json.loads(metadata["metrics"]), json.loads(metadata["versions"])
        print(f"{model:<10} {metrics['accuracy']:>13.4f} {wall:>8.1f} {usage.ru_maxrss / 1024:>13.0f}  "
              f"{versions['precision']}", flush=True)
