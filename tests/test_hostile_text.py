"""Text from files and plugins shown safely: one escaping rule (zoo.store.display.printable) for names from
config.json, folder names, dist-info names and versions, plugin descriptions, metric strings and warnings.
Each command runs as a real process whose stdout is UTF-8 (a lone surrogate there would end it in
UnicodeEncodeError) and its output is checked for raw control, format, surrogate and separator characters."""

import json
import os
import shutil
import subprocess
import sys
import unicodedata

import pytest
from safetensors import safe_open
from safetensors.torch import load_file, save_file

import zoo
from hostile_kit import ROOT, snapshot
from zoo.store.display import ESCAPED, printable

NASTY = "a\nb\x1b]0;owned\x07c\x1b[2J\u200bd\u2028e\u202ef\ud800g\ufeff"


def raw_characters(text: str) -> list[str]:
    return [repr(ch) for ch in text if ch != "\n" and unicodedata.category(ch) in ESCAPED]


def zoo_output(args, cwd, env=None):
    full = {**os.environ, "ZOO_LOAD_PLUGINS": "", "ZOO_THREADS": "1", "PYTHONIOENCODING": "utf-8",
            "PYTHONPATH": str(ROOT), **(env or {})}
    done = subprocess.run([sys.executable, "-m", "zoo", *map(str, args)], cwd=cwd, env=full, capture_output=True,
                          timeout=600, stdin=subprocess.DEVNULL)  # a hang detector, not a deadline
    out, err = done.stdout.decode("utf-8"), done.stderr.decode("utf-8")  # strict: what a terminal gets
    assert "Traceback" not in err and "UnicodeEncodeError" not in err, err
    assert not raw_characters(out) and not raw_characters(err), (raw_characters(out), raw_characters(err))
    return done.returncode, out, err


def test_the_rule_escapes_every_kind_once():
    shown = printable(NASTY, newlines=False)
    assert shown == "a\\nb\\x1b]0;owned\\x07c\\x1b[2J\\u200bd\\u2028e\\u202ef\\ud800g\\ufeff"
    assert printable("tab\tand\nnewline kept") == "tab\tand\nnewline kept"
    assert printable("café 東京 ok") == "café 東京 ok"
    shown.encode("ascii")  # nothing left that a terminal could obey or an encoder refuse


def test_zoo_runs_shows_names_and_folders_from_files_escaped(tmp_path):
    zoo.train("lstm", "hihello", {"epochs": 1}, run_dir=tmp_path / "checkpoints" / "good", log=lambda line: None)
    forged = tmp_path / "checkpoints" / "x\ncheckpoints/forged  lstm  hihello  1/1  finished \x1b]0;t\x07"
    shutil.copytree(tmp_path / "checkpoints" / "good", forged)
    config = json.loads((forged / "config.json").read_text())
    config.update(model="lstm\u200b\x1b[31m", task="hi\u2028hello\ud800")
    (forged / "config.json").write_text(json.dumps(config))
    before = snapshot(tmp_path)
    code, out, err = zoo_output(["runs"], tmp_path)
    assert code == 0, err
    rows = out.splitlines()
    assert len(rows) == 3, out  # the header and two runs: no forged row
    assert "lstm\\u200b\\x1b[31m" in out and "hi\\u2028hello\\ud800" in out and "x\\ncheckpoints/forged" in out
    assert snapshot(tmp_path) == before


def test_zoo_info_and_eval_show_an_exports_names_escaped(tmp_path):
    zoo.train("lstm", "hihello", {"epochs": 1}, out=tmp_path / "hi.safetensors", log=lambda line: None)
    with safe_open(tmp_path / "hi.safetensors", "pt") as f:
        metadata = dict(f.metadata())
    plugins = json.loads(metadata["plugins"])
    plugins.append({"role": "cell", "name": "evil", "distribution": "zoo-evil\x1b]0;x\x07", "version": "1\ud800"})
    metadata["plugins"] = json.dumps(plugins)
    metrics = json.loads(metadata["metrics"])
    metadata["metrics"] = json.dumps({**metrics, "prediction": "\x1b]0;pwn\x07\u2028\ud800"})
    save_file(load_file(tmp_path / "hi.safetensors"), tmp_path / "evil.safetensors", metadata=metadata)
    code, out, err = zoo_output(["info", "evil.safetensors"], tmp_path)
    assert code == 0, err
    assert "zoo-evil\\x1b]0;x\\x07 1\\ud800" in out, out
    code, out, err = zoo_output(["eval", "evil.safetensors"], tmp_path)  # the cell is not installed: said safely
    assert code == 1 and "from zoo-evil\\x1b]0;x\\x07 1\\ud800" in err, err
    plugins.pop()
    metadata["plugins"] = json.dumps(plugins)
    save_file(load_file(tmp_path / "hi.safetensors"), tmp_path / "evil.safetensors", metadata=metadata)
    code, out, err = zoo_output(["info", "evil.safetensors"], tmp_path)
    assert code == 0 and "\\u001b]0;pwn\\u0007\\u2028\\ud800" in out, out  # as JSON escapes it


PLUGIN = '''
import zoo
from zoo_plugins import hihello


def evaluate(model, data, split):
    return {**hihello.evaluate(model, data, split), "note": "\\x1b]0;pwn\\x07\\u2028\\u200bz\\ud800"}


@zoo.hookimpl
def register_tasks(register):
    register(zoo.Task(name="nasty", description="hi\\nthere\\x1b[2J\\u202e\\u200b", shape=zoo.MANY_TO_MANY,
                      data=hihello.make_data, evaluate=evaluate, config=hihello.HiHelloConfig,
                      train_defaults={"epochs": 1, "lr": 0.1, "batch_size": 1}, model_defaults={"hidden_size": 8}))
'''

BROKEN = 'raise ValueError("\\x1b]0;pwned\\x07 bad\\nline\\ud800")\n'


@pytest.fixture
def nasty_site(fake_distribution):
    site = fake_distribution(PLUGIN, module="nasty_plugin", entry="nasty", dist="nasty_plugin",
                             version="1.0\x1b[31m")
    (site / "broken_nasty.py").write_text(BROKEN)
    info = site / "broken_nasty-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-nasty\nVersion: 0.1\u200b\n")
    (info / "entry_points.txt").write_text("[zoo]\nbroken = broken_nasty\n")
    return {"ZOO_LOAD_PLUGINS": "nasty,broken", "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)])}


@pytest.mark.parametrize("command", [["list"], ["plugins"], ["--help"],
                                     ["train", "lstm", "nasty", "--run-dir", "run"]])
def test_plugin_descriptions_versions_warnings_and_metrics_are_escaped(command, nasty_site, tmp_path):
    code, out, err = zoo_output(command, tmp_path, nasty_site)
    assert code == 0, err
    assert "failed to load: ValueError: \\x1b]0;pwned\\x07 bad (" in err  # the broken plugin's warning
    if command == ["list"]:
        assert "hi\\nthere\\x1b[2J\\u202e\\u200b" in out
    if command == ["plugins"]:
        assert "1.0\\x1b[31m" in out and "0.1\\u200b" in out
    if command[0] == "train":
        assert "note \\x1b]0;pwn\\x07\\u2028\\u200bz\\ud800" in out, out
