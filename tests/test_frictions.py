"""What a new user met on day one (issue 23, section 5), each checked as that user would meet it."""

import json
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import zoo
from conftest import ROOT, one_line_error, tiny_mnist, write_yahoo_prices, zoo_cli
from zoo.loop.training import LINE_WIDTH, metric_line
from zoo.store.runs import Run


def readme_install_command() -> list[str]:
    """The quick start's `pip install -e ...` line, as words."""
    readme = (ROOT / "README.md").read_text()
    quick = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    line = next(line for line in quick.splitlines() if "pip install -e" in line)
    return shlex.split(line.lstrip("$ ").split("#", 1)[0])


def test_the_readme_says_one_install_command_and_the_cpu_wheels_first():
    readme = (ROOT / "README.md").read_text()
    command = shlex.join(readme_install_command()).replace("'", '"')
    install = readme.split("## Install and test", 1)[1].split("\n## ", 1)[0]
    assert command in readme.split("## Install and test", 1)[1] and command.replace("pip ", "", 1) in install
    for section in (readme.split("## Quick start", 1)[1].split("\n## ", 1)[0], install):
        assert section.index("whl/cpu") < section.index("pip install -e")


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_a_clone_folder_named_zoo_does_not_shadow_the_package(tmp_path):
    """`git clone URL` makes a folder named zoo; a script beside it must import the installed zoo."""
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    folder = tmp_path / "work"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(folder / "zoo")], check=True, timeout=300)
    venv = tmp_path / "venv"  # the base interpreter's packages (torch) and pip, and none of this environment's
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", "--without-pip", "--system-site-packages", str(venv)], check=True, timeout=300)
    python = str(venv / "bin" / "python")
    words = readme_install_command()
    assert words[:3] == ["pip", "install", "-e"]
    install = [python, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", *words[2:]]
    done = subprocess.run(install, cwd=folder / "zoo", capture_output=True, text=True, timeout=600)  # as the README
    if done.returncode != 0 and "setuptools" in done.stderr and "No module named" in done.stderr:
        pytest.skip("the base interpreter has no setuptools to build with offline")
    assert done.returncode == 0, done.stderr
    (folder / "script.py").write_text("import zoo\nprint(zoo.__file__)\nprint(len(zoo.list_models()))\n")
    ran = subprocess.run([python, "script.py"], cwd=folder, capture_output=True, text=True, timeout=300,
                         env={"PATH": "/usr/bin:/bin", "ZOO_LOAD_PLUGINS": ""})
    assert ran.returncode == 0, ran.stderr
    where, count = ran.stdout.split()
    # strict editable mode links the clone's files into the environment: the clone's own zoo/, not the folder
    assert Path(where).resolve() == (folder / "zoo" / "zoo" / "__init__.py").resolve()
    assert int(count) == len(zoo.list_models())  # the built-ins, as here


@pytest.mark.parametrize("name,says", [("lstm", "model 'lstm' exists already"), ("charlm", "task 'charlm' exists"),
                                       ("gru", "model 'gru' exists already")])
def test_new_plugin_named_after_a_built_in_is_refused(runner, tmp_path, name, says):
    line = one_line_error(zoo_cli(runner, "new-plugin", name, "--dir", tmp_path))
    assert says in line and "choose another name" in line
    assert not list(tmp_path.iterdir())


def test_a_cell_plugin_may_share_a_tasks_name(runner, tmp_path):
    assert zoo_cli(runner, "new-plugin", "hihello", "--cell", "--dir", tmp_path).exit_code == 0


def test_an_explicit_root_that_does_not_exist_is_not_created(runner, tmp_path):
    out = tmp_path / "m.safetensors"
    root = tiny_mnist(tmp_path / "data")
    assert zoo_cli(runner, "train", "rnn", "mnist", "--root", root, "--no-download", "--val-size", "10", "-e", "1",
                   "--hidden-size", "4", "-q", "--out", out).exit_code == 0
    typo = tmp_path / "typo"
    line = one_line_error(zoo_cli(runner, "eval", out, "--root", typo))
    assert f"--root {typo} is not a folder" in line and f"mkdir -p {typo}" in line
    assert not typo.exists()
    assert zoo_cli(runner, "eval", out, "--root", root).exit_code == 0


def test_a_run_dir_in_use_says_so(tmp_path):
    run = tmp_path / "busy"
    command = [sys.executable, "-m", "zoo", "train", "rnn", "hihello", "-e", "100000000", "-q", "--run-dir", str(run)]
    first = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        from conftest import wait_for

        wait_for(lambda: (run / "state.safetensors").is_file() and Run(run).in_use(), first, "the first epoch")
        second = subprocess.run(command, capture_output=True, text=True, timeout=300)
        assert second.returncode != 0
        assert f"{run} is in use by another zoo process (pid {first.pid})" in second.stderr, second.stderr
        assert "--resume" not in second.stderr
    finally:
        first.kill()
        first.wait()


def test_zoo_runs_shows_the_metric_the_export_reports(runner, tmp_path):
    prices = write_yahoo_prices(tmp_path / "p.csv", days=80)
    assert zoo_cli(runner, "train", "lstm", "stock", "--data", prices, "-e", "5", "-q").exit_code == 0
    card = json.loads(zoo_cli(runner, "info", "checkpoints/lstm-stock", "--json").output)
    row = json.loads(zoo_cli(runner, "runs", "--json").output)[0]
    assert row["export_metric"] == f"{card['metrics']['split']} rmse" == "test rmse"
    assert row["export_value"] == card["metrics"]["rmse"]
    listed = zoo_cli(runner, "runs").output
    assert f"test rmse {card['metrics']['rmse']:.4f} (export)" in listed


def test_metric_lines_fit_100_columns(runner, tmp_path):
    prices = write_yahoo_prices(tmp_path / "p.csv", days=80)
    for args in (["lstm", "stock", "--data", prices, "-e", "3"], ["lstm", "charlm", "-e", "3"],
                 ["seq2seq", "translate", "-e", "1"]):
        result = zoo_cli(runner, "train", *args, "--log-every", "1")
        assert result.exit_code == 0, result.output
        epochs = [line for line in result.output.splitlines() if line.startswith("epoch ")]
        assert epochs and all(len(line) <= LINE_WIDTH for line in epochs), epochs


def test_the_headline_metric_comes_first_on_a_metric_line():
    line = metric_line("epoch 1/9  loss 1.0000", "val", {"accuracy": 0.5, "perplexity": 3.0, "nats_per_char": 1.1},
                       "nats_per_char", "0.10s  100 samples/s")
    assert line.startswith("epoch 1/9  loss 1.0000  val nats_per_char 1.1000  accuracy 0.5000")
    narrow = metric_line("epoch 1/9  loss 1.0000", "val", {"a" * 30: 1.0, "b" * 30: 2.0, "c" * 30: 3.0}, "c" * 30,
                         "0.10s  100 samples/s", width=80)
    assert len(narrow) <= 80 and f"val {'c' * 30} 3.0000" in narrow


def test_one_day_is_not_1_days(runner, tmp_path):
    one = tmp_path / "one.csv"
    one.write_text("Date,Open,High,Low,Close,Adj Close,Volume\n2020-01-01,1,2,0.5,1.5,1.5,100\n")
    line = one_line_error(zoo_cli(runner, "train", "lstm", "stock", "--data", one))
    assert "has 1 day;" in line and "1 days" not in line


def test_unseen_characters_are_shown_in_input_order(runner, tmp_path):
    out = tmp_path / "hi.safetensors"
    assert zoo_cli(runner, "train", "rnn", "hihello", "-e", "2", "-q", "--out", out).exit_code == 0
    assert "characters the model never saw: '42'" in one_line_error(zoo_cli(runner, "predict", out, "42"))
    assert "never saw: 'zxq'" in one_line_error(zoo_cli(runner, "predict", out, "hizxzq"))


@pytest.mark.parametrize("typed,meant", [("LSTM", "lstm"), ("Gru", "gru"), ("CharLM", "charlm")])
def test_a_name_in_capitals_suggests_the_lowercase_one(runner, typed, meant):
    args = ["train", typed, "hihello"] if meant != "charlm" else ["train", "lstm", typed]
    assert f"did you mean {meant!r}" in one_line_error(zoo_cli(runner, *args))
