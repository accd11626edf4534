"""A third-party plugin installed as a distribution: found through the `zoo` entry-point group."""

import os
import re
import subprocess
import sys

import zoo
from conftest import EXAMPLE, ROOT, one_line_error, zoo_cli
from zoo.contract.registry import LOAD_ENV


def test_example_plugin_trains_evaluates_and_loads(fake_distribution, adding_source, monkeypatch, runner, tmp_path):
    fake_distribution(adding_source)
    monkeypatch.setenv(LOAD_ENV, "adding")
    listed = zoo_cli(runner, "list", "add*")
    assert "adding" in listed.output and "zoo-adding 0.1.0" in listed.output
    out = tmp_path / "adding.safetensors"
    result = zoo_cli(runner, "train", "gru", "adding", "--samples", "200", "--length", "8", "-e", "2", "--out", out)
    assert result.exit_code == 0, result.output
    assert "final (test split): mse" in result.output
    result = zoo_cli(runner, "eval", out)
    assert result.exit_code == 0 and "mse" in result.output, result.output
    result = zoo_cli(runner, "predict", out, "0.5* 0.1 0.25* 0.3")
    assert result.exit_code == 0 and re.fullmatch(r"-?\d+\.\d{3}\n", result.output), result.output
    result = zoo_cli(runner, "predict", out, "-0.5* 0.1 -0.25* 0.3")  # a negative number is not an option
    assert result.exit_code == 0 and re.fullmatch(r"-?\d+\.\d{3}\n", result.output), result.output
    assert "No such option" in zoo_cli(runner, "predict", out, "--nonsense", "1").output
    assert zoo.load(out).zoo.task_config.samples == 200
    # the same file, with the plugin switched off: one clear line
    monkeypatch.setenv(LOAD_ENV, "")
    from zoo.contract.registry import reset

    reset()
    assert "which no installed plugin provides" in one_line_error(zoo_cli(runner, "eval", out))


def test_zoo_list_in_a_new_process_finds_the_plugin(fake_distribution, adding_source):
    site = fake_distribution(adding_source)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    env.pop(LOAD_ENV, None)
    command = [sys.executable, "-m", "zoo", "list", "adding"]
    shown = subprocess.run(command, capture_output=True, text=True, env=env)
    assert shown.returncode == 0, shown.stderr
    assert "zoo-adding 0.1.0" in shown.stdout
    hidden = subprocess.run(command, capture_output=True, text=True, env={**env, LOAD_ENV: ""})
    assert hidden.returncode == 1 and "no model or task matches 'adding'" in hidden.stderr


def test_plugin_docs_show_the_example_plugins_verbatim():
    readme = (ROOT / "docs" / "plugins.md").read_text()
    for example, name in ((EXAMPLE, "zoo_adding.py"), (EXAMPLE, "pyproject.toml"),
                          (EXAMPLE.parent / "zoo-mgu", "zoo_mgu.py"), (EXAMPLE.parent / "zoo-mgu", "pyproject.toml")):
        assert (example / name).read_text().strip() in readme, f"docs/plugins.md's copy of {example.name}/{name} is out of date"
