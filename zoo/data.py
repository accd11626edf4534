"""Splits the training loop draws batches from, and batched inference over them.

A split needs `len(split)`, `split.batch(index) -> (inputs, targets)` for a 1-D tensor of example
numbers, and `split.to(device)`. Batches are index selections on tensors that already sit on the
device: no per-example Python work in the loop.
"""

from __future__ import annotations

import copy
from typing import Callable, Iterator

import torch


class TensorSplit:
    """Examples stacked in tensors along the first dimension; `transform` runs per batch (normalizing, say)."""

    def __init__(self, inputs: torch.Tensor, targets: torch.Tensor, transform: Callable | None = None):
        if len(inputs) != len(targets):
            raise ValueError(f"{len(inputs)} inputs but {len(targets)} targets")
        self.inputs, self.targets, self.transform = inputs, targets, transform

    def __len__(self) -> int:
        return len(self.targets)

    def batch(self, index: torch.Tensor):
        x = self.inputs[index]
        return (self.transform(x) if self.transform else x), self.targets[index]

    def to(self, device) -> "TensorSplit":
        return TensorSplit(self.inputs.to(device), self.targets.to(device), self.transform)


class Windows:
    """Sliding windows over a long series, gathered per batch instead of stored.

    Example i reads `inputs[s : s + length]` with `s = starts[i]`. Its target is
    `targets[s + horizon : s + horizon + length]` (many-to-many) or `targets[s + length - 1 + horizon]`
    (many-to-one): with `horizon=1` every step predicts the next one.
    """

    def __init__(self, inputs: torch.Tensor, targets: torch.Tensor, starts: torch.Tensor, length: int,
                 many_to_one: bool = False, horizon: int = 0):
        self.inputs, self.targets, self.starts, self.length = inputs, targets, starts, length
        self.many_to_one, self.horizon = many_to_one, horizon
        self.offsets = torch.arange(length, device=starts.device)

    def __len__(self) -> int:
        return len(self.starts)

    def batch(self, index: torch.Tensor):
        first = self.starts[index]
        steps = first[:, None] + self.offsets
        if self.many_to_one:
            return self.inputs[steps], self.targets[first + self.length - 1 + self.horizon]
        return self.inputs[steps], self.targets[steps + self.horizon]

    def to(self, device) -> "Windows":
        inputs = self.inputs.to(device)
        targets = inputs if self.targets is self.inputs else self.targets.to(device)  # one copy of a shared series
        return Windows(inputs, targets, self.starts.to(device), self.length, self.many_to_one, self.horizon)


def device_of(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def batched_outputs(model: torch.nn.Module, split, batch_size: int = 1024) -> Iterator[tuple]:
    """(outputs, targets) for the whole split, in order, a batch at a time, in eval mode."""
    was_training = model.training
    model.eval()
    split = split.to(device_of(model))
    try:
        for index in torch.arange(len(split), device=device_of(model)).split(batch_size):
            inputs, targets = split.batch(index)
            yield model(*inputs) if isinstance(inputs, tuple) else model(inputs), targets
    finally:
        model.train(was_training)


def encode(text: str, vocab: list[str], what: str = "text") -> list[int]:
    """Character ids of `text`; characters outside the vocabulary are a user error, named in one line."""
    from zoo.specs import ZooError

    index = {ch: i for i, ch in enumerate(vocab)}
    if len(index) != len(vocab) or not all(isinstance(ch, str) and len(ch) == 1 for ch in vocab):
        wrong = next((ch for i, ch in enumerate(vocab) if not isinstance(ch, str) or len(ch) != 1 or ch in vocab[:i]))
        raise ZooError(f"the model's vocabulary is damaged: {wrong!r} is " + (
            "in it twice" if isinstance(wrong, str) and len(wrong) == 1 else "not a single character"))
    unknown = sorted({ch for ch in text if ch not in index})
    if unknown:
        raise ZooError(f"{what} has characters the model never saw: {''.join(unknown)!r} "
                       f"(its vocabulary: {''.join(vocab)!r})")
    return [index[ch] for ch in text]


class PairSplit:
    """Source and target token sequences for seq2seq, padded once; a batch is trimmed to its longest member.

    Inputs are `(source, source_lengths, target_in)` with `target_in = <s> + target`; the targets are
    `target + </s>`, padded with -100, which the cross-entropy loss ignores.
    """

    def __init__(self, sources: list[list[int]], targets: list[list[int]]):
        from zoo.specs import BOS, EOS, PAD

        self.src, self.src_len = _padded(sources, PAD)
        self.tgt_in, self.tgt_len = _padded([[BOS] + t for t in targets], PAD)
        self.tgt_out, _ = _padded([t + [EOS] for t in targets], -100)

    def __len__(self) -> int:
        return len(self.src_len)

    def batch(self, index: torch.Tensor):
        source_length, target_length = self.src_len[index], self.tgt_len[index]
        s, t = int(source_length.max()), int(target_length.max())
        return (self.src[index, :s], source_length, self.tgt_in[index, :t]), self.tgt_out[index, :t]

    def to(self, device) -> "PairSplit":
        moved = copy.copy(self)
        for name in ("src", "src_len", "tgt_in", "tgt_len", "tgt_out"):
            setattr(moved, name, getattr(self, name).to(device))
        return moved


def _padded(sequences: list[list[int]], fill: int) -> tuple[torch.Tensor, torch.Tensor]:
    lengths = torch.tensor([len(s) for s in sequences])
    out = torch.full((len(sequences), int(lengths.max()) if len(sequences) else 0), fill, dtype=torch.long)
    for row, sequence in enumerate(sequences):
        out[row, : len(sequence)] = torch.tensor(sequence, dtype=torch.long)
    return out, lengths
