"""The network around a recurrent cell: inputs in, the cell, a linear output layer (the course's "RNN + FC")."""

from __future__ import annotations

import warnings

import torch
from torch import nn
from torch.nn import functional as F

from zoo.nn.layers import (Carry, Dropout, check_step, drops_by_layer, dropout, map_state, native_by_layer,
                           recurrent_lengths)
from zoo.contract.specs import MANY_TO_ONE, Problem, ZooError


class RecurrentNet(nn.Module):
    """Token ids or feature vectors -> a recurrent cell -> a linear layer per step or for the last step.

    many-to-many: logits at every step, (batch, time, outputs). many-to-one: the final state of each
    direction feeds the linear layer, (batch, outputs).
    """

    def __init__(self, make_recurrent, config, problem: Problem):
        super().__init__()
        self.vocab_size = problem.vocab_size
        self.many_to_one = problem.shape == MANY_TO_ONE
        self.hidden_size = config.hidden_size
        self.directions, self.num_layers = (2 if config.bidirectional else 1), config.num_layers
        use_embedding = problem.vocab_size > 0 and config.embed_dim > 0
        self.embed = nn.Embedding(problem.vocab_size, config.embed_dim) if use_embedding else None
        input_size = problem.input_size or config.embed_dim or problem.vocab_size
        self.rnn = make_recurrent(config, input_size)  # the cell with its layers and directions
        self.dropout = Dropout(config.dropout)
        self.head = nn.Linear(self.hidden_size * self.directions, problem.output_size)
        self.weight_drop = getattr(config, "weight_drop", 0.0)  # a plugin's own config may not have it
        self.recurrent_weights = [f"rnn.{name}" for name, _ in self.rnn.named_parameters()
                                  if name.rsplit(".", 1)[-1].startswith("weight_hh")]
        if self.weight_drop and not self.recurrent_weights:
            raise ZooError(f"weight_drop={self.weight_drop} (given, or a task's defaults for your data) needs a cell "
                           "whose recurrent weights are named weight_hh* (torch's rnn, lstm and gru); this one has "
                           "none: -o weight_drop=0")
        self._dropping = False

    def forward(self, x: torch.Tensor, carry: Carry | torch.Tensor | None = None,
                lengths: torch.Tensor | None = None) -> torch.Tensor:
        """`carry` (many-to-many): start from its state and leave the final one there (truncated BPTT).

        `lengths` (batch,), also accepted in carry's place, so that a split's `(x, lengths)` inputs
        call `net(x, lengths)`: x is right-padded and sequence b is x[b, :lengths[b]]; each sequence's
        result is the one it gets alone, whatever its padding holds (zoo.nn.layers.recurrent_lengths).
        """
        if isinstance(carry, torch.Tensor):
            carry, lengths = None, carry
        if self.training and self.weight_drop and not self._dropping:
            # DropConnect: the same network with its recurrent weights dropped out, one mask per batch,
            # gradients reaching the weights themselves (torch.func.functional_call swaps them in)
            dropped = {name: dropout(self.get_parameter(name), self.weight_drop) for name in self.recurrent_weights}
            self._dropping = True
            try:
                with warnings.catch_warnings():  # cuDNN compacts the swapped-in weights, and says so every call
                    warnings.filterwarnings("ignore", message="RNN module weights are not part of single contiguous")
                    return torch.func.functional_call(self, dropped, (x, carry, lengths))
            finally:
                self._dropping = False
        if self.vocab_size:
            # one-hot per batch: the course's input, without holding one-hot copies of a whole corpus
            x = self.embed(x) if self.embed is not None else F.one_hot(x, self.vocab_size).to(self.head.weight.dtype)
        start = carry.state if carry is not None else None
        if lengths is None or (self.many_to_one and self.directions == 1 and carry is None):
            # one direction, many-to-one: the cells are causal (the kit's check_causal), so the output at
            # each sequence's last real step, read below, is the one it gets alone; and the padded batch
            # runs the fastest kernels (oneDNN's fused LSTM takes no packed batch: 7-20x slower packed)
            out, state = native_by_layer(self.rnn, x, start) if drops_by_layer(self.rnn, x) else self.rnn(x, start)
        else:  # variable length (issue 22): packed for torch's cells, segments for the others
            out, state = recurrent_lengths(self.rnn, x, lengths, start, self.directions == 2)
        check_step(out, state, x, self.hidden_size, self.num_layers, self.directions)  # a broken cell: one line
        if carry is not None:
            carry.state = map_state(torch.Tensor.detach, state)
        if self.many_to_one and lengths is not None:  # forward direction at each sequence's own last step
            last = out.gather(1, (lengths.to(out.device) - 1).view(-1, 1, 1).expand(-1, 1, out.shape[-1]))[:, 0]
            out = last if self.directions == 1 else torch.cat([last[:, : self.hidden_size],
                                                               out[:, 0, self.hidden_size:]], dim=-1)
        elif self.many_to_one:
            last = out[:, -1, : self.hidden_size]  # forward direction after reading everything
            if self.directions == 2:  # backward direction after reading everything, i.e. at step 0
                last = torch.cat([last, out[:, 0, self.hidden_size :]], dim=-1)
            out = last
        return self.head(self.dropout(out))
