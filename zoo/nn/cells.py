"""Recurrent cells as models: one config for all of them, and the presets every cell gets.

A cell plugin supplies `make_cell(config, input_size)` returning one layer read in one direction:
`out, h_n = cell(x, h0)` with x (batch, time, input), h0 None or (1, batch, hidden), out (batch,
time, hidden), h_n (1, batch, hidden) or a tuple of such (the cell contract, zoo/nn/layers.py). zoo
stacks layers, adds the backward direction and the dropout between layers around it, so that the
`-stacked` and `-bi` presets `cell_models` registers are true for every cell. A cell that does those
itself, with torch.nn.RNN's layout (torch's own, for cuDNN/oneDNN speed), says `native_layers=True`.
The network around the cell (inputs, output layer) is `zoo.nn.nets.RecurrentNet`. Nothing here imports torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any, Callable

from zoo.contract.specs import MANY_TO_MANY, MANY_TO_ONE, Model, Problem, ZooError, param, require


@dataclass(frozen=True)
class RecurrentConfig:
    hidden_size: int = param(64, "units per layer and direction")
    num_layers: int = param(1, "stacked recurrent layers; the course's stacked RNN has 2")
    bidirectional: bool = param(False, "also read right to left (fits many-to-one tasks only: it sees the future)")
    dropout: float = param(0.0, "dropout between stacked layers and before the output layer")
    embed_dim: int = param(0, "token inputs: 0 feeds one-hot vectors as the course does, >0 learns embeddings")
    weight_drop: float = param(0.0, "DropConnect on the recurrent weights (weight_hh) while training, a fresh mask "
                                    "per batch (AWD-LSTM's weight drop); 0 turns it off")

    def __post_init__(self):
        require(self.hidden_size > 0, f"hidden_size must be positive, got {self.hidden_size}")
        require(self.num_layers > 0, f"num_layers must be positive, got {self.num_layers}")
        require(0 <= self.dropout < 1, f"dropout must be in [0, 1), got {self.dropout}")
        require(self.embed_dim >= 0, f"embed_dim must be >= 0, got {self.embed_dim}")
        require(0 <= self.weight_drop < 1, f"weight_drop must be in [0, 1), got {self.weight_drop}")


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


def build_cell(model: Model, config: Any, input_size: int):
    """The recurrent part of a network from a registered cell model, with its layers and directions.

    What composite models (seq2seq's encoder and decoder, say) call: it honours the contract for
    plain and native cells alike (zoo.nn.layers.recurrent).
    """
    from zoo.nn.layers import recurrent

    if model.cell is None:
        raise ZooError(f"model {model.name!r} is not a recurrent cell")
    return recurrent(model.cell, config, input_size, model.native_layers)


def build_recurrent_net(make_cell: Callable, native_layers: bool, config: RecurrentConfig, problem: Problem):
    from zoo.nn.layers import recurrent
    from zoo.nn.nets import RecurrentNet

    return RecurrentNet(lambda cfg, size: recurrent(make_cell, cfg, size, native_layers), config, problem)


def cell_models(name: str, description: str, make_cell: Callable[[Any, int], Any], *,
                native_layers: bool = False, config: type = RecurrentConfig) -> list[Model]:
    """The models to register for a cell: `name` and its presets `name-stacked` (two layers) and
    `name-bi` (bidirectional). Register each: `for m in zoo.cell_models(...): register(m)`.

    `make_cell(config, input_size)` returns a plain cell (one layer, one direction; see the module
    docstring) unless `native_layers`, where it builds num_layers, bidirectional and dropout itself
    in torch.nn.RNN's batch-first layout. `config` may be a dataclass with RecurrentConfig's fields and more.
    """
    common = dict(build=partial(build_recurrent_net, make_cell, native_layers), config=config,
                  shapes=recurrent_shapes, cell=make_cell, native_layers=native_layers)
    return [
        Model(name, description, **common),
        Model(f"{name}-stacked", f"{description}; two stacked layers", defaults={"num_layers": 2}, **common),
        Model(f"{name}-bi", f"{description}; bidirectional", defaults={"bidirectional": True}, **common),
    ]
