"""How much charlm's continuous cache lowers an export's held-out loss, over a grid of its settings.

    python bench/charlm_cache.py RUN_OR_EXPORT --text shakespeare.txt [--positions 1000 2000 3000]
        [--weights 0.1 0.15 0.2] [--sharpness 1.0]

The held-out part (the text's last `--val-fraction`, charlm's split) is read as one stream after
charlm's 400 characters of lead-in, as bench/charlm_errors.py reads it, and each position's
next-character distribution is mixed with the cache of the positions before it (charlm's `cached`,
its definition written out here: one lane, where charlm's own evaluation reads 16 lanes side by side
and so differs in the third decimal). For each setting: the mean nats/char over the whole part, over
its first and second half (choose on one half, check on the other), over speaker tags never seen in
training, and over the rest. The fitted defaults' cache=3000, cache_weight=0.2, cache_sharpness=1.0
are the best of this grid on the first half of the Shakespeare file's held-out part.
"""

from __future__ import annotations


import torch
from torch.nn import functional as F

from charlm_errors import arguments, held_out, kinds, read


def cached_losses(hidden, logp, targets, positions: int, weight: float, sharpness: float, block: int = 500):
    """Each position's loss under the mixture with the cache of the `positions` before it."""
    n, vocab = logp.shape
    out = torch.empty(n)
    for t0 in range(0, n, block):
        t1 = min(n, t0 + block)
        k0 = max(0, t0 - positions)
        t, k = torch.arange(t0, t1)[:, None], torch.arange(k0, t1)[None, :]
        remembered = (k < t) & (k >= t - positions)
        scores = (hidden[t0:t1] @ hidden[k0:t1].T * sharpness).masked_fill(~remembered, float("-inf"))
        share = torch.softmax(scores, -1).nan_to_num(0.0)
        recalled = share @ F.one_hot(targets[k0:t1], vocab).float()
        p = (1 - weight) * logp[t0:t1].exp() + weight * recalled
        p[~remembered.any(1)] = logp[t0:t1][~remembered.any(1)].exp()
        out[t0:t1] = -p.gather(1, targets[t0:t1, None])[:, 0].clamp_min(1e-30).log()
    return out


def main() -> None:
    parser = arguments(__doc__.splitlines()[0])
    parser.add_argument("--positions", type=int, nargs="+", default=[1000, 2000, 3000])
    parser.add_argument("--weights", type=float, nargs="+", default=[0.1, 0.15, 0.2])
    parser.add_argument("--sharpness", type=float, nargs="+", default=[1.0])
    options = parser.parse_args()
    net, text, boundary, lead, ids = held_out(options)
    hidden, logits = read(net, ids, hidden=True)
    logp = F.log_softmax(logits, -1)
    targets = ids[1:]
    kind, half = kinds(text, boundary), (len(text) - boundary) // 2

    def line(name, losses):
        losses = losses[lead:]
        unseen = losses[kind == 2]
        tags = f"{unseen.mean().item():.3f}" if unseen.numel() else "-"
        print(f"  {name:34} all {losses.mean().item():.4f}  first half {losses[:half].mean().item():.4f}  "
              f"second half {losses[half:].mean().item():.4f}  unseen tags {tags}  "
              f"the rest {losses[kind == 0].mean().item():.4f}", flush=True)

    print(f"{options.run}: {len(text) - boundary:,} held-out characters, one lane")
    line("the network alone", -logp.gather(1, targets[:, None])[:, 0])
    for positions in options.positions:
        for weight in options.weights:
            for sharpness in options.sharpness:
                line(f"cache {positions}, weight {weight}, sharpness {sharpness}",
                     cached_losses(hidden, logp, targets, positions, weight, sharpness))


if __name__ == "__main__":
    main()
