"""zoo inspect and zoo.trace: recomputed gates equal torch's fused cells, tracing keeps the prediction, the
page renders in headless Chromium with every task's views, and bad input is one line with nothing written."""

import dataclasses
import json
import re
import shutil
import subprocess

import pytest
import torch
from torch import nn

import zoo
from conftest import one_line_error, tiny_mnist, zoo_cli
from zoo.nn.trace import recompute
from zoo.testing import CheckFailed, check_internals

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
STATUS = re.compile(r'<div id="status"[^>]*>')


@pytest.mark.parametrize("kind", [nn.LSTM, nn.GRU, nn.RNN])
@pytest.mark.parametrize("layers, bidirectional", [(1, False), (2, True), (3, False), (2, False)])
def test_recomputed_internals_equal_the_fused_module(kind, layers, bidirectional):
    torch.manual_seed(0)
    module = kind(5, 7, num_layers=layers, bidirectional=bidirectional, batch_first=True).eval()
    x = torch.randn(3, 13, 5)
    directions = 2 if bidirectional else 1
    h0 = torch.randn(layers * directions, 3, 7)
    hx = (h0, torch.randn_like(h0)) if kind is nn.LSTM else h0
    with torch.no_grad():
        out, state = module(x, hx)
        found = recompute(module, x, hx)
    assert len(found) == layers * directions
    top = torch.cat([found[i]["h"] for i in range(len(found) - directions, len(found))], -1)
    assert (top - out).abs().max() < 1e-5
    h_n = state[0] if kind is nn.LSTM else state
    for i, tensors in enumerate(found):  # every layer and direction: its final state is torch's
        last = tensors["h"][:, 0 if i % directions else -1]
        assert (last - h_n[i]).abs().max() < 1e-5, i
        if kind is nn.LSTM:
            assert (tensors["c"][:, 0 if i % directions else -1] - state[1][i]).abs().max() < 1e-5
    names = {nn.LSTM: {"i", "f", "g", "o", "c", "h"}, nn.GRU: {"r", "z", "n", "h"}, nn.RNN: {"h"}}[kind]
    assert set(found[0]) == names


def test_a_cell_without_internals_shows_its_hidden_states_and_a_wrong_one_fails_the_kit():
    class Plain(nn.Module):  # the cell contract, no internals
        def __init__(self, size, hidden):
            super().__init__()
            self.rnn = nn.RNN(size, hidden, batch_first=True)

        def forward(self, x, h0=None):
            return self.rnn(x, h0)

    class Wrong(Plain):
        gates = ("g",)

        def internals(self, x, h0=None):
            out, _ = self.rnn(x, h0)
            return {"h": out.flip(1), "g": torch.sigmoid(out)}  # steps that are not the forward's

    def plain(config, size):
        return Plain(size, config.hidden_size)

    def wrong(config, size):
        return Wrong(size, config.hidden_size)

    check_internals(plain)
    with pytest.raises(CheckFailed, match="check_internals: .*traced h"):
        check_internals(wrong)


def train(runner, tmp_path, model, task, *options):
    out = tmp_path / f"{model}-{task}.safetensors"
    result = zoo_cli(runner, "train", model, task, "-q", "--out", out, "--run-dir", tmp_path / f"run-{model}-{task}",
                     *options)
    assert result.exit_code == 0, result.output
    return out


def page_of(runner, weights, *args, out):
    result = zoo_cli(runner, "inspect", weights, *args, "--out", out)
    assert result.exit_code == 0, result.output
    assert f"wrote {out} (" in result.output and " MB)" in result.output
    return out.read_text()


def page_data(html: str) -> dict:
    blob = re.search(r'<script type="application/json" id="data">(.*?)</script>', html, re.S).group(1)
    return json.loads(blob.replace("<\\/", "</"))


def kinds(html: str) -> set[str]:
    return {view["kind"] for view in page_data(html)["examples"][0]["views"]}


def browser_status(path, tmp_path, fragment="") -> dict:
    """The page after its script ran in headless Chromium (--dump-dom): the status marker's data."""
    command = [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               f"--user-data-dir={tmp_path / 'chromium-profile'}", "--virtual-time-budget=20000", "--dump-dom",
               path.resolve().as_uri() + fragment]
    dom = subprocess.run(command, capture_output=True, text=True, timeout=300).stdout
    marker = STATUS.search(dom)
    assert marker, dom[-2000:]
    return dict(re.findall(r'data-([a-z]+)="([^"]*)"', marker.group(0)))


def no_external_url(html: str) -> None:
    assert not re.search(r"(?:https?|ftp|wss?)://", html)
    assert not re.search(r"""<(?:script|link|img|iframe)[^>]+(?:src|href)=""", html)


def test_hihello_page_shows_one_hot_inputs_softmax_and_states_and_keeps_the_prediction(runner, tmp_path):
    weights = train(runner, tmp_path, "lstm", "hihello", "-e", "60")
    net = zoo.load(weights)
    ids = torch.tensor([[net.zoo.meta["vocab"].index(c) for c in "hihell"]])
    found = zoo.trace(net, ids)
    with torch.no_grad():  # as zoo predict runs it
        assert torch.equal(found.output, net(ids))  # tracing does not change what the model computes
    predicted = zoo_cli(runner, "predict", weights, "hihell").output.strip()
    assert "".join(net.zoo.meta["vocab"][i] for i in found.output.argmax(-1)[0]) == predicted
    assert set(found.layers[0].tensors) == {"i", "f", "g", "o", "c", "h"}
    html = page_of(runner, weights, "--png", tmp_path / "hihello.png", out=tmp_path / "hihello.html")
    assert (tmp_path / "hihello.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    no_external_url(html)
    views = page_data(html)["examples"][0]["views"]
    titles = [v["title"] for v in views]
    assert "input: each character one-hot" in titles and any(t.startswith("output: softmax") for t in titles)
    assert {"layer 0 forward: forget gate f", "layer 0 forward: cell state c"} <= set(titles)
    assert kinds(html) >= {"heatmap", "topk", "saturation"}
    if CHROMIUM:
        status = browser_status(tmp_path / "hihello.html", tmp_path)
        assert status["rendered"] == "ok" and "saturation:1" in status["views"] and "topk:1" in status["views"]


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium: apt-get install chromium")
def test_charlm_page_in_a_browser_recolours_on_a_click(runner, tmp_path):
    text = tmp_path / "input.txt"
    text.write_text("if you want to build a ship, (don't) drum up people\n" * 16)
    weights = train(runner, tmp_path, "gru-stacked", "charlm", "--text", text, "-e", "3", "--hidden-size", "16")
    html = page_of(runner, weights, text, "--feature", "line-position", "--feature", "regex:\\([^)]*\\)",
                   out=tmp_path / "charlm.html")
    no_external_url(html)
    view = next(v for v in page_data(html)["examples"][0]["views"] if v["kind"] == "text")
    assert [r["feature"].split()[0] for r in view["rankings"]] == ["line-position", "regex:\\([^)]*\\)"]
    assert len(view["labels"]) >= 16  # every unit of the top layer can colour the text
    status = browser_status(tmp_path / "charlm.html", tmp_path, "#selftest")
    assert status["rendered"] == "ok" and status["selftest"] == "recoloured", status
    assert {"text:1", "table:1", "topk:1", "saturation:1"} <= set(status["views"].split(","))


def test_a_unit_that_tracks_a_feature_is_found():
    """A cell wired to count brackets ranks first for bracket depth, with r near 1 (the ranking is real)."""
    from zoo_plugins.views import FEATURES, correlations

    text = "a (b (c) d) e [f {g}] h" * 20
    depth = FEATURES["bracket-depth"][1](text)
    noise = torch.randn(len(text), 5, generator=torch.Generator().manual_seed(0))
    activations = torch.cat([noise, torch.tanh(depth / 3)[:, None] + 0.01 * noise[:, :1]], 1)
    r = correlations(activations, depth)
    assert int(r.abs().argmax()) == 5 and r[5] > 0.95 and r[:5].abs().max() < 0.3


def test_mnist_page_reveals_rows_beside_probabilities(runner, tmp_path):
    root = tiny_mnist(tmp_path / "data")
    weights = train(runner, tmp_path, "lstm", "mnist", "--root", root, "--val-size", "10", "--no-download",
                    "--hidden-size", "16", "-e", "2", "-b", "16")
    html = page_of(runner, weights, "--count", "4", "-o", f"root={root}", out=tmp_path / "mnist.html")
    no_external_url(html)
    data = page_data(html)
    assert len(data["examples"]) == 4 and all(e["label"].startswith("test:") for e in data["examples"])
    assert kinds(html) >= {"rows", "heatmap", "topk", "saturation"}
    net = zoo.load(weights)  # the probabilities after the last row are the model's prediction
    view = next(v for v in data["examples"][0]["views"] if v["kind"] == "rows")
    number = int(data["examples"][0]["label"].split(":")[1].split()[0])
    test = zoo.get_task("mnist").load_data(dataclasses.replace(net.zoo.task_config, root=str(root)), net.zoo.meta).test
    x, _ = test.batch(torch.tensor([number]))
    import base64

    probs = torch.frombuffer(bytearray(base64.b64decode(view["probs"])), dtype=torch.uint8).view(28, 10)
    assert int(probs[-1].argmax()) == int(net(x).argmax())
    if CHROMIUM:
        status = browser_status(tmp_path / "mnist.html", tmp_path)
        assert status["rendered"] == "ok" and "rows:1" in status["views"]


def test_translate_page_shows_attention_top_k_and_beam(runner, tmp_path):
    weights = train(runner, tmp_path, "seq2seq", "translate", "-e", "30", "--attention", "luong")
    html = page_of(runner, weights, "--beam", "3", out=tmp_path / "translate.html")
    no_external_url(html)
    data = page_data(html)
    assert len(data["examples"]) == 4
    titles = [v["title"] for v in data["examples"][0]["views"]]
    assert titles[0].startswith("attention") and any(t.startswith("beam search, width 3") for t in titles)
    assert any(t.startswith("decoder layer 0 forward: reset gate r") for t in titles)
    assert any(t.startswith("encoders.0 layer 0 forward: hidden state") for t in titles)
    attention = next(v for v in data["examples"][0]["views"] if v["title"].startswith("attention"))
    assert attention["cols"] == len("i feel hungry.".split())
    if CHROMIUM:
        status = browser_status(tmp_path / "translate.html", tmp_path)
        assert status["rendered"] == "ok" and "table:1" in status["views"]


def test_stock_page_shows_forecasts_baselines_and_residuals(runner, tmp_path):
    import numpy as np

    close = 100 * np.exp(np.cumsum(np.random.default_rng(0).normal(0, 0.01, 120)))
    prices = tmp_path / "prices.csv"
    rows = [f"{c:.4f},{c * 1.01:.4f},{c * 0.99:.4f},{1000 + i},{c:.4f}" for i, c in enumerate(close)]
    prices.write_text("# Open,High,Low,Volume,Close\n" + "\n".join(reversed(rows)) + "\n")  # newest first
    weights = train(runner, tmp_path, "gru", "stock", "--data", prices, "-e", "20")
    assert "give a price file" in one_line_error(zoo_cli(runner, "inspect", weights, "--out", tmp_path / "s.html"))
    html = page_of(runner, weights, prices, out=tmp_path / "stock.html")
    no_external_url(html)
    views = page_data(html)["examples"][0]["views"]
    lines = [v for v in views if v["kind"] == "lines"]
    assert set(lines[0]["series"]) == {"truth", "model", "persistence", "drift", "linear AR"}
    assert lines[1]["title"].startswith("residuals")
    if CHROMIUM:
        status = browser_status(tmp_path / "stock.html", tmp_path)
        assert status["rendered"] == "ok" and "lines:2" in status["views"]


def test_bad_input_is_one_line_and_writes_nothing(runner, tmp_path, monkeypatch):
    weights = train(runner, tmp_path, "rnn", "charlm", "-e", "2", "--hidden-size", "8")
    page = tmp_path / "page.html"

    def refused(*args):
        line = one_line_error(zoo_cli(runner, "inspect", weights, *args))
        assert not page.exists() and not list(tmp_path.glob(".page.html*"))
        return line

    assert "never saw" in refused("\u00e9t\u00e9 \u2603", "--out", page)
    assert "unknown feature 'quote'" in refused("--feature", "quote", "--out", page)
    assert "does not compile" in refused("--feature", "regex:(unclosed", "--out", page)
    assert "matches nothing" in refused("--feature", "regex:zzzz", "--out", page)
    assert "does not exist" in refused("--out", tmp_path / "missing" / "page.html")
    assert "the export itself" in refused("--out", weights)
    assert "does not exist" in refused("--out", page, "--png", tmp_path / "missing" / "page.png")
    assert "does not apply to charlm" in refused("--beam", "2", "--out", page)
    big = tmp_path / "big.txt"
    with open(big, "w") as f:
        chunk = "don't drum up people together to collect wood. " * 20_000
        while f.tell() < 100_000_000:
            f.write(chunk)
    result = zoo_cli(runner, "inspect", weights, big, "--out", page)
    assert result.exit_code == 0, result.output
    assert "inspecting its first 20,000 characters" in result.output
    assert len(page_data(page.read_text())["examples"][0]["views"][0]["text"]) == 20_000
    page.unlink()
    task = zoo.get_task("charlm")
    from zoo.contract import registry

    monkeypatch.setitem(registry.registry().tasks, "charlm", dataclasses.replace(task, inspect=None))
    assert "has no views for zoo inspect" in refused("--out", page)
