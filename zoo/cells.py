"""Recurrent cells as models: one config for all of them, and the presets every cell gets.

A cell plugin supplies `make_cell(config, input_size)`, returning a module with torch.nn.RNN's
batch-first interface (`output, state = cell(x)` with x of shape (batch, time, input_size)).
`cell_models` turns it into the plain model and its stacked and bidirectional presets; the network
around the cell (inputs, output layer) is `zoo.nets.RecurrentNet`. Nothing here imports torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any, Callable

from zoo.specs import MANY_TO_MANY, MANY_TO_ONE, Model, Problem, param, require


@dataclass(frozen=True)
class RecurrentConfig:
    hidden_size: int = param(64, "units per layer and direction")
    num_layers: int = param(1, "stacked recurrent layers; the course's stacked RNN has 2")
    bidirectional: bool = param(False, "also read right to left (fits many-to-one tasks only: it sees the future)")
    dropout: float = param(0.0, "dropout between stacked layers and before the output layer")
    embed_dim: int = param(0, "token inputs: 0 feeds one-hot vectors as the course does, >0 learns embeddings")

    def __post_init__(self):
        require(self.hidden_size > 0, f"hidden_size must be positive, got {self.hidden_size}")
        require(self.num_layers > 0, f"num_layers must be positive, got {self.num_layers}")
        require(0 <= self.dropout < 1, f"dropout must be in [0, 1), got {self.dropout}")
        require(self.embed_dim >= 0, f"embed_dim must be >= 0, got {self.embed_dim}")


def recurrent_shapes(config: RecurrentConfig) -> tuple[str, ...]:
    # a backward pass reads step t+1 before predicting step t: next-step tasks would be trivial
    return (MANY_TO_ONE,) if config.bidirectional else (MANY_TO_ONE, MANY_TO_MANY)


def torch_rnn_kwargs(config: RecurrentConfig) -> dict[str, Any]:
    """Keyword arguments torch.nn.RNN, LSTM and GRU share, from the common config."""
    return {
        "num_layers": config.num_layers,
        "batch_first": True,
        "dropout": config.dropout if config.num_layers > 1 else 0.0,  # torch warns on dropout with one layer
        "bidirectional": config.bidirectional,
    }


def build_recurrent_net(make_cell: Callable, config: RecurrentConfig, problem: Problem):
    from zoo.nets import RecurrentNet

    return RecurrentNet(make_cell, config, problem)


def cell_models(name: str, description: str, make_cell: Callable[[Any, int], Any]) -> list[Model]:
    """The model `name` and its presets `name-stacked` (two layers) and `name-bi` (bidirectional)."""
    common = dict(build=partial(build_recurrent_net, make_cell), config=RecurrentConfig,
                  shapes=recurrent_shapes, cell=make_cell)
    return [
        Model(name, description, **common),
        Model(f"{name}-stacked", f"{description}; two stacked layers", defaults={"num_layers": 2}, **common),
        Model(f"{name}-bi", f"{description}; bidirectional", defaults={"bidirectional": True}, **common),
    ]
