"""Splits the training loop draws batches from, and batched inference over them.

A split needs `len(split)`, `split.batch(index) -> (inputs, targets)` for a 1-D tensor of example
numbers, and `split.to(device)`. Batches are index selections on tensors that already sit on the
device: no per-example Python work in the loop.
"""

from __future__ import annotations

import copy
from typing import Callable, Iterator

import torch

from zoo.nn.layers import Carry


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


class Streams:
    """One long series read as contiguous streams, for truncated backpropagation through time.

    Example i is the chunk `series[context + i * length : context + (i + 1) * length]`, its target the
    same shifted by one step. `order(batch_size)` lays the chunks out as `batch_size` lanes of
    consecutive chunks read side by side (as char-rnn and pytorch/examples' word_language_model do):
    batch k holds chunk k of every lane, so the state each lane ends a batch with, kept in `carry`,
    starts the next one. The inputs are `(chunks, carry)`: the network carries the state itself
    (zoo.nn.nets.RecurrentNet does).

    `context` (a held-out split): the series' first `context` elements come before the split and are
    read, never scored; chunks start after them. An evaluation (`batched_outputs`) has each lane read
    the `context` elements before its first chunk (`lead_in`), so that no lane starts from a zero
    state in the middle of the text: scored as one text is, not as `batch_size` texts each read cold.
    """

    def __init__(self, series: torch.Tensor, length: int, context: int = 0):
        self.series, self.length, self.context = series, length, context
        self.chunks = max(0, (len(series) - context - 1) // length)  # the last target is the series' last element
        self.offsets = torch.arange(length, device=series.device)
        self.carry = Carry()

    def __len__(self) -> int:
        return self.chunks

    def order(self, batch_size: int) -> list[torch.Tensor]:
        """The batches of an epoch, in reading order; the chunks left over past the last full lane are skipped."""
        if not self.chunks:
            return []
        lanes = min(batch_size, self.chunks)
        first = torch.arange(lanes, device=self.series.device) * (self.chunks // lanes)
        return [first + step for step in range(self.chunks // lanes)]

    def batch(self, index: torch.Tensor):
        steps = self.context + index[:, None] * self.length + self.offsets
        return (self.series[steps], self.carry.follow(index)), self.series[steps + 1]

    def lead_in(self, index: torch.Tensor) -> torch.Tensor | None:
        """The `context` elements just before each chunk of `index` (None without a context)."""
        if not self.context:
            return None
        return self.series[index[:, None] * self.length + torch.arange(self.context, device=self.series.device)]

    def to(self, device) -> "Streams":
        # a fresh carry: a moved split starts from zeros
        return Streams(self.series.to(device), self.length, self.context)


def epoch_order(split, batch_size: int, generator: torch.Generator, device) -> list[torch.Tensor]:
    """The batches (example numbers) of one training epoch: shuffled, unless the split reads in an
    order of its own (`split.order(batch_size)`, as Streams does to carry state across batches) or
    buckets its examples by length (`split.buckets(batch_size, generator)`, shuffled by `generator`)."""
    if hasattr(split, "order"):
        return [index.to(device) for index in split.order(batch_size)]
    if hasattr(split, "buckets"):  # batches of similar lengths, drawn from this generator (a variable-length split)
        return [index.to(device) for index in split.buckets(batch_size, generator)]
    return list(torch.randperm(len(split), generator=generator).to(device).split(batch_size))


def device_of(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def batched_outputs(model: torch.nn.Module, split, batch_size: int = 1024) -> Iterator[tuple]:
    """(outputs, targets) for the whole split, in order, a batch at a time, in eval mode. A split with an
    order of its own (Streams) is read in it, `batch_size` lanes side by side, the state carried, each
    lane first reading the split's context before its first chunk (Streams.lead_in)."""
    was_training = model.training
    model.eval()
    device = device_of(model)
    split = split.to(device)  # for Streams, a fresh carry
    indices = split.order(batch_size) if hasattr(split, "order") else torch.arange(len(split), device=device).split(
        batch_size)
    try:
        lead_in = split.lead_in(indices[0]) if hasattr(split, "lead_in") and indices else None
        if lead_in is not None:  # each lane first reads the text before its first chunk, its state carried on
            model(lead_in, split.carry.follow(indices[0] - 1))
        for index in indices:
            inputs, targets = split.batch(index)
            yield model(*inputs) if isinstance(inputs, tuple) else model(inputs), targets
    finally:
        model.train(was_training)


def encode(text: str, vocab: list[str], what: str = "text") -> list[int]:
    """Character ids of `text`; characters outside the vocabulary are a user error, named in one line."""
    from zoo.contract.specs import ZooError

    index: dict[str, int] = {}
    for i, ch in enumerate(vocab):  # one pass: a vocabulary of 10^6 entries costs no more than its length
        if not isinstance(ch, str) or len(ch) != 1:
            raise ZooError(f"the model's vocabulary is damaged: {_shown(ch)} is not a single character")
        if ch in index:
            raise ZooError(f"the model's vocabulary is damaged: {ch!r} is in it twice")
        index[ch] = i
    unknown = list(dict.fromkeys(ch for ch in text if ch not in index))  # in the order the text has them
    if unknown:
        shown = "".join(vocab)
        raise ZooError(f"{what} has characters the model never saw: {_shown(''.join(unknown))} "
                       f"(its vocabulary: {_shown(shown)})")
    return [index[ch] for ch in text]


def _shown(value, limit: int = 200) -> str:
    """`repr(value)`, cut to about `limit` characters: a line must stay a line."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text):,} characters)"


class PairSplit:
    """Source and target token sequences for seq2seq, padded once; a batch is trimmed to its longest member.

    Inputs are `(source, source_lengths, target_in)` with `target_in = <s> + target`; the targets are
    `target + </s>`, padded with -100, which the cross-entropy loss ignores.
    """

    def __init__(self, sources: list[list[int]], targets: list[list[int]]):
        from zoo.contract.specs import BOS, EOS, PAD

        self.src, self.src_len = _padded(sources, PAD)
        self.tgt_in, self.tgt_len = _padded([[BOS] + t for t in targets], PAD)
        self.tgt_out, _ = _padded([t + [EOS] for t in targets], -100)

    def __len__(self) -> int:
        return len(self.src_len)

    def batch(self, index: torch.Tensor):
        source_length, target_length = self.src_len[index], self.tgt_len[index]
        s, t = int(source_length.max()), int(target_length.max())
        return (self.src[index, :s], source_length, self.tgt_in[index, :t]), self.tgt_out[index, :t]

    def longest(self, n: int) -> torch.Tensor:
        """The indices of the `n` longest pairs: the batch that costs the most memory (zoo.nn.budget)."""
        return (self.src_len + self.tgt_len).argsort(descending=True)[:n]

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
