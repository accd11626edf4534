"""The adding problem (Hochreiter & Schmidhuber, 1997) as a zoo task, in one file.

Each sequence is `length` steps of (value, marker). Two steps are marked; the target is the sum of
their values. The network must carry two numbers across the whole sequence: many-to-one regression.
"""

from dataclasses import dataclass

import zoo


@dataclass(frozen=True)
class AddingConfig:
    length: int = zoo.param(20, "steps per sequence; longer is harder")
    samples: int = zoo.param(5000, "training sequences; a fifth as many are drawn for testing")

    def __post_init__(self):
        zoo.require(self.length >= 2, f"length must be at least 2, got {self.length}")
        zoo.require(self.samples > 0, f"samples must be positive, got {self.samples}")


def make_data(config, meta):
    import torch  # inside the hooks, so that `zoo list` never pays for importing torch

    from zoo import TensorSplit

    def draw(count, seed):
        g = torch.Generator().manual_seed(seed)
        values = torch.rand(count, config.length, generator=g)
        marked = torch.rand(count, config.length, generator=g).argsort(dim=1)[:, :2]  # two distinct steps
        markers = torch.zeros(count, config.length).scatter_(1, marked, 1.0)
        return TensorSplit(torch.stack([values, markers], dim=-1), (values * markers).sum(1, keepdim=True))

    problem = zoo.Problem(zoo.MANY_TO_ONE, output_size=1, input_size=2, regression=True)
    return zoo.TaskData(problem, train=draw(config.samples, 0), test=draw(max(config.samples // 5, 1), 1))


def evaluate(model, data, split):
    import torch

    from zoo import batched_outputs

    errors = torch.cat([(out - target).abs().flatten() for out, target in batched_outputs(model, data.split(split))])
    return {"mse": errors.pow(2).mean().item(), "accuracy": (errors < 0.04).float().mean().item()}


def predict(model, values):
    """VALUES like "0.3 0.9* 0.1 0.5*": the starred steps are the marked ones."""
    import torch

    try:
        steps = [(float(v.rstrip("*")), 1.0 if v.endswith("*") else 0.0) for v in values.split()]
    except ValueError:
        raise zoo.ZooError(f"expected numbers such as 0.3 0.9* 0.1 0.5*, got {values!r}") from None
    if not steps:
        raise zoo.ZooError("give the sequence's values, the two marked ones starred: 0.3 0.9* 0.1 0.5*")
    with torch.no_grad():
        return f"{model(torch.tensor([steps])).item():.3f}"


@zoo.hookimpl
def register_tasks(register):
    import click

    register(zoo.Task(
        name="adding",
        description="the adding problem: sum the two marked values of a long sequence",
        shape=zoo.MANY_TO_ONE,
        data=make_data,
        evaluate=evaluate,
        config=AddingConfig,
        train_defaults={"epochs": 20, "lr": 0.01, "batch_size": 64},
        metric="mse",
        minimize=True,
        predict=predict,
        predict_params=(click.Argument(["values"]),),
    ))
