"""Run a zoo ONNX export with numpy and onnxruntime only: no torch, no zoo (docs/onnx.md).

    zoo export checkpoints/lstm-charlm --format onnx --out charlm.onnx
    python examples/onnx_runtime.py charlm.onnx --prompt "if you" --length 80
    zoo export checkpoints/lstm-fashion-mnist --format onnx --out fashion.onnx
    python examples/onnx_runtime.py fashion.onnx --images t10k-images-idx3-ubyte.gz --index 0

Everything the script needs is in the file's metadata: the vocabulary (charlm), the class names and
the pixel scaling (Fashion-MNIST), and `onnx_layout`, which says how the graph takes its state:
`sequence` graphs read any length at once, `step` graphs one step at a time (the caller loops).
Generation is streamed: the prompt is read once, then one character a step, the state fed back.
"""

import argparse
import gzip
import json

import numpy as np
import onnxruntime


def open_export(path):
    """(session, metadata with its JSON entries parsed, layout) of a zoo ONNX export."""
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    raw = session.get_modelmeta().custom_metadata_map
    if raw.get("format") != "zoo/1":
        raise SystemExit(f"{path} is not a zoo export")
    meta = json.loads(raw["meta"])
    layout = json.loads(raw["onnx_layout"])
    if layout["kind"] not in ("sequence", "step"):
        raise SystemExit(f"{path} is a {layout['kind']} export; this script runs sequence and step graphs")
    return session, {"task": raw["task"], "model": raw["model"], "meta": meta}, layout


def run(session, layout, x, state):
    """(logits, state) of the network over x (batch, time[, features]) from `state` (a list of arrays)."""
    names = layout["state"]
    if layout["kind"] == "sequence":
        logits, *state = session.run(None, {"x": x, **dict(zip(names, state))})
        return logits, state
    steps = []
    for t in range(x.shape[1]):  # a step graph: one step at a time, the state fed back
        logits, *state = session.run(None, {"x": x[:, t: t + 1], **dict(zip(names, state))})
        steps.append(logits)
    return (steps[-1] if layout["many_to_one"] else np.concatenate(steps, 1)), state


def zero_state(layout, batch):
    return [np.zeros((layers, batch, hidden), np.float32) for layers, hidden in layout["state_shapes"]]


def generate(session, layout, vocab, prompt, length):
    """Greedy generation: the prompt read at once, then one character a step with the state carried."""
    index = {ch: i for i, ch in enumerate(vocab)}
    unknown = sorted(set(prompt) - set(index))
    if not prompt or unknown:
        raise SystemExit(f"the prompt must be made of characters the model knows (not {unknown})")
    x = np.array([[index[ch] for ch in prompt]], np.int64)
    state, made = zero_state(layout, 1), []
    for _ in range(length):
        logits, state = run(session, layout, x, state)
        made.append(int(logits[0, -1].argmax()))
        x = np.array([[made[-1]]], np.int64)
    return prompt + "".join(vocab[i] for i in made)


def read_idx_images(path):
    """The images of an IDX file (gzipped or not), as Fashion-MNIST ships them: (count, rows, cols) uint8."""
    with (gzip.open if path.endswith(".gz") else open)(path, "rb") as f:
        data = f.read()
    if len(data) < 16 or int.from_bytes(data[:4], "big") != 0x803:
        raise SystemExit(f"{path} is not an IDX image file")
    count, rows, cols = (int.from_bytes(data[i: i + 4], "big") for i in (4, 8, 12))
    return np.frombuffer(data, np.uint8, count * rows * cols, 16).reshape(count, rows, cols)


def classify(session, layout, meta, image):
    """(class name, probability) of one 28x28 uint8 image, scaled as in training."""
    x = ((image.astype(np.float32) - 255 * meta["mean"]) / (255 * meta["std"]))[None]  # rows are the steps
    logits, _ = run(session, layout, x, zero_state(layout, 1))
    p = np.exp(logits[0] - logits[0].max())
    p /= p.sum()
    return meta["classes"][int(p.argmax())], float(p.max())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="a zoo ONNX export")
    parser.add_argument("--prompt", default="if you", help="charlm: the text to continue")
    parser.add_argument("--length", type=int, default=80, help="charlm: characters to generate")
    parser.add_argument("--images", help="image tasks: an IDX file of 28x28 images (t10k-images-idx3-ubyte.gz)")
    parser.add_argument("--index", type=int, default=0, help="image tasks: which image of --images")
    args = parser.parse_args()
    session, card, layout = open_export(args.model)
    meta = card["meta"]
    if "vocab" in meta and card["task"] == "charlm":
        print(generate(session, layout, meta["vocab"], args.prompt, args.length))
    elif "classes" in meta:
        if not args.images:
            raise SystemExit("give --images FILE (an IDX file of 28x28 images) to classify one")
        name, probability = classify(session, layout, meta, read_idx_images(args.images)[args.index])
        print(f"{name} {probability:.3f}")
    else:
        raise SystemExit(f"this script runs charlm and image exports, not {card['task']}")


if __name__ == "__main__":
    main()
