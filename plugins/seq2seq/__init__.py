"""Seq2seq: a GRU (or any registered cell) encoder-decoder, the course's translator, batched.

`--cell` picks the recurrent cell from the registry, so a third-party cell that keeps the cell
contract works here the day it is installed. Attention is off by default, which reproduces the
course; `--attention luong` lets every target step look at every source position. The network is
`network.Seq2SeqNet`, next to this module, built with zoo's public API only.
"""

from dataclasses import dataclass
from typing import Literal

import zoo
from zoo import applicable, make_config


@dataclass(frozen=True)
class Seq2SeqConfig:
    cell: str = zoo.param("gru", "the registered recurrent cell of the encoder and the decoder")
    hidden_size: int = zoo.param(16, "units per layer (the course: 16)")
    num_layers: int = zoo.param(1, "stacked layers in the encoder and the decoder")
    embed_dim: int = zoo.param(0, "token embedding size; 0: the hidden size, as in the course")
    bidirectional: bool = zoo.param(False, "read the source both ways; the directions' final states are summed")
    attention: Literal["none", "luong"] = zoo.param("none", "none: the course's; luong: attend to the source")
    dropout: float = zoo.param(0.0, "dropout on embeddings and before the output layer")
    teacher_forcing: float = zoo.param(1.0, "chance that a training step feeds the true previous token "
                                            "rather than the model's own guess")

    def __post_init__(self):
        zoo.require(self.hidden_size > 0, f"hidden_size must be positive, got {self.hidden_size}")
        zoo.require(self.num_layers > 0, f"num_layers must be positive, got {self.num_layers}")
        zoo.require(self.embed_dim >= 0, f"embed_dim must be >= 0, got {self.embed_dim}")
        zoo.require(0 <= self.dropout < 1, f"dropout must be in [0, 1), got {self.dropout}")
        zoo.require(0 <= self.teacher_forcing <= 1, f"teacher_forcing must be in [0, 1], got {self.teacher_forcing}")


def build(config: Seq2SeqConfig, problem: zoo.Problem):
    from zoo_plugins.seq2seq.network import Seq2SeqNet

    cell = zoo.get_model(config.cell)
    if cell.cell is None:
        raise zoo.ZooError(f"model {config.cell!r} is not a recurrent cell; --cell takes one of "
                           + ", ".join(m.name for m in zoo.list_models() if m.cell is not None and not m.defaults))
    settings = {"hidden_size": config.hidden_size, "num_layers": config.num_layers, "dropout": config.dropout,
                "bidirectional": False}  # each direction is a cell of its own
    cell_config = make_config(cell.config, applicable(cell.config, settings), owner=f"cell {config.cell}")
    return Seq2SeqNet(cell, cell_config, config, problem)


@zoo.hookimpl
def register_models(register):
    register(zoo.Model(
        name="seq2seq",
        description="encoder-decoder from any registered cell (GRU by default), attention optional",
        build=build,
        config=Seq2SeqConfig,
        shapes=(zoo.SEQ2SEQ,),
    ))
