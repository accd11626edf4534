"""Practice 2, a character language model: sliding windows over a text, the next character at every step.

The course's text is one sentence; `--text FILE` learns any UTF-8 file. Windows are index slices of
one tensor of character ids, gathered per batch, so a long file costs a few bytes per character.
Metrics: `accuracy` is the next character after each full window (what generation relies on),
`char_accuracy` every position, `reproduced` the share of the text that greedy generation from its
first window rebuilds before its first mistake (at most the first 500 characters).
"""

from dataclasses import dataclass
from pathlib import Path

import click

import zoo

SENTENCE = ("if you want to build a ship, don't drum up people together to collect wood and don't assign "
            "them tasks and work, but rather teach them to long for the endless immensity of the sea.")
CHECKED_CHARS = 500  # greedy generation is one step per character: check a prefix of long texts


@dataclass(frozen=True)
class CharLMConfig:
    text: str = zoo.param("", "a UTF-8 text file to learn; empty learns the course's sentence", path=True)
    window: int = zoo.param(10, "characters per window (the course's sequence length)")
    stride: int = zoo.param(1, "characters between window starts; raise it to go faster on long texts")
    val_fraction: float = zoo.param(0.0, "share of the text, from its end, held out for validation")

    def __post_init__(self):
        zoo.absolute_paths(self, "text")
        zoo.require(self.window > 0, f"window must be positive, got {self.window}")
        zoo.require(self.stride > 0, f"stride must be positive, got {self.stride}")
        zoo.require(0 <= self.val_fraction < 1, f"val_fraction must be in [0, 1), got {self.val_fraction}")


def read_text(config: CharLMConfig) -> str:
    if not config.text:
        return SENTENCE
    path = Path(config.text)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise zoo.ZooError(f"text file {path} not found") from None
    except OSError as e:
        raise zoo.ZooError(f"cannot read text file {path}: {e.strerror}") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise zoo.ZooError(f"{path} is not UTF-8 text (byte 0x{raw[e.start]:02x} at offset {e.start})") from None


def make_data(config: CharLMConfig, meta: dict | None) -> zoo.TaskData:
    import torch

    from zoo.data import Windows, encode

    text = read_text(config)
    source = config.text or "the sentence"
    if len(text) < config.window + 1:
        raise zoo.ZooError(f"{source} has {len(text)} characters; charlm needs at least window + 1 = "
                           f"{config.window + 1}")
    vocab = meta["vocab"] if meta else sorted(set(text))
    ids = torch.tensor(encode(text, vocab, source))
    starts = torch.arange(0, len(text) - config.window, config.stride)
    boundary = len(text) - int(len(text) * config.val_fraction)  # first held-out character
    train = starts[starts + config.window < boundary]  # no training target crosses into held-out text
    val = starts[starts >= boundary] if config.val_fraction else None
    if len(train) == 0 or (val is not None and len(val) == 0):
        raise zoo.ZooError(f"{source} is too short to hold out {config.val_fraction:.0%} with windows of "
                           f"{config.window}")

    def windows(first):
        return Windows(ids, ids, first, config.window, horizon=1)

    problem = zoo.Problem(zoo.MANY_TO_MANY, output_size=len(vocab), vocab_size=len(vocab))
    return zoo.TaskData(problem, train=windows(train), val=windows(val) if val is not None else None,
                        meta={"vocab": vocab, "window": config.window})


def generate(model, ids: list[int], length: int, window: int, temperature: float = 0.0, seed: int = 0) -> list[int]:
    """Extend `ids` by `length` characters, each predicted from the last `window` ones, as in training."""
    import torch

    from zoo.data import device_of

    sampler = torch.Generator().manual_seed(seed)
    out = list(ids)
    with torch.no_grad():
        for _ in range(length):
            logits = model(torch.tensor([out[-window:]], device=device_of(model)))[0, -1].float().cpu()
            if temperature > 0:
                out.append(int(torch.multinomial(torch.softmax(logits / temperature, -1), 1, generator=sampler)))
            else:
                out.append(int(logits.argmax()))
    return out[len(ids):]


def evaluate(model, data: zoo.TaskData, split: str) -> dict:
    import math

    from torch.nn import functional as F

    from zoo.data import batched_outputs

    windows = data.split(split)
    last = every = 0
    nll = 0.0
    for logits, targets in batched_outputs(model, windows):
        predicted = logits.argmax(-1)
        last += (predicted[:, -1] == targets[:, -1]).sum().item()
        every += (predicted == targets).sum().item()
        nll += F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), reduction="sum").item()
    positions = len(windows) * windows.length
    # greedy generation from the split's first window, compared with the text that follows it
    first, ids = int(windows.starts[0]), windows.inputs
    truth = ids[first + windows.length: first + windows.length + CHECKED_CHARS].tolist()
    made = generate(model, ids[first: first + windows.length].tolist(), len(truth), windows.length)
    matched = next((i for i, (a, b) in enumerate(zip(made, truth)) if a != b), len(truth))
    return {"accuracy": last / len(windows), "char_accuracy": every / positions,
            "perplexity": math.exp(nll / positions), "reproduced": matched / len(truth)}


def predict(model, prompt: str, length: int, temperature: float, seed: int) -> str:
    from zoo.data import encode

    meta = model.zoo.meta
    if not prompt:
        raise zoo.ZooError("--prompt must not be empty")
    made = generate(model, encode(prompt, meta["vocab"], "the prompt"), length, meta["window"], temperature, seed)
    return prompt + "".join(meta["vocab"][i] for i in made)


@zoo.hookimpl
def register_tasks(register):
    register(zoo.Task(
        name="charlm",
        description="practice 2, character language model over sliding windows of a text",
        shape=zoo.MANY_TO_MANY,
        data=make_data,
        evaluate=evaluate,
        config=CharLMConfig,
        train_defaults={"epochs": 100, "lr": 0.01, "batch_size": 32},
        model_defaults={"hidden_size": 64},
        predict=predict,
        predict_params=(
            click.Option(["--prompt"], required=True, help="text to continue (characters the model knows)"),
            click.Option(["-n", "--length"], type=click.IntRange(min=0), default=100, show_default=True,
                         help="characters to generate"),
            click.Option(["--temperature"], type=click.FloatRange(min=0), default=0.0, show_default=True,
                         help="0 picks the likeliest character; higher samples more freely"),
            click.Option(["--seed"], type=int, default=0, show_default=True, help="seeds sampling"),
        ),
    ))
