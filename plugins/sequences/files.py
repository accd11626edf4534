"""Reading labelled sequences and texts from a user's files, each mistake one line naming the file and line.

Three formats (docs/sequences.md has examples):

- `.ts`, the UCR/UEA time-series archive's format (what sktime, aeon and tsai read): `#` comments,
  then `@problemName`, `@timeStamps`, `@missing`, `@univariate`, `@dimensions`, `@equalLength`,
  `@seriesLength`, `@classLabel true LABEL...`, then `@data` and one sequence a line, its dimensions
  separated by `:`, values by `,`, the label last. `?` (or NaN) is a missing value where `@missing true`.
- `.csv`, a long table, one row a time step: a header naming an `id` column, a `label` column and the
  channels; the rows of one sequence share its id (sequences in order of first appearance, steps in
  row order).
- texts: `label<TAB>text` lines, UTF-8.

Nothing here imports torch: a sequence is a list of steps, a step a tuple of floats.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import zoo
from zoo import read_text

MAX_STEPS = 100_000  # the largest --max-length: one sequence's steps, which a batch pads to
MAX_ITEMS = 2_000_000  # sequences or texts in one file, at most (memory is stated in docs/sequences.md)


@dataclass
class Labelled:
    """What a file holds: sequences (lists of steps) or texts, their labels, and where each came from."""

    items: list  # numeric: list of lists of tuples (steps x channels); texts: list of str
    labels: list  # str, or None where a file for prediction has none
    lines: list[int]  # the line each item starts on, for messages
    where: str
    classes: list[str] | None = None  # as the file declares them (.ts @classLabel), else None
    channels: int = 0
    missing: bool = False  # the file allows missing values


def fail(where: str, line: int | None, message: str) -> None:
    raise zoo.ZooError(f"{where}{f' line {line}' if line else ''}: {message}")


def number(text: str, missing_ok: bool, where: str, line: int) -> float:
    text = text.strip()
    if text == "?" or text.lower() == "nan":
        if not missing_ok:
            fail(where, line, f"a missing value ({text!r}) but the file says @missing false")
        return math.nan
    try:
        value = float(text)
    except ValueError:
        fail(where, line, f"{text!r} is not a number")
    if math.isnan(value) and not missing_ok:  # "NaN" spelled otherwise
        fail(where, line, "a missing value (NaN) but the file says @missing false")
    if math.isinf(value):
        fail(where, line, f"{text!r} is not a finite number")
    return value


def read_sequences(path: str, max_length: int, labelled: bool = True) -> Labelled:
    """A .ts or .csv file of sequences; `labelled=False` (zoo predict) lets the labels be absent."""
    suffix = Path(path).suffix.lower()
    if suffix not in (".ts", ".csv"):
        raise zoo.ZooError(f"{path}: expected a .ts file (the UCR/UEA archive's format) or a .csv file (one row a "
                           f"time step: id, label, channels)")
    text = read_text(path, "sequence file")
    read = read_ts if suffix == ".ts" else read_csv
    data = read(text, path, labelled)
    if not data.items:
        fail(path, None, "no sequences")
    if len(data.items) > MAX_ITEMS:
        fail(path, None, f"{len(data.items):,} sequences; at most {MAX_ITEMS:,} are read")
    for steps, line in zip(data.items, data.lines):
        if len(steps) > max_length:
            fail(path, line, f"a sequence of {len(steps):,} steps, longer than max_length {max_length:,} "
                             f"(raise --max-length, at most {MAX_STEPS:,})")
    return data


HEADER_KEYS = ("problemname", "timestamps", "missing", "univariate", "dimensions", "dimension", "equallength",
               "serieslength", "classlabel", "targetlabel", "data")


def flag(value: str, key: str, where: str, line: int) -> bool:
    if value.lower() not in ("true", "false"):
        fail(where, line, f"@{key} must be true or false, got {value!r}")
    return value.lower() == "true"


def read_ts(text: str, where: str, labelled: bool) -> Labelled:
    header: dict[str, str] = {}
    lines = text.splitlines()
    data_at = None
    for n, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if not line.startswith("@"):
            fail(where, n, "a data line before @data (the header ends with a line saying @data)")
        key, _, value = line[1:].partition(" ")
        key = key.lower()
        if key not in HEADER_KEYS:
            fail(where, n, f"unknown header @{key}")
        if key == "data":
            data_at = n
            break
        header[key] = value.strip()
        header[f"{key}@line"] = str(n)
    if data_at is None:
        fail(where, None, "no @data line: a .ts file has a header, then @data, then one sequence a line")
    line_of = {k[:-5]: int(v) for k, v in header.items() if k.endswith("@line")}
    missing = flag(header.get("missing", "false"), "missing", where, line_of.get("missing", 0))
    if flag(header.get("timestamps", "false"), "timeStamps", where, line_of.get("timestamps", 0)):
        fail(where, line_of["timestamps"], "@timeStamps true is not supported: give the values without time stamps")
    dimensions = header.get("dimensions") or header.get("dimension")
    univariate = flag(header.get("univariate", "true"), "univariate", where, line_of.get("univariate", 0))
    if dimensions is not None:
        if not dimensions.isdigit() or int(dimensions) < 1:
            fail(where, line_of.get("dimensions", line_of.get("dimension")), f"@dimensions must be a positive "
                                                                             f"integer, got {dimensions!r}")
        dimensions = int(dimensions)
    elif univariate:
        dimensions = 1
    classes = None
    label_value = header.get("classlabel", "")
    has_labels = False
    if label_value:
        first, *rest = label_value.split()
        has_labels = flag(first, "classLabel", where, line_of["classlabel"])
        if has_labels:
            if not rest:
                fail(where, line_of["classlabel"], "@classLabel true names no classes")
            classes = list(dict.fromkeys(rest))
    if labelled and not has_labels:
        fail(where, None, "no @classLabel true LABEL...: the file's sequences have no labels to learn")
    equal = header.get("equallength")
    length = header.get("serieslength")
    items, labels, numbers = [], [], []
    for n in range(data_at + 1, len(lines) + 1):
        line = lines[n - 1].strip()
        if not line:
            if all(not rest.strip() for rest in lines[n:]):
                break  # blank lines at the end of the file
            fail(where, n, "an empty line in @data (one sequence a line)")
        if line.startswith("#"):
            continue
        parts = line.split(":")
        label = None
        if has_labels:
            if len(parts) < 2:
                fail(where, n, "no label: a line is dimensions separated by ':', the label last")
            label = parts.pop().strip()
            if label not in classes:
                fail(where, n, f"label {label!r} is not one of @classLabel's: {' '.join(classes)}")
        if dimensions is None:
            dimensions = len(parts)
        if len(parts) != dimensions:
            said = "@dimensions says" if header.get("dimensions") else "the first sequence has"
            fail(where, n, f"{len(parts)} dimensions, but {said} {dimensions}")
        channels = [[number(v, missing, where, n) for v in part.split(",")] if part.strip() else [] for part in parts]
        steps = len(channels[0])
        if steps == 0:
            fail(where, n, "an empty sequence")
        if any(len(c) != steps for c in channels):
            fail(where, n, f"its dimensions have different lengths ({', '.join(str(len(c)) for c in channels)})")
        if equal and equal.lower() == "true" and length and length.isdigit() and steps != int(length):
            fail(where, n, f"{steps} steps, but the header says @equalLength true and @seriesLength {length}")
        items.append(list(zip(*channels)))
        labels.append(label)
        numbers.append(n)
    return Labelled(items, labels, numbers, where, classes, dimensions or 1, missing)


def read_csv(text: str, where: str, labelled: bool) -> Labelled:
    rows = csv.reader(text.splitlines())
    try:
        header = [h.strip().lower() for h in next(rows)]
    except StopIteration:
        fail(where, None, "the file is empty")
    if "id" not in header or (labelled and "label" not in header):
        fail(where, 1, "the header must name an 'id' column, a 'label' column and the channels")
    id_at, label_at = header.index("id"), header.index("label") if "label" in header else None
    channel_at = [i for i, h in enumerate(header) if i not in (id_at, label_at)]
    if not channel_at:
        fail(where, 1, "no channel columns besides id and label")
    sequences: dict[str, list] = {}
    labels: dict[str, str | None] = {}
    first_line: dict[str, int] = {}
    last_id = None
    for n, row in enumerate(rows, 2):
        if not row or not any(cell.strip() for cell in row):
            fail(where, n, "an empty line (one row a time step)")
        if len(row) != len(header):
            fail(where, n, f"{len(row)} columns, but the header has {len(header)}")
        key = row[id_at].strip()
        label = row[label_at].strip() if label_at is not None else None
        if key not in sequences:
            sequences[key], labels[key], first_line[key] = [], label, n
        elif key != last_id:
            fail(where, n, f"id {key!r} again after other ids: keep the rows of a sequence together")
        elif label != labels[key]:
            fail(where, n, f"id {key!r} has two labels, {labels[key]!r} and {label!r}")
        last_id = key
        sequences[key].append(tuple(number(row[i], True, where, n) for i in channel_at))
    keys = list(sequences)
    if labelled:
        for key in keys:
            if not labels[key]:
                fail(where, first_line[key], f"id {key!r} has an empty label")
    return Labelled([sequences[k] for k in keys], [labels[k] for k in keys], [first_line[k] for k in keys], where,
                    None, len(channel_at), True)


def read_texts(path: str, max_length: int, tokenize) -> Labelled:
    """`label<TAB>text` lines; `tokenize(text)` -> tokens, which `max_length` bounds."""
    text = read_text(path, "text file")
    lines = text.splitlines()
    while lines and not lines[-1].strip():
        lines.pop()  # blank lines at the end
    if len(lines) > MAX_ITEMS:
        fail(path, None, f"{len(lines):,} lines; at most {MAX_ITEMS:,} are read")
    items, labels, numbers = [], [], []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            fail(path, n, "an empty line (one label<TAB>text a line)")
        label, tab, body = line.partition("\t")
        if not tab:
            fail(path, n, "no tab: expected label<TAB>text")
        label = label.strip()
        if not label:
            fail(path, n, "an empty label")
        tokens = tokenize(body)
        if not tokens:
            fail(path, n, "an empty text")
        if len(tokens) > max_length:
            fail(path, n, f"a text of {len(tokens):,} tokens, longer than max_length {max_length:,} "
                          f"(raise --max-length, at most {MAX_STEPS:,})")
        items.append(tokens)
        labels.append(label)
        numbers.append(n)
    if not items:
        fail(path, None, "no texts: expected label<TAB>text lines")
    return Labelled(items, labels, numbers, path)


def check_classes(train: Labelled, test: Labelled | None, held_out: bool) -> list[str]:
    """The classes, in the file's declared order or as first seen in training; every class must have two
    training examples (one to hold out) and a test file no class the training file lacks."""
    from collections import Counter

    counts = Counter(train.labels)
    classes = [c for c in (train.classes or []) if c in counts] + [c for c in counts if c not in (train.classes or [])]
    if len(classes) < 2:
        fail(train.where, None, f"one class only ({classes[0]!r}): a classifier needs at least two")
    if held_out:
        single = [c for c in classes if counts[c] < 2]
        if single:
            line = train.lines[train.labels.index(single[0])]
            fail(train.where, line, f"class {single[0]!r} has one example; every class needs at least two (one is "
                                    f"held out)")
    if test is not None:
        unseen = [c for c in dict.fromkeys(test.labels) if c not in counts]
        if unseen:
            line = test.lines[test.labels.index(unseen[0])]
            fail(test.where, line, f"class {unseen[0]!r} never appears in the training file {train.where}")
    return classes
