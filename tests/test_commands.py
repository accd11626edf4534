"""The command line as a user drives it: `zoo list`, `zoo plugins`, torch-free listing, unknown
commands, and how much a default run prints.
"""

import json
import os
import pty
import select
import subprocess
import sys


from conftest import one_line_error, zoo_cli


def test_list_shows_models_tasks_and_plugins(runner):
    result = zoo_cli(runner, "list")
    assert result.exit_code == 0, result.output
    for name in ("rnn", "lstm-stacked", "gru-bi", "hihello", "charlm", "rnn-zoo 0.1.0"):
        assert name in result.output


def test_list_filters_with_wildcards(runner):
    result = zoo_cli(runner, "list", "lstm*")
    names = [line.split()[0] for line in result.output.splitlines()[1:] if line.strip() and line[0].islower()]
    assert names[:3] == ["lstm", "lstm-bi", "lstm-stacked"] and "gru" not in names


def test_list_json(runner):
    data = json.loads(zoo_cli(runner, "list", "--json").output)
    models = {m["name"]: m for m in data["models"]}
    tasks = {t["name"]: t for t in data["tasks"]}
    assert models["lstm-bi"]["preset"] == {"bidirectional": True}
    assert models["lstm-bi"]["shapes"] == ["many-to-one"]
    assert "lstm" in tasks["charlm"]["fits"] and "lstm-bi" not in tasks["charlm"]["fits"]
    assert tasks["hihello"]["plugin"].startswith("rnn-zoo ")


def test_plugins_lists_hooks_and_versions(runner):
    data = json.loads(zoo_cli(runner, "plugins", "--json").output)
    lstm = next(p for p in data if p["name"] == "zoo_plugins.lstm")
    assert lstm["distribution"] == "rnn-zoo" and lstm["hooks"] == ["register_models"] and lstm["builtin"]


def test_list_and_help_do_not_import_torch():
    code = ("import sys; from zoo.front.cli import cli\n"
            "for args in (['--help'], ['list'], ['plugins'], ['train', '--help']):\n"
            "    cli.main(args, prog_name='zoo', standalone_mode=False)\n"
            "assert 'torch' not in sys.modules, 'torch was imported'\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_unknown_command_is_one_line(runner):
    assert "No such command 'trian'" in one_line_error(zoo_cli(runner, "trian"))


ZOO = [sys.executable, "-m", "zoo"]


# -- output a person reads ------------------------------------------------------------------------------
def test_a_default_run_on_a_terminal_prints_few_lines(tmp_path):
    """One bar drawn in place on a terminal; the metric lines and the export line stay."""
    leader, follower = pty.openpty()
    process = subprocess.Popen([*ZOO, "train", "rnn", "hihello"], cwd=tmp_path, stdin=subprocess.DEVNULL,
                               stdout=follower, stderr=follower)
    os.close(follower)
    shown = b""
    while True:
        ready, _, _ = select.select([leader], [], [], 300)
        if not ready:
            break
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the terminal closed with the process
            break
        if not chunk:
            break
        shown += chunk
    os.close(leader)
    assert process.wait(timeout=300) == 0
    text = shown.decode()
    assert "saved checkpoints/rnn-hihello/model.safetensors" in text
    assert text.count("\n") <= 25, text
