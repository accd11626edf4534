"""Time per training epoch on Fashion-MNIST, three ways, interleaved in one run.

1. reference: a hand-written loop over the images preloaded as one uint8 tensor (same network,
   same batch size, same precision and schedule as zoo's defaults) - what zoo should cost (<= 1.10x);
2. zoo: `zoo.loop.training.fit`, the loop every zoo task trains with, over the task's own data;
3. dataloader: torch.utils.data.DataLoader over torchvision's FashionMNIST with ToTensor() and
   Normalize(), the pytorch/examples way - what zoo should beat (>= 4x).

    python bench/mnist_speed.py [--model lstm] [--rounds 3] [--root datasets] [-o hidden_size=64]

Needs the Fashion-MNIST files (apt-get install dataset-fashion-mnist, or a download).
"""

import argparse
import dataclasses
import statistics
import tempfile
import time

import torch
from torch.nn import functional as F

from zoo.loop.plan import plan
from zoo.store.runs import Run
from zoo.loop.training import autocast_dtype, fit, make_scheduler

parser = argparse.ArgumentParser()
parser.add_argument("--model", default="lstm")
parser.add_argument("--task", default="fashion-mnist")
parser.add_argument("--rounds", type=int, default=3)
parser.add_argument("--root", default="")
parser.add_argument("-o", "--set", dest="settings", action="append", default=[], metavar="KEY=VALUE",
                    help="a zoo hyperparameter, e.g. -o hidden_size=64")
args = parser.parse_args()

p = plan(args.model, args.task, ([f"root={args.root}"] if args.root else []) + args.settings)
config = dataclasses.replace(p.train_config, epochs=1)
data = p.task.data(p.task_config, None)
device = torch.device("cpu")
dtype = autocast_dtype(config.precision, device)
images, labels = data.train.inputs, data.train.targets
normalize = data.train.transform
print(f"{args.model} on {args.task}: {len(images):,} training images, batch {config.batch_size}, "
      f"hidden {p.model_config.hidden_size}, {'bf16 autocast' if dtype else 'fp32'}, {torch.get_num_threads()} threads")


def network():
    torch.manual_seed(0)
    return p.model.build(p.model_config, data.problem)


def step(net, optimizer, scheduler, x, y):
    with torch.autocast("cpu", dtype=dtype or torch.float32, enabled=dtype is not None):
        loss = F.cross_entropy(net(x), y)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    scheduler.step()


def reference_epoch():
    net = network()
    optimizer = torch.optim.Adam(net.parameters(), lr=config.lr)
    scheduler = make_scheduler(optimizer, config, -(-len(images) // config.batch_size))
    started = time.perf_counter()
    for index in torch.randperm(len(images)).split(config.batch_size):
        step(net, optimizer, scheduler, normalize(images[index]), labels[index])
    return time.perf_counter() - started


def zoo_epoch():
    with tempfile.TemporaryDirectory() as folder:  # a run folder, as zoo train has: the log gives the time
        run = Run(folder)
        run.begin({})
        fit(network(), data, p.task, config, device, run=run, log=lambda line: None)
        return run.history()[-1]["seconds"]  # the training pass, without the validation and saving after it


def dataloader_epoch():
    from torchvision import datasets, transforms

    from zoo.store.download import data_root
    from zoo_plugins.mnist import SOURCES

    source = SOURCES[args.task]
    dataset = getattr(datasets, source.folder)(data_root(p.task_config.root), train=True, transform=transforms.Compose(
        [transforms.ToTensor(), transforms.Normalize((source.mean,), (source.std,))]))
    dataset = torch.utils.data.Subset(dataset, range(len(images)))  # as many images as the others see
    loader = torch.utils.data.DataLoader(dataset, batch_size=config.batch_size, shuffle=True)
    net = network()
    optimizer = torch.optim.Adam(net.parameters(), lr=config.lr)
    scheduler = make_scheduler(optimizer, config, len(loader))
    started = time.perf_counter()
    for x, y in loader:
        step(net, optimizer, scheduler, x.squeeze(1), y)
    return time.perf_counter() - started


ways = {"reference (hand loop)": reference_epoch, "zoo": zoo_epoch, "dataloader": dataloader_epoch}
times = {name: [] for name in ways}
for round_ in range(args.rounds):
    order = list(ways)[round_ % 3:] + list(ways)[: round_ % 3]  # rotate, so no way always goes first
    for name in order:
        times[name].append(ways[name]())
    print(f"round {round_ + 1}: " + "  ".join(f"{n} {times[n][-1]:.2f}s" for n in ways), flush=True)

median = {name: statistics.median(t) for name, t in times.items()}
print("\nmedian seconds per epoch: " + ", ".join(f"{n} {m:.2f}" for n, m in median.items()))
zoo_vs_reference = median["zoo"] / median["reference (hand loop)"]
dataloader_vs_zoo = median["dataloader"] / median["zoo"]
print(f"zoo / reference  = {zoo_vs_reference:.3f}  (target <= 1.10: {'met' if zoo_vs_reference <= 1.10 else 'MISSED'})")
print(f"dataloader / zoo = {dataloader_vs_zoo:.2f}   (target >= 4: {'met' if dataloader_vs_zoo >= 4 else 'MISSED'})")
