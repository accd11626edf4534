"""torch's CPU dropout against zoo's (`zoo.nn.layers.dropout`: a mask from random 16-bit words), side by side.

    python bench/dropout.py [--text shakespeare.txt] [--steps 60] [--rounds 3] [--threads 2]

1. The mask alone: F.dropout against zoo's, forward and backward, on a charlm batch's activations
   (16 x 100 x 512) and on an LSTM 512's recurrent weights (2048 x 512, weight drop).
2. Training steps of charlm's fitted network for a 1 MB text (LSTM, two layers of 512, dropout 0.4,
   weight drop 0.25, 16 lanes of 100 characters, Adam, gradient clipping 1.0, bf16 autocast where the
   CPU has it), built by zoo, once with torch's dropout everywhere (zoo's three dropouts patched back
   to F.dropout and torch's own stacked layers) and once as zoo runs it. The two alternate within
   each round, their order turning; the figure is characters a second over the timed steps, after 5
   untimed ones, and the ratio is zoo's over torch's of the medians. Both train from the same weights;
   their training losses after the steps are printed too (other masks, so not equal).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch.nn import functional as F

import zoo
import zoo.nn.layers as layers
import zoo.nn.nets as nets

import machine  # bench/machine.py: this folder is the script's first sys.path entry


def timed(function, repeats: int = 100) -> float:
    for _ in range(5):
        function()
    start = time.perf_counter()
    for _ in range(repeats):
        function()
    return (time.perf_counter() - start) / repeats * 1e3


def masks() -> None:
    for shape, p in (((16, 100, 512), 0.4), ((2048, 512), 0.25)):
        x = torch.randn(*shape, requires_grad=True)
        torch_ms = timed(lambda: F.dropout(x, p, True).sum().backward())
        zoo_ms = timed(lambda: layers.dropout(x, p, True).sum().backward())
        print(f"mask {tuple(shape)}, p {p}: torch {torch_ms:.2f} ms, zoo {zoo_ms:.2f} ms forward and backward "
              f"({torch_ms / zoo_ms:.1f}x)")


class TorchDropout:
    """zoo's dropout patched back to torch's for the duration of a `with`."""

    def __enter__(self):
        self.saved = layers.dropout, nets.dropout, nets.drops_by_layer
        layers.dropout = nets.dropout = F.dropout
        nets.drops_by_layer = lambda rnn, x: False
        return self

    def __exit__(self, *exc):
        layers.dropout, nets.dropout, nets.drops_by_layer = self.saved


def network(vocab: int):
    from zoo.contract.config import make_config
    from zoo.contract.specs import MANY_TO_MANY, Problem

    model = zoo.get_model("lstm")
    config = make_config(model.config, {"hidden_size": 512, "num_layers": 2, "dropout": 0.4, "weight_drop": 0.25},
                         owner="lstm")
    return model.build(config, Problem(shape=MANY_TO_MANY, vocab_size=vocab, output_size=vocab))


def steps(net, data: torch.Tensor, count: int, dtype) -> tuple[float, float]:
    """(characters a second over `count` steps after 5 untimed ones, the last step's loss)."""
    optimizer = torch.optim.Adam(net.parameters(), lr=0.004)
    carry = zoo.Carry()
    lanes = data[: data.numel() // 16 * 16].view(16, -1)
    net.train()
    start, loss = None, None
    for step in range(count + 5):
        if step == 5:
            start = time.perf_counter()
        at = (step * 100) % (lanes.shape[1] - 101)
        x, y = lanes[:, at: at + 100], lanes[:, at + 1: at + 101]
        with torch.autocast("cpu", dtype=dtype or torch.float32, enabled=dtype is not None):
            logits = net(x, carry)
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), y.reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        optimizer.step()
    return count * 16 * 100 / (time.perf_counter() - start), loss.item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--text", help="a text to train on (default: random characters of a 65-letter alphabet)")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    options = parser.parse_args()
    torch.set_num_threads(options.threads)
    cpu = machine.cpu()
    bf16 = "avx512_bf16" in machine.flags() or "amx_bf16" in machine.flags()
    print(f"{cpu}, {options.threads} threads, torch {torch.__version__}, {'bf16 autocast' if bf16 else 'fp32'}")
    masks()
    if options.text:
        text = open(options.text, encoding="utf-8").read()[:400_000]
        alphabet = sorted(set(text))
        data = torch.tensor([alphabet.index(c) for c in text])
    else:
        alphabet, data = range(65), torch.randint(0, 65, (400_000,), generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    start = network(len(alphabet)).state_dict()
    speeds = {"torch": [], "zoo": []}
    for round_ in range(options.rounds):
        for name in (("torch", "zoo") if round_ % 2 == 0 else ("zoo", "torch")):
            net = network(len(alphabet))
            net.load_state_dict(start)
            torch.manual_seed(round_)
            if name == "torch":
                with TorchDropout():
                    speed, loss = steps(net, data, options.steps, torch.bfloat16 if bf16 else None)
            else:
                speed, loss = steps(net, data, options.steps, torch.bfloat16 if bf16 else None)
            speeds[name].append(speed)
            print(f"round {round_ + 1} {name:5} {speed:8.0f} chars/s, loss after {options.steps + 5} steps {loss:.4f}")
    old, new = statistics.median(speeds["torch"]), statistics.median(speeds["zoo"])
    print(f"median: torch's dropout {old:.0f} chars/s, zoo's {new:.0f} chars/s: {new / old:.2f}x")


if __name__ == "__main__":
    main()
