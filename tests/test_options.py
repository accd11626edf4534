"""Options and configs: `-o KEY=VALUE` and the flags reach the typed configs, `--help` shows what a
command would train with, typos get suggestions, and settings that cannot work (input, seeds,
devices, the memory estimate and `--force`) are one line that changes nothing.
"""

import json

import pytest
import torch

from conftest import one_line_error, zoo_cli


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
                                    "patience": 0, "average": 0.0}
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


def test_mistyped_options_suggest_the_right_one_as_typed(runner):
    assert "did you mean '--hidden-size'?" in one_line_error(zoo_cli(runner, "train", "rnn", "hihello",
                                                                     "--hiden-size", "4"))
    assert "did you mean '--hidden_size'?" in one_line_error(zoo_cli(runner, "train", "rnn", "hihello",
                                                                     "--hiden_size", "4"))
    assert "Did you mean '--epochs'?" in one_line_error(zoo_cli(runner, "resume", "somewhere", "--epoch", "3"))
    line = one_line_error(zoo_cli(runner, "resume", "somewhere", "--fast"))
    assert "zoo resume takes --epochs, --device, --threads, --quiet" in line
    assert "--overwrite replaces the run in --run-dir" in one_line_error(zoo_cli(runner, "train", "rnn", "hihello",
                                                                                "--overwrite"))


# -- settings that cannot work -----------------------------------------------------------------------------

OPTIONS = [
    (["--seed", str(2**64)], "seed must be in torch's range"),
    (["--seed", str(-2**63 - 1)], "seed must be in torch's range"),
    (["--device", "meta"], "device meta holds shapes, not numbers"),
    (["--device", "xpu"], "XPU is not available here"),
    (["--device", "hpu"], "cannot train on device 'hpu'"),
    (["--device", "nonsense"], "unknown device 'nonsense'"),
    (["--device", "cpu", "-o", "hidden_size=100000"], "needs at least"),
]


@pytest.mark.parametrize("options,message", OPTIONS, ids=[" ".join(o) for o, _ in OPTIONS])
def test_options_that_cannot_work_are_one_line(runner, tmp_path, options, message):
    """Refused before any file is written (the hidden_size case is safe in-process: it is refused from
    the estimate; the memory-bomb subprocess in test_hostile.py also runs it under an address-space limit)."""
    assert message in one_line_error(zoo_cli(runner, "train", "rnn", "hihello", "-e", "1", *options))
    assert list(tmp_path.iterdir()) == []


def test_cuda_index_beyond_the_devices(runner, tmp_path):
    line = one_line_error(zoo_cli(runner, "train", "rnn", "hihello", "--device", "cuda:99"))
    assert ("only" if torch.cuda.is_available() else "CUDA is not available") in line
    assert list(tmp_path.iterdir()) == []


def test_force_trains_past_the_estimate(runner, tmp_path, monkeypatch):
    import zoo.nn.budget

    monkeypatch.setattr(zoo.nn.budget, "available_bytes", lambda device: 1000)
    line = one_line_error(zoo_cli(runner, "train", "rnn", "hihello", "-e", "1", "--out", tmp_path / "w.safetensors"))
    assert "needs at least" in line and "available on cpu; --force tries anyway" in line
    result = zoo_cli(runner, "train", "rnn", "hihello", "-e", "1", "-q", "--force", "--out", tmp_path / "w.safetensors")
    assert result.exit_code == 0, result.output


def test_the_estimate_is_a_floor_of_what_training_takes():
    """Weights, gradients and Adam's two moments: 16 bytes a parameter, counted on a model no bigger than the
    one training builds."""
    import re

    import zoo.nn.budget
    from zoo.loop.plan import plan

    p = plan("lstm", "hihello", {"hidden_size": 1000})
    zoo.nn.budget.check_training_memory(p, torch.device("cpu"))  # fits
    with pytest.raises(zoo.ZooError) as caught, pytest.MonkeyPatch.context() as m:
        m.setattr(zoo.nn.budget, "available_bytes", lambda device: 60 * 2**20)
        zoo.nn.budget.check_training_memory(p, torch.device("cpu"))
    message = str(caught.value)
    counted = int(re.search(r"\(([\d,]+) parameters", message).group(1).replace(",", ""))
    real = p.model.build(p.model_config, zoo.get_task("hihello").data(p.task_config, None).problem)
    assert 4_000_000 < counted <= sum(t.numel() for t in real.parameters())
    assert f"needs at least {counted * 16 / 2**20:.0f} MiB" in message and "60 MiB is available on cpu" in message
