"""Where a charlm export's held-out loss goes: speaker tags seen in training, tags never seen, the rest.

    python bench/charlm_errors.py RUN_OR_EXPORT --text shakespeare.txt [--val-fraction 0.05]

The held-out part is the text's last `--val-fraction` (charlm's split), read as one stream from the
400 characters before it (charlm's lead-in; its own figure reads 16 lanes, each after its own 400,
so the two differ in the third decimal). A speaker tag is a line of capitals ending in '.' or ':'
(`HOT.` in Project Gutenberg's plays, `GONZALO:` in tinyshakespeare; an `ACT II.` line counts too,
as a seen one); it is "seen" when the same line occurs in the training part. Each group's
characters (its newline included), their mean nats/char, and their share of the held-out mean; then
the mean had the unseen tags cost what the seen ones do.
"""

from __future__ import annotations

import argparse
import re

import torch
from torch.nn import functional as F

import zoo
from zoo_plugins.charlm import LEAD_IN

TAG = re.compile(r"[A-Z][A-Z .'-]*[.:]\n")


def read(net, ids: torch.Tensor, chunk: int = 1000, hidden: bool = False):
    """The logits at each position of `ids[:-1]`, one lane, the state carried from chunk to chunk; with
    `hidden`, also the hidden state the network's `head` reads there: (hidden, logits)."""
    states, out, carry = [], [], zoo.Carry()
    hook = net.head.register_forward_hook(lambda m, args, o: states.append(args[0][0].float())) if hidden else None
    x = ids[:-1].view(1, -1)
    with torch.no_grad():
        for number, start in enumerate(range(0, x.shape[1], chunk)):
            carry.follow(torch.tensor([number]))
            out.append(net(x[:, start: start + chunk], carry)[0].float())
    if hook is not None:
        hook.remove()
        return torch.cat(states), torch.cat(out)
    return torch.cat(out)


def losses(net, ids: torch.Tensor) -> torch.Tensor:
    """Each next character's loss over `ids`, one lane."""
    return F.cross_entropy(read(net, ids), ids[1:], reduction="none")


def kinds(text: str, boundary: int) -> torch.Tensor:
    """Each held-out character's group: 0 the rest, 1 in a speaker tag seen in training, 2 in an unseen one."""
    held = text[boundary:]
    seen_tags = {line for line in re.findall(r"^[A-Z][A-Z .'-]*[.:]\n", text[:boundary], re.M)}
    kind = torch.zeros(len(held), dtype=torch.long)
    at = 0
    for line in held.splitlines(keepends=True):
        if TAG.fullmatch(line):
            kind[at: at + len(line)] = 1 if line in seen_tags else 2
        at += len(line)
    return kind


def arguments(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("run", help="a charlm run folder or export")
    parser.add_argument("--text", required=True)
    parser.add_argument("--val-fraction", type=float, default=0.05)
    return parser


def held_out(options):
    """The export (one thread), the text, the held-out part's first index, the lead-in's length, and the
    ids from the lead-in to the text's end."""
    torch.set_num_threads(1)
    net = zoo.load(options.run)
    index = {c: i for i, c in enumerate(net.zoo.meta["vocab"])}
    text = open(options.text, encoding="utf-8").read()
    boundary = len(text) - int(len(text) * options.val_fraction)
    lead = min(LEAD_IN, boundary - 1)
    return net, text, boundary, lead, torch.tensor([index.get(c, 0) for c in text[boundary - 1 - lead:]])


def main() -> None:
    options = arguments(__doc__.splitlines()[0]).parse_args()
    net, text, boundary, lead, ids = held_out(options)
    nll = losses(net, ids)[lead:]
    held = text[boundary:]
    kind = kinds(text, boundary)
    mean = nll.mean().item()
    print(f"{options.run}: {len(held):,} held-out characters, {mean:.4f} nats/char (one lane)")
    for value, name in ((1, "speaker tags seen in training"), (2, "speaker tags never seen"), (0, "the rest")):
        part = nll[kind == value]
        print(f"  {name:30} {part.numel():6,} chars  {part.mean().item():.4f} nats/char  "
              f"{part.sum().item() / len(held):.4f} of the mean")
    seen, unseen = nll[kind == 1], kind == 2
    if seen.numel() and unseen.any():
        evened = (nll.sum() - nll[unseen].sum() + seen.mean() * unseen.sum()).item() / len(held)
        print(f"  had the unseen tags cost what the seen ones do: {evened:.4f} nats/char")


if __name__ == "__main__":
    main()
