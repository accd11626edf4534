"""A Python-stepped cell against torch.nn.LSTM, per epoch of the MNIST-shaped problem, interleaved in one run.

Training steps of zoo's many-to-one network (rows of 28 pixels, 28 steps, batch 256, hidden 96, 10
classes, Adam, fp32) on random images: the data does not change the arithmetic. Per variant, the
median time of a training step over `--rounds` interleaved rounds of `--steps` steps, scaled to an
epoch of 55,000 images (215 steps), and its ratio to the LSTM:

- lstm: torch.nn.LSTM, zoo's `lstm` (oneDNN, one call for all 28 steps);
- gru: torch.nn.GRU, zoo's `gru` (torch's own CPU kernels, one call for all 28 steps);
- mgu naive: the minimal gated unit as first written, both gates' input products inside the step loop;
- mgu eager: examples/zoo-mgu's cell: the input products of all steps in one, only the recurrence stepped,
  the steps taken apart with `unbind` (indexing `[:, t]` would back-propagate a full-size zero tensor
  per step);
- mgu script: the example's step loop through torch.jit.script;
- mgu compile (--compile): the example's step loop through torch.compile (its `--compile` option).

The warm-up column is the time of the first `--warmup` steps: compiling and tracing are paid there.

    python bench/custom_cell.py [--rounds 3] [--steps 20] [--threads 2] [--compile]
"""

import argparse
import importlib.util
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.nn import functional as F

import zoo
from zoo.nn.layers import recurrent
from zoo.nn.nets import RecurrentNet

parser = argparse.ArgumentParser()
parser.add_argument("--rounds", type=int, default=3)
parser.add_argument("--steps", type=int, default=20)
parser.add_argument("--threads", type=int, default=2)
parser.add_argument("--hidden", type=int, default=96)
parser.add_argument("--warmup", type=int, default=5, help="untimed steps per variant first")
parser.add_argument("--compile", action="store_true", help="also torch.compile (minutes of start-up)")
args = parser.parse_args()
torch.set_num_threads(args.threads)

spec = importlib.util.spec_from_file_location("zoo_mgu", Path(__file__).parent.parent / "examples/zoo-mgu/zoo_mgu.py")
zoo_mgu = importlib.util.module_from_spec(spec)
spec.loader.exec_module(zoo_mgu)

STEPS_PER_EPOCH = -(-55_000 // 256)
problem = zoo.Problem(zoo.MANY_TO_ONE, output_size=10, input_size=28)
x = torch.rand(256, 28, 28, generator=torch.Generator().manual_seed(0))
y = torch.randint(10, (256,), generator=torch.Generator().manual_seed(1))


def lstm(config, size):
    return torch.nn.LSTM(size, config.hidden_size, **zoo.torch_rnn_kwargs(config))


def gru(config, size):
    return torch.nn.GRU(size, config.hidden_size, **zoo.torch_rnn_kwargs(config))


def network(make_cell, config, native=False):
    torch.manual_seed(0)
    return RecurrentNet(lambda c, size: recurrent(make_cell, c, size, native), config, problem)


def trainer(net):
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)

    def step():
        loss = F.cross_entropy(net(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    return step


def naive_mgu(config, input_size):
    """The same equations, written the obvious way: x_t's products computed step by step."""

    class NaiveMGU(torch.nn.Module):
        def __init__(self):
            super().__init__()
            hidden = config.hidden_size
            self.forget = torch.nn.Linear(input_size + hidden, hidden)
            self.candidate = torch.nn.Linear(input_size + hidden, hidden)

        def forward(self, x, h0=None):
            h = x.new_zeros(x.shape[0], config.hidden_size) if h0 is None else h0[0]
            outputs = []
            for t in range(x.shape[1]):
                f = torch.sigmoid(self.forget(torch.cat([x[:, t], h], -1)))
                candidate = torch.tanh(self.candidate(torch.cat([x[:, t], f * h], -1)))
                h = (1 - f) * h + f * candidate
                outputs.append(h)
            out = torch.stack(outputs, 1)
            return out, out[:, -1][None]

    return NaiveMGU()


def with_loop(step, loop):
    """Run `step` with the example's eager step loop replaced by `loop` (jit.script has no option there)."""
    def run():
        saved, zoo_mgu._loops[False] = zoo_mgu._loops.get(False), loop
        try:
            step()
        finally:
            zoo_mgu._loops[False] = saved

    return run


base = zoo.RecurrentConfig(hidden_size=args.hidden)
mgu = zoo_mgu.MGUConfig(hidden_size=args.hidden)
variants = {
    "lstm": trainer(network(lstm, base, native=True)),
    "gru": trainer(network(gru, base, native=True)),
    "mgu naive": trainer(network(naive_mgu, base)),
    "mgu eager": trainer(network(zoo_mgu.make_cell, mgu)),
    "mgu script": with_loop(trainer(network(zoo_mgu.make_cell, mgu)), torch.jit.script(zoo_mgu.step_loop())),
}
startup = {}
if args.compile:
    variants["mgu compile"] = trainer(network(zoo_mgu.make_cell, zoo_mgu.MGUConfig(hidden_size=args.hidden,
                                                                                     compile=True)))
for name, step in variants.items():  # warm-up: scripting and its profiling runs, oneDNN's first call, compiling
    started = time.perf_counter()
    for _ in range(args.warmup):
        step()
    startup[name] = time.perf_counter() - started
    print(f"warm-up of {name}: {startup[name]:.2f} s", file=sys.stderr)

times = {name: [] for name in variants}
for _ in range(args.rounds):
    for name, step in variants.items():
        started = time.perf_counter()
        for _ in range(args.steps):
            step()
        times[name].append((time.perf_counter() - started) / args.steps)

reference = statistics.median(times["lstm"])
print(f"torch {torch.__version__}, {args.threads} threads, hidden {args.hidden}, batch 256, 28 steps x 28 features; "
      f"median of {args.rounds} rounds of {args.steps} steps")
print("| cell | ms per step | s per epoch (215 steps) | ratio to lstm | warm-up |")
print("| --- | --- | --- | --- | --- |")
for name, values in times.items():
    per_step = statistics.median(values)
    print(f"| {name} | {per_step * 1000:.1f} | {per_step * STEPS_PER_EPOCH:.2f} | {per_step / reference:.2f} | "
          f"{startup[name]:.2f} s |")
