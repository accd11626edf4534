"""Exports: safetensors weights whose metadata says everything needed to rebuild the model.

Metadata keys (all strings, JSON where structured): format, model, task, model_config, task_config,
train_config, problem, meta (vocabularies, scalers), metrics, versions, plugins (who made it, so that
a missing plugin can be named). No pickle anywhere. Reading the card needs no torch, so the CLI can
inspect a file cheaply.

Files are read as input from strangers: every header entry and metadata type is checked, and the model
is compared with the tensors on torch's meta device before anything real is built (`load`).
"""

from __future__ import annotations

import json
import math
import os
import warnings
from dataclasses import asdict, is_dataclass
from dataclasses import fields as dataclass_fields
from pathlib import Path
from typing import Any

from zoo.contract.config import make_config, path_fields, to_dict
from zoo.store.display import printable
from zoo.store.files import check_replaceable, remove_stale_temporaries, write_bytes_atomically
from zoo.store.header import (DTYPE_BYTES, MAX_HEADER, TORCH_DTYPES, check_regular_file,  # noqa: F401 (re-exported)
                              entry_problem, read_header)
from zoo.contract.registry import registry
from zoo.contract.specs import Card, Problem, TrainConfig, ZooError, ZooWarning  # noqa: F401 (ZooWarning: its old home)

FORMAT = "zoo/1"
# the metadata entries of an export and their JSON types (model and task are plain strings)
# the Card's fields an export records (`sources` is read back from its task config), then who made it
CARD_FIELDS = tuple(f.name for f in dataclass_fields(Card) if f.name != "sources")
FIELDS = {**{name: str if name in ("model", "task") else dict for name in CARD_FIELDS}, "plugins": list}


def check_writable(path: Path) -> None:
    """Fail before training, not after, when the export cannot be written (creating nothing)."""
    if path.is_dir():
        raise ZooError(f"{path} is a directory; give a file name ending in .safetensors")
    check_replaceable(path)
    folder = path.absolute().parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent  # the folders still to make are made when the export is written
    if not folder.is_dir():
        raise ZooError(f"cannot write {path}: {folder} is not a directory")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ZooError(f"cannot write {path}: {folder} is not writable")


def save(model: Any, card: Card, path: str | Path, checked: bool = False) -> Path:
    """Write weights and card atomically: a temporary file in the same folder, then a rename.

    `checked`: the caller ran `check_writable(path)` already (training does, before it starts)."""
    from safetensors.torch import save as serialize

    path = Path(path)
    # clone: tied weights would share storage, which safetensors refuses; loading restores both copies
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}
    metadata = {"format": FORMAT}
    for name in CARD_FIELDS:  # strings as they are; configs and the problem as JSON objects, the rest as JSON
        value = getattr(card, name)
        metadata[name] = value if FIELDS[name] is str else json.dumps(
            asdict(value) if is_dataclass(value) else value)
    metadata["plugins"] = json.dumps(contributors(card))  # so that a missing plugin can be named, with its version
    if not checked:
        check_writable(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path.parent, path.name)  # what an export killed before this one left
    data = serialize(tensors, metadata=metadata)  # bytes: safetensors' own file writer leaves .tmp files on a kill
    try:
        write_bytes_atomically(path, data, fsync=True)
    except OSError as e:
        raise ZooError(f"could not write the export {path} ({e.strerror or e}); nothing was written there") from None
    return path


def describe(path: str | Path, header: tuple[dict, dict] | None = None) -> dict[str, Any]:
    """What an export says about itself, checked for type but not interpreted: no plugin is needed,
    so `zoo info` works on a file whose model or task is not installed. `header`: `read_header(path)`,
    if the caller has read it already. (An export in either format: zoo.store.exports.)"""
    metadata, _ = header or read_header(path)
    if metadata.get("format") != FORMAT:
        raise ZooError(f"{path} is a safetensors file, but not one zoo exported (no '{FORMAT}' format tag)")
    return card_fields(path, metadata)


def card_fields(path: Any, metadata: dict[str, str]) -> dict[str, Any]:
    """The zoo card entries of an export's metadata, each checked for its JSON type."""
    fields: dict[str, Any] = {}
    for key, kind in FIELDS.items():
        if key not in metadata:
            if key == "plugins":  # exports made before the plugins record (early 0.1 builds) name none
                continue
            raise ZooError(f"{path} has damaged zoo metadata (no {key!r})")
        try:
            value = metadata[key] if kind is str else json.loads(metadata[key])
        except json.JSONDecodeError as e:
            raise ZooError(f"{path} has damaged zoo metadata ({key} is not JSON: {e})") from None
        except RecursionError:
            raise ZooError(f"{path} has damaged zoo metadata ({key} nests too deeply)") from None
        if not isinstance(value, kind):
            raise ZooError(f"{path} has damaged zoo metadata ({key} is {json_type(value)}, "
                           f"not {'a string' if kind is str else 'a JSON object' if kind is dict else 'a list'})")
        fields[key] = value
    for key, value in fields["meta"].items():
        if key == "vocab" or key.endswith("_vocab"):  # the convention every built-in task follows
            check_vocabulary(path, key, value)
    fields["plugins"] = recorded_plugins(path, fields)
    return fields


def json_type(value: Any) -> str:
    names = {dict: "a JSON object", list: "a list", str: "a string", bool: "a boolean", int: "a number",
             float: "a number"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


def first_repeat(items: list) -> Any:
    """The first item of `items` (hashable) that came before, or None."""
    seen: set = set()
    for item in items:
        if item in seen:
            return item
        seen.add(item)
    return None


def check_vocabulary(path: Any, key: str, vocab: Any) -> None:
    if not isinstance(vocab, list) or not all(isinstance(token, str) for token in vocab):
        raise ZooError(f"{path} has damaged zoo metadata (meta.{key} is not a list of strings)")
    twice = first_repeat(vocab)  # linear: a 10^6-entry vocabulary is checked in a blink
    if twice is not None:
        raise ZooError(f"{path} has damaged zoo metadata (meta.{key} has {twice!r} twice)")


def recorded_plugins(path: Any, fields: dict) -> list[dict[str, str]]:
    """Which plugin distributions made the export: model, task and any model the model is built from."""
    if "plugins" not in fields:  # older exports: the model's and task's providers, as "distribution version"
        versions = fields["versions"]
        return [{"role": role, "name": fields[role], **provider(str(versions.get(f"{role}_plugin", "")))}
                for role in ("model", "task")]
    records = fields["plugins"]
    if not all(isinstance(r, dict) and all(isinstance(r.get(k), str) for k in ("role", "name", "distribution",
                                                                                "version")) for r in records):
        raise ZooError(f"{path} has damaged zoo metadata (plugins is not a list of role, name, distribution, "
                       f"version)")
    for role in ("model", "task"):
        if [r["name"] for r in records if r["role"] == role] != [fields[role]]:
            raise ZooError(f"{path} has damaged zoo metadata (its plugins do not name its {role} "
                           f"{fields[role]!r})")
    return records


def provider(plugin: str) -> dict[str, str]:
    """`{"distribution": ..., "version": ...}` from the registry's "distribution version" string."""
    distribution, _, version = plugin.rpartition(" ")
    return {"distribution": distribution, "version": version} if distribution else {"distribution": plugin,
                                                                                      "version": ""}


def contributors(card: Card) -> list[dict[str, str]]:
    """The plugins an export needs, for its metadata: the model's, the task's, and those of any model the
    model config names (a composite model's cell, say seq2seq's `cell`): a field whose value is the name
    of a registered model."""
    reg = registry()
    found = [("model", card.model, reg.models.get(card.model)), ("task", card.task, reg.tasks.get(card.task))]
    found += [(key, value, reg.models[value]) for key, value in to_dict(card.model_config).items()
              if isinstance(value, str) and value != card.model and value in reg.models]
    return [{"role": role, "name": name, **provider(spec.plugin)} for role, name, spec in found if spec is not None]


def missing_plugins(fields: dict) -> list[str]:
    """What an export needs that no installed plugin provides, each with the distribution to install."""
    reg = registry()
    missing = []
    for record in fields["plugins"]:
        known = reg.tasks if record["role"] == "task" else reg.models
        if record["name"] not in known:
            dist, version = record["distribution"], record["version"]
            source = f" from {dist} {version}".rstrip() if dist else ""
            install = f" (pip install '{dist}=={version}')" if dist and version else ""
            missing.append(f"{record['role']} {record['name']!r}{source}{install}")
    return missing


def provenance(task_config: dict[str, Any], config: type) -> dict[str, Any]:
    """Take the files and folders an export's task config records out of it (provenance, never followed:
    evaluating needs them given again) and return the files among them that were given."""
    sources = {k: task_config.pop(k) for k in path_fields(config) if k in task_config}
    return {k: v for k, v in sources.items() if v and k in path_fields(config, folders=False)}


def read_card(path: str | Path, task_overrides: dict[str, str] | None = None,
              header: tuple[dict, dict] | None = None) -> Card:
    """The card of an export, with its configs rebuilt through the installed plugins."""
    return card_of(path, describe(path, header), task_overrides)


def card_of(path: str | Path, fields: dict[str, Any], task_overrides: dict[str, str] | None = None) -> Card:
    """The Card an export's described fields (`describe`) stand for, its configs rebuilt through the
    installed plugins; a plugin that is missing is one line."""
    missing = missing_plugins(fields)
    if missing:
        raise ZooError(f"{path} was trained with {'; '.join(missing)}, which no installed plugin provides "
                       f"(`zoo list` shows what is installed)")
    reg = registry()
    model_name, task_name = fields["model"], fields["task"]
    model, task = reg.models[model_name], reg.tasks[task_name]  # both in the plugins record: present
    sources = provenance(fields["task_config"], task.config)
    rebuilt = {  # the fields that are configs, through their classes; the others as recorded
        "model_config": make_config(model.config, fields["model_config"], owner=f"{path}: model {model_name}"),
        "task_config": make_config(task.config, fields["task_config"], task_overrides or {}, owner=f"task {task_name}"),
        "train_config": make_config(TrainConfig, fields["train_config"], owner=f"{path}: training"),
        "problem": make_config(Problem, fields["problem"], owner=f"{path}: problem"),
    }
    return Card(**{name: rebuilt.get(name, fields[name]) for name in CARD_FIELDS}, sources=sources)


def load(path: str | Path, device: Any = "cpu", task_overrides: dict[str, str] | None = None,
         header: tuple[dict, dict] | None = None, card: Card | None = None):
    """Rebuild the model an export describes, load its weights and return it in eval mode.

    The returned module carries its Card as `.zoo` (names, configs, vocabulary, metrics). Before anything
    is allocated, the architecture the metadata describes is built on torch's meta device (shapes, no
    memory) and compared with the tensors the file holds, so that a small file cannot make zoo build a
    huge model: the cost of refusing a hostile file is the cost of reading its header. A caller that
    read the header and the card already passes them (`zoo eval`: each is read once).
    """
    import torch
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    header = header or read_header(path)  # once: the card and the architecture check both come from it
    card = card or read_card(path, task_overrides, header)  # (a caller's card has its overrides already)
    entries = header[1]
    spec = registry().get_model(card.model)
    check_architecture(path, spec, card, entries)
    with torch.random.fork_rng(devices=[]):  # the initial weights are overwritten: leave the caller's RNG alone
        model = spec.build(card.model_config, card.problem)
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError) as e:
        raise ZooError(f"{path} cannot be read as safetensors: {e}") from None
    model.load_state_dict(tensors)
    bad = sum(int((~torch.isfinite(t)).sum()) for t in tensors.values() if t.is_floating_point())
    if bad:
        warnings.warn(f"{path}: {bad:,} weight{'s are' if bad > 1 else ' is'} not finite (NaN or infinite): "
                      f"its outputs mean nothing", ZooWarning, stacklevel=2)
    model.to(device).eval()
    model.zoo = card
    return model


def check_architecture(path: Any, spec: Any, card: Card, entries: dict[str, Any]) -> None:
    """Refuse, in one line, a file whose tensors are not the ones its metadata's model has."""
    found = {k: (tuple(e["shape"]), e["dtype"]) for k, e in entries.items()}
    problems = tensor_differences(found, expected_tensors(path, spec, card, entries))
    if problems:
        raise ZooError(f"{path}: the weights do not match the {card.model} architecture its metadata describes "
                       f"({problems})")


def tensor_differences(found: dict[str, tuple], expected: dict[str, tuple]) -> str:
    """What keeps tensors {name: (shape, dtype)} of a file from being a model's, as one phrase ("" when
    nothing does): the first three differences, and how many more."""
    problems = [f"missing {k}" for k in expected if k not in found]
    problems += [f"unexpected {printable(k)}" for k in found if k not in expected]
    for key, (shape, dtype) in expected.items():
        if key in found:
            if found[key][0] != shape:
                problems.append(f"{key} is {found[key][0]} in the file but {shape} in the model")
            elif found[key][1] != dtype:
                problems.append(f"{key} is {found[key][1]} in the file but {dtype} in the model")
    return "; ".join(problems[:3]) + (f"; and {len(problems) - 3} more" if len(problems) > 3 else "")


def expected_tensors(path: Any, spec: Any, card: Card, entries: dict[str, Any]) -> dict[str, tuple]:
    """{name: (shape, safetensors dtype)} of the model the card describes, built on the meta device.

    Building stops as soon as it has made more, or bigger, tensors than the file could account for
    (`num_layers` 1e6 would otherwise loop for minutes even on the meta device). A plugin whose build
    needs real numbers (`.item()` on a tensor, say) is built on the CPU under the same bounds.
    """
    from zoo.nn.budget import Budget, TooBig, parameters_on_meta

    elements = sum(math.prod(e["shape"]) for e in entries.values())

    def build(device: str):
        budget = Budget(max_tensors=4 * len(entries) + 1000, max_elements=4 * elements + 10_000_000)
        return parameters_on_meta(spec, card.model_config, card.problem, budget, device)

    try:
        try:
            model = build("meta")
        except (NotImplementedError, RuntimeError):  # not built for meta tensors
            model = build("cpu")
    except TooBig:
        raise ZooError(f"{path}: its metadata describes a {card.model} far bigger than its tensors "
                       f"({len(entries)} tensors, {elements:,} numbers): the file is damaged or forged") from None
    except ZooError:
        raise
    except Exception as e:  # a plugin's build choking on values its config allowed
        raise ZooError(f"{path}: cannot build the {card.model} its metadata describes "
                       f"({type(e).__name__}: {printable(str(e), newlines=False)})") from None
    names = {dtype: name for name, dtype in TORCH_DTYPES.items()}
    return {k: (tuple(v.shape), names.get(str(v.dtype), str(v.dtype))) for k, v in model.state_dict().items()}
