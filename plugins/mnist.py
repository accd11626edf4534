"""MNIST and Fashion-MNIST read row by row: 28 steps of 28 pixels; the last state picks one of 10 classes.

The files come through torchvision's MNIST and FashionMNIST classes, under --root, else $ZOO_DATA,
else ./datasets. Debian's dataset-fashion-mnist package, when installed, is unpacked there instead
of downloading. The images stay in memory as one uint8 tensor; a batch is an index selection,
normalized as a whole, so the training loop does no per-image PIL or transform work.
"""

import gzip
import io
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import click

import zoo
from zoo import DATA_ENV, data_root, made_dirs, remove_empty, replace_atomically

MAX_PIXELS = 25_000_000  # a picture to classify: 5000x5000 is plenty, and 25 MB of gray decoded
FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


@dataclass(frozen=True)
class Source:
    """What differs between the two tasks."""

    folder: str  # the torchvision class, which is also its folder under the root
    title: str
    mean: float  # pixel statistics of the training images, for normalizing
    std: float
    box: int  # `zoo predict` scales a picture's ink into a box this big, as the dataset's makers did
    debian: Path | None = None  # where a Debian package puts the .gz files


SOURCES = {
    "mnist": Source("MNIST", "MNIST", 0.1307, 0.3081, box=20),
    "fashion-mnist": Source("FashionMNIST", "Fashion-MNIST", 0.2860, 0.3530, box=28,
                            debian=Path("/usr/share/datasets/fashion-mnist")),
}


@dataclass(frozen=True)
class RowsConfig:
    root: str = zoo.param("", f"folder holding MNIST/ or FashionMNIST/; empty: ${DATA_ENV}, else ./datasets",
                          path="folder")
    val_size: int = zoo.param(5000, "training images held out for validation; the test split is only reported")
    download: bool = zoo.param(True, "download missing files (an installed Debian package is used first)")

    def __post_init__(self):
        zoo.absolute_paths(self, "root")
        zoo.require(self.val_size >= 0, f"val_size must be >= 0, got {self.val_size}")


def unpack(gz_folder: Path, raw: Path) -> None:
    """Decompress the four .gz files into the folder torchvision reads, each through a temporary file."""
    raw.mkdir(parents=True, exist_ok=True)
    for name in FILES:
        def write(tmp, name=name):
            with gzip.open(gz_folder / f"{name}.gz") as src, open(tmp, "wb") as dst:
                shutil.copyfileobj(src, dst)

        replace_atomically(raw / name, write)


def download(cls, root: Path) -> str | None:
    """Let torchvision download and unpack the files; None on success, else why it failed."""
    created = made_dirs(root / cls.__name__ / "raw")
    try:
        cls(root, train=True, download=True)
    except Exception as e:  # torchvision raises RuntimeError, URLError, OSError, ... after trying each mirror
        remove_empty(created)
        reason = [line.strip() for line in str(e).splitlines() if line.strip()][-1:] or [type(e).__name__]
        return f"could not be downloaded ({reason[0]})"
    return None


def fetch(source: Source, config: RowsConfig, evaluating: bool = False):
    """(train images, train labels, test images, test labels) through torchvision, checked. A first
    training run downloads into a new --root; evaluating an export (`zoo eval --root`) needs the
    folder to exist, so that a typo does not become a folder with 55 MB unpacked in it."""
    from torchvision import datasets

    cls = getattr(datasets, source.folder)
    if evaluating and config.root and not Path(config.root).is_dir():
        file = " (it is a file)" if Path(config.root).exists() else ""
        raise zoo.ZooError(f"--root {config.root} is not a folder{file}: give the folder that holds {source.folder}/, "
                           f"or create it first (mkdir -p {config.root}) for zoo to put {source.title} there")
    root = data_root(config.root)
    raw = root / source.folder / "raw"
    missing = [name for name in FILES if not (raw / name).is_file()]
    if missing and source.debian and all((source.debian / f"{name}.gz").is_file() for name in FILES):
        unpack(source.debian, raw)
        missing = []
    if missing:
        why = download(cls, root) if config.download else "--no-download was given"
        if why:
            raise zoo.ZooError(f"{source.title} is not in {raw} and {why}: put "
                               f"{', '.join(n + '.gz' for n in FILES)} from {cls.mirrors[0]} there, or point "
                               f"--root or ${DATA_ENV} at a folder holding {source.folder}/raw")
    try:
        splits = [cls(root, train=train) for train in (True, False)]
    except (AssertionError, RuntimeError, ValueError, TypeError, OSError) as e:
        raise zoo.ZooError(f"the {source.title} files in {raw} are damaged (truncated, or not IDX files): "
                           f"{type(e).__name__}: {e}") from None
    out = []
    for name, split in zip(("train", "t10k"), splits):
        images, labels = split.data, split.targets
        if images.shape[1:] != (28, 28):
            raise zoo.ZooError(f"{raw}/{name}-images-idx3-ubyte holds {tuple(images.shape[1:])} images, not 28x28")
        if len(images) != len(labels) or len(labels) == 0 or not 0 <= int(labels.min()) <= int(labels.max()) <= 9:
            raise zoo.ZooError(f"{raw}/{name}-*: {len(images)} images but {len(labels)} labels (labels must be "
                               f"0-9, one per image)")
        out += [images, labels]
    return out


class Normalize:
    """uint8 pixels -> standardized floats, for a whole batch at once on its device."""

    def __init__(self, mean: float, std: float):
        self.shift, self.scale = 255 * mean, 255 * std

    def __call__(self, images):
        return images.float().sub_(self.shift).div_(self.scale)


def make_data(source: Source, config: RowsConfig, meta: dict | None) -> zoo.TaskData:
    import torch
    from torchvision import datasets

    from zoo import TensorSplit

    train_x, train_y, test_x, test_y = fetch(source, config, evaluating=meta is not None)
    if config.val_size >= len(train_x):
        raise zoo.ZooError(f"val_size {config.val_size} leaves no training images (there are {len(train_x)})")
    order = torch.randperm(len(train_x), generator=torch.Generator().manual_seed(0))  # the same split every run
    val, train = order[: config.val_size], order[config.val_size:]
    normalize = Normalize(source.mean, source.std)

    def split(images, labels):
        return TensorSplit(images, labels, transform=normalize)

    classes = getattr(datasets, source.folder).classes
    return zoo.TaskData(
        zoo.Problem(zoo.MANY_TO_ONE, output_size=len(classes), input_size=28),
        train=split(train_x[train], train_y[train]),
        val=split(train_x[val], train_y[val]) if config.val_size else None,
        test=split(test_x, test_y),
        meta={"classes": list(classes), "mean": source.mean, "std": source.std, "box": source.box},
    )


def evaluate(model, data: zoo.TaskData, split: str) -> dict:
    import torch

    from zoo import batched_outputs

    classes = data.meta["classes"]
    n = len(classes)
    confusion = torch.zeros(n * n, dtype=torch.long)
    for logits, labels in batched_outputs(model, data.split(split)):
        confusion += torch.bincount(labels * n + logits.argmax(-1), minlength=n * n).cpu()
    confusion = confusion.view(n, n)  # rows: true class, columns: predicted class
    per_class = confusion.diag() / confusion.sum(1).clamp(min=1)
    return {"accuracy": confusion.diag().sum().item() / confusion.sum().item(),
            "per_class_accuracy": dict(zip(classes, per_class.tolist())),
            "confusion_matrix": confusion.tolist()}


def format_metrics(metrics: dict) -> str:
    classes = [f"{i} {c}" if not c.startswith(str(i)) else c for i, c in enumerate(metrics["per_class_accuracy"])]
    width = max(len(c) for c in classes)
    lines = [f"accuracy {metrics['accuracy']:.4f}", "", f"{'class':<{width}}  accuracy"]
    lines += [f"{c:<{width}}  {a:.4f}" for c, a in zip(classes, metrics["per_class_accuracy"].values())]
    cells = max(len(str(v)) for row in metrics["confusion_matrix"] for v in row)
    lines += ["", "confusion matrix (rows: true class, columns: predicted class)",
              f"{'':<{width}}  " + " ".join(f"{j:>{cells}}" for j in range(len(classes)))]
    lines += [f"{c:<{width}}  " + " ".join(f"{v:>{cells}}" for v in row)
              for c, row in zip(classes, metrics["confusion_matrix"])]
    return "\n".join(lines)


def read_picture(path: str, background: str, box: int):
    """A picture file -> a 28x28 uint8 tensor drawn like the dataset: light ink on black, centered."""
    import torch
    from PIL import Image, ImageOps, UnidentifiedImageError

    if not os.path.lexists(path):
        raise zoo.ZooError(f"{path}: no such file")
    data = zoo.read_bytes(path, "image")  # a regular file of bounded size: a FIFO or /dev/zero is refused
    try:
        picture = Image.open(io.BytesIO(data))
        if picture.width * picture.height > MAX_PIXELS:  # decoded, a small file can be gigabytes of pixels
            raise zoo.ZooError(f"{path} is {picture.width:,}x{picture.height:,} pixels; zoo predict takes pictures "
                               f"of at most {MAX_PIXELS:,} pixels: scale it down first")
        picture.load()
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as e:
        raise zoo.ZooError(f"{path} is not an image this program can read ({e})") from None
    if "A" in picture.getbands():  # transparent parts count as paper
        picture = Image.alpha_composite(Image.new("RGBA", picture.size, "white"), picture.convert("RGBA"))
    gray = picture.convert("L")
    if background == "auto":  # the border is mostly background
        w, h = gray.size
        border = [gray.getpixel((x, y)) for x in range(w) for y in (0, h - 1)]
        border += [gray.getpixel((x, y)) for y in range(h) for x in (0, w - 1)]
        background = "light" if sum(border) / len(border) > 127 else "dark"
    if background == "light":
        gray = ImageOps.invert(gray)
    ink = gray.point(lambda v: 255 if v > 30 else 0).getbbox() or (0, 0, *gray.size)
    gray = gray.crop(ink)
    scale = box / max(gray.size)
    gray = gray.resize((max(1, round(gray.width * scale)), max(1, round(gray.height * scale))),
                       Image.Resampling.LANCZOS)
    canvas = Image.new("L", (28, 28), 0)
    canvas.paste(gray, ((28 - gray.width) // 2, (28 - gray.height) // 2))
    return torch.frombuffer(bytearray(canvas.tobytes()), dtype=torch.uint8).view(28, 28)


def check_meta(meta, classes: int) -> None:
    """An export's drawing and scaling settings, checked before use: a box that fits the 28x28 canvas, a
    finite mean and a positive finite std, one class name per output of the network."""
    import math

    def damaged(why: str):
        raise zoo.ZooError(f"the model's metadata is damaged: {why}")

    if not isinstance(meta, dict):
        damaged("meta is not a map")
    box = meta.get("box", 28)
    if isinstance(box, bool) or not isinstance(box, int) or not 1 <= box <= 28:
        damaged(f"meta.box is {box!r}, not a whole number of pixels from 1 to 28")
    for key in ("mean", "std"):
        value = meta.get(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or (
                key == "std" and value <= 0):
            damaged(f"meta.{key} is {value!r}, not a {'positive ' if key == 'std' else ''}finite number")
    names = meta.get("classes")
    if not isinstance(names, list) or not all(isinstance(c, str) for c in names) or len(names) != classes:
        damaged(f"meta.classes must be {classes} class names, one per output of the network"
                + (f"; it has {len(names):,}" if isinstance(names, list) else ""))


def predict(model, image: str, background: str, top: int) -> str:
    import torch

    from zoo import device_of

    meta = model.zoo.meta
    check_meta(meta, model.zoo.problem.output_size)
    pixels = read_picture(image, background, meta.get("box", 28))
    with torch.no_grad():
        logits = model(Normalize(meta["mean"], meta["std"])(pixels[None].to(device_of(model))))
    probabilities = torch.softmax(logits[0].float(), -1).cpu()
    best = probabilities.argsort(descending=True)[:top].tolist()
    width = max(len(meta["classes"][i]) for i in best)
    return "\n".join(f"{meta['classes'][i]:<{width}}  {probabilities[i]:.3f}" for i in best)


def inspect(model, inputs, count=None):
    """zoo inspect: each image revealed row by row beside the class probabilities after each row."""
    from .views import mnist

    return mnist(model, inputs, count)


def task(name: str, description: str) -> zoo.Task:
    from functools import partial

    return zoo.Task(
        name=name,
        description=description,
        shape=zoo.MANY_TO_ONE,
        data=partial(make_data, SOURCES[name]),
        evaluate=evaluate,
        config=RowsConfig,
        # measured on Fashion-MNIST (docs/benchmarks.md, bench/): an LSTM of 96 reaches 90.1-90.4% over seeds 0-3 in 30
        # one-cycle epochs (64: 89.7-90.0%; 128: no better, 2.4x the time); dropout 0.2 before the output
        # layer adds about 0.1 point of validation and 0.3 of test accuracy (0.3, 0.4: no better);
        # batches of 256 are the fastest per epoch on a CPU; bf16 autocast doubles the speed of oneDNN's
        # LSTM where the CPU has native bf16
        train_defaults={"epochs": 30, "lr": 0.005, "batch_size": 256, "schedule": "onecycle", "precision": "auto"},
        model_defaults={"hidden_size": 96, "dropout": 0.2},
        format_metrics=format_metrics,
        predict=predict,
        inspect=inspect,
        predict_params=(
            click.Argument(["image"]),
            click.Option(["--background"], type=click.Choice(["auto", "dark", "light"]), default="auto",
                         show_default=True, help="the picture's background; light ones are inverted to match"),
            click.Option(["--top"], type=click.IntRange(1, 10), default=1, show_default=True,
                         help="how many of the likeliest classes to print"),
        ),
    )


@zoo.hookimpl
def register_tasks(register):
    register(task("mnist", "MNIST digits read row by row: 28 steps of 28 pixels, 10 classes"))
    register(task("fashion-mnist", "Fashion-MNIST clothing read row by row: 28 steps of 28 pixels, 10 classes"))
