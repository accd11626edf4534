"""A recurrent cell and a task for zoo. Install with `pip install -e .`, then `zoo list elman`; test with `pytest`.

Keep `import torch` inside functions, so that `zoo list` and `zoo --help` stay fast with this
plugin installed.
"""

from dataclasses import dataclass

import zoo


def make_cell(config: zoo.RecurrentConfig, input_size: int):
    """One layer read left to right (zoo's cell contract): out, h_n = cell(x, h0), x (batch, time,
    input), h0 None or (1, batch, hidden). zoo builds elman-stacked and elman-bi around it."""
    import torch
    from torch import nn

    class Cell(nn.Module):
        def __init__(self):
            super().__init__()
            self.hidden_size = config.hidden_size
            self.input = nn.Linear(input_size, config.hidden_size)  # U x_t + b, every step in one product
            self.recurrent = nn.Linear(config.hidden_size, config.hidden_size, bias=False)  # W h_(t-1)

        def forward(self, x, h0=None):
            h = x.new_zeros(x.shape[0], self.hidden_size) if h0 is None else h0[0]
            inputs, outputs = self.input(x), []
            for t in range(x.shape[1]):  # h_t = tanh(U x_t + W h_(t-1) + b): change the recurrence here
                h = torch.tanh(inputs[:, t] + self.recurrent(h))
                outputs.append(h)
            out = torch.stack(outputs, 1)
            return out, out[:, -1][None]  # h_n: (1, batch, hidden), batch second as in torch

    return Cell()


@zoo.hookimpl
def register_models(register):
    for model in zoo.cell_models("elman", "elman: a vanilla RNN stepped explicitly", make_cell):
        register(model)


@dataclass(frozen=True)
class ElmanConfig:
    length: int = zoo.param(10, "steps per sequence")
    samples: int = zoo.param(512, "training sequences; a quarter as many are drawn for the test")

    def __post_init__(self):
        zoo.require(self.length >= 1, f"length must be at least 1, got {self.length}")
        zoo.require(self.samples >= 1, f"samples must be positive, got {self.samples}")


def make_data(config, meta):
    """Sequences of numbers; the class says whether their sum is positive (many-to-one)."""
    import torch

    from zoo.loop.data import TensorSplit

    def draw(count, seed):
        x = torch.randn(count, config.length, 1, generator=torch.Generator().manual_seed(seed))
        return TensorSplit(x, (x.sum(dim=(1, 2)) > 0).long())

    problem = zoo.Problem(zoo.MANY_TO_ONE, output_size=2, input_size=1)
    return zoo.TaskData(problem, train=draw(config.samples, 0), test=draw(max(config.samples // 4, 1), 1))


def evaluate(model, data, split):
    import torch

    from zoo.loop.data import batched_outputs

    right = [(out.argmax(-1) == y).float() for out, y in batched_outputs(model, data.split(split))]
    return {"accuracy": torch.cat(right).mean().item()}


TASK = zoo.Task(
    name="elman",
    description="elman: is the sum of a sequence positive?",
    shape=zoo.MANY_TO_ONE,
    data=make_data,
    evaluate=evaluate,
    config=ElmanConfig,
    train_defaults={"epochs": 10, "lr": 0.01, "batch_size": 64},
)


@zoo.hookimpl
def register_tasks(register):
    register(TASK)
