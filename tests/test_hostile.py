"""Weights files from strangers: one `Error:` line each, a non-zero exit, no traceback, no file changed,
and a bounded cost.

Every hostile file is made here, in a temp dir, from a small real export. The memory bombs (a 2 KB file
whose metadata claims a hidden size of 1e9, say) run in a subprocess under an address-space limit, so a
regression fails the test instead of taking the machine down. Options that cannot work: test_options.py.
"""

import hashlib
import json
import os
import struct
import textwrap

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

import zoo
from conftest import one_line_error, zoo_cli
from hostile_kit import one_line, run_cases
from zoo.store.checkpoint import read_header


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    """An lstm trained for a few steps on hihello: small, and every command works on it."""
    from zoo.contract import registry as registry_module

    folder = tmp_path_factory.mktemp("export")
    registry_module.reset()
    try:
        with pytest.MonkeyPatch.context() as mp:  # module-scoped: its run folder goes to the tmp folder too
            mp.setenv(registry_module.LOAD_ENV, "")
            mp.chdir(folder)
            zoo.train("lstm", "hihello", {"epochs": 5}, out=folder / "hi.safetensors", log=lambda line: None)
    finally:
        registry_module.reset()
    return folder / "hi.safetensors"


def metadata_of(path) -> dict:
    with safe_open(path, "pt") as f:
        return dict(f.metadata())


def with_metadata(export, out, **changes):
    """A copy of the export whose metadata entries are replaced: JSON-encoded, unless given as str."""
    metadata = metadata_of(export)
    for key, value in changes.items():
        metadata[key] = value if isinstance(value, str) else json.dumps(value)
    save_file(load_file(export), out, metadata=metadata)
    return out


def with_json(export, out, key, **changes):
    """A copy whose JSON metadata entry `key` has `changes` applied."""
    return with_metadata(export, out, **{key: {**json.loads(metadata_of(export)[key]), **changes}})


def renamed(export, out, model):
    """A copy that says its model is `model`, its plugins record included."""
    plugins = [{**r, "name": model} if r["role"] == "model" else r for r in json.loads(metadata_of(export)["plugins"])]
    return with_metadata(export, out, model=model, plugins=plugins)


def with_tensors(export, out, change):
    save_file({k: change(v) for k, v in load_file(export).items()}, out, metadata=metadata_of(export))
    return out


def raw_safetensors(out, header: str, data: bytes = b""):
    """A file with any header text: what a safetensors writer would never produce."""
    encoded = header.encode()
    out.write_bytes(struct.pack("<Q", len(encoded)) + encoded + data)
    return out


DEEP = "[" * 100_000 + "]" * 100_000


def nan_first(t):
    t = t.clone()
    t.view(-1)[0] = float("nan")
    return t


# (name, how to make it from the export and a path, the message, commands that must refuse it)
ALL = ("info", "eval", "predict", "load")
LOADING = ("eval", "predict", "load")
CASES = [
    ("config-is-string", lambda e, p: with_metadata(e, p, model_config='"big"'),
     "model_config is a string, not a JSON object", ALL),
    ("config-is-list", lambda e, p: with_metadata(e, p, model_config=[8, 1]),
     "model_config is a list, not a JSON object", ALL),
    ("task-config-null", lambda e, p: with_metadata(e, p, task_config="null"),
     "task_config is null, not a JSON object", ALL),
    ("meta-is-list", lambda e, p: with_metadata(e, p, meta=["h", "i"]), "meta is a list, not a JSON object", ALL),
    ("problem-deeply-nested", lambda e, p: with_metadata(e, p, problem=DEEP), "problem nests too deeply", ALL),
    ("header-deeply-nested", lambda e, p: raw_safetensors(p, '{"w": ' + DEEP + "}"), "header nests too deeply", ALL),
    ("metadata-not-strings", lambda e, p: raw_safetensors(p, '{"__metadata__": {"format": 1}}'),
     "metadata is not a map of strings", ALL),
    ("unknown-dtype", lambda e, p: raw_safetensors(p, '{"w": {"dtype": "F128", "shape": [1], "data_offsets": [0, 16]}}',
                                                   bytes(16)), "unknown dtype 'F128'", ALL),
    ("shape-larger-than-bytes", lambda e, p: raw_safetensors(
        p, '{"w": {"dtype": "F32", "shape": [100000, 100000], "data_offsets": [0, 4]}}', bytes(4)),
     "cannot fill bytes 0-4", ALL),
    ("negative-shape", lambda e, p: raw_safetensors(p, '{"w": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}',
                                                    bytes(4)), "shape is not a list of sizes", ALL),
    ("vocab-not-strings", lambda e, p: with_json(e, p, "meta", vocab=[1, 2, 3, 4, 5]),
     "meta.vocab is not a list of strings", ALL),
    ("vocab-duplicates", lambda e, p: with_json(e, p, "meta", vocab=["h", "i", "h", "l", "o"]),
     "meta.vocab has 'h' twice", ALL),
    ("vocab-multi-character", lambda e, p: with_json(e, p, "meta", vocab=["hi", "i", "e", "l", "o"]),
     "'hi' is not a single character", ("eval", "predict")),
    ("vocab-longer-than-problem", lambda e, p: with_json(e, p, "meta", vocab=["h", "i", "e", "l", "o", "x"]),
     "its meta makes a", ("eval",)),
    ("problem-wrong-type", lambda e, p: with_json(e, p, "problem", output_size=[5]), "output_size must be an integer",
     LOADING),
    ("problem-float-size", lambda e, p: with_json(e, p, "problem", output_size=1e10), "output_size must be an integer",
     LOADING),
    ("plugins-damaged", lambda e, p: with_metadata(e, p, plugins=[{"role": "model"}]),
     "plugins is not a list of role, name, distribution, version", ALL),
    ("float64-weights", lambda e, p: with_tensors(e, p, lambda t: t.double()), "is F64 in the file but F32", LOADING),
    ("int8-weights", lambda e, p: with_tensors(e, p, lambda t: t.to(torch.int8)), "is I8 in the file but F32", LOADING),
    ("bool-weights", lambda e, p: with_tensors(e, p, lambda t: t != 0), "is BOOL in the file but F32", LOADING),
    ("ansi-tensor-name", lambda e, p: save_file({**load_file(e), "\x1b]0;owned\x07": torch.zeros(1)}, p,
                                                metadata=metadata_of(e)), "unexpected \\x1b]0;owned\\x07", LOADING),
    ("ansi-model-name", lambda e, p: renamed(e, p, "lstm\x1b[2J"), "model 'lstm\\x1b[2J' from rnn-zoo", LOADING),
]


def make(case_name, export, folder):
    maker = next(m for n, m, _, _ in CASES if n == case_name)
    path = folder / f"{case_name}.safetensors"
    maker(export, path)
    return path


def snapshot(folder) -> dict:
    """Every file under `folder` with a digest of its bytes: nothing may change."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and not p.is_symlink()}


def refuse(runner, command, path):
    if command == "load":
        with pytest.raises(zoo.ZooError) as caught:
            zoo.load(path)
        return "Error: " + str(caught.value)
    args = [command, path] + (["hihell"] if command == "predict" else [])
    return one_line_error(zoo_cli(runner, *args))


USES = [(name, command, message) for name, _, message, commands in CASES for command in commands]


@pytest.mark.parametrize("name,command,message", USES, ids=[f"{c}-{n}" for n, c, _ in USES])
def test_hostile_file_is_one_line(runner, export, tmp_path, name, command, message):
    path = make(name, export, tmp_path)
    before = snapshot(tmp_path)
    line = refuse(runner, command, path)
    assert message in line
    assert "\x1b" not in line and "\x07" not in line  # shown escaped, never sent raw to the terminal
    assert snapshot(tmp_path) == before


def test_info_shows_names_escaped(runner, export, tmp_path):
    path = renamed(export, tmp_path / "w.safetensors", "lstm\x1b]0;owned\x07")
    result = zoo_cli(runner, "info", path)
    assert result.exit_code == 0, result.output
    assert "lstm\\x1b]0;owned\\x07" in result.output and "\x1b" not in result.output


def test_predicted_text_is_shown_escaped(runner, export, tmp_path):
    """The vocabulary is the model's alphabet: a file can make any character the prediction."""
    path = with_json(export, tmp_path / "w.safetensors", "meta", vocab=["h", "i", "e", "l", "\x1b"])
    result = zoo_cli(runner, "predict", path, "hihell")
    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.output
    assert zoo.get_task("hihello").predict(zoo.load(path), "hihell") == zoo.get_task("hihello").predict(
        zoo.load(export), "hihell").replace("o", "\x1b")


@pytest.mark.parametrize("command", ["predict", "eval"])
def test_weights_that_are_not_finite_warn(runner, export, tmp_path, command):
    path = with_tensors(export, tmp_path / "nan.safetensors", nan_first)
    result = zoo_cli(runner, command, path, *(["hihell"] if command == "predict" else []))
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.output.splitlines() if line.startswith("Warning: ")]
    assert len(warnings) == 1 and "not finite" in warnings[0], result.output
    with pytest.warns(zoo.store.checkpoint.ZooWarning, match="3 weights are not finite"):
        zoo.load(with_tensors(export, tmp_path / "nan3.safetensors",
                              lambda t: nan_first(t) if t.dim() == 2 else t))


# -- paths that are not regular files (issue 15) --------------------------------------------------------

def test_paths_that_are_not_files_say_what_they_are(runner, tmp_path):
    fifo, loop, broken = tmp_path / "pipe.safetensors", tmp_path / "loop.safetensors", tmp_path / "gone.safetensors"
    os.mkfifo(fifo)
    loop.symlink_to(loop)
    broken.symlink_to(tmp_path / "nowhere")
    cases = [(fifo, "is a named pipe (FIFO), not a weights file"), (loop, "is a symbolic link loop"),
             (broken, "a broken symbolic link"), ("/dev/zero", "is a character device, not a weights file")]
    for path, message in cases:
        for command in ("info", "eval", "predict"):
            assert message in one_line_error(zoo_cli(runner, command, path, *(["x"] * (command == "predict"))))
        with pytest.raises(zoo.ZooError, match="not a weights file|link"):
            zoo.load(path)


# -- plugins that are gone ------------------------------------------------------------------------------

MGU_PLUGIN = textwrap.dedent('''
    import zoo

    def make_cell(config, input_size):
        import torch
        return torch.nn.GRU(input_size, config.hidden_size, batch_first=True)

    @zoo.hookimpl
    def register_models(register):
        for model in zoo.cell_models("mgu", "a GRU under another name, from a plugin", make_cell):
            register(model)
''')


def test_exports_name_the_plugins_they_need(runner, fake_distribution, monkeypatch, tmp_path):
    """A seq2seq export whose cell came from a plugin: info works without it, the rest name what to install."""
    from zoo.contract import registry as registry_module

    fake_distribution(MGU_PLUGIN, module="zoo_mgu_cell", entry="mgu", dist="zoo_mgu", version="0.3.0")
    monkeypatch.delenv(registry_module.LOAD_ENV)
    registry_module.reset()
    out = tmp_path / "mgu.safetensors"
    zoo.train("seq2seq", "translate", {"cell": "mgu", "epochs": 1}, out=out, log=lambda line: None)
    recorded = json.loads(read_header(out)[0]["plugins"])
    assert {"role": "cell", "name": "mgu", "distribution": "zoo-mgu", "version": "0.3.0"} in recorded
    assert {r["role"] for r in recorded} == {"model", "task", "cell"}

    monkeypatch.setenv(registry_module.LOAD_ENV, "")  # the plugin is uninstalled
    registry_module.reset()
    info = zoo_cli(runner, "info", out)
    assert info.exit_code == 0, info.output
    assert "cell mgu: zoo-mgu 0.3.0" in info.output and "not installed: cell 'mgu'" in info.output
    for command in ("eval", "predict"):
        line = one_line_error(zoo_cli(runner, command, out, *(["i feel hungry."] * (command == "predict"))))
        assert "cell 'mgu' from zoo-mgu 0.3.0 (pip install 'zoo-mgu==0.3.0')" in line
    with pytest.raises(zoo.ZooError, match="zoo-mgu==0.3.0"):
        zoo.load(out)


# -- memory bombs, under an address-space limit in a subprocess -------------------------------------------

BOMBS = [
    ("hidden-1e5", "model_config", {"hidden_size": 100_000}),
    ("hidden-1e9", "model_config", {"hidden_size": 1_000_000_000}),
    ("embed-1e9", "model_config", {"embed_dim": 1_000_000_000}),
    ("layers-1e6", "model_config", {"num_layers": 1_000_000}),
    ("layers-1e6-hidden-1", "model_config", {"num_layers": 1_000_000, "hidden_size": 1}),
    ("output-1e10", "problem", {"output_size": 10_000_000_000}),
    ("vocab-1e9", "problem", {"vocab_size": 1_000_000_000}),
]


def test_memory_bombs_are_refused_cheaply(export, tmp_path):
    runs = []
    for name, key, changes in BOMBS:
        path = with_json(export, tmp_path / f"{name}.safetensors", key, **changes)
        assert path.stat().st_size < 10_000  # a small file...
        runs += [(f"{name} {command}", [command, path, *extra], {})
                 for command, extra in (("load", []), ("eval", []), ("predict", ["hihell"]))]
    runs.append(("train-hidden-1e5", ["train", "lstm", "hihello", "-e", "1", "-o", "hidden_size=100000",
                                      "--device", "cpu", "--out", tmp_path / "out.safetensors"], {}))
    before = snapshot(tmp_path)
    # 2 GiB over what importing torch took: a model of tens of GB cannot be allocated, and a regression
    # fails with an error instead of swapping the machine; 20 CPU seconds a case
    results = run_cases(runs, tmp_path, gib=2, cpu=20)
    for name, r in results.items():
        one_line(r, "needs at least" if name.startswith("train") else "its metadata describes")
        assert r["cpu"] < 10, r  # CPU seconds: milliseconds in practice
    assert max(r["grown_mb"] for r in results.values()) < 100, results  # ...costs what its header costs
    assert snapshot(tmp_path) == before


def test_exports_made_before_the_plugins_record_still_load(runner, export, tmp_path):
    """Older exports name their model's and task's providers in `versions` only."""
    metadata = metadata_of(export)
    del metadata["plugins"]
    old = tmp_path / "old.safetensors"
    save_file(load_file(export), old, metadata=metadata)
    assert zoo_cli(runner, "predict", old, "hihell").exit_code == 0
    metadata["model"] = "elman"
    save_file(load_file(export), old, metadata=metadata)
    line = one_line_error(zoo_cli(runner, "eval", old))
    assert "trained with model 'elman' from rnn-zoo" in line


def test_a_model_that_cannot_be_built_on_meta_is_checked_on_the_cpu(runner, monkeypatch, tmp_path):
    """A plugin whose build reads a number (`.item()`) cannot run on the meta device: zoo builds it on the
    CPU under the same bounds, and a forged size is refused before it is allocated."""
    import types

    from zoo.contract import registry as registry_module

    def make_cell(config, input_size):
        assert torch.ones(1).item() == 1.0  # meta tensors have no numbers: this raises there
        return torch.nn.GRU(input_size, config.hidden_size, batch_first=True)

    plugin = types.ModuleType("item_cell")
    plugin.register_models = zoo.hookimpl(lambda register: [register(m) for m in zoo.cell_models(
        "itemcell", "a cell whose build reads a number", make_cell)])
    reg = registry_module.Registry(entry_points=False)
    reg.add(plugin, registry_module.Plugin("itemcell", "zoo-itemcell", "1.0", builtin=False))
    monkeypatch.setattr(registry_module, "_registry", reg)
    out = tmp_path / "item.safetensors"
    zoo.train("itemcell", "hihello", {"epochs": 1}, out=out, log=lambda line: None)
    assert zoo.get_task("hihello").predict(zoo.load(out), "hihell")
    forged = with_json(out, tmp_path / "forged.safetensors", "model_config", hidden_size=10**6)
    assert "far bigger than its tensors" in one_line_error(zoo_cli(runner, "eval", forged))
