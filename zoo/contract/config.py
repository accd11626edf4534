"""Typed configs: build them from defaults, presets and `key=value` overrides, and round-trip them as JSON."""

from __future__ import annotations

import dataclasses
import difflib
from typing import Any, Literal, Mapping, get_args, get_origin, get_type_hints

from zoo.contract.specs import ZooError

TRUE = ("1", "true", "yes", "on")
FALSE = ("0", "false", "no", "off")


def field_types(cls: type) -> dict[str, Any]:
    """The config's fields and their types, in declaration order."""
    hints = get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls) if f.init}


def field_help(cls: type) -> dict[str, str]:
    return {f.name: f.metadata.get("help", "") for f in dataclasses.fields(cls) if f.init}


def path_fields(cls: type, folders: bool = True) -> list[str]:
    """The fields marked `param(..., path=True)` (files or URLs a task reads) and, unless `folders` is
    False, `path="folder"` (where it keeps data)."""
    return [f.name for f in dataclasses.fields(cls)
            if f.init and f.metadata.get("path") and (folders or f.metadata["path"] is True)]


def type_name(type_: Any) -> str:
    if get_origin(type_) is Literal:
        return "one of " + ", ".join(str(c) for c in get_args(type_))
    names = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
    return names.get(type_, getattr(type_, "__name__", str(type_)))


MAX_INT = 2**31 - 1  # no count zoo takes (epochs, sizes, lengths) is near; torch's sizes overflow past 2**63
WIDE = {"seed"}  # takes torch's whole range, [-2**63, 2**64), which TrainConfig checks


def _bounded(name: str, type_: Any, value: Any) -> Any:
    """An integer typed on the command line within +-MAX_INT, or one line: `-o hidden_size=9223372036854775808`
    never reaches torch (a file's sizes are checked against its tensors instead: zoo.store.checkpoint)."""
    if (type_ is int and isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_INT
            and name not in WIDE):
        raise ZooError(f"{name} must be an integer between {-MAX_INT:,} and {MAX_INT:,}, got {value:,}")
    return value


def convert(name: str, type_: Any, value: Any) -> Any:
    """Turn a command-line string (or a JSON value) into the field's type, or say why not in one line."""
    if get_origin(type_) is Literal:
        for choice in get_args(type_):
            if value == choice or str(value) == str(choice):
                return choice
        raise ZooError(f"{name} must be {type_name(type_)}, got {value!r}")
    if isinstance(value, str) and type_ is not str:
        text = value.strip().lower()
        try:
            if type_ is bool:
                if text in TRUE or text in FALSE:
                    return text in TRUE
                raise ValueError
            return _bounded(name, type_, type_(text))
        except ValueError:
            raise ZooError(f"{name} must be {type_name(type_)}, got {value!r}") from None
    ok = isinstance(value, type_) and not (type_ is int and isinstance(value, bool))
    if type_ is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not ok:
        raise ZooError(f"{name} must be {type_name(type_)}, got {value!r}")
    return value


def make_config(cls: type, *layers: Mapping[str, Any], owner: str) -> Any:
    """Instantiate `cls` from its defaults overlaid by each layer in turn; every key must be a field."""
    types = field_types(cls)
    values: dict[str, Any] = {}
    for layer in layers:
        for key, value in layer.items():
            if key not in types:
                raise ZooError(f"{owner} has no hyperparameter {key!r}{suggest(key, types)}")
            values[key] = convert(key, types[key], value)
    try:
        return cls(**values)
    except (TypeError, ValueError) as e:
        raise ZooError(f"{owner}: {e}") from None


def applicable(cls: type, values: Mapping[str, Any]) -> dict[str, Any]:
    """The part of `values` that names fields of `cls` (a task's suggestions for any model)."""
    types = field_types(cls)
    return {k: v for k, v in values.items() if k in types}


def to_dict(config: Any) -> dict[str, Any]:
    return dataclasses.asdict(config)


def suggest(name: str, candidates: Any) -> str:
    """`; did you mean 'lstm'?` for `LSTM` or `lstn`: names as they are written, in any case."""
    names = list(candidates)
    folded = {c.lower(): c for c in names}
    close = [folded[c] for c in difflib.get_close_matches(name.lower(), list(folded), n=3, cutoff=0.6)]
    return "; did you mean " + " or ".join(repr(c) for c in close) + "?" if close else ""


def route_overrides(pairs: list[str], namespaces: Mapping[str, tuple[str, type]]) -> dict[str, dict[str, str]]:
    """Sort `key=value` strings into namespaces such as model/task/train.

    `key` may be qualified (`model.hidden_size`); a bare key goes to the one namespace that has it.
    Dashes count as underscores, so `hidden-size=32` works too.
    """
    routed: dict[str, dict[str, str]] = {ns: {} for ns in namespaces}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise ZooError(f"expected key=value, got {pair!r}")
        prefix, dot, name = key.rpartition(".")
        if dot:
            if prefix not in namespaces:
                raise ZooError(f"unknown prefix {prefix!r} in {pair!r}; use one of {', '.join(namespaces)}")
            owners = [prefix] if name in field_types(namespaces[prefix][1]) else []
        else:
            owners = [ns for ns, (_, cls) in namespaces.items() if name in field_types(cls)]
        if not owners:
            scope = [namespaces[prefix]] if dot else list(namespaces.values())
            known = [f for _, cls in scope for f in field_types(cls)]
            where = " or ".join(label for label, _ in scope)
            raise ZooError(f"unknown hyperparameter {name!r} for {where}{suggest(name, known)}")
        if len(owners) > 1:
            raise ZooError(f"{name!r} is ambiguous: write " + " or ".join(f"{ns}.{name}" for ns in owners))
        routed[owners[0]][name] = value
    return routed
