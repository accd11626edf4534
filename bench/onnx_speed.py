"""onnxruntime against PyTorch eager, side by side in one run (docs/onnx.md quotes the figures).

(1) streaming generation at batch 1: one character a step, the state carried, a charlm-sized LSTM
    (512 units, one-hot over 65 characters): the latency of one step, median over --steps; also
    through zoo's onnxruntime adapter (zoo.store.onnx_net), which `zoo predict model.onnx` uses.
(2) batch inference over the 10,000 Fashion-MNIST test images (LSTM 96, the task's default, batches
    of 1,024 as zoo eval reads them): the time of the whole pass, best of --repeats.

The networks are untrained (timing does not depend on the weights). Both engines get the same
number of threads (--threads, default 1, since the machine may be shared); rounds alternate between
the two so that a change of load hits both.

    python bench/onnx_speed.py [--threads 1] [--steps 500] [--repeats 3]
"""

import argparse
import gzip
import os
import statistics
import time
from pathlib import Path

import numpy as np
import torch

import zoo
from zoo.nn.layers import Carry
from zoo.store.onnx_export import recurrent_graph

import machine  # bench/machine.py: this folder is the script's first sys.path entry

FASHION = Path("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz")


def ort_session(graph: bytes, threads: int):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = threads
    return onnxruntime.InferenceSession(graph, options, providers=["CPUExecutionProvider"])


def build(problem, **config):
    spec = zoo.get_model("lstm")
    torch.manual_seed(0)
    net = spec.build(spec.config(**config), problem).eval()
    graph, layout = recurrent_graph(net, problem)
    return net, graph, layout


def streaming(threads: int, steps: int) -> tuple[float, float, float]:
    from types import SimpleNamespace

    from zoo.store.onnx_file import parse
    from zoo.store.onnx_net import Graph, OnnxRecurrentNet

    problem = zoo.Problem(zoo.MANY_TO_MANY, output_size=65, vocab_size=65)
    net, graph, layout = build(problem, hidden_size=512)
    session = ort_session(graph, threads)
    names = layout["state"]
    adapter = OnnxRecurrentNet(Graph(parse("graph", graph), "graph"), layout, SimpleNamespace(problem=problem))
    adapter.graph.session = session  # the same threads as the others

    def torch_steps(n, model=net):
        carry, token, times = Carry(), torch.tensor([[1]]), []
        with torch.no_grad():
            for _ in range(n):
                start = time.perf_counter()
                token = model(token, carry)[:, -1:].argmax(-1)
                times.append(time.perf_counter() - start)
        return times

    def ort_steps(n):
        state = [np.zeros((1, 1, 512), np.float32) for _ in names]
        token, times = np.array([[1]], np.int64), []
        for _ in range(n):
            start = time.perf_counter()
            logits, *state = session.run(None, {"x": token, **dict(zip(names, state))})
            token = logits[:, -1:].argmax(-1)
            times.append(time.perf_counter() - start)
        return times

    torch_steps(20), ort_steps(20), torch_steps(20, adapter)  # warm up
    torch_times, ort_times, adapter_times = [], [], []
    for _ in range(5):  # alternate, so that a change of load hits all three
        torch_times += torch_steps(steps // 5)
        ort_times += ort_steps(steps // 5)
        adapter_times += torch_steps(steps // 5, adapter)
    return statistics.median(torch_times), statistics.median(ort_times), statistics.median(adapter_times)


def fashion_images() -> np.ndarray:
    if FASHION.is_file():
        with gzip.open(FASHION) as f:
            data = f.read()
        return np.frombuffer(data, np.uint8, 10_000 * 784, 16).reshape(10_000, 28, 28)
    print(f"({FASHION} missing: apt-get install dataset-fashion-mnist; timing random images instead)")
    return np.random.default_rng(0).integers(0, 256, (10_000, 28, 28), dtype=np.uint8)


def batch_inference(threads: int, repeats: int) -> tuple[float, float]:
    problem = zoo.Problem(zoo.MANY_TO_ONE, output_size=10, input_size=28)
    net, graph, layout = build(problem, hidden_size=96)
    session = ort_session(graph, threads)
    images = (fashion_images().astype(np.float32) - 255 * 0.2860) / (255 * 0.3530)
    batches = [images[i: i + 1024] for i in range(0, len(images), 1024)]

    def with_torch():
        start = time.perf_counter()
        with torch.no_grad():
            predicted = [net(torch.from_numpy(b)).argmax(-1) for b in batches]
        return time.perf_counter() - start, torch.cat(predicted).numpy()

    def with_ort():
        start = time.perf_counter()
        predicted = []
        for b in batches:
            state = [np.zeros((1, len(b), 96), np.float32) for _ in layout["state"]]
            predicted.append(session.run(["logits"], {"x": b, **dict(zip(layout["state"], state))})[0].argmax(-1))
        return time.perf_counter() - start, np.concatenate(predicted)

    with_torch(), with_ort()  # warm up
    torch_times, ort_times = [], []
    for _ in range(repeats):
        seconds, a = with_torch()
        torch_times.append(seconds)
        seconds, b = with_ort()
        ort_times.append(seconds)
        assert (a == b).mean() > 0.999, "the two engines disagree on the predicted classes"
    return min(torch_times), min(ort_times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cpu = machine.cpu()
    print(f"CPU: {cpu}; load average {os.getloadavg()[0]:.2f}; {args.threads} thread(s) each; torch "
          f"{torch.__version__}, onnxruntime {__import__('onnxruntime').__version__}")
    eager, ort, adapter = streaming(args.threads, args.steps)
    print(f"(1) charlm LSTM 512, one character a step at batch 1: PyTorch eager {eager * 1e3:.3f} ms/step, "
          f"onnxruntime {ort * 1e3:.3f} ms/step: onnxruntime {eager / ort:.2f}x as fast; through zoo's adapter "
          f"(torch tensors in and out, as zoo predict runs it) {adapter * 1e3:.3f} ms/step, {eager / adapter:.2f}x")
    eager, ort = batch_inference(args.threads, args.repeats)
    print(f"(2) Fashion-MNIST test set (10,000 images, LSTM 96, batches of 1,024): PyTorch eager {eager:.2f} s, "
          f"onnxruntime {ort:.2f} s: onnxruntime {eager / ort:.2f}x as fast")


if __name__ == "__main__":
    main()
