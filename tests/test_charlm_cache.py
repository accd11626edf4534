"""charlm's continuous cache (--cache N): the score it gives equals the mixture computed directly over
each evaluation lane, it makes a word the training text never had likelier after its first use, it
travels in the export, and its settings are checked in one line."""

import math

import pytest
import torch

import zoo
from conftest import one_line_error, zoo_cli
from zoo_plugins.charlm import EVAL_LANES, CharLMConfig, evaluate, make_data

WORDS = "the quick brown fox jumps over a lazy dog".split()


def quiet(line):
    pass


def words(count, seed, extra=(), every=0):
    g = torch.Generator().manual_seed(seed)
    out = [WORDS[i] for i in torch.randint(len(WORDS), (count,), generator=g).tolist()]
    for i in range(0, len(out), every or len(out) + 1):
        out[i] = extra[0] if extra else out[i]
    return " ".join(out)


def direct(net, examples, positions, weight, sharpness):
    """The cache as its definition reads: each lane as one sequence (its lead-in, then its chunks), every
    scored position's distribution mixed with the characters that followed the last `positions` ones."""
    order = examples.order(EVAL_LANES)
    total, count = 0.0, 0
    for lane in range(len(order[0])):
        start = int(order[0][lane]) * examples.length  # the lead-in starts `context` before the first chunk
        end = examples.context + int(order[-1][lane]) * examples.length + examples.length
        ids = examples.series[start: end + 1]
        hidden = []
        hook = net.head.register_forward_hook(lambda m, a, o: hidden.append(a[0][0]))
        with torch.no_grad():
            logits = net(ids[None, :-1])[0]
        hook.remove()
        h, targets = hidden[0], ids[1:]
        for t in range(examples.context, len(targets)):
            p = torch.softmax(logits[t], -1)
            keys = torch.arange(max(0, t - positions), t)
            if len(keys):
                share = torch.softmax(sharpness * (h[keys] @ h[t]), 0)
                recalled = torch.zeros_like(p).index_add_(0, targets[keys], share)
                p = (1 - weight) * p + weight * recalled
            total -= math.log(p[targets[t]])
            count += 1
    return total / count


@pytest.mark.parametrize("model", ["lstm", "gru"])
def test_the_cache_is_the_mixture_computed_over_each_lane(tmp_path, model):
    text = tmp_path / "t.txt"
    text.write_text(words(900, 0))
    config = CharLMConfig(text=str(text), bptt=20, val_fraction=0.4, cache=45, cache_weight=0.3, cache_sharpness=0.7)
    data = make_data(config, None)
    torch.manual_seed(0)
    net = zoo.get_model(model).build(zoo.RecurrentConfig(hidden_size=12), data.problem).eval()
    score = evaluate(net, data, "val")["nats_per_char"]
    assert score == pytest.approx(direct(net, data.val, 45, 0.3, 0.7), abs=1e-4)
    alone = evaluate(net, make_data(CharLMConfig(text=str(text), bptt=20, val_fraction=0.4), None), "val")
    assert abs(alone["nats_per_char"] - score) > 1e-3  # the cache changed the score


def test_the_cache_makes_a_new_word_likelier_after_its_first_use(tmp_path):
    text = tmp_path / "t.txt"
    # the held-out tenth has "hotspur" (letters the training part has, never that word) every 10th word
    text.write_text(words(9_000, 1) + " " + words(1_000, 2, extra=("hotspur",), every=10))
    run = tmp_path / "run"
    zoo.train("gru", "charlm", {"text": str(text), "bptt": 50, "val_fraction": 0.1, "hidden_size": 48, "epochs": 4,
                                "lr": 0.01, "cache": 500}, run_dir=run, log=quiet)
    net = zoo.load(run)
    assert net.zoo.meta["cache"] == [500, 0.2, 1.0]  # the export scores as it was validated
    task = zoo.get_task("charlm")
    config = {**net.zoo.task_config.__dict__, "text": str(text)}  # an export keeps no local path
    with_cache = evaluate(net, task.data(CharLMConfig(**config), net.zoo.meta), "val")
    assert with_cache["nats_per_char"] == pytest.approx(net.zoo.metrics["nats_per_char"], abs=1e-5)
    plain_config = CharLMConfig(**{**config, "cache": 0})
    alone = evaluate(net, task.data(plain_config, net.zoo.meta), "val")
    assert with_cache["nats_per_char"] < alone["nats_per_char"] - 0.05, (with_cache, alone)


def test_eval_takes_another_cache_for_an_export(runner, tmp_path):
    text = tmp_path / "t.txt"
    text.write_text(words(3_000, 3))
    out = tmp_path / "lm.safetensors"
    assert zoo_cli(runner, "train", "gru", "charlm", "--text", text, "--bptt", "20", "--hidden-size", "16", "-e", "1",
                   "-q", "--out", out).exit_code == 0
    assert "cache" not in zoo.load(out).zoo.meta  # a small text's defaults: the network alone
    plain = zoo_cli(runner, "eval", out, "--text", text)
    cached = zoo_cli(runner, "eval", out, "--text", text, "--cache", "200")
    assert plain.exit_code == 0 and cached.exit_code == 0, cached.output
    assert plain.output != cached.output


@pytest.mark.parametrize("args,message", [
    (["--bptt", "20", "--cache", "30000"], "cache must be in [0, 20,000] positions"),
    (["--bptt", "20", "--cache", "100", "--cache-weight", "1"], "cache_weight must be in [0, 1)"),
    (["--bptt", "20", "--cache", "100", "--cache-sharpness", "-1"], "cache_sharpness must be in [0, 100]"),
])
def test_bad_cache_settings_are_one_line(runner, tmp_path, args, message):
    text = tmp_path / "t.txt"
    text.write_text(words(300, 4))
    assert message in one_line_error(zoo_cli(runner, "train", "gru", "charlm", "--text", text, "-e", "1", *args))


def test_a_network_without_a_head_layer_is_scored_alone_and_says_so(tmp_path):
    text = tmp_path / "t.txt"
    text.write_text(words(900, 5))
    cached_data = make_data(CharLMConfig(text=str(text), bptt=20, val_fraction=0.4, cache=45), None)
    plain_data = make_data(CharLMConfig(text=str(text), bptt=20, val_fraction=0.4), None)
    torch.manual_seed(0)
    net = zoo.get_model("gru").build(zoo.RecurrentConfig(hidden_size=12), cached_data.problem).eval()

    class Wrapped(torch.nn.Module):  # as an ONNX export's network: outputs only
        def __init__(self):
            super().__init__()
            self.inner = net

        def forward(self, *args):
            return self.inner(*args)

    with pytest.warns(UserWarning, match="scored by the network alone"):
        score = evaluate(Wrapped(), cached_data, "val")["nats_per_char"]
    assert score == pytest.approx(evaluate(net, plain_data, "val")["nats_per_char"], abs=1e-6)


def test_windows_ignore_the_cache(tmp_path):
    """A cache asked of windows (or fitted to a text whose --bptt 0 then wins) scores nothing differently."""
    text = tmp_path / "t.txt"
    text.write_text(words(300, 4))
    net = zoo.train("gru", "charlm", {"text": str(text), "bptt": 0, "epochs": 1, "hidden_size": 8, "cache": 100},
                    out=False, log=quiet)
    assert "cache" not in net.zoo.meta and net.zoo.task_config.cache == 100


def test_a_head_run_more_than_once_a_forward_is_one_line(tmp_path):
    text = tmp_path / "t.txt"
    text.write_text(words(900, 6))
    data = make_data(CharLMConfig(text=str(text), bptt=20, val_fraction=0.4, cache=45), None)
    net = zoo.get_model("gru").build(zoo.RecurrentConfig(hidden_size=12), data.problem).eval()
    once = net.forward
    net.forward = lambda *args: (once(*args), once(*args))[1]  # a plugin's network reading its head twice
    with pytest.raises(zoo.ZooError, match="reads the network's `head` once a forward pass"):
        evaluate(net, data, "val")
