"""The command line, as a user drives it."""

import json
import subprocess
import sys

import pytest

from conftest import one_line_error, zoo_cli
from zoo_plugins.charlm import SENTENCE


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


def test_train_eval_predict_hihello(runner, tmp_path):
    result = zoo_cli(runner, "train", "rnn", "hihello")
    assert result.exit_code == 0, result.output
    assert "epoch 100/100" in result.output
    path = tmp_path / "checkpoints" / "rnn-hihello" / "model.safetensors"
    assert path.is_file()
    result = zoo_cli(runner, "eval", path.parent)  # a run folder stands for its export
    assert result.exit_code == 0, result.output
    assert "prediction   ihello" in result.output
    result = zoo_cli(runner, "predict", path, "hihell")
    assert (result.exit_code, result.output) == (0, "ihello\n")


def test_train_charlm_and_generate(runner, tmp_path):
    out = tmp_path / "lm.safetensors"
    result = zoo_cli(runner, "train", "gru", "charlm", "--out", out, "--hidden-size", "48", "-o", "window=10", "-q")
    assert result.exit_code == 0, result.output
    assert len(result.output.splitlines()) == 1  # --quiet keeps one line: where the export went
    assert result.output.startswith(f"saved {out} (") and "; run in checkpoints/gru-charlm" in result.output
    result = zoo_cli(runner, "predict", out, "--prompt", "if you wan", "-n", "50")
    assert result.exit_code == 0, result.output
    assert result.output == SENTENCE[:60] + "\n"
    metrics = json.loads(zoo_cli(runner, "eval", out, "--json").output)
    assert metrics["accuracy"] == 1.0 and metrics["split"] == "train"
    info = json.loads(zoo_cli(runner, "info", out, "--json").output)
    assert info["model_config"]["hidden_size"] == 48 and info["task"] == "charlm"


def test_options_reach_the_configs(runner, tmp_path):
    out = tmp_path / "w.safetensors"
    result = zoo_cli(runner, "train", "lstm", "hihello", "--out", out, "-e", "3", "--lr", "0.05", "-b", "2",
                     "--seed", "7", "--schedule", "cosine", "--num-layers=2", "--no-bidirectional",
                     "-o", "train.grad_clip=1.5",
                     "--word", "hello")
    assert result.exit_code == 0, result.output
    info = json.loads(zoo_cli(runner, "info", out, "--json").output)
    assert info["train_config"] == {"epochs": 3, "lr": 0.05, "batch_size": 2, "seed": 7, "weight_decay": 0.0,
                                    "grad_clip": 1.5, "schedule": "cosine", "precision": "fp32",
                                    "patience": 0}
    assert info["model_config"]["num_layers"] == 2 and info["task_config"] == {"word": "hello"}
    assert info["meta"]["vocab"] == ["h", "e", "l", "o"]


def test_train_help_lists_the_pairs_hyperparameters(runner):
    result = zoo_cli(runner, "train", "lstm", "charlm", "--help")
    assert result.exit_code == 0, result.output
    for option in ("--hidden-size", "--bidirectional", "--window", "--text", "--grad-clip", "[now: 64]"):
        assert option in result.output


def help_value(output, option):
    """The [now: ...] value --help shows for an option (its description may wrap)."""
    text = " ".join(output.split("Hyperparameters of model", 1)[1].split())
    return text.split(f"{option} ", 1)[1].split("[now: ", 1)[1].split("]", 1)[0]


def test_train_help_shows_the_values_the_command_line_would_train_with(runner, tmp_path, long_text):
    given = zoo_cli(runner, "train", "lstm", "charlm", "-e", "7", "--hidden-size", "5", "-o", "lr=0.3", "--threads",
                    "1", "-q", "--help")
    assert given.exit_code == 0, given.output
    assert [help_value(given.output, o) for o in ("--hidden-size", "--epochs", "--lr")] == ["5", "7", "0.3"]
    fitted = zoo_cli(runner, "train", "lstm", "charlm", "--text", long_text, "--help").output
    assert help_value(fitted, "--hidden-size") == "128" and help_value(fitted, "--bptt") == "100"
    assert "Defaults for this data: hidden_size=128" in " ".join(fitted.split())
    level = zoo_cli(runner, "train", "lstm", "stock", "--target-mode", "level", "--help").output
    assert help_value(level, "--weight-decay") == "0.0"  # stock's weight decay is for returns only
    assert help_value(zoo_cli(runner, "train", "lstm", "stock", "--help").output, "--weight-decay") == "0.1"
    typo = zoo_cli(runner, "train", "lstm", "charlm", "--hiden-size", "5", "--help")  # still the pair's defaults
    assert typo.exit_code == 0 and help_value(typo.output, "--hidden-size") == "64"


def test_predict_help_shows_the_task_options(runner, tmp_path):
    out = tmp_path / "lm.safetensors"
    zoo_cli(runner, "train", "rnn", "charlm", "--out", out, "-e", "1", "-q")
    result = zoo_cli(runner, "predict", out, "--help")
    assert result.exit_code == 0 and "--prompt" in result.output and "--temperature" in result.output


def test_the_same_seed_gives_the_same_weights(runner, tmp_path):
    for name in ("a", "b"):
        assert zoo_cli(runner, "train", "lstm", "charlm", "-e", "3", "--out", tmp_path / f"{name}.safetensors",
                       "-q").exit_code == 0
    from safetensors import safe_open

    a, b = (safe_open(tmp_path / f"{name}.safetensors", "pt") for name in "ab")
    assert a.metadata() == b.metadata()
    assert a.keys() == b.keys()
    for key in a.keys():  # bit for bit (the header's key order is safetensors' own business)
        assert a.get_tensor(key).numpy().tobytes() == b.get_tensor(key).numpy().tobytes(), key


BAD_TRAINING = [
    (["lsmt", "hihello"], "unknown model 'lsmt'; did you mean 'lstm'"),
    (["lstm", "hihelo"], "unknown task 'hihelo'; did you mean 'hihello'"),
    (["lstm-bi", "charlm"], "models that fit charlm: gru, gru-stacked, lstm"),
    (["lstm", "charlm", "--bidirectional"], "does only many-to-one"),
    (["lstm", "charlm", "-o", "hiden_size=3"], "did you mean 'hidden_size'"),
    (["lstm", "charlm", "--hidden-size", "many"], "hidden_size must be an integer, got 'many'"),
    (["lstm", "charlm", "--dropout", "1.5"], "dropout must be in [0, 1)"),
    (["lstm", "charlm", "--epochs", "0"], "epochs must be a positive integer"),
    (["lstm", "charlm", "--lr", "0"], "lr (learning rate) must be positive"),
    (["lstm", "charlm", "--lr", "-0.1"], "lr (learning rate) must be positive"),
    (["lstm", "charlm", "--epochs", "two"], "'two' is not a valid integer"),
    (["lstm", "charlm", "-o", "window"], "expected key=value"),
    (["lstm", "charlm", "stray"], "unexpected argument 'stray'"),
    (["lstm", "charlm", "--text", "missing.txt"], "missing.txt not found"),
    (["lstm", "charlm", "--text", "latin1.txt"], "is not UTF-8 text (byte 0xe9 at offset 3)"),
    (["lstm", "charlm", "--text", "short.txt"],
     "has 5 characters, shorter than one sequence: window 10 needs at least 11"),
    (["lstm", "charlm", "--out", "checkpoints"], "is a directory"),
    (["lstm", "charlm", "--resume"], "state.safetensors is not a safetensors file"),
]


@pytest.mark.parametrize("args,message", BAD_TRAINING, ids=[" ".join(a) for a, _ in BAD_TRAINING])
def test_bad_training_input_is_one_line_and_changes_nothing(runner, tmp_path, args, message):
    (tmp_path / "latin1.txt").write_bytes("caf\xe9 au lait, s'il vous pla\xeet".encode("latin-1"))
    (tmp_path / "short.txt").write_text("hello")
    run = tmp_path / "checkpoints" / f"{args[0]}-{args[1]}"
    run.mkdir(parents=True)
    earlier = {name: f"an earlier run's {name}".encode() for name in ("model.safetensors", "config.json",
                                                                      "metrics.jsonl", "state.safetensors")}
    for name, content in earlier.items():
        (run / name).write_bytes(content)
    line = one_line_error(zoo_cli(runner, "train", *args))
    assert message in line
    assert {p.name: p.read_bytes() for p in run.iterdir()} == earlier


def test_unknown_command_is_one_line(runner):
    assert "No such command 'trian'" in one_line_error(zoo_cli(runner, "trian"))


def test_predict_with_unknown_characters_is_one_line(runner, tmp_path):
    out = tmp_path / "hi.safetensors"
    zoo_cli(runner, "train", "rnn", "hihello", "--out", out, "-e", "1", "-q")
    assert "characters the model never saw: 'xz'" in one_line_error(zoo_cli(runner, "predict", out, "hixz"))
