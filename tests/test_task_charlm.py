"""charlm: the course's sentence learned whole, a text file read as windows or as streams (truncated
BPTT), sampling, the defaults fitted to a user's text, and exports whose sizes would drive unbounded work.
"""

import json

import pytest
import torch

import zoo
from conftest import one_line_error, rewrite, zoo_cli
from zoo.loop.plan import plan
from zoo_plugins.charlm import SENTENCE, generate, pick


def quiet(line):
    pass


@pytest.mark.parametrize("model", ["rnn", "lstm", "gru"])
def test_charlm_defaults_learn_the_whole_sentence(model):
    net = zoo.train(model, "charlm", out=False, log=quiet)
    assert net.zoo.metrics["accuracy"] == 1.0  # the next character after every window of 10
    assert net.zoo.metrics["reproduced"] == 1.0
    text = "".join(zoo.get_task("charlm").predict(net, prompt=SENTENCE[:10], length=len(SENTENCE) - 10))
    assert text == SENTENCE


def test_charlm_trains_on_a_megabyte_file_from_index_tensors(tmp_path):
    words = "the quick brown fox jumps over the lazy dog while zoo trains éléphants".split()
    g = torch.Generator().manual_seed(0)
    text = " ".join(words[i] for i in torch.randint(len(words), (200_000,), generator=g).tolist())[:1_000_000]
    path = tmp_path / "big.txt"
    path.write_text(text, encoding="utf-8")
    assert path.stat().st_size >= 1_000_000
    task = zoo.get_task("charlm")
    config = task.config(text=str(path), window=10, stride=1, val_fraction=0.1)
    data = task.data(config, None)
    # the windows are not materialized: one id per character, one start per window
    assert data.train.inputs.numel() == len(text) and data.train.targets is data.train.inputs
    assert len(data.train) + len(data.val) == pytest.approx(len(text) - 10, abs=20)
    assert set(data.meta["vocab"]) == set(text)
    net = zoo.train("gru", "charlm", {"text": path, "stride": 500, "epochs": 1, "hidden_size": 16,
                                      "val_fraction": 0.1}, out=False, log=quiet)
    assert net.zoo.metrics["split"] == "val"
    assert 0 <= net.zoo.metrics["accuracy"] <= 1


def test_charlm_vocabulary_and_window_travel_in_the_export(tmp_path):
    path = tmp_path / "lm.safetensors"
    zoo.train("lstm", "charlm", {"epochs": 1, "text": ""}, out=path, log=quiet)
    card = zoo.load(path).zoo
    assert card.meta == {"vocab": sorted(set(SENTENCE)), "window": 10, "bptt": 0}


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


def test_predict_with_unknown_characters_is_one_line(runner, tmp_path):
    out = tmp_path / "hi.safetensors"
    zoo_cli(runner, "train", "rnn", "hihello", "--out", out, "-e", "1", "-q")
    assert "characters the model never saw: 'xz'" in one_line_error(zoo_cli(runner, "predict", out, "hixz"))


WORDS = "the quick brown fox jumps over the lazy dog while zoo trains recurrent networks".split()


def write_text(path, words=2_000, seed=0):
    g = torch.Generator().manual_seed(seed)
    path.write_text(" ".join(WORDS[i] for i in torch.randint(len(WORDS), (words,), generator=g).tolist()))
    return path


def test_charlm_streams_train_export_and_stream_predictions(runner, tmp_path):
    text = write_text(tmp_path / "words.txt", 600)
    out = tmp_path / "lm.safetensors"
    result = zoo_cli(runner, "train", "gru", "charlm", "--text", text, "--bptt", "20", "--hidden-size", "32",
                     "-e", "2", "--out", out)
    assert result.exit_code == 0, result.output
    assert "bptt=20" not in result.output and "defaults for this data:" in result.output  # what the user set is theirs
    net = zoo.load(out)
    assert net.zoo.meta["bptt"] == 20 and net.zoo.task_config.bptt == 20
    assert net.zoo.train_config.patience == 3 and net.zoo.metrics["split"] == "val"
    assert 0 < net.zoo.metrics["nats_per_char"] < 4.0
    pieces = zoo.get_task("charlm").predict(net, prompt="the ", length=30, temperature=0.8, top_k=5)
    assert next(pieces) == "the "  # the prompt comes first, then one character at a time
    assert [len(p) for p in pieces] == [1] * 30
    result = zoo_cli(runner, "predict", out, "--prompt", "the lazy", "-n", "40", "--temperature", "0.7")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("the lazy") and len(result.stdout) == len("the lazy") + 40 + 1
    assert "--text PATH" in one_line_error(zoo_cli(runner, "eval", out))  # the export's file is not opened
    result = zoo_cli(runner, "eval", out, "--text", text)
    assert result.exit_code == 0 and "nats_per_char" in result.output, result.output


def test_greedy_streaming_matches_windows_regeneration_in_what_it_reads():
    torch.manual_seed(0)
    net = zoo.get_model("gru").build(zoo.RecurrentConfig(hidden_size=8),
                                     zoo.Problem(zoo.MANY_TO_MANY, output_size=5, vocab_size=5)).eval()
    prompt = [1, 2, 3, 4]
    streamed = list(generate(net, prompt, 6, window=100, streams=True))
    rerun = list(generate(net, prompt, 6, window=100))  # a window longer than the text: the whole history
    assert streamed == rerun


def test_reproduced_stops_generating_at_the_first_mistake(tmp_path):
    """Greedy generation from the held-out start is compared as it comes: an untrained network's
    first wrong character ends it (it was 500 steps an evaluation, most of an epoch's end)."""
    from zoo_plugins.charlm import CharLMConfig, evaluate, make_data

    text = tmp_path / "t.txt"
    text.write_text("abcdefghij" * 400)
    data = make_data(CharLMConfig(text=str(text), bptt=20, val_fraction=0.25), None)
    torch.manual_seed(0)
    net = zoo.get_model("lstm").build(zoo.RecurrentConfig(hidden_size=8),
                                      zoo.Problem(zoo.MANY_TO_MANY, output_size=10, vocab_size=10)).eval()
    calls = []
    net.register_forward_hook(lambda module, args, out: calls.append(args[0].shape))
    metrics = evaluate(net, data, "val")
    matched = round(metrics["reproduced"] * 500)
    assert matched < 500
    reading = 1 + len(data.val.order(16))  # the lanes' lead-in, then their chunks
    assert len(calls) == reading + matched + 1  # the prompt and its next character, one step per match after it


def test_top_k_one_is_greedy_and_temperature_zero_ignores_the_seed():
    logits = torch.tensor([0.1, 2.0, 1.9, -1.0])
    g = torch.Generator().manual_seed(0)
    assert {pick(logits, 5.0, 1, g) for _ in range(20)} == {1}
    assert {pick(logits, 1.0, 2, g) for _ in range(50)} == {1, 2}
    assert pick(logits, 0.0, 0, g) == 1


def test_defaults_fit_a_users_text_and_options_override_them(tmp_path):
    text = write_text(tmp_path / "t.txt", 4_000)  # about 22,000 characters
    p = plan("lstm", "charlm", {"text": text})
    assert (p.task_config.bptt, p.model_config.hidden_size, p.task_config.val_fraction) == (100, 128, 0.1)
    assert (p.train_config.patience, p.train_config.grad_clip, p.train_config.epochs) == (3, 1.0, 100)
    assert "characters" in p.note and "bptt=100" in p.note
    p = plan("lstm", "charlm", {"text": text, "hidden_size": 20, "patience": 0, "bptt": 0})
    assert (p.model_config.hidden_size, p.train_config.patience, p.task_config.bptt) == (20, 0, 0)
    assert "hidden_size" not in p.note and "patience" not in p.note
    p = plan("lstm", "charlm", {"text": text, "stride": 3})  # windows asked for: no streams
    assert p.task_config.bptt == 0
    big = write_text(tmp_path / "big.txt", 80_000)  # about 440,000 characters: two layers, dropouts
    p = plan("gru", "charlm", {"text": big})
    assert (p.model_config.hidden_size, p.model_config.num_layers, p.model_config.dropout) == (512, 2, 0.4)
    assert p.model_config.weight_drop == 0.25 and p.train_config.precision == "auto"
    assert "num_layers=2 dropout=0.4 weight_drop=0.25" in p.note
    assert (p.train_config.batch_size, p.train_config.lr) == (16, 0.004) and "batch_size=16 lr=0.004" in p.note
    small = plan("lstm", "charlm", {"text": text}).train_config
    assert (small.batch_size, small.lr) == (32, 0.002)
    middle = plan("lstm", "charlm", {"text": write_text(tmp_path / "middle.txt", 30_000)})  # about 165,000
    assert (middle.model_config.hidden_size, middle.train_config.batch_size, middle.train_config.lr) == (256, 32, 0.002)
    course = plan("lstm", "charlm")  # the course's sentence keeps the course's settings
    assert (course.note, course.task_config.bptt, course.model_config.hidden_size) == ("", 0, 64)
    assert course.train_config.epochs == 100 and course.train_config.patience == 0


@pytest.fixture(scope="module")
def course_lm(tmp_path_factory):
    path = tmp_path_factory.mktemp("lm") / "lm.safetensors"
    with pytest.MonkeyPatch.context() as mp:  # the run folder goes there too, not into the checkout
        mp.chdir(path.parent)
        zoo.train("gru", "charlm", {"epochs": 2, "hidden_size": 8}, out=path, log=quiet)
    return path


@pytest.mark.parametrize("changes,message", [
    ({"window": 10**9}, "window is 1000000000; expected an integer in [0, 2000]"),
    ({"bptt": 10**9}, "bptt is 1000000000"),
    ({"vocab": ["a", "b"]}, "vocabulary has 2 characters, its network"),
    ({"vocab": ["ab"]}, "vocabulary is damaged"),
    ({"cache": [10**9, 0.2, 1.0]}, "the export's charlm cache is [1000000000, 0.2, 1.0]"),
    ({"cache": [100, float("nan"), 1.0]}, "the export's charlm cache is"),
    ({"task_config__window": 10**9}, "window must be in [1, 2000]"),
])
def test_damaged_charlm_sizes_are_one_line(course_lm, tmp_path, runner, changes, message):
    crafted = rewrite(course_lm, tmp_path / "crafted.safetensors", **changes)
    assert message in one_line_error(zoo_cli(runner, "predict", crafted, "--prompt", "if you"))
    one_line_error(zoo_cli(runner, "eval", crafted))  # eval may stop earlier, at the text


@pytest.mark.parametrize("args,message", [
    (["--bptt", "1"], "bptt must be at least 2 characters"),
    (["--bptt", "-5"], "bptt must be in [0, 10000]"),
    (["--bptt", "500"], "shorter than one sequence: --bptt 500 needs at least 501"),
    (["--bptt", "100", "--val-fraction", "0.7"], "too short to hold out 70% with --bptt 100"),
    (["--window", "400"], "shorter than one sequence: window 400 needs at least 401"),
])
def test_bad_long_context_settings_are_one_line(runner, tmp_path, args, message):
    text = tmp_path / "short.txt"
    text.write_text("a text of a little under three hundred characters. " * 5)
    assert message in one_line_error(zoo_cli(runner, "train", "lstm", "charlm", "--text", text, "-e", "1", *args))
