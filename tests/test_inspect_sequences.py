"""zoo inspect of the sequences and texts tasks: each sequence traced over its own length (no padding), the
class probabilities after each step, misclassified test examples first, the page rendering in headless
Chromium, and bad input one line with nothing written."""

import base64
import dataclasses
import re

import pytest
import torch

import zoo
from conftest import one_line_error, write_texts, write_ts, zoo_cli
from zoo_plugins.sequences.classify import probabilities
from test_inspect import CHROMIUM, browser_status, kinds, no_external_url, page_data, page_of, train


def titles(example: dict) -> list[str]:
    return [view["title"] for view in example["views"]]


def view(example: dict, title: str) -> dict:
    return next(v for v in example["views"] if v["title"].startswith(title))


def same_as_predict(runner, weights, source, summary: str) -> None:
    """The page's prediction is zoo predict's: the same class, the same probability (to the page's 2 decimals)."""
    result = zoo_cli(runner, "predict", weights, source)
    assert result.exit_code == 0, result.output
    name, p = result.output.split()
    shown = re.search(r"predicted (\S+) \(([0-9.]+)\)", summary)
    assert shown.group(1) == name and abs(float(shown.group(2)) - float(p)) <= 0.0051, (summary, result.output)


def test_sequences_page_shows_the_test_split_at_its_own_lengths_misclassified_first(runner, tmp_path):
    data = write_ts(tmp_path / "tiny.ts")
    weights = train(runner, tmp_path, "lstm", "sequences", "--train", data, "--baseline", "euclidean", "-e", "3",
                    "--hidden-size", "8")
    html = page_of(runner, weights, "--train", data, "--count", "6", out=tmp_path / "seq.html")
    no_external_url(html)
    examples = page_data(html)["examples"]
    assert len(examples) == 6 and all(e["label"].startswith("test:") for e in examples)
    wrong = ["(wrong)" in e["label"] for e in examples]
    assert wrong == sorted(wrong, reverse=True)  # the misclassified first
    assert kinds(html) >= {"lines", "heatmap", "topk", "saturation"}
    # the same examples through -o, as zoo eval takes a task's files
    again = page_data(page_of(runner, weights, "-o", f"train={data}", "--count", "6", out=tmp_path / "o.html"))
    assert [e["label"] for e in again["examples"]] == [e["label"] for e in examples]
    net = zoo.load(weights)
    test = zoo.get_task("sequences").load_data(dataclasses.replace(net.zoo.task_config, train=data), net.zoo.meta).test
    assert len(set(test.lengths.tolist())) > 1  # unequal lengths: padding would show if it were read
    batched, _ = probabilities(net, test)  # padded batches of mixed lengths, as zoo eval reads them
    for example in examples:
        number = int(example["label"].split(":")[1].split()[0])
        length = int(test.lengths[number])
        assert example["summary"].startswith(f"{length} steps")
        for title in ("class probabilities after each step", "layer 0 forward: hidden state h",
                      "layer 0 forward: forget gate f"):
            assert view(example, title)["cols"] == length, title  # the real steps only
        probs = view(example, "class probabilities after each step")  # after the last step: the batched answer
        last = torch.frombuffer(bytearray(base64.b64decode(probs["data"])), dtype=torch.uint8).view(-1, length)[:, -1]
        best = batched[number]  # 8 bits a value on the page: equal to the best within a level
        assert float(best.max() - best[int(last.argmax())]) <= 1 / 255 + 1e-6, example["label"]
        assert ("(wrong)" in example["label"]) == (int(batched[number].argmax()) != int(test.labels[number]))
        assert view(example, "class probabilities after each step")["rowLabels"] == \
            [f"{c} (truth)" if c == net.zoo.meta["classes"][int(test.labels[number])] else c
             for c in net.zoo.meta["classes"]]
    if CHROMIUM:
        status = browser_status(tmp_path / "seq.html", tmp_path)
        assert status["rendered"] == "ok" and "lines:2" in status["views"] and "saturation:1" in status["views"]


def test_an_inline_sequence_and_a_file_keep_zoo_predicts_answer(runner, tmp_path):
    data = write_ts(tmp_path / "tiny.ts")
    weights = train(runner, tmp_path, "gru", "sequences", "--train", data, "--baseline", "euclidean", "-e", "3",
                    "--hidden-size", "8")
    sequence = "0.1,0.5,0.9,0.4,-0.2:1,1.2,0.8,0.7,0.9"
    (example,) = page_data(page_of(runner, weights, sequence, out=tmp_path / "in.html"))["examples"]
    assert example["label"] == sequence[:24] + "..."
    same_as_predict(runner, weights, sequence, example["summary"])
    assert view(example, "class probabilities after each step")["cols"] == 5
    assert view(example, "the input as the network reads it")["series"].keys() == {"channel 1", "channel 2"}
    negative = "-0.5,0.2,-1:1,-1,0.3"  # an argument, not an option
    assert view(page_data(page_of(runner, weights, negative, out=tmp_path / "neg.html"))["examples"][0],
                "class probabilities after each step")["cols"] == 3
    # a file's own labels are the truth; of its 36 sequences, --count of them, the misclassified first
    result = zoo_cli(runner, "inspect", weights, data, "--count", "3", "--out", tmp_path / "file.html")
    assert result.exit_code == 0, result.output
    assert "36 sequences given; inspecting 3 of them (--count), the misclassified first" in result.output
    examples = page_data((tmp_path / "file.html").read_text())["examples"]
    assert len(examples) == 3 and all(e["label"].startswith("tiny.ts line ") for e in examples)
    assert all(", truth " in e["summary"] for e in examples)
    wrong = ["(wrong)" in e["label"] for e in examples]
    assert wrong == sorted(wrong, reverse=True)


@pytest.mark.parametrize("model", ["gru", "lstm-bi"])
def test_texts_page_shows_the_tokens_along_the_steps(runner, tmp_path, model):
    data = write_texts(tmp_path / "tiny.tsv")
    weights = train(runner, tmp_path, model, "texts", "--train", data, "-e", "3", "--hidden-size", "8")
    text = "the film was lovely zzz"
    html = page_of(runner, weights, text, out=tmp_path / "texts.html")
    no_external_url(html)
    (example,) = page_data(html)["examples"]
    same_as_predict(runner, weights, text, example["summary"])
    assert "1 token outside the vocabulary, read as <unk> ('zzz')" in example["summary"]
    tokens = text.split()
    assert view(example, "layer 0 forward: hidden state h")["colLabels"] == tokens
    if model == "gru":
        assert view(example, "class probabilities after each token")["colLabels"] == tokens
        assert view(example, "the likeliest classes after each token")["steps"] == tokens
    else:  # both ways: one output, after the whole text; both directions traced over its tokens
        assert view(example, "the likeliest classes")["note"].startswith("a network that reads both ways")
        assert view(example, "layer 0 backward: cell state c")["colLabels"] == tokens
    test = page_data(page_of(runner, weights, "--train", data, "--count", "4", out=tmp_path / "test.html"))
    assert [e["label"].split()[0].split(":")[0] for e in test["examples"]] == ["test"] * 4
    if CHROMIUM:
        status = browser_status(tmp_path / "texts.html", tmp_path)
        assert status["rendered"] == "ok" and "topk:1" in status["views"]


def test_bad_input_is_one_line_and_writes_nothing(runner, tmp_path):
    data, texts = write_ts(tmp_path / "tiny.ts"), write_texts(tmp_path / "tiny.tsv")
    sequences = train(runner, tmp_path, "rnn", "sequences", "--train", data, "--baseline", "none", "-e", "1",
                      "--hidden-size", "4")
    words = train(runner, tmp_path, "rnn", "texts", "--train", texts, "-e", "1", "--hidden-size", "4")
    page = tmp_path / "page.html"

    def refused(weights, *args):
        line = one_line_error(zoo_cli(runner, "inspect", weights, *args, "--out", page))
        assert not page.exists() and not list(tmp_path.glob(".page.html*"))
        return line

    assert "expected a .ts file" in refused(sequences, texts)  # a file the task cannot read
    assert "reads 2 channels a step; 1,2,3 has 1" in refused(sequences, "1,2,3")
    assert "neither a file nor a sequence" in refused(sequences, "1,2,x")
    assert "trained on --train" in refused(sequences)  # no input: its files are needed again, as for zoo eval
    assert "no such option: --trian; did you mean '--train'?" in refused(sequences, "--trian", data)
    assert "nothing to inspect: the text is empty" in refused(words, "   ")
    binary = tmp_path / "binary.tsv"
    binary.write_bytes(b"pos\t\xff\xfe\x00 not text\n")
    assert str(binary) in refused(words, binary)
    assert "give a text or a file" in refused(words)
