"""charlm over contiguous streams (truncated BPTT), defaults fitted to a user's file, translate's
vocabulary cap and character fallback, and exports whose sizes would drive unbounded work."""

import json

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

import zoo
from conftest import one_line_error, zoo_cli
from zoo.loop.data import Carry, Streams
from zoo.loop.plan import plan
from zoo_plugins import translate as translate_plugin
from zoo_plugins.charlm import generate, pick

WORDS = "the quick brown fox jumps over the lazy dog while zoo trains recurrent networks".split()


def quiet(line):
    pass


def write_text(path, words=2_000, seed=0):
    g = torch.Generator().manual_seed(seed)
    path.write_text(" ".join(WORDS[i] for i in torch.randint(len(WORDS), (words,), generator=g).tolist()))
    return path


def rewrite(path, out, **meta_changes):
    """A copy of an export whose `meta` (or another metadata entry, as `entry__key`) is changed by hand."""
    metadata = safe_open(path, "pt").metadata()
    meta = json.loads(metadata["meta"])
    for key, value in meta_changes.items():
        if "__" in key:
            entry, name = key.split("__")
            changed = json.loads(metadata[entry])
            changed[name] = value
            metadata[entry] = json.dumps(changed)
        else:
            meta[key] = value
    metadata["meta"] = json.dumps(meta)
    save_file(load_file(path), out, metadata=metadata)
    return out


def test_streams_lay_out_lanes_of_consecutive_chunks():
    series = torch.arange(101)
    streams = Streams(series, 10)  # 10 chunks of 10, targets shifted by one
    batches = streams.order(3)  # 3 lanes of 3 chunks; chunk 9 is left over
    assert [b.tolist() for b in batches] == [[0, 3, 6], [1, 4, 7], [2, 5, 8]]
    (x, carry), y = streams.batch(batches[0])
    assert x[1].tolist() == list(range(30, 40)) and y[1].tolist() == list(range(31, 41))
    carry.state = "kept"
    (x2, carry2), _ = streams.batch(batches[1])
    assert carry2 is carry and carry.state == "kept" and x2[1, 0] == x[1, -1] + 1  # lane 1 goes on
    streams.batch(batches[0])  # not a continuation: a new epoch starts from zeros
    assert carry.state is None


def test_a_carried_state_gives_what_reading_the_lane_at_once_gives():
    torch.manual_seed(0)
    net = zoo.get_model("lstm-stacked").build(zoo.RecurrentConfig(hidden_size=12, num_layers=2),
                                             zoo.Problem(zoo.MANY_TO_MANY, output_size=7, vocab_size=7)).eval()
    series = torch.randint(7, (61,))
    streams = Streams(series, 5)
    with torch.no_grad():
        pieces = [net(*streams.batch(index)[0]) for index in streams.order(2)]
        whole = net(series[:60].view(2, 30))
    assert torch.allclose(torch.cat(pieces, 1), whole, atol=1e-5)


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
    course = plan("lstm", "charlm")  # the course's sentence keeps the course's settings
    assert (course.note, course.task_config.bptt, course.model_config.hidden_size) == ("", 0, 64)
    assert course.train_config.epochs == 100 and course.train_config.patience == 0


def test_translate_defaults_fit_a_corpus(tmp_path):
    path = tmp_path / "many.tsv"
    path.write_text("".join(f"number {i % 50} plus {i % 7}\tnombre {i % 50} más {i % 7}\n" for i in range(300)))
    p = plan("seq2seq", "translate", {"pairs": path})
    assert (p.model_config.hidden_size, p.model_config.attention, p.train_config.patience) == (128, "luong", 5)
    assert p.task_config.fallback == "chars" and p.task_config.max_vocab == 4 + 2 + 50  # 2 words, numbers 0-49
    assert "300 pairs" in p.note
    assert plan("seq2seq", "translate").note == ""  # the course's four pairs: the course's model
    assert plan("seq2seq", "translate", {"pairs": path, "attention": "none"}).model_config.attention == "none"


def test_max_vocab_keeps_the_frequent_words_and_fallback_spells_the_rest(tmp_path):
    path = tmp_path / "p.tsv"
    path.write_text("the cat\tle chat\nthe dog\tle chien\nthe zebra\tle zèbre\n")
    task = zoo.get_task("translate")
    config = task.config(pairs=str(path), test_fraction=0, val_fraction=0, max_vocab=5)
    data = task.data(config, None)
    assert data.meta["source_vocab"] == [*zoo.SPECIAL_TOKENS, "the"]
    assert data.train.src[:, 1].tolist() == [zoo.UNK] * 3
    config = task.config(pairs=str(path), test_fraction=0, val_fraction=0, max_vocab=5, fallback="chars")
    data = task.data(config, None)
    vocab = data.meta["target_vocab"]
    assert vocab[:5] == [*zoo.SPECIAL_TOKENS, "le"] and {"z", "##è", "##b"} <= set(vocab)
    assert zoo.UNK not in data.train.tgt_out.flatten().tolist()
    rows = [[vocab[i] for i in row if i not in (-100, zoo.EOS)] for row in data.train.tgt_out.tolist()]
    zebra = next(row for row in rows if "z" in row)  # the pairs are shuffled once
    assert zebra == ["le", "z", "##è", "##b", "##r", "##e"]
    assert translate_plugin.detokenize(zebra, "word") == "le zèbre"
    assert data.meta["longest_target"] == 6  # tokens after spelling out, which decoding must allow


def test_fallback_chars_trains_and_translates(tmp_path):
    path = tmp_path / "p.tsv"
    path.write_text("the cat\tle chat\nthe dog\tle chien\nthe zebra\tle zèbre\na dog\tun chien\n")
    net = zoo.train("seq2seq", "translate", {"pairs": path, "test_fraction": 0, "val_fraction": 0, "max_vocab": 6,
                                             "fallback": "chars", "hidden_size": 32, "epochs": 200,
                                             "attention": "luong"}, out=False, log=quiet)
    assert translate_plugin.translate(net, ["the zebra", "a dog"]) == ["le zèbre", "un chien"]


@pytest.fixture(scope="module")
def course_translator(tmp_path_factory):
    path = tmp_path_factory.mktemp("t") / "t.safetensors"
    with pytest.MonkeyPatch.context() as mp:  # module-scoped: runs before `isolated` moves into a tmp folder
        mp.chdir(path.parent)
        zoo.train("seq2seq", "translate", {"epochs": 3}, out=path, log=quiet)
    return path


def test_a_huge_decoding_length_in_an_export_is_capped(course_translator, tmp_path, runner, monkeypatch):
    crafted = rewrite(course_translator, tmp_path / "crafted.safetensors", longest_target=10**9)
    asked = []
    real = translate_plugin.decoding_cap
    monkeypatch.setattr(translate_plugin, "decoding_cap", lambda meta, n: asked.append(real(meta, n)) or asked[-1])
    for args in (["predict", crafted, "i feel hungry."], ["predict", crafted, "i feel hungry.", "--beam", "3"],
                 ["eval", crafted]):
        result = zoo_cli(runner, *args)
        assert result.exit_code == 0, result.output
    assert asked and max(asked) == translate_plugin.MAX_DECODE


@pytest.mark.parametrize("changes,message", [
    ({"longest_target": "lots"}, "longest_target is 'lots'"),
    ({"longest_target": -3}, "longest_target is -3"),
    ({"target_vocab": ["a", "b"]}, "target_vocab is damaged"),
    ({"target_vocab": [*zoo.SPECIAL_TOKENS, "x"]}, "do not match its network"),
    ({"level": "bytes"}, "level, fallback or lowercase setting is damaged"),
])
def test_damaged_translate_sizes_are_one_line(course_translator, tmp_path, runner, changes, message):
    crafted = rewrite(course_translator, tmp_path / "crafted.safetensors", **changes)
    assert message in one_line_error(zoo_cli(runner, "predict", crafted, "i feel hungry."))


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


def test_max_vocab_below_the_special_tokens_is_one_line(runner):
    line = one_line_error(zoo_cli(runner, "train", "seq2seq", "translate", "--max-vocab", "4"))
    assert "max_vocab must be 0 (no cap) or more than the 4 special tokens" in line


def test_a_carry_resets_when_the_batch_shape_changes():
    carry = Carry()
    carry.follow(torch.tensor([0, 5]))
    carry.state = torch.zeros(1)
    carry.follow(torch.tensor([1, 6]))
    assert carry.state is not None
    carry.follow(torch.tensor([2]))
    assert carry.state is None
