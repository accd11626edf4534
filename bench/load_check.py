"""What checking an export against its tensors costs: zoo.load with and without the meta-device check,
and how long refusing a forged file takes.

    python bench/load_check.py [--hidden 64 1024] [--rounds 20]

Each export is an lstm-stacked trained for one epoch on hihello; "check" is the architecture built on
torch's meta device and compared with the header, "load" everything zoo.load does (the check included).
The forged file is the same export claiming hidden_size 1e9.
"""

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from safetensors import safe_open
from safetensors.torch import load_file, save_file

import zoo
from zoo.store.checkpoint import expected_tensors, read_card, read_header
from zoo.contract.registry import registry

parser = argparse.ArgumentParser()
parser.add_argument("--hidden", type=int, nargs="+", default=[64, 1024])
parser.add_argument("--rounds", type=int, default=20)
args = parser.parse_args()


def median_ms(function, rounds):
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


with tempfile.TemporaryDirectory() as tmp:
    for hidden in args.hidden:
        out = Path(tmp) / f"lstm{hidden}.safetensors"
        zoo.train("lstm-stacked", "hihello", {"epochs": 1, "hidden_size": hidden}, out=out,
                  run_dir=Path(tmp) / f"run{hidden}", log=lambda line: None)  # not the checkout's checkpoints/
        card, (_, entries) = read_card(out), read_header(out)
        spec = registry().get_model(card.model)
        zoo.load(out)  # warm up
        check = median_ms(lambda: expected_tensors(out, spec, card, entries), args.rounds)
        load = median_ms(lambda: zoo.load(out), max(args.rounds // 4, 3))
        print(f"hidden {hidden:5d} ({out.stat().st_size / 1024:,.0f} KiB): check {check:.1f} ms, whole load "
              f"{load:.1f} ms: the check is {check / load:.0%} of it")
        with safe_open(out, "pt") as f:
            metadata = dict(f.metadata())
        metadata["model_config"] = json.dumps({**json.loads(metadata["model_config"]), "hidden_size": 10**9})
        forged = Path(tmp) / "forged.safetensors"
        save_file(load_file(out), forged, metadata=metadata)

        def refuse():
            try:
                zoo.load(forged)
            except zoo.ZooError:
                return
            raise AssertionError("a forged file was loaded")

        print(f"  the same file claiming hidden_size 1e9: refused in {median_ms(refuse, args.rounds):.1f} ms")
