"""ONNX exports: parity with PyTorch over the registry (batches 1 and 3, lengths 1, 7, 33, whole or one
step at a time), `zoo eval`/`predict`/`info` of the .onnx file, the torch-free runtime example, and
every bad input as one line with nothing overwritten."""

import json
import os
import subprocess
import sys

import pytest
import torch

import zoo
from conftest import ROOT, one_line_error, tiny_mnist, zoo_cli
from zoo.store.onnx_export import difference, leaves
from zoo.testing import check_onnx_export

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

MGU = ROOT / "examples" / "zoo-mgu"
TOKENS = zoo.Problem(zoo.MANY_TO_MANY, output_size=5, vocab_size=7)
FEATURES = zoo.Problem(zoo.MANY_TO_ONE, output_size=3, input_size=4)
# every registered cell (presets included) with every problem shape it does
FITTING = [(m.name, p) for m in zoo.list_models() if m.cell is not None for p in (TOKENS, FEATURES)
           if p.shape in m.supported_shapes()]


@pytest.mark.parametrize("name, problem", FITTING, ids=[f"{n}-{p.shape}" for n, p in FITTING])
def test_every_cell_matches_pytorch_at_every_length(name, problem):
    from zoo.store.onnx_net import in_memory, parity

    spec = zoo.get_model(name)
    config = spec.config(**{**spec.defaults, "hidden_size": 6})
    torch.manual_seed(0)
    net = spec.build(config, problem).eval()
    exported = in_memory(net, problem)  # traced at length 5, run at 1, 7, 33
    assert exported.layout["kind"] == "sequence"  # torch's own cells: one graph for any length
    assert parity(net, exported, problem, batches=(1, 3), lengths=(1, 7, 33)) == []


def test_a_cell_stepped_in_python_exports_a_step_graph_whose_length_is_not_frozen():
    sys.path.insert(0, str(MGU))
    try:
        import zoo_mgu

        check_onnx_export(zoo_mgu.make_cell, config=zoo_mgu.MGUConfig)
        from zoo.store.onnx_net import in_memory

        spec = zoo.cell_models("mgu", "", zoo_mgu.make_cell, config=zoo_mgu.MGUConfig)[0]
        assert in_memory(spec.build(spec.config(hidden_size=4), TOKENS).eval(), TOKENS).layout["kind"] == "step"
    finally:
        sys.path.remove(str(MGU))
        sys.modules.pop("zoo_mgu", None)


def train(runner, tmp_path, model, task, *options):
    out = tmp_path / f"{model}-{task}.safetensors"
    result = zoo_cli(runner, "train", model, task, "--out", out, "-q", *options)
    assert result.exit_code == 0, result.output
    return out


def export(runner, weights, *options):
    result = zoo_cli(runner, "export", weights, "--format", "onnx", *options)
    assert result.exit_code == 0, result.output
    return weights.with_suffix(".onnx")


def metrics(runner, path, *options) -> dict:
    result = zoo_cli(runner, "eval", path, "--json", *options)
    assert result.exit_code == 0, result.output
    return json.loads(result.output[result.output.index("{"):])


def assert_same_metrics(a: dict, b: dict):
    assert a.keys() == b.keys()
    for key in a:
        if isinstance(a[key], float):
            assert abs(a[key] - b[key]) <= 1e-5, (key, a[key], b[key])
        else:
            assert a[key] == b[key], key


def predict(runner, path, *args) -> str:
    result = zoo_cli(runner, "predict", path, *args)
    assert result.exit_code == 0, result.output
    return result.output


def test_mgu_exports_through_the_cli_and_evaluates_alike(mgu_installed, runner, tmp_path):
    weights = train(runner, tmp_path, "mgu-stacked", "hihello", "-e", "30")
    onnx_file = export(runner, weights)
    assert_same_metrics(metrics(runner, weights), metrics(runner, onnx_file))
    assert predict(runner, onnx_file, "hihell") == predict(runner, weights, "hihell")
    bi = train(runner, tmp_path, "mgu-bi", "fashion-mnist", "--root", tiny_mnist(tmp_path / "d", "FashionMNIST"),
               "--val-size", "10", "--no-download", "-e", "1", "--hidden-size", "4")
    assert "stepped in Python" in one_line_error(zoo_cli(runner, "export", bi, "--format", "onnx"))
    assert not bi.with_suffix(".onnx").exists()
    translator = train(runner, tmp_path, "seq2seq", "translate", "--cell", "mgu", "-e", "1")
    assert "encoder's cell is stepped in Python" in one_line_error(zoo_cli(runner, "export", translator, "--format",
                                                                          "onnx"))


@pytest.mark.parametrize("options", [("--bptt", "20", "-b", "4"), ("--window", "12", "--hidden-size", "16")],
                         ids=["streams", "windows"])
def test_charlm_eval_and_greedy_generation_match(runner, tmp_path, options):
    text = tmp_path / "text.txt"
    text.write_text("the quick brown fox jumps over the lazy dog. " * 12)
    weights = train(runner, tmp_path, "lstm-stacked", "charlm", "--text", text, "-e", "2", *options)
    onnx_file = export(runner, weights)
    assert_same_metrics(metrics(runner, weights, "--text", text), metrics(runner, onnx_file, "--text", text))
    made = predict(runner, onnx_file, "--prompt", "the q", "-n", "60")
    assert made == predict(runner, weights, "--prompt", "the q", "-n", "60") and len(made.rstrip("\n")) == 65


def test_translate_exports_encoder_and_decoder_greedy_and_beam_alike(runner, tmp_path):
    weights = train(runner, tmp_path, "seq2seq", "translate", "-e", "40", "--attention", "luong", "--cell", "lstm",
                    "--num-layers", "2", "--bidirectional")
    onnx_file = export(runner, weights)
    for beam in ("1", "3"):
        for sentence in ("i feel hungry.", "pytorch is very easy.", "pytorch is a framework"):
            assert predict(runner, onnx_file, sentence, "--beam", beam) == predict(runner, weights, sentence,
                                                                                  "--beam", beam)
    assert_same_metrics(metrics(runner, weights), metrics(runner, onnx_file))
    # the graphs themselves, at batches 1 and 3 and source lengths 1, 7 and 33
    torch_net, onnx_net = zoo.load(weights), zoo.load(onnx_file)
    generator = torch.Generator().manual_seed(0)
    for batch in (1, 3):
        for length in (1, 7, 33):
            src = torch.randint(4, torch_net.zoo.problem.vocab_size, (batch, length), generator=generator)
            src_len = torch.full((batch,), length)
            src_len[-1] = max(1, length // 2)
            with torch.no_grad():
                expected, got = torch_net.encode(src, src_len), onnx_net.encode(src, src_len)
                for e, g in zip(expected, got):
                    parts = zip(e, g) if isinstance(e, tuple) else [(e, g)]
                    assert all(difference(a, b) <= 1e-5 for a, b in parts), (batch, length)
                token = torch.randint(4, 8, (batch,), generator=generator)
                (a, carry_a), (b, carry_b) = (torch_net.step(token, torch_net.start(expected), expected),
                                              onnx_net.step(token, onnx_net.start(got), got))
                assert difference(a, b) <= 1e-5 and all(difference(x, y) <= 1e-5 for x, y in
                                                        zip(leaves(carry_a), leaves(carry_b)))


def test_fashion_mnist_eval_predict_and_info(runner, tmp_path):
    root = tiny_mnist(tmp_path / "data", "FashionMNIST")
    weights = train(runner, tmp_path, "gru-bi", "fashion-mnist", "--root", root, "--val-size", "10",
                    "--no-download", "-e", "1", "--hidden-size", "8")
    onnx_file = export(runner, weights)
    assert_same_metrics(metrics(runner, weights, "--root", root), metrics(runner, onnx_file, "--root", root))
    from PIL import Image

    picture = tmp_path / "shirt.png"
    Image.fromarray((torch.rand(28, 28, generator=torch.Generator().manual_seed(0)) * 255).byte().numpy()).save(picture)
    assert predict(runner, onnx_file, picture, "--top", "3") == predict(runner, weights, picture, "--top", "3")
    shown = zoo_cli(runner, "info", onnx_file)
    assert shown.exit_code == 0, shown.output
    assert "fashion-mnist" in shown.output and '"opset": 17' in shown.output and "x float32 [batch, time, 28]" in \
        shown.output and "state_h float32 [2, batch, 8]" in shown.output
    info = json.loads(zoo_cli(runner, "info", onnx_file, "--json").output)
    assert info["meta"]["classes"][9] == "Ankle boot" and info["onnx"]["layout"] == "sequence"


NO_TORCH = """
import runpy, sys
class NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith(("torch.", "zoo")):
            raise ImportError(f"{name} is made unimportable for this test")
sys.meta_path.insert(0, NoTorch())
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def run_without_torch(*args) -> str:
    script = ROOT / "examples" / "onnx_runtime.py"
    result = subprocess.run([sys.executable, "-c", NO_TORCH, str(script), *map(str, args)], capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_the_runtime_example_needs_no_torch(runner, tmp_path):
    from zoo_plugins import charlm

    text = tmp_path / "text.txt"
    text.write_text("if you want to build a ship, don't drum up people. " * 6)
    weights = train(runner, tmp_path, "lstm", "charlm", "--text", text, "--bptt", "16", "-b", "4", "-e", "2")
    made = run_without_torch(export(runner, weights), "--prompt", "if you", "--length", "40").rstrip("\n")
    net = zoo.load(weights)
    vocab = net.zoo.meta["vocab"]
    expected = charlm.generate(net, [vocab.index(c) for c in "if you"], 40, net.zoo.meta["window"], streams=True)
    assert made == "if you" + "".join(vocab[i] for i in expected)

    root = tiny_mnist(tmp_path / "data", "FashionMNIST")
    weights = train(runner, tmp_path, "lstm", "fashion-mnist", "--root", root, "--val-size", "10", "--no-download",
                    "-e", "1", "--hidden-size", "8")
    images = root / "FashionMNIST" / "raw" / "t10k-images-idx3-ubyte"
    net = zoo.load(weights)
    onnx_file = export(runner, weights)
    for index in (0, 3):
        name, probability = run_without_torch(onnx_file, "--images", images, "--index", index).strip().rsplit(" ", 1)
        pixels = torch.from_numpy(__import__("numpy").fromfile(images, "uint8", 784, offset=16 + 784 * index).copy())
        with torch.no_grad():
            logits = net(((pixels.float() - 255 * net.zoo.meta["mean"]) / (255 * net.zoo.meta["std"])).view(1, 28, 28))
        p = torch.softmax(logits[0], -1)
        assert name == net.zoo.meta["classes"][int(p.argmax())]
        assert abs(float(probability) - float(p.max())) < 1e-3


# -- bad input -----------------------------------------------------------------------------------

@pytest.fixture
def hihello(runner, tmp_path):
    weights = train(runner, tmp_path, "rnn", "hihello", "-e", "5")
    return weights, export(runner, weights)


def test_bad_commands_are_one_line_and_overwrite_nothing(runner, tmp_path, hihello):
    weights, onnx_file = hihello
    before = weights.read_bytes(), onnx_file.read_bytes()
    assert "unknown --format 'tflite'" in one_line_error(zoo_cli(runner, "export", weights, "--format", "tflite"))
    assert "exists; nothing was overwritten" in one_line_error(zoo_cli(runner, "export", weights, "--format", "onnx"))
    assert "ends in .onnx" in one_line_error(zoo_cli(runner, "export", weights, "--format", "onnx", "--out", weights))
    assert "is a file, not a run" in one_line_error(zoo_cli(runner, "export", weights))  # zoo export RUN (issue 23)
    assert "ONNX export already" in one_line_error(zoo_cli(runner, "export", onnx_file, "--format", "onnx"))
    assert (weights.read_bytes(), onnx_file.read_bytes()) == before
    moved = weights.rename(tmp_path / "elsewhere.safetensors")  # the run is there, its export is not
    for run in ("rnn-hihello", tmp_path / "checkpoints" / "rnn-hihello"):  # (nor is a recorded --out followed)
        line = one_line_error(zoo_cli(runner, "export", run, "--format", "onnx"))
        assert "was exported with --out to" in line and "which zoo does not follow from a run folder" in line
    moved.rename(weights)
    assert "no such file" in one_line_error(zoo_cli(runner, "eval", tmp_path / "missing.onnx"))


def rewrite(source, target, change):
    import onnx

    model = onnx.load(str(source))
    change(model)
    target.write_bytes(model.SerializeToString())
    return target


def test_damaged_foreign_and_hostile_onnx_files_are_one_line(runner, tmp_path, hihello):
    import onnx

    _, good = hihello
    data = good.read_bytes()
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(data[: len(data) // 2])
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\xff" * 64)
    foreign = rewrite(good, tmp_path / "foreign.onnx", lambda m: m.metadata_props.__delitem__(slice(None)))

    def drop_layout(model):
        kept = [(p.key, p.value) for p in model.metadata_props if p.key != "onnx_layout"]
        del model.metadata_props[:]
        for key, value in kept:
            model.metadata_props.add(key=key, value=value)

    no_layout = rewrite(good, tmp_path / "no-layout.onnx", drop_layout)

    def hostile_meta(model):
        for p in model.metadata_props:
            if p.key == "meta":
                p.value = "[" * 100_000
    hostile = rewrite(good, tmp_path / "hostile.onnx", hostile_meta)

    def external(model):
        tensor = model.graph.initializer[0]
        tensor.data_location = onnx.TensorProto.EXTERNAL
        tensor.external_data.add(key="location", value="/etc/passwd")
    outside = rewrite(good, tmp_path / "external.onnx", external)
    def huge_state(model):
        for p in model.metadata_props:
            if p.key == "onnx_layout":
                p.value = p.value.replace('"state_shapes": [[1, 8]]', '"state_shapes": [[1000000, 1000000]]')
                assert "1000000" in p.value
    forged = rewrite(good, tmp_path / "forged.onnx", huge_state)
    fifo = tmp_path / "pipe.onnx"
    os.mkfifo(fifo)  # opening it would block: refused before
    huge = tmp_path / "huge.onnx"
    with open(huge, "wb") as f:  # sparse: no disk is used
        f.truncate(2 * 1024**3 + 10)
    cases = {truncated: "damaged or truncated", garbage: "not an ONNX", foreign: "not one zoo exported",
             no_layout: "onnx_layout", hostile: "damaged zoo metadata", outside: "follows no path",
             huge: "more than one ONNX file can hold", fifo: "named pipe"}
    for path, expected in {forged: "state_shapes"}.items():
        for command in (("eval", path), ("predict", path, "hihell")):
            assert expected in one_line_error(zoo_cli(runner, *command))
    for path, expected in cases.items():
        for command in (("eval", path), ("predict", path, "hihell"), ("info", path)):
            line = one_line_error(zoo_cli(runner, *command))
            assert expected in line, (command, line)


def test_without_onnxruntime_one_line_says_what_to_install(runner, hihello, monkeypatch):
    weights, onnx_file = hihello
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime raises ImportError
    for command in (("export", weights, "--format", "onnx", "--out", weights.with_name("other.onnx")),
                    ("eval", onnx_file), ("predict", onnx_file, "hihell")):
        assert "pip install 'rnn-zoo[onnx]'" in one_line_error(zoo_cli(runner, *command))
    assert not weights.with_name("other.onnx").exists()
    monkeypatch.setitem(sys.modules, "onnx", None)
    assert "pip install 'rnn-zoo[onnx]'" in one_line_error(zoo_cli(runner, "info", onnx_file))


def test_stock_eval_and_predict_match(runner, tmp_path):
    from conftest import write_course_prices

    prices = write_course_prices(tmp_path / "prices.csv", days=40)
    weights = train(runner, tmp_path, "gru-stacked", "stock", "--data", prices, "-e", "2")
    onnx_file = export(runner, weights)
    assert_same_metrics(metrics(runner, weights, "--data", prices), metrics(runner, onnx_file, "--data", prices))
    assert predict(runner, onnx_file, "--data", prices) == predict(runner, weights, "--data", prices)


@pytest.mark.parametrize("model, task", [("lstm", "sequences"), ("gru-bi", "sequences"), ("rnn-stacked", "texts")])
def test_variable_length_tasks_evaluate_and_predict_alike(runner, tmp_path, model, task):
    """Batches of (x, lengths): the .onnx reads each sequence to its own end, as the network does."""
    from conftest import write_texts, write_ts

    data = write_ts(tmp_path / "seq.ts") if task == "sequences" else write_texts(tmp_path / "texts.tsv")
    extra = ("--baseline", "euclidean") if task == "sequences" else ()
    weights = train(runner, tmp_path, model, task, "--train", data, "-e", "2", *extra)
    onnx_file = export(runner, weights)
    assert_same_metrics(metrics(runner, weights, "--train", data, *extra),
                        metrics(runner, onnx_file, "--train", data, *extra))
    given = data if task == "sequences" else "a short line of text"
    assert predict(runner, onnx_file, given) == predict(runner, weights, given)
