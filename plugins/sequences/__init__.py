"""Classify your own sequences: labelled numeric sequences (`sequences`) or texts (`texts`) from files.

`zoo train lstm sequences --train A_TRAIN.ts --test A_TEST.ts` learns a UCR/UEA archive `.ts` file
(or a long `.csv`, one row a time step; `files` describes both), univariate or multivariate, of equal
or unequal lengths; `zoo train gru texts --train reviews.tsv` learns `label<TAB>text` lines, read as
words or characters (`--level`) with a vocabulary cap and <unk>. Without `--test`, a stratified
share of the file is the test split; a share of the training part is held out for validation, which
early stopping watches. Numeric channels are standardized with the training part's mean and
deviation, kept in the export.

Sequences keep their own lengths: batches mix them, padded, and the network reads each sequence to
its own end (zoo.nn.nets.RecurrentNet with lengths: the output at its last real step in one
direction; packed, or in segments between lengths, in both), so a result never depends on the batch
or its padding (`--packing padded` is the naive way, for comparison).
Training batches are bucketed by length. `zoo eval` reports accuracy, macro-F1, per-class accuracy
and the confusion matrix beside the majority class and a non-neural classifier on the same test
split: 1-NN on the standardized series (DTW, or Euclidean) for numbers, bag-of-words naive Bayes for
texts. `zoo predict RUN FILE_OR_TEXT --top K`. docs/sequences.md has the reference and figures.
"""

from __future__ import annotations

import os
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import click

import zoo

from .files import MAX_STEPS, Labelled, check_classes, read_sequences, read_texts

_CACHE: dict = {}  # parsed files, by path, size, mtime and settings: fit_defaults and data read each once


def cached(key: tuple, read):
    path = key[0]
    try:
        stat = os.stat(path)
        key = (*key, stat.st_size, stat.st_mtime_ns)
    except OSError:
        return read()  # says what is wrong with the path
    if key not in _CACHE:
        _CACHE.clear()  # one file at a time: a big one is not kept twice
        _CACHE[key] = read()
    return _CACHE[key]


@dataclass(frozen=True)
class Common:
    train: str = zoo.param("", "the training file (required)", path=True)
    test: str = zoo.param("", "a test file; empty: a stratified test_fraction of --train is held out", path=True)
    test_fraction: float = zoo.param(0.25, "without --test: the share of each class held out for the final test")
    val_fraction: float = zoo.param(0.2, "the share of each class of the training part held out for validation "
                                         "(early stopping); 0: none")
    split_seed: int = zoo.param(0, "seeds which examples are held out (the same every run)")
    bucket: bool = zoo.param(True, "batch sequences of similar lengths together (less padding to read)")
    packing: Literal["packed", "padded"] = zoo.param(
        "packed", "packed: each sequence read to its own end (the result never depends on the padding); padded: "
                  "the naive way, the network reads the padding too (for comparison)")

    def check(self):
        zoo.absolute_paths(self, "train", "test")
        zoo.require(0 < self.test_fraction < 1, f"test_fraction must be in (0, 1), got {self.test_fraction}")
        zoo.require(0 <= self.val_fraction < 1, f"val_fraction must be in [0, 1), got {self.val_fraction}")


@dataclass(frozen=True)
class SequencesConfig(Common):
    max_length: int = zoo.param(10_000, f"the longest sequence accepted, in steps (at most {MAX_STEPS:,})")
    standardize: bool = zoo.param(True, "standardize each channel with the training part's mean and deviation")
    baseline: Literal["dtw", "euclidean", "none"] = zoo.param(
        "dtw", "the non-neural classifier beside the network: 1-NN on the standardized series by DTW or Euclidean")
    window: float = zoo.param(1.0, "DTW's Sakoe-Chiba band, a share of the longer series; 1: unconstrained")

    def __post_init__(self):
        self.check()
        zoo.require(0 < self.max_length <= MAX_STEPS, f"max_length must be in [1, {MAX_STEPS:,}], got "
                                                      f"{self.max_length}")
        zoo.require(0 <= self.window <= 1, f"window must be in [0, 1], got {self.window}")


@dataclass(frozen=True)
class TextsConfig(Common):
    level: Literal["word", "char"] = zoo.param("word", "tokens: words split on spaces, or characters")
    lowercase: bool = zoo.param(True, "lowercase the texts first")
    max_vocab: int = zoo.param(20_000, "at most this many tokens, the 4 special ones included (<pad> <s> </s> "
                                       "<unk>): the most frequent in training; the others read as <unk>")
    max_length: int = zoo.param(2_000, f"the longest text accepted, in tokens (at most {MAX_STEPS:,})")

    def __post_init__(self):
        self.check()
        zoo.require(0 < self.max_length <= MAX_STEPS, f"max_length must be in [1, {MAX_STEPS:,}], got "
                                                      f"{self.max_length}")
        zoo.require(self.max_vocab > len(zoo.SPECIAL_TOKENS), f"max_vocab must be more than the "
                                                              f"{len(zoo.SPECIAL_TOKENS)} special tokens")


def tokenizer(level: str, lowercase: bool):
    def tokenize(text: str) -> list[str]:
        text = text.strip().lower() if lowercase else text.strip()
        return list(text) if level == "char" else text.split()

    return tokenize


def read(config, path: str, labelled: bool = True) -> Labelled:
    if isinstance(config, TextsConfig):
        tokenize = tokenizer(config.level, config.lowercase)
        return cached((path, "texts", config.level, config.lowercase, config.max_length),
                      lambda: read_texts(path, config.max_length, tokenize))
    return cached((path, "sequences", config.max_length, labelled),
                  lambda: read_sequences(path, config.max_length, labelled))


def read_files(config) -> tuple[Labelled, Labelled | None]:
    if not config.train:
        raise zoo.ZooError("give the labelled examples to learn: --train FILE (and --test FILE, or a share of "
                           "--train is held out)")
    train = read(config, config.train)
    test = read(config, config.test) if config.test else None
    if test is not None and test.channels != train.channels:
        raise zoo.ZooError(f"{test.where} has {test.channels} channels, {train.where} {train.channels}")
    return train, test


def stratified(labels: list[int], fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """(held out, kept) example numbers: `fraction` of each class, at least one, never the last one."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    held, kept = [], []
    by_class: dict[int, list[int]] = {}
    for i, label in enumerate(labels):
        by_class.setdefault(label, []).append(i)
    for label in sorted(by_class):
        members = by_class[label]
        order = [members[i] for i in torch.randperm(len(members), generator=generator).tolist()]
        count = min(len(members) - 1, max(1 if fraction > 0 else 0, round(fraction * len(members))))
        held += order[:count]
        kept += order[count:]
    return sorted(held), sorted(kept)


def make_data(config, meta: dict | None) -> zoo.TaskData:
    import torch

    from .classify import Sequences, stack, standardized, standardizer

    texts = isinstance(config, TextsConfig)
    train_file, test_file = read_files(config)
    if meta is None:
        classes = check_classes(train_file, test_file, held_out=True)
    else:
        classes = meta["classes"]
        for part in (train_file, test_file):
            unknown = [c for c in dict.fromkeys(part.labels if part else []) if c not in classes]
            if unknown:
                line = part.lines[part.labels.index(unknown[0])]
                raise zoo.ZooError(f"{part.where} line {line}: class {unknown[0]!r} is not one this model knows "
                                   f"({', '.join(classes)})")
    if not texts and meta is not None and train_file.channels != meta["channels"]:
        raise zoo.ZooError(f"{train_file.where} has {train_file.channels} channels; the model reads {meta['channels']}")
    number = {c: i for i, c in enumerate(classes)}
    labels = [number[c] for c in train_file.labels]
    if test_file is None:
        test_at, train_at = stratified(labels, config.test_fraction, config.split_seed)
        test_items, test_labels = [train_file.items[i] for i in test_at], [labels[i] for i in test_at]
    else:
        train_at = list(range(len(labels)))
        test_items, test_labels = test_file.items, [number[c] for c in test_file.labels]
    val_at, fit_at = stratified([labels[i] for i in train_at], config.val_fraction, config.split_seed + 1)
    val_at, fit_at = [train_at[i] for i in val_at], [train_at[i] for i in fit_at]
    parts = {"train": ([train_file.items[i] for i in fit_at], [labels[i] for i in fit_at]),
             "val": ([train_file.items[i] for i in val_at], [labels[i] for i in val_at]),
             "test": (test_items, test_labels)}
    packed = config.packing == "packed"
    if texts:
        if meta is None:
            meta = {"kind": "texts", "classes": classes, "vocab": vocabulary(parts["train"][0], config.max_vocab),
                    "level": config.level, "lowercase": config.lowercase}
        index = {token: i for i, token in enumerate(meta["vocab"])}

        def split(items, ys, bucket):
            if not items:
                return None
            flat, lengths = stack([[index.get(t, zoo.UNK) for t in item] for item in items], torch.long)
            words = [item if meta["level"] == "word" else "".join(item).split() for item in items]
            return Sequences(flat, lengths, torch.tensor(ys), packed, bucket, words)

        problem = zoo.Problem(zoo.MANY_TO_ONE, output_size=len(classes), vocab_size=len(meta["vocab"]))
    else:
        if meta is None:
            flat, _ = stack(parts["train"][0])
            mean, std = standardizer(flat)
            meta = {"kind": "sequences", "classes": classes, "channels": train_file.channels, "mean": mean,
                    "std": std, "standardize": config.standardize, "max_length": config.max_length}
        meta = {**meta, "baseline": config.baseline, "window": config.window}  # eval may choose other baselines

        def split(items, ys, bucket):
            if not items:
                return None
            flat, lengths = stack(items)
            return Sequences(standardized(flat, meta), lengths, torch.tensor(ys), packed, bucket)

        problem = zoo.Problem(zoo.MANY_TO_ONE, output_size=len(classes), input_size=meta["channels"])
    return zoo.TaskData(problem, train=split(*parts["train"], config.bucket), val=split(*parts["val"], False),
                        test=split(*parts["test"], False), meta=meta)


def vocabulary(items: list[list[str]], cap: int) -> list[str]:
    """The special tokens, then the cap's most frequent training tokens (ties: first seen first)."""
    from collections import Counter

    counts = Counter(t for item in items for t in item)
    kept = [t for t, _ in sorted(counts.items(), key=lambda kv: -kv[1])[: cap - len(zoo.SPECIAL_TOKENS)]]
    return [*zoo.SPECIAL_TOKENS, *(t for t in kept if t not in zoo.SPECIAL_TOKENS)]


def fit_defaults(config) -> zoo.Fitted | None:
    """Sizes for the user's data: n training sequences (after the test split), c channels (or a
    vocabulary), median length m, k classes.

    Under 1,000 sequences nothing is held out for validation: a few dozen held-out examples stop
    training at a noisy early best (JapaneseVowels: 0.954-0.965 test accuracy for the LSTM with 20%
    held out and early stopping, 0.960-0.978 with all 270 trained on for a fixed number of epochs),
    and about 600 steps (30 to 300 epochs) are trained. From 1,000, val_fraction of each class is
    held out and early stopping keeps the best weights after a quarter of the epochs without a better
    validation accuracy (at least 10), out of about 4,000 steps (20 to 300 epochs). Hidden 32 under
    500 sequences, 64 under 5,000, else 128; texts learn embeddings of 64 at word level (32 for
    characters); Adam at 0.003 (0.002 from 5,000), gradient norm clipped at 1, batches of 32 (64 from
    5,000)."""
    if not config.train:
        return None
    train_file, test_file = read_files(config)
    n = len(train_file.items)
    if test_file is None:
        n = round(n * (1 - config.test_fraction))
    small = n < 1_000
    if not small:
        n = max(1, round(n * (1 - config.val_fraction)))
    k = len(set(train_file.labels))
    median = statistics.median(len(item) for item in train_file.items)
    hidden = 32 if n < 500 else 64 if n < 5_000 else 128
    batch = 32 if n < 5_000 else 64
    batches = -(-n // batch)
    epochs = min(300, max(30, round(600 / batches))) if small else min(300, max(20, round(4_000 / batches)))
    model = {"hidden_size": hidden}
    if isinstance(config, TextsConfig):
        model["embed_dim"] = 64 if config.level == "word" else 32
        what = f"{n:,} training texts, median {median:g} {config.level}s, {k} classes"
    else:
        what = f"{n:,} training sequences of {train_file.channels} channel{'s' * (train_file.channels > 1)}, " \
               f"median length {median:g}, {k} classes"
    train = {"epochs": epochs, "batch_size": batch, "lr": 0.003 if n < 5_000 else 0.002, "grad_clip": 1.0,
             "patience": 0 if small or not config.val_fraction else max(10, epochs // 4)}
    return zoo.Fitted(what, model=model, task={"val_fraction": 0.0} if small else {}, train=train)


def evaluate(model, data: zoo.TaskData, split: str) -> dict:
    from .classify import evaluate

    return evaluate(model, data, split)


def report(metrics: dict) -> str:
    from .classify import report

    return report(metrics)


def inline_sequence(text: str) -> list[tuple[float, ...]]:
    """`1,2,3` (one channel) or `1,2,3:4,5,6` (channels separated by ':', as in .ts) -> steps."""
    from .files import number

    channels = [[number(v, True, "the sequence", 0) for v in part.split(",")] for part in text.split(":")]
    if len({len(c) for c in channels}) != 1:
        raise zoo.ZooError("the sequence's channels have different lengths")
    return list(zip(*channels))


def predict(model, source: str, top: int) -> str:
    import torch

    from .classify import Sequences, stack, standardized

    card = model.zoo
    meta = card.meta
    texts = meta.get("kind") == "texts"
    config = card.task_config
    is_file = Path(source).is_file()
    if texts:
        tokenize = tokenizer(meta["level"], meta["lowercase"])
        if is_file:
            from zoo import read_text

            lines = [line.split("\t", 1)[-1] for line in read_text(source, "text file").splitlines() if line.strip()]
        else:
            lines = [source]
        items = [tokenize(line) for line in lines]
        if not all(items):
            raise zoo.ZooError("nothing to classify: the text is empty")
        index = {token: i for i, token in enumerate(meta["vocab"])}
        flat, lengths = stack([[index.get(t, zoo.UNK) for t in item] for item in items], torch.long)
        names = [f"{n}: " for n in range(1, len(items) + 1)] if len(items) > 1 else []
    else:
        if is_file:
            found = read_sequences(source, meta.get("max_length", config.max_length), labelled=False)
            items, names = found.items, [f"line {n}: " for n in found.lines]
        else:
            try:
                items, names = [inline_sequence(source)], []
            except zoo.ZooError as e:
                raise zoo.ZooError(f"{source!r} is neither a file nor a sequence like 1,2,3 ({e})") from None
        channels = {len(step) for item in items for step in item}
        if channels != {meta["channels"]}:
            raise zoo.ZooError(f"the model reads {meta['channels']} channel{'s' * (meta['channels'] > 1)} a step; "
                               f"{source} has {', '.join(map(str, sorted(channels)))}")
        flat, lengths = stack(items)
        flat = standardized(flat, meta)
        names = names if len(items) > 1 else []
    split = Sequences(flat, lengths, torch.zeros(len(items), dtype=torch.long), config.packing == "packed")
    from .classify import top as top_k

    return top_k(model, split, top, names)


def inspect(model, inputs, count=None, echo=print):
    """zoo inspect: each sequence (or text) read to its own end, the class probabilities after each step."""
    from ..views import sequences

    return sequences(model, inputs, count, echo)


def task(name: str, description: str, config: type) -> zoo.Task:
    return zoo.Task(
        name=name,
        description=description,
        shape=zoo.MANY_TO_ONE,
        data=make_data,
        evaluate=evaluate,
        config=config,
        # without a file fitted defaults are moot (--train is required); these are for a call that
        # sets everything itself
        train_defaults={"epochs": 50, "lr": 0.003, "batch_size": 32, "grad_clip": 1.0},
        model_defaults={"hidden_size": 64},
        format_metrics=report,
        fit_defaults=fit_defaults,
        predict=predict,
        inspect=inspect,
        predict_params=(
            click.Argument(["source"]),
            click.Option(["--top"], type=click.IntRange(min=1), default=1, show_default=True,
                         help="how many of the likeliest classes to print"),
        ),
    )


@zoo.hookimpl
def register_tasks(register):
    register(task("sequences", "classify your labelled sequences (.ts or .csv files), any length, beside 1-NN DTW",
                  SequencesConfig))
    register(task("texts", "classify your label<TAB>text lines, words or characters, beside naive Bayes",
                  TextsConfig))
