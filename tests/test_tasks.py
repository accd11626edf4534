"""The course's two character tasks, with their default settings, and charlm on a text file."""

import pytest
import torch

import zoo
from zoo_plugins.charlm import SENTENCE


def quiet(line):
    pass


@pytest.mark.parametrize("model", ["rnn", "lstm", "gru"])
def test_hihello_defaults_predict_ihello_exactly(model):
    net = zoo.train(model, "hihello", out=False, log=quiet)
    assert net.zoo.metrics["prediction"] == "ihello"
    assert zoo.get_task("hihello").predict(net, "hihell") == "ihello"


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
