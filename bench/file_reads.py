"""How many times `zoo train` opens the user's data file (issue 19: once for its defaults, once for its data).

    python bench/file_reads.py [MODEL TASK OPTION]     default: lstm charlm --text

Runs `zoo train MODEL TASK OPTION F -e 1 -q` on a small generated file F in a temporary folder, with an
audit hook counting every open of F (builtins, io, os.open, pathlib: all raise the `open` event).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = """
import os, sys
target = os.path.realpath(sys.argv[1])
opened = []
def hook(event, args):
    if event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
        path = os.fsdecode(args[0])
        if os.path.realpath(path) == target:
            opened.append(path)
sys.addaudithook(hook)
from zoo.front.cli import cli
try:
    cli(sys.argv[2:], prog_name="zoo", standalone_mode=True)
except SystemExit as e:
    code = e.code
else:
    code = 0
print(f"opens {len(opened)} exit {code}", file=sys.stderr)
"""


def count(model: str = "lstm", task: str = "charlm", option: str = "--text", extra: tuple = ()) -> int:
    with tempfile.TemporaryDirectory() as folder:
        data = Path(folder) / "book.txt"
        data.write_text("the quick brown fox jumps over the lazy dog. " * 400)
        argv = ["train", model, task, option, str(data), "-e", "1", "-q", "--hidden-size", "16", *extra]
        env = {**os.environ, "ZOO_THREADS": os.environ.get("ZOO_THREADS", "1")}
        done = subprocess.run([sys.executable, "-c", CHILD, str(data), *argv], cwd=folder, env=env,
                              capture_output=True, text=True)
        last = done.stderr.strip().splitlines()[-1]
        if not last.startswith("opens ") or not last.endswith("exit 0"):
            raise SystemExit(f"zoo train failed:\n{done.stdout}\n{done.stderr}")
        return int(last.split()[1])


if __name__ == "__main__":
    args = sys.argv[1:] or ["lstm", "charlm", "--text"]
    print(f"zoo train {' '.join(args)} F: {count(*args[:3])} opens of F")
