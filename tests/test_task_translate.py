"""Seq2seq translation: tiny corpora learned exactly, decoding, exports, any cell, bad pair files; the
defaults fitted to a corpus, the vocabulary cap and character fallback, and exports whose sizes would
drive unbounded decoding.
"""

import types

import pytest
import torch

import zoo
from conftest import one_line_error, rewrite, zoo_cli
from zoo.contract.registry import Plugin, registry
from zoo.loop.plan import plan
from zoo_plugins import translate as translate_plugin
from zoo_plugins.seq2seq.network import reverse_within, run_cell
from zoo_plugins.translate import COURSE_PAIRS, translate


PAIRS = ("the cat sleeps\tle chat dort\nthe dog eats\tle chien mange\n"
         "a cat eats\tun chat mange\nthe dog sleeps\tle chien dort\n")


def quiet(line):
    pass


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "pairs.tsv"
    path.write_text(PAIRS, encoding="utf-8")
    return path


@pytest.mark.parametrize("settings", [
    {"cell": "gru"},
    {"cell": "lstm", "attention": "luong"},
    {"cell": "rnn", "bidirectional": True},
    {"cell": "gru", "num_layers": 2, "teacher_forcing": 0.5, "attention": "luong"},
])
def test_a_few_pairs_are_learned_exactly(corpus, settings):
    net = zoo.train("seq2seq", "translate", {"pairs": corpus, "test_fraction": 0, "val_fraction": 0,
                                             "hidden_size": 24, "epochs": 150, **settings}, out=False, log=quiet)
    assert net.zoo.metrics["exact_match"] == 1.0, net.zoo.metrics
    assert translate(net, ["the dog eats", "a cat eats"]) == ["le chien mange", "un chat mange"]


def test_character_level(corpus):
    net = zoo.train("seq2seq", "translate", {"pairs": corpus, "level": "char", "test_fraction": 0,
                                             "val_fraction": 0, "hidden_size": 32, "attention": "luong",
                                             "epochs": 150, "lr": 0.02}, out=False, log=quiet)
    assert "t" in net.zoo.meta["source_vocab"] and net.zoo.meta["level"] == "char"
    assert translate(net, ["the cat sleeps"]) == ["le chat dort"]


def test_course_pairs_export_load_and_beam(tmp_path):
    out = tmp_path / "t.safetensors"
    trained = zoo.train("seq2seq", "translate", out=out, log=quiet)
    assert trained.zoo.metrics["exact_match"] == 1.0
    net = zoo.load(out)
    sources = [s for s, _ in COURSE_PAIRS]
    expected = [t.lower() for _, t in COURSE_PAIRS]
    assert translate(net, sources) == translate(trained, sources) == expected
    assert translate(net, sources, beam=1) == translate(net, sources)
    assert translate(net, sources, beam=4) == expected
    # beam 1 is greedy on single sentences too, where beam search runs its own loop
    src, length = torch.tensor([[4, 5, 6]]), torch.tensor([3])
    assert net._beam(net.encode(src, length), 12, 1) == net.generate(src, length, 12)[0]


def test_predict_reads_unknown_words_as_unk(runner, tmp_path):
    out = tmp_path / "t.safetensors"
    zoo_cli(runner, "train", "seq2seq", "translate", "-q", "--out", out)
    result = zoo_cli(runner, "predict", out, "i feel hungry.")
    assert (result.exit_code, result.stdout) == (0, "나는 배가 고프다.\n")
    result = zoo_cli(runner, "predict", out, "I feel very sleepy.", "--beam", "3")
    assert result.exit_code == 0, result.output
    assert "read as <unk>: sleepy." in result.stderr and result.stdout.strip()


def test_plain_cells_point_to_seq2seq(runner):
    line = one_line_error(zoo_cli(runner, "train", "lstm", "translate"))
    assert "models that fit translate: seq2seq" in line


def test_the_cell_must_be_a_recurrent_cell(runner):
    assert "is not a recurrent cell; --cell takes one of gru, lstm, rnn" in one_line_error(
        zoo_cli(runner, "train", "seq2seq", "translate", "--cell", "seq2seq", "-e", "1"))
    assert "unknown model 'grue'" in one_line_error(
        zoo_cli(runner, "train", "seq2seq", "translate", "--cell", "grue", "-e", "1"))


class SteppedGRU(torch.nn.Module):
    """A cell that is not one of torch's: it wraps a GRU but does not accept packed sequences."""

    def __init__(self, input_size, hidden_size):
        super().__init__()
        self.gru = torch.nn.GRU(input_size, hidden_size, batch_first=True)

    def forward(self, x, state=None):
        assert not isinstance(x, torch.nn.utils.rnn.PackedSequence)
        return self.gru(x, state)


def test_any_cell_reads_padded_batches_as_if_alone():
    torch.manual_seed(0)
    stepped = SteppedGRU(3, 5)
    x, lengths = torch.randn(4, 6, 3), torch.tensor([6, 2, 4, 1])
    packed_out, packed_state = run_cell(stepped.gru, x, lengths)  # torch's cell: packed
    stepped_out, stepped_state = run_cell(stepped, x, lengths)  # any other: stepped, states held
    assert torch.allclose(packed_state, stepped_state, atol=1e-6)
    real = torch.arange(6)[None, :] < lengths[:, None]
    assert torch.allclose(packed_out[real], stepped_out[real], atol=1e-6)
    alone, _ = stepped.gru(x[1:2, :2])
    assert torch.allclose(stepped_out[1, :2], alone[0], atol=1e-6)


def test_reverse_within_keeps_padding_at_the_end():
    x = torch.tensor([[1, 2, 3, 0], [4, 5, 0, 0]])[:, :, None]
    assert reverse_within(x, torch.tensor([3, 2]))[:, :, 0].tolist() == [[3, 2, 1, 0], [5, 4, 0, 0]]


def test_a_third_party_cell_makes_a_seq2seq(corpus):
    module = types.ModuleType("stepped_cell")
    module.register_models = zoo.hookimpl(lambda register: register(
        zoo.Model("stepped", "a GRU stepped by zoo", build=None, config=zoo.RecurrentConfig,
                  cell=lambda config, input_size: SteppedGRU(input_size, config.hidden_size))))
    registry().add(module, Plugin("stepped", "stepped-cell", "1.0", builtin=False))
    net = zoo.train("seq2seq", "translate", {"pairs": corpus, "test_fraction": 0, "val_fraction": 0, "cell": "stepped",
                                             "hidden_size": 24, "epochs": 150, "bidirectional": True}, out=False,
                    log=quiet)
    assert net.zoo.metrics["exact_match"] == 1.0


def test_held_out_pairs_for_real_corpora(tmp_path):
    path = tmp_path / "many.tsv"
    path.write_text("".join(f"{i} plus one\t{i + 1}\n" for i in range(100)))
    task = zoo.get_task("translate")
    data = task.data(task.config(pairs=str(path), max_length=3), None)
    assert (len(data.train), len(data.val), len(data.test)) == (85, 5, 10)
    assert data.report_split == "test" and data.monitor_split == "val"
    assert zoo.SPECIAL_TOKENS == tuple(data.meta["target_vocab"][:4])


BAD = [
    ("no tab", "hello world\tbonjour\nhow are you\n", "line 2 has no tab"),
    ("empty file", "\n\n", "has no pairs"),
    ("empty source", "hello\tbonjour\n  \tvide\n", "line 2: the source is empty"),
    ("empty target", "hello\tbonjour\nbye\t \n", "line 2: the target is empty"),
    ("not utf-8", None, "is not UTF-8 text"),
]


@pytest.mark.parametrize("name,text,message", BAD, ids=[b[0] for b in BAD])
def test_bad_pair_files_are_one_line(runner, tmp_path, name, text, message):
    path = tmp_path / "pairs.tsv"
    if text is None:
        path.write_bytes("caf\xe9\tcoffee\n".encode("latin-1"))
    else:
        path.write_text(text)
    assert message in one_line_error(zoo_cli(runner, "train", "seq2seq", "translate", "--pairs", path))


def test_max_length_that_drops_everything_is_one_line(runner, corpus):
    assert "has at most 1 tokens" in one_line_error(zoo_cli(runner, "train", "seq2seq", "translate", "--pairs", corpus,
                                                            "--max-length", "1"))


def test_translate_defaults_fit_a_corpus(tmp_path):
    path = tmp_path / "many.tsv"
    path.write_text("".join(f"number {i % 50} plus {i % 7}\tnombre {i % 50} más {i % 7}\n" for i in range(300)))
    p = plan("seq2seq", "translate", {"pairs": path})
    assert (p.model_config.hidden_size, p.model_config.attention, p.train_config.patience) == (128, "luong", 5)
    assert p.task_config.fallback == "chars" and p.task_config.max_vocab == 4 + 2 + 50  # 2 words, numbers 0-49
    assert "300 pairs" in p.note and p.train_config.precision == "auto" and "precision=auto" in p.note
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


def test_max_vocab_below_the_special_tokens_is_one_line(runner):
    line = one_line_error(zoo_cli(runner, "train", "seq2seq", "translate", "--max-vocab", "4"))
    assert "max_vocab must be 0 (no cap) or more than the 4 special tokens" in line
