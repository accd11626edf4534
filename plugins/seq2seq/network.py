"""The seq2seq network: an encoder-decoder built from any registered recurrent cell, optional Luong attention.

It uses only what any plugin can: `zoo.build_cell` gives a cell with its layers whatever the cell's
plugin implements, and the cell contract (`out, h_n = cell(x, h0)`, states (layers, batch, hidden))
is all it relies on.

The encoder reads the source (both ways if bidirectional: a second cell reads each sentence
reversed within its length); the decoder starts from the encoder's final state, summed over the
directions. torch's own cells read padded batches packed; any other cell is stepped one token at a
time, each sentence keeping its state once it has ended, so padding never leaks into a final state.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import zoo
from zoo import BOS, EOS, PAD, map_state


def run_cell(cell: nn.Module, x: torch.Tensor, lengths: torch.Tensor):
    """(outputs, final state) of `cell` over a right-padded batch, as if each sentence ran alone."""
    if isinstance(cell, nn.RNNBase):
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, state = cell(packed)
        return pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])[0], state
    outputs, state = [], None
    for t in range(x.shape[1]):
        out, new = cell(x[:, t: t + 1], state)
        alive = t < lengths
        state = new if state is None else map_state(lambda n, o: torch.where(alive[None, :, None], n, o), new, state)
        outputs.append(out * alive[:, None, None])
    return torch.cat(outputs, 1), state


def reverse_within(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Each sentence reversed in place, its padding left at the end."""
    steps = torch.arange(x.shape[1], device=x.device)[None, :]
    index = torch.where(steps < lengths[:, None], lengths[:, None] - 1 - steps, steps)
    return x.gather(1, index[:, :, None].expand_as(x))


class Encoded(NamedTuple):
    memory: torch.Tensor  # (batch, source steps, directions * hidden): what attention reads
    keys: torch.Tensor | None  # memory projected for Luong's general score
    mask: torch.Tensor  # (batch, source steps): True on real tokens
    state: object  # the decoder's initial state

    def select(self, index: torch.Tensor) -> "Encoded":
        """The rows `index` of the batch (repeats allowed), for beam search."""
        return Encoded(self.memory[index], None if self.keys is None else self.keys[index], self.mask[index],
                       map_state(lambda s: s[:, index], self.state))


class Seq2SeqNet(nn.Module):
    """Encoder and decoder cells; with attention, Luong et al. (2015)'s global "general" attention with
    input feeding: each step's attentional vector is fed to the next step, so the decoder knows
    where it has already looked."""

    def __init__(self, cell: zoo.Model, cell_config, config, problem: zoo.Problem):
        super().__init__()
        hidden, embed = config.hidden_size, config.embed_dim or config.hidden_size
        directions = 2 if config.bidirectional else 1
        self.hidden_size = hidden
        self.src_embed = nn.Embedding(problem.vocab_size, embed, padding_idx=PAD)
        self.tgt_embed = nn.Embedding(problem.output_size, embed, padding_idx=PAD)
        self.encoders = nn.ModuleList(zoo.build_cell(cell, cell_config, embed) for _ in range(directions))
        self.attention = config.attention != "none"
        self.decoder = zoo.build_cell(cell, cell_config, embed + (hidden if self.attention else 0))
        if self.attention:  # score(h_t, s) = h_t . W s
            self.score = nn.Linear(directions * hidden, hidden, bias=False)
            self.combine = nn.Linear(directions * hidden + hidden, hidden, bias=False)
        self.dropout = zoo.Dropout(config.dropout)  # torch's, with a faster CPU mask
        self.out = nn.Linear(hidden, problem.output_size)
        self.teacher_forcing = config.teacher_forcing

    def encode(self, src: torch.Tensor, lengths: torch.Tensor) -> Encoded:
        x = self.dropout(self.src_embed(src))
        outputs, states = [], []
        for backward, cell in enumerate(self.encoders):
            out, state = run_cell(cell, reverse_within(x, lengths) if backward else x, lengths)
            outputs.append(reverse_within(out, lengths) if backward else out)
            states.append(state)
        memory = torch.cat(outputs, -1)
        state = states[0] if len(states) == 1 else map_state(torch.add, *states)
        mask = torch.arange(src.shape[1], device=src.device)[None, :] < lengths[:, None]
        return Encoded(memory, self.score(memory) if self.attention else None, mask, state)

    def start(self, enc: Encoded):
        """The decoder's carry: its recurrent state and, with attention, the last attentional vector."""
        feed = enc.memory.new_zeros(len(enc.memory), self.hidden_size) if self.attention else None
        return enc.state, feed

    def step(self, token: torch.Tensor, carry, enc: Encoded):
        """One decoder step: previous tokens (batch,) -> logits (batch, vocabulary) and the new carry."""
        state, feed = carry
        x = self.dropout(self.tgt_embed(token))
        out, state = self.decoder((torch.cat([x, feed], -1) if self.attention else x)[:, None], state)
        h = out[:, 0]
        if self.attention:
            scores = (h[:, None] @ enc.keys.transpose(1, 2)).masked_fill(~enc.mask[:, None, :], float("-inf"))
            context = (F.softmax(scores, dim=-1) @ enc.memory)[:, 0]
            h = feed = torch.tanh(self.combine(torch.cat([context, h], -1)))
        return self.out(self.dropout(h)), (state, feed)

    @staticmethod
    def reorder(carry, index: torch.Tensor):
        state, feed = carry
        return map_state(lambda s: s[:, index], state), None if feed is None else feed[index]

    def forward(self, src: torch.Tensor, src_len: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        """Logits (batch, target steps, vocabulary) for `tgt_in` = <s> + target."""
        enc = self.encode(src, src_len)
        sampling = self.training and self.teacher_forcing < 1
        if not self.attention and not sampling:  # every step sees the truth: one call does them all
            out, _ = self.decoder(self.dropout(self.tgt_embed(tgt_in)), enc.state)
            return self.out(self.dropout(out))
        logits, carry, token = [], self.start(enc), tgt_in[:, 0]
        for t in range(tgt_in.shape[1]):
            step, carry = self.step(token, carry, enc)
            logits.append(step)
            if t + 1 < tgt_in.shape[1]:
                token = tgt_in[:, t + 1]
                if sampling:  # each sentence feeds the truth with probability teacher_forcing
                    truth = torch.rand(len(token), device=token.device) < self.teacher_forcing
                    token = torch.where(truth, token, step.argmax(-1))
        return torch.stack(logits, 1)

    @torch.no_grad()
    def generate(self, src: torch.Tensor, src_len: torch.Tensor, max_length: int, beam: int = 1) -> list[list[int]]:
        """Target token ids for each source sentence, without <s> and </s>: greedy, or beam search."""
        enc = self.encode(src, src_len)
        if beam > 1:
            return [self._beam(enc.select(torch.tensor([i], device=src.device)), max_length, beam)
                    for i in range(len(src))]
        token = torch.full((len(src),), BOS, dtype=torch.long, device=src.device)
        carry, made = self.start(enc), []
        done = torch.zeros(len(src), dtype=torch.bool, device=src.device)
        for _ in range(max_length):
            logits, carry = self.step(token, carry, enc)
            token = logits.argmax(-1)
            made.append(token)
            done |= token == EOS
            if done.all():
                break
        rows = torch.stack(made, 1).tolist() if made else [[] for _ in range(len(src))]
        return [row[: row.index(EOS)] if EOS in row else row for row in rows]

    def _beam(self, enc: Encoded, max_length: int, width: int, alternatives: list | None = None) -> list[int]:
        """Beam search for one sentence; finished hypotheses compete on mean log-probability per token
        (`alternatives`, when given, receives them all, (score, tokens), best first: zoo inspect --beam)."""
        device = enc.mask.device
        tokens, scores = [[]], torch.zeros(1, device=device)
        carry, finished = self.start(enc), []
        for _ in range(max_length):
            last = torch.tensor([t[-1] if t else BOS for t in tokens], device=device)
            logits, carry = self.step(last, carry, enc.select(torch.zeros(len(tokens), dtype=torch.long,
                                                                          device=device)))
            total = (scores[:, None] + F.log_softmax(logits.float(), -1)).flatten()
            best = total.topk(min(width, len(total)))
            keep, next_tokens, next_scores = [], [], []
            for score, flat in zip(best.values.tolist(), best.indices.tolist()):
                parent, token = divmod(flat, logits.shape[-1])
                if token == EOS:
                    finished.append((score / (len(tokens[parent]) + 1), tokens[parent]))
                else:
                    keep.append(parent)
                    next_tokens.append(tokens[parent] + [token])
                    next_scores.append(score)
            if len(finished) >= width or not keep:
                break
            carry = self.reorder(carry, torch.tensor(keep, device=device))
            tokens, scores = next_tokens, torch.tensor(next_scores, device=device)
        if not finished:
            finished = [(s / len(t), t) for s, t in zip(scores.tolist(), tokens)]
        if alternatives is not None:
            alternatives.extend(sorted(finished, key=lambda pair: -pair[0]))
        return max(finished, key=lambda pair: pair[0])[1]
