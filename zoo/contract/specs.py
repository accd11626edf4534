"""What plugins register and what flows between them: problems, models, tasks and their configs.

Nothing here imports torch, so listing what is registered stays fast.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Literal, Mapping

MANY_TO_ONE = "many-to-one"  # the last step's state predicts one output (MNIST rows, stock windows)
MANY_TO_MANY = "many-to-many"  # causal: the output at step t sees inputs up to t only (hihello, charlm)
SEQ2SEQ = "seq2seq"  # an encoder reads the source, a decoder writes the target
SHAPES = (MANY_TO_ONE, MANY_TO_MANY, SEQ2SEQ)

# seq2seq vocabularies start with these, so that tasks and models agree on their ids
SPECIAL_TOKENS = ("<pad>", "<s>", "</s>", "<unk>")
PAD, BOS, EOS, UNK = range(len(SPECIAL_TOKENS))


class ZooError(Exception):
    """A mistake a user can make and fix: the CLI shows it as one line, never as a traceback."""


class ZooWarning(UserWarning):
    """Something zoo can go on with but the user should know (the CLI shows it as one line)."""


class Stopped(ZooError):
    """Work stopped on request (Ctrl-C, SIGTERM) at a safe point: training or a bench. The message says what
    was kept and how to continue; the shell's exit code is 128 + `signal`."""

    def __init__(self, message: str, signal: int = 2, complete: bool = False):
        super().__init__(message)
        self.signal = signal  # SIGINT or SIGTERM
        self.complete = complete  # the message says all there is to say (nothing to add about the run)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised the way Ctrl-C raises KeyboardInterrupt, so that both stop zoo alike (the signal
    itself, at any moment; what it stopped ends as a `Stopped` where there was something to keep)."""

    signal = 15


def param(default: Any, help: str, path: bool | str = False) -> Any:
    """A config field with its help text, which `zoo train MODEL TASK --help` shows.

    `path=True` marks a file or URL the task reads, `path="folder"` a folder where it keeps data.
    An export records them, but evaluating or predicting with it never follows them: a file must
    be given again (`--text FILE`, say); a folder falls back to the user's own (`--root`,
    `$ZOO_DATA`, ./datasets).
    """
    return field(default=default, metadata={"help": help, "path": path})


def require(condition: bool, message: str) -> None:
    """Validate a config value in `__post_init__`; the CLI reports the message as one line."""
    if not condition:
        raise ValueError(message)


def absolute_paths(config: Any, *fields: str) -> None:
    """In a config's `__post_init__`: make the named file fields absolute, so that an export finds its
    data from any folder (empty fields stay empty)."""
    import os

    for name in fields:
        value = getattr(config, name)
        if value:
            object.__setattr__(config, name, os.path.abspath(os.path.expanduser(value)))


@dataclass(frozen=True)
class NoConfig:
    """The config of a model or task without hyperparameters."""


@dataclass(frozen=True)
class TrainConfig:
    """How the one training loop runs; each task sets its own defaults (`Task.train_defaults`)."""

    epochs: int = param(10, "passes over the training split")
    lr: float = param(1e-3, "Adam learning rate")
    batch_size: int = param(64, "sequences per optimizer step")
    seed: int = param(0, "seeds weight init, shuffling and dropout, so a run can be repeated")
    weight_decay: float = param(0.0, "Adam weight decay (L2)")
    grad_clip: float = param(0.0, "clip the gradient norm to this value; 0 turns clipping off")
    schedule: Literal["constant", "cosine", "onecycle"] = param(
        "constant", "learning rate over the run: constant, cosine (down to 0 at the last epoch, or at --max-time if "
        "sooner) or onecycle (warm up, then down)")
    precision: Literal["fp32", "bf16", "auto"] = param(
        "fp32", "arithmetic of the training steps: fp32, bf16 autocast, or auto (bf16 on CPUs with native bf16)")
    patience: int = param(0, "stop after this many epochs without a better validation metric and keep the best "
                             "weights; 0 trains every epoch")
    average: float = param(0.0, "validate, keep and export a moving average of the weights, keeping this share of "
                                "it each step (0.999: about the last 1,000 steps); 0: the weights as trained")

    def __post_init__(self):
        require(self.epochs > 0, f"epochs must be a positive integer, got {self.epochs}")
        require(self.lr > 0, f"lr (learning rate) must be positive, got {self.lr}")
        require(self.batch_size > 0, f"batch_size must be positive, got {self.batch_size}")
        require(self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay}")
        require(self.grad_clip >= 0, f"grad_clip must be >= 0, got {self.grad_clip}")
        require(self.patience >= 0, f"patience must be >= 0, got {self.patience}")
        require(0 <= self.average < 1, f"average must be in [0, 1), got {self.average}")
        require(-2**63 <= self.seed < 2**64, f"seed must be in torch's range [-2**63, 2**64), got {self.seed}")


@dataclass(frozen=True)
class Problem:
    """What a task asks of a network: all a model's build hook ever sees of the task."""

    shape: str  # one of SHAPES
    output_size: int  # classes (cross-entropy over logits), regression width (MSE), or target vocabulary
    input_size: int = 0  # real-valued features per step; 0 when the inputs are token ids
    vocab_size: int = 0  # inputs are token ids in [0, vocab_size); 0 when they are real-valued
    regression: bool = False  # MSE on real values instead of cross-entropy on classes

    def __post_init__(self):
        require(self.shape in SHAPES, f"unknown problem shape {self.shape!r}; expected one of {SHAPES}")
        require((self.input_size > 0) != (self.vocab_size > 0), "a problem has either input_size or vocab_size")
        require(self.output_size > 0, "output_size must be positive")


@dataclass(frozen=True)
class Model:
    """A network a plugin registers. Presets are Models that share `build` and differ in `defaults`."""

    name: str
    description: str  # one line, shown by `zoo list`
    build: Callable[[Any, Problem], Any]  # (config, problem) -> torch.nn.Module
    config: type = NoConfig  # a dataclass; its fields are the model's hyperparameters
    defaults: Mapping[str, Any] = field(default_factory=dict)  # a preset's overrides of config defaults
    # the problem shapes it can solve, or a function of its config that says (bidirectional reads the future)
    shapes: Any = (MANY_TO_ONE, MANY_TO_MANY)
    # for recurrent cells: (config, input_size) -> one layer in one direction, `out, h_n = cell(x, h0)`
    # (the cell contract, zoo/nn/layers.py), so composite models can be built from any registered cell
    cell: Callable[[Any, int], Any] | None = None
    native_layers: bool = False  # the cell builds num_layers, bidirectional and dropout itself (torch's)
    plugin: str = ""  # who registered it, "distribution version"; filled in by the registry

    def supported_shapes(self, config: Any = None) -> tuple[str, ...]:
        if callable(self.shapes):
            return tuple(self.shapes(config if config is not None else self.config(**self.defaults)))
        return tuple(self.shapes)


@dataclass(frozen=True)
class Fitted:
    """Defaults a task fits to the user's data (`Task.fit_defaults`); every option still overrides them."""

    rule: str  # one line saying what was measured and the rule, shown when training starts ("": not shown)
    model: Mapping[str, Any] = field(default_factory=dict)  # model hyperparameters (those the model has)
    task: Mapping[str, Any] = field(default_factory=dict)
    train: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Task:
    """A problem to learn: it makes the data, judges predictions and answers `zoo predict`."""

    name: str
    description: str  # one line, shown by `zoo list`
    shape: str  # one of SHAPES: which models fit
    data: Callable[[Any, dict | None], "TaskData"]  # (config, meta of an export or None) -> TaskData
    evaluate: Callable[[Any, "TaskData", str], dict]  # (model, data, split name) -> metrics
    config: type = NoConfig
    # overrides of TrainConfig defaults (defaults that depend on the task's config or data: fit_defaults)
    train_defaults: Mapping[str, Any] = field(default_factory=dict)
    model_defaults: Mapping[str, Any] = field(default_factory=dict)  # suggested model hyperparameters
    metric: str = "accuracy"  # the headline metric: early stopping watches it, `zoo runs` shows its best
    minimize: bool = False  # True when lower is better (errors, perplexity)
    format_metrics: Callable[[dict], str] | None = None  # metrics -> text for `zoo eval` (tables, say)
    plot: Callable[[Any, "TaskData", str, str], None] | None = None  # (model, data, split, png path): `zoo eval --plot`
    predict: Callable[..., Any] | None = None  # (model, **options) -> text, or an iterator of pieces to stream
    predict_params: tuple = ()  # click parameters `zoo predict WEIGHTS ...` accepts for this task
    # (task config) -> Fitted or None: defaults sized to the user's data (a --text file, say), above the
    # task's fixed suggestions and below presets and options; None keeps the fixed ones
    fit_defaults: Callable[[Any], Fitted | None] | None = None
    # (model, inputs, **options) -> [zoo.InspectExample]: what `zoo inspect` shows; the inputs are strings
    # as the user gave them (none: a few examples of the task's own); options it takes by keyword
    # (`feature`, `beam`, `count`, `echo`) (docs/inspect.md)
    inspect: Callable[..., Any] | None = None
    plugin: str = ""

    def __post_init__(self):
        require(self.shape in SHAPES, f"task {self.name!r}: unknown shape {self.shape!r}; expected one of "
                                      f"{', '.join(SHAPES)}")
        require(not callable(self.train_defaults), f"task {self.name!r}: train_defaults is a mapping; defaults "
                                                   f"that depend on the task's config or data come from fit_defaults")

    def load_data(self, config: Any, meta: dict | None = None) -> "TaskData":
        """`data(config, meta)`, checked: a plugin that breaks the contract is one line, not a traceback."""
        data = self.data(config, meta)
        broken = (f"returned {type(data).__name__}, not zoo.TaskData" if not isinstance(data, TaskData) else
                  f"returned a problem of type {type(data.problem).__name__}, not zoo.Problem"
                  if not isinstance(data.problem, Problem) else
                  f"returned a {data.problem.shape} problem, but the task is {self.shape}"
                  if data.problem.shape != self.shape else
                  "returned no train split (TaskData.train is None)" if data.train is None else "")
        if broken:
            raise ZooError(f"task {self.name!r} ({self.plugin or 'unregistered'}) is broken: its data() {broken}; "
                           f"zoo.testing.check_task shows what else")
        return data


@dataclass
class TaskData:
    """A task's data, ready for the training loop.

    A split is anything with `len(split)` and `split.batch(index) -> (inputs, targets)`, where `index`
    is a 1-D tensor of example numbers; `zoo.loop.data.TensorSplit` covers the common case.
    """

    problem: Problem
    train: Any
    val: Any = None
    test: Any = None
    meta: dict = field(default_factory=dict)  # JSON-serializable (vocabularies, scalers): saved in exports

    def to(self, device: Any) -> "TaskData":
        """The same data with every split moved to `device` once, before training or evaluation."""
        def move(split):
            return None if split is None else split.to(device)

        return replace(self, train=move(self.train), val=move(self.val), test=move(self.test))

    def split(self, name: str) -> Any:
        split = getattr(self, name, None) if name in ("train", "val", "test") else None
        if split is None:
            raise ZooError(f"this task has no {name!r} split")
        return split

    @property
    def report_split(self) -> str:
        """The split final metrics come from: test, else validation, else train (the course's toys)."""
        return "test" if self.test is not None else "val" if self.val is not None else "train"

    @property
    def monitor_split(self) -> str:
        """The split the per-epoch log watches: validation when there is one; never the test split."""
        return "val" if self.val is not None else "train"


@dataclass
class Card:
    """Everything an export says about itself; `zoo.load(path).zoo` is one."""

    model: str
    task: str
    model_config: Any
    task_config: Any
    train_config: TrainConfig
    problem: Problem
    meta: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    versions: dict = field(default_factory=dict)
    # the files the task read in training (task config fields marked path=True), as recorded: shown,
    # never followed; `task_config` has them at their defaults unless the user gives them again
    sources: dict = field(default_factory=dict)


def plugin_failed(kind: str, name: str, plugin: str, what: str, error: BaseException) -> ZooError:
    """One line for an exception out of a plugin's code during a run: which plugin, in what, what it raised
    (ZOO_DEBUG=1 keeps the traceback instead)."""
    if os.environ.get("ZOO_DEBUG"):
        raise error
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    # torch's internal-assert text ends "please report a bug to PyTorch": here the input was at fault, not torch
    said = next((line for line in lines if "report a bug to PyTorch" not in line), "")
    said = said if len(said) <= 300 else said[:300] + "..."
    return ZooError(f"{kind} {name!r} ({plugin or 'unregistered'}) failed in {what}: {type(error).__name__}"
                    f"{': ' + said if said else ''}; set ZOO_DEBUG=1 for the traceback")
