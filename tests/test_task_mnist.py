"""MNIST and Fashion-MNIST through torchvision's real loading path, on tiny IDX files built here."""

import gzip
import hashlib
from dataclasses import replace
from pathlib import Path

import pytest
import torch

import zoo
from conftest import IDX_FILES, digit_like, one_line_error, tiny_mnist, write_idx, zoo_cli
from zoo_plugins import mnist


REAL_FASHION = Path("/usr/share/datasets/fashion-mnist")


def train_tiny(runner, root, task="mnist", *extra):
    out = root / f"{task}.safetensors"
    result = zoo_cli(runner, "train", "lstm", task, "--root", root, "--val-size", "10", "--no-download",
                     "--hidden-size", "16", "-e", "3", "--lr", "0.01", "-b", "16", "--out", out, *extra)
    assert result.exit_code == 0, result.output
    return out, result


def test_train_eval_predict_on_tiny_files(runner, tmp_path):
    root = tiny_mnist(tmp_path / "data")
    out, result = train_tiny(runner, root)
    assert "50 training examples" in result.output  # 60 minus the 10 held out
    assert "epoch 3/3" in result.output and " val accuracy " in result.output
    assert "final (test split): accuracy" in result.output
    card = zoo.load(out).zoo
    assert card.problem == zoo.Problem(zoo.MANY_TO_ONE, output_size=10, input_size=28)
    assert card.meta["classes"][3] == "3 - three"
    assert len(card.metrics["confusion_matrix"]) == 10 and sum(map(sum, card.metrics["confusion_matrix"])) == 20

    assert "MNIST is not in datasets/MNIST/raw" in one_line_error(zoo_cli(runner, "eval", out))  # not the recorded root
    shown = zoo_cli(runner, "eval", out, "--root", root)
    assert shown.exit_code == 0, shown.output
    assert "test split (20 examples)" in shown.output and "confusion matrix" in shown.output
    assert "5 - five" in shown.output

    picture = tmp_path / "digit.png"
    from PIL import Image

    Image.fromarray(digit_like([7])[0].astype("uint8")).resize((112, 112)).save(picture)
    guess = zoo_cli(runner, "predict", out, picture, "--top", "3")
    assert guess.exit_code == 0, guess.output
    lines = guess.output.splitlines()
    assert len(lines) == 3 and all(line.split()[-1].replace(".", "").isdigit() for line in lines)


def test_the_data_is_one_uint8_tensor_normalized_per_batch(tmp_path):
    task = zoo.get_task("mnist")
    data = task.data(task.config(root=str(tiny_mnist(tmp_path)), val_size=10, download=False), None)
    assert data.train.inputs.dtype == torch.uint8 and data.train.inputs.shape == (50, 28, 28)
    assert len(data.val) == 10 and len(data.test) == 20
    x, y = data.train.batch(torch.arange(4))
    assert x.dtype == torch.float32 and x.shape == (4, 28, 28) and y.dtype == torch.long
    # the validation images are training images; the test images are never among them
    assert data.report_split == "test" and data.monitor_split == "val"


def test_root_comes_from_the_environment(tmp_path, monkeypatch, runner):
    monkeypatch.setenv(mnist.DATA_ENV, str(tiny_mnist(tmp_path / "elsewhere")))
    result = zoo_cli(runner, "train", "gru", "mnist", "--no-download", "--val-size", "5", "-e", "1", "--hidden-size",
                     "4", "-q", "--out", tmp_path / "w.safetensors")
    assert result.exit_code == 0, result.output


def test_missing_files_offline_say_where_and_how(runner, tmp_path):
    line = one_line_error(zoo_cli(runner, "train", "lstm", "mnist", "--root", tmp_path / "empty", "--no-download"))
    assert str(tmp_path / "empty" / "MNIST" / "raw") in line and "train-images-idx3-ubyte.gz" in line
    assert "--root" in line


def test_a_failed_download_is_one_line(runner, tmp_path, monkeypatch):
    from torchvision import datasets

    monkeypatch.setattr(datasets.MNIST, "mirrors", ["http://127.0.0.1:9/"])  # nothing listens on port 9
    line = one_line_error(zoo_cli(runner, "train", "lstm", "mnist", "--root", tmp_path / "empty"))
    assert "could not be downloaded" in line and "MNIST/raw" in line


@pytest.fixture
def mirror(tmp_path, server):
    """The local server holding gzipped tiny IDX files; yields (its url, torchvision-style resources)."""
    served, url = server
    tiny_mnist(tmp_path / "made")
    resources = []
    for name in IDX_FILES:
        data = gzip.compress((tmp_path / "made" / "MNIST" / "raw" / name).read_bytes())
        (served / f"{name}.gz").write_bytes(data)
        resources.append((f"{name}.gz", hashlib.md5(data).hexdigest()))
    return f"{url}/", resources


def test_first_run_downloads_through_torchvision(runner, tmp_path, monkeypatch, mirror):
    from torchvision import datasets

    url, resources = mirror
    monkeypatch.setattr(datasets.MNIST, "mirrors", [url])
    monkeypatch.setattr(datasets.MNIST, "resources", resources)
    root = tmp_path / "fresh"
    result = zoo_cli(runner, "train", "rnn", "mnist", "--root", root, "--val-size", "10", "-e", "1", "-q",
                     "--hidden-size", "4", "--out", tmp_path / "w.safetensors")
    assert result.exit_code == 0, result.output
    assert all((root / "MNIST" / "raw" / name).is_file() for name in IDX_FILES)


def test_debian_files_are_used_without_download(runner, tmp_path, monkeypatch):
    package = tmp_path / "usr-share"
    tiny_mnist(tmp_path / "made", "FashionMNIST")
    package.mkdir()
    for name in IDX_FILES:
        (package / f"{name}.gz").write_bytes(gzip.compress((tmp_path / "made/FashionMNIST/raw" / name).read_bytes()))
    monkeypatch.setitem(mnist.SOURCES, "fashion-mnist", replace(mnist.SOURCES["fashion-mnist"], debian=package))
    root = tmp_path / "root"
    result = zoo_cli(runner, "train", "gru", "fashion-mnist", "--root", root, "--no-download", "--val-size", "10",
                     "-e", "1", "--hidden-size", "4", "-q", "--out", tmp_path / "w.safetensors")
    assert result.exit_code == 0, result.output
    assert (root / "FashionMNIST" / "raw" / "t10k-labels-idx1-ubyte").is_file()
    assert zoo.load(tmp_path / "w.safetensors").zoo.meta["classes"][9] == "Ankle boot"


def damage(raw: Path, how: str) -> None:
    import numpy as np

    images = raw / "train-images-idx3-ubyte"
    if how == "truncated":
        images.write_bytes(images.read_bytes()[:5000])
    elif how == "not idx":
        images.write_text("these are not the images you are looking for")
    elif how == "too few labels":
        write_idx(raw / "train-labels-idx1-ubyte", np.arange(59) % 10)
    elif how == "labels out of range":
        write_idx(raw / "t10k-labels-idx1-ubyte", np.full(20, 11))
    elif how == "not 28x28":
        write_idx(images, np.zeros((60, 14, 14)))


@pytest.mark.parametrize("how,message", [
    ("truncated", "are damaged (truncated, or not IDX files)"),
    ("not idx", "are damaged (truncated, or not IDX files)"),
    ("too few labels", "60 images but 59 labels"),
    ("labels out of range", "labels must be 0-9"),
    ("not 28x28", "holds (14, 14) images, not 28x28"),
])
def test_damaged_files_are_one_line(runner, tmp_path, how, message):
    root = tiny_mnist(tmp_path / "data")
    damage(root / "MNIST" / "raw", how)
    line = one_line_error(zoo_cli(runner, "train", "lstm", "mnist", "--root", root, "--no-download"))
    assert message in line


def test_predict_refuses_what_is_not_an_image(runner, tmp_path):
    out, _ = train_tiny(runner, tiny_mnist(tmp_path / "data"))
    (tmp_path / "notes.png").write_text("not a picture")
    assert "is not an image" in one_line_error(zoo_cli(runner, "predict", out, tmp_path / "notes.png"))
    assert "no such file" in one_line_error(zoo_cli(runner, "predict", out, tmp_path / "absent.png"))


def test_predict_with_weights_of_another_task_is_one_line(runner, tmp_path):
    lm = tmp_path / "lm.safetensors"
    zoo_cli(runner, "train", "rnn", "charlm", "-e", "1", "-q", "--out", lm)
    (tmp_path / "digit.png").write_bytes(b"")
    line = one_line_error(zoo_cli(runner, "predict", lm, tmp_path / "digit.png"))
    assert "is a charlm model" in line


def test_pictures_are_drawn_like_the_dataset(tmp_path):
    from PIL import Image

    # a dark 8 on white paper, off-centre in a large picture
    paper = Image.new("L", (300, 200), 255)
    paper.paste(0, (40, 30, 100, 150))
    paper.save(tmp_path / "ink.png")
    pixels = mnist.read_picture(str(tmp_path / "ink.png"), "auto", box=20)
    assert pixels.shape == (28, 28) and pixels.dtype == torch.uint8
    assert pixels[0].max() == 0 and pixels[:, 0].max() == 0  # black background after inverting
    rows, cols = pixels.nonzero(as_tuple=True)
    assert rows.max() - rows.min() + 1 == 20  # the ink's long side scaled into the 20-pixel box
    assert abs((rows.float().mean() - 13.5).item()) < 1.5 and abs((cols.float().mean() - 13.5).item()) < 1.5


@pytest.mark.skipif(not REAL_FASHION.is_dir(), reason="apt-get install dataset-fashion-mnist for this test")
def test_real_fashion_mnist(tmp_path):
    task = zoo.get_task("fashion-mnist")
    data = task.data(task.config(root=str(tmp_path), download=False), None)
    assert (len(data.train), len(data.val), len(data.test)) == (55_000, 5_000, 10_000)
    net = zoo.train("gru", "fashion-mnist", {"root": tmp_path, "download": False, "epochs": 1, "hidden_size": 32,
                                             "lr": 0.01}, out=False, log=lambda line: None)
    assert net.zoo.metrics["accuracy"] > 0.70
