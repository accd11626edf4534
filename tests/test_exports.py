"""Exports: self-describing, atomic, and every way a weights file can be wrong gets one clear line.

Files crafted by a stranger (bad headers, memory bombs, escape sequences): test_hostile.py.
"""

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

import zoo
from conftest import one_line_error, zoo_cli
from zoo.store.checkpoint import read_header


@pytest.fixture
def export(tmp_path):
    path = tmp_path / "hi.safetensors"
    zoo.train("lstm", "hihello", {"epochs": 20}, out=path, log=lambda line: None)
    return path


def rewrite(path, out, **metadata_changes):
    """Copy an export, changing metadata entries (values are JSON-encoded unless str)."""
    from safetensors import safe_open

    metadata = safe_open(path, "pt").metadata()
    for key, value in metadata_changes.items():
        metadata[key] = value if isinstance(value, str) else json.dumps(value)
    save_file(load_file(path), out, metadata=metadata)
    return out


def test_metadata_describes_everything(export):
    metadata, tensors = read_header(export)
    assert metadata["format"] == "zoo/1" and metadata["model"] == "lstm" and metadata["task"] == "hihello"
    assert json.loads(metadata["model_config"])["hidden_size"] == 8
    assert json.loads(metadata["train_config"])["epochs"] == 20
    assert json.loads(metadata["meta"])["vocab"] == ["h", "i", "e", "l", "o"]
    assert json.loads(metadata["metrics"])["prediction"] == "ihello"
    versions = json.loads(metadata["versions"])
    assert versions["zoo"] == zoo.__version__ and versions["torch"] == torch.__version__
    assert "head.weight" in tensors


def test_load_needs_nothing_but_the_file(export):
    net = zoo.load(export)
    assert not net.training
    assert zoo.get_task("hihello").predict(net, "hihell") == "ihello"


def test_load_leaves_the_callers_random_state_alone(export):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    zoo.load(export)
    assert torch.equal(torch.rand(3), expected)


def test_an_interrupted_export_leaves_no_file(tmp_path, monkeypatch):
    import zoo.store.files
    from zoo.loop.training import Interrupted

    def crash(fd):  # the whole file is written; Ctrl-C comes before it is renamed into place
        raise KeyboardInterrupt

    monkeypatch.setattr(zoo.store.files.os, "fsync", crash)
    out = tmp_path / "out" / "w.safetensors"
    out.parent.mkdir()
    out.write_bytes(b"the previous export")
    with pytest.raises(Interrupted, match="interrupted; the state is saved: zoo resume"):
        zoo.train("rnn", "hihello", {"epochs": 1}, out=out, log=lambda line: None)
    assert out.read_bytes() == b"the previous export"
    assert [p.name for p in out.parent.iterdir()] == ["w.safetensors"]


def bad_files(export, tmp_path):
    data = export.read_bytes()
    (tmp_path / "truncated.safetensors").write_bytes(data[: len(data) // 2])
    (tmp_path / "header-cut.safetensors").write_bytes(data[:40])
    (tmp_path / "text.safetensors").write_text("just some text, not weights")
    (tmp_path / "tiny.safetensors").write_bytes(b"\x01")
    save_file({"w": torch.zeros(2)}, tmp_path / "foreign.safetensors", metadata={"who": "someone else"})
    plugins = json.loads(read_header(export)[0]["plugins"])
    elman = [{**r, "name": "elman-deluxe", "distribution": "zoo-elman", "version": "1.2"} if r["role"] == "model"
             else r for r in plugins]
    poetry = [{**r, "name": "poetry"} if r["role"] == "task" else r for r in plugins]
    rewrite(export, tmp_path / "unknown-model.safetensors", model="elman-deluxe", plugins=elman)
    rewrite(export, tmp_path / "unknown-task.safetensors", task="poetry", plugins=poetry)
    config = json.loads(read_header(export)[0]["model_config"])
    rewrite(export, tmp_path / "mismatch.safetensors", model_config={**config, "hidden_size": 9})
    rewrite(export, tmp_path / "layers.safetensors", model_config={**config, "num_layers": 2})
    rewrite(export, tmp_path / "damaged.safetensors", problem="{not json")


BAD_FILES = [
    ("missing.safetensors", "no such file"),
    ("truncated.safetensors", "is truncated"),
    ("header-cut.safetensors", "is truncated"),
    ("text.safetensors", "is not a safetensors file"),
    ("tiny.safetensors", "is not a safetensors file"),
    ("foreign.safetensors", "not one zoo exported"),
    ("unknown-model.safetensors", "trained with model 'elman-deluxe' from zoo-elman 1.2 (pip install "
                                  "'zoo-elman==1.2'), which no installed plugin provides"),
    ("unknown-task.safetensors", "trained with task 'poetry' from rnn-zoo"),
    ("mismatch.safetensors", "do not match the lstm architecture its metadata describes (rnn.weight_ih_l0 is (32, 5)"),
    ("layers.safetensors", "missing rnn.weight_ih_l1"),
    ("damaged.safetensors", "has damaged zoo metadata"),
]


BAD_USES = [(command, name, message) for command in ("eval", "predict", "info") for name, message in BAD_FILES
            # info reads the metadata only: tensors that do not fit, or plugins that are missing, are for the
            # commands that load them
            if not (command == "info" and name in ("mismatch.safetensors", "layers.safetensors",
                                                   "unknown-model.safetensors", "unknown-task.safetensors"))]


@pytest.mark.parametrize("command,name,message", BAD_USES, ids=[f"{c}-{n}" for c, n, _ in BAD_USES])
def test_bad_weights_files_are_one_line(runner, export, tmp_path, command, name, message):
    bad_files(export, tmp_path)
    args = [command, tmp_path / name] + (["hihell"] if command == "predict" else [])
    assert message in one_line_error(zoo_cli(runner, *args))


def test_load_raises_zoo_errors(export, tmp_path):
    bad_files(export, tmp_path)
    with pytest.raises(zoo.ZooError, match="do not match"):
        zoo.load(tmp_path / "mismatch.safetensors")
