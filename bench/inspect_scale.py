"""What `zoo inspect` costs: the time and page size for a 10,000-character charlm text read by a 512-unit
LSTM, and for 16 Fashion-MNIST test images, beside the time of one plain forward pass over the same input.

    python bench/inspect_scale.py [--work DIR]

It trains the exports it needs for one epoch (their weights do not change the cost), in DIR.
"""

import argparse
import subprocess
import sys
import time
from pathlib import Path

import torch

import zoo


def run(*args: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "zoo", *args], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", default="inspect-bench")
    args = parser.parse_args()
    work = Path(args.work)
    work.mkdir(exist_ok=True)
    text = work / "gen.txt"
    subprocess.run([sys.executable, str(Path(__file__).with_name("make_brackets.py")), str(text), "--chars", "10000"],
                   check=True, stdout=subprocess.DEVNULL)
    characters = text.read_text()[:10_000]
    text.write_text(characters)
    charlm = work / "charlm-512.safetensors"
    if not charlm.exists():
        run("train", "lstm", "charlm", "--text", str(text), "-o", "hidden_size=512", "-o", "bptt=100", "-e", "1",
            "-o", "val_fraction=0", "-q", "--out", str(charlm), "--run-dir", str(work / "run-charlm"))
    page = work / "charlm.html"
    seconds = run("inspect", str(charlm), str(text), "--feature", "quotes", "--feature", "bracket-depth",
                  "--out", str(page))
    net = zoo.load(charlm)
    ids = torch.tensor([zoo.encode(characters, net.zoo.meta["vocab"])])
    start = time.perf_counter()
    with torch.no_grad():
        net(ids)
    forward = time.perf_counter() - start
    start = time.perf_counter()
    zoo.trace(net, ids)
    traced = time.perf_counter() - start
    print(f"charlm, 10,000 characters, LSTM of 512: zoo inspect {seconds:.1f} s in all (process start and "
          f"loading included), page {page.stat().st_size / 1e6:.2f} MB; zoo.trace {traced:.2f} s vs one "
          f"forward pass {forward:.2f} s")

    mnist = work / "fashion.safetensors"
    if not mnist.exists():
        run("train", "lstm", "fashion-mnist", "-e", "1", "-q", "--out", str(mnist), "--run-dir", str(work / "run-fm"),
            "--root", str(work / "datasets"))
    page = work / "fashion.html"
    seconds = run("inspect", str(mnist), "--count", "16", "-o", f"root={work / 'datasets'}", "--out", str(page))
    print(f"fashion-mnist, 16 test images (8 misclassified, chosen from the 10,000 test images), LSTM of 96: zoo "
          f"inspect {seconds:.1f} s in all, page {page.stat().st_size / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
