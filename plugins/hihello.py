"""Practice 1, "RNN + FC": read "hihell" and predict "ihello", the next character at every step."""

from dataclasses import dataclass

import click

import zoo


@dataclass(frozen=True)
class HiHelloConfig:
    word: str = zoo.param("hihello", "the string to learn: each character predicts the next")

    def __post_init__(self):
        zoo.require(len(self.word) >= 2, f"word needs at least 2 characters, got {self.word!r}")


def make_data(config: HiHelloConfig, meta: dict | None) -> zoo.TaskData:
    import torch

    from zoo import TensorSplit, encode

    vocab = meta["vocab"] if meta else list(dict.fromkeys(config.word))  # first-seen order: h, i, e, l, o
    ids = torch.tensor([encode(config.word, vocab, "word")])
    problem = zoo.Problem(zoo.MANY_TO_MANY, output_size=len(vocab), vocab_size=len(vocab))
    return zoo.TaskData(problem, train=TensorSplit(ids[:, :-1], ids[:, 1:]), meta={"vocab": vocab})


def evaluate(model, data: zoo.TaskData, split: str) -> dict:
    from zoo import batched_outputs

    (logits, targets), = batched_outputs(model, data.split(split))
    predicted = logits.argmax(-1)
    text = "".join(data.meta["vocab"][i] for i in predicted[0].tolist())
    return {"accuracy": (predicted == targets).float().mean().item(),
            "exact_match": float(bool((predicted == targets).all())), "prediction": text}


def predict(model, text: str) -> str:
    import torch

    from zoo import device_of, encode

    vocab = model.zoo.meta["vocab"]
    if not text:
        raise zoo.ZooError("the input is empty: give some characters to continue, such as hihell")
    ids = torch.tensor([encode(text, vocab, "the input")], device=device_of(model))
    with torch.no_grad():
        return "".join(vocab[i] for i in model(ids).argmax(-1)[0].tolist())


def inspect(model, inputs):
    from .views import hihello

    return hihello(model, inputs)


@zoo.hookimpl
def register_tasks(register):
    register(zoo.Task(
        name="hihello",
        description='practice 1, RNN + FC: from "hihell" predict "ihello"',
        shape=zoo.MANY_TO_MANY,
        data=make_data,
        evaluate=evaluate,
        config=HiHelloConfig,
        train_defaults={"epochs": 100, "lr": 0.1, "batch_size": 1},  # the course: 100 steps of Adam at 0.1
        model_defaults={"hidden_size": 8},
        predict=predict,
        inspect=inspect,
        predict_params=(click.Argument(["text"]),),
    ))
