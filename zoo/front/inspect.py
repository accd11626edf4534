"""`zoo inspect`: one self-contained HTML page of what every cell of a network computed, step by step.

A task says what to show (`Task.inspect(model, inputs, **options)` returns `InspectExample`s: a label, the
`zoo.trace` of the model on one input, step labels and the task's own views, made with `View`); this
module adds the views every task gets from the trace (a units x steps heatmap of every internal of
every layer and direction, the gates' saturation per unit) and writes the page: the template
`inspect.html` beside this file, with the data inline as JSON. Numbers travel quantised to 8 (or 4)
bits in base64, and long inputs are shown in full only where a view needs it (the text of charlm),
so that pages stay a few MB. Nothing on the page reaches the network.
"""

from __future__ import annotations

import base64
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from zoo.contract.specs import ZooError

HEATMAP_BYTES = 600_000  # per example: heatmaps beyond this show the first steps only
TEMPLATE = Path(__file__).with_name("inspect.html")
URL = re.compile(r"(?:https?|ftp|wss?)://", re.I)  # what the page must never contain


@dataclass
class InspectExample:
    """One input to show: its label, the trace of the model on it, step labels (one list, or one per
    recurrent part of the trace: a seq2seq encoder reads the source, its decoder writes the target),
    and the task's own views (made with `View`), shown before the generic ones."""

    label: str
    trace: Any  # zoo.Trace of the model on this one input (batch of 1)
    steps: list[str] | dict[str, list[str]] = field(default_factory=list)
    views: list[dict] = field(default_factory=list)
    summary: str = ""  # one line under the example's title


def pack(values: Any, lo: float, hi: float, bits: int = 8) -> str:
    """Values clamped to [lo, hi], quantised to 2**bits levels, row-major, base64 (4 bits: two a byte)."""
    flat = torch.as_tensor(values).detach().float().cpu().reshape(-1)
    span = (hi - lo) or 1.0
    levels = (1 << bits) - 1
    q = ((flat.clamp(lo, hi) - lo) / span * levels).round().to(torch.uint8)
    if bits == 4:
        if len(q) % 2:
            q = torch.cat([q, q.new_zeros(1)])
        q = q[0::2] * 16 + q[1::2]
    return base64.b64encode(q.numpy().tobytes()).decode("ascii")


def value_range(name: str, values: torch.Tensor, gates: tuple = ()) -> tuple[float, float]:
    if name in gates or name in ("i", "f", "o", "r", "z"):
        return 0.0, 1.0
    top = float(values.abs().max()) if values.numel() else 1.0
    return (-1.0, 1.0) if top <= 1.0 else (-top, top)


class View:
    """The views a page can show; a task composes its own from these (each returns a JSON-ready dict)."""

    @staticmethod
    def heatmap(title: str, values: Any, lo: float | None = None, hi: float | None = None,
                rows: list[str] | None = None, cols: list[str] | None = None, note: str = "",
                row_name: str = "unit", col_name: str = "step") -> dict:
        """A rows x columns matrix of numbers as colours (units x steps, an attention matrix, ...)."""
        values = torch.as_tensor(values).detach().float().cpu()
        if values.dim() != 2:
            raise ValueError(f"a heatmap is a matrix, got shape {tuple(values.shape)}")
        if lo is None or hi is None:
            lo, hi = value_range("", values)
        return {"kind": "heatmap", "title": title, "rows": values.shape[0], "cols": values.shape[1], "lo": lo,
                "hi": hi, "data": pack(values, lo, hi), "rowLabels": rows, "colLabels": cols, "note": note,
                "rowName": row_name, "colName": col_name}

    @staticmethod
    def topk(title: str, probabilities: Any, labels: list[str], steps: list[str], k: int = 5, note: str = "") -> dict:
        """The k likeliest outputs at each step, with their probabilities: (steps, classes) in."""
        p = torch.as_tensor(probabilities).detach().float().cpu()
        best = p.topk(min(k, p.shape[-1]), dim=-1)
        items = [[[labels[i], round(v, 4)] for v, i in zip(vals, idx)]
                 for vals, idx in zip(best.values.tolist(), best.indices.tolist())]
        return {"kind": "topk", "title": title, "steps": steps, "items": items, "note": note}

    @staticmethod
    def lines(title: str, series: dict[str, Any], x: list[str] | None = None, note: str = "",
              y_name: str = "") -> dict:
        """Named series over the same x (prices over days, say); the first is drawn darkest."""
        data = {name: [None if not math.isfinite(v) else round(v, 6) for v in torch.as_tensor(values).double().tolist()]
                for name, values in series.items()}
        return {"kind": "lines", "title": title, "series": data, "x": x, "note": note, "yName": y_name}

    @staticmethod
    def table(title: str, header: list[str], rows: list[list[Any]], note: str = "") -> dict:
        return {"kind": "table", "title": title, "header": header, "rows": rows, "note": note}

    @staticmethod
    def image_rows(title: str, image: Any, probabilities: Any, classes: list[str], truth: str | None = None,
                   note: str = "") -> dict:
        """An image read row by row beside the class probabilities after each row: image (rows, cols)
        uint8, probabilities (rows, classes)."""
        image = torch.as_tensor(image)
        p = torch.as_tensor(probabilities).detach().float().cpu()
        return {"kind": "rows", "title": title, "height": image.shape[0], "width": image.shape[1],
                "image": pack(image.float(), 0, 255), "probs": pack(p, 0, 1), "classes": classes,
                "truth": truth, "note": note}

    @staticmethod
    def text(title: str, text: str, columns: list[tuple[str, Any]], surprisal: Any, top: Any, top_p: Any,
             vocab: list[str], rankings: list[dict], note: str = "") -> dict:
        """Text coloured by one unit's activation (columns: (label, values per character)); surprisal per
        character, the top next characters after each (ids and probabilities, (chars, k)), rankings:
        [{"feature", "units": [[column index, r], ...]}]."""
        n = len(text)
        activations = torch.stack([torch.as_tensor(v).float().cpu() for _, v in columns], 1) if columns else \
            torch.zeros(n, 0)
        # each unit coloured over its own range: a cell state c can reach 10 where h stays within 1
        scales = activations.abs().amax(0).clamp(min=1e-6) if activations.numel() else torch.ones(0)
        activations, hi = activations / scales, 1.0
        s = torch.as_tensor(surprisal).float().cpu()
        s_max = max(float(s.max()) if s.numel() else 1.0, 1e-6)
        return {"kind": "text", "title": title, "text": text, "labels": [label for label, _ in columns],
                "scales": [round(v, 4) for v in scales.tolist()],
                "lo": -hi, "hi": hi, "bits": 4, "data": pack(activations, -hi, hi, bits=4),
                "surprisal": pack(s, 0, s_max), "surprisalMax": s_max, "vocab": vocab,
                "top": pack(torch.as_tensor(top).float(), 0, 255), "topP": pack(top_p, 0, 1),
                "k": int(torch.as_tensor(top).shape[-1]), "rankings": rankings, "note": note}


def trace_views(example: InspectExample) -> list[dict]:
    """What every task gets from the trace: a units x steps heatmap of each internal of every layer and
    direction (at most HEATMAP_BYTES, so a long input shows its first steps), then gate saturation."""
    layers = example.trace.layers
    if not layers:
        return [{"kind": "table", "title": "recurrent layers", "header": ["note"],
                 "rows": [["no recurrent module was found in this network: nothing to trace"]], "note": ""}]
    per_step = sum(t.shape[-1] for layer in layers for t in layer.tensors.values())
    views = []
    for layer in layers:
        steps = example.steps.get(layer.part, []) if isinstance(example.steps, dict) else example.steps
        for name, values in layer.tensors.items():
            matrix = values[0].T  # (hidden, time)
            length = matrix.shape[1]
            shown = min(length, max(16, HEATMAP_BYTES // max(per_step, 1)))
            lo, hi = value_range(name, matrix, layer.gates)
            note = f"the first {shown:,} of {length:,} steps" if shown < length else ""
            labels = list(steps[:shown]) if len(steps) >= shown else None
            view = View.heatmap(f"{layer.name}: {describe(name)}", matrix[:, :shown], lo, hi, cols=labels, note=note)
            view["group"] = layer.name
            views.append(view)
    gated = [layer for layer in layers if layer.gates]
    if gated:
        from zoo.nn.trace import saturation

        rows = []
        for layer in gated:
            for gate in layer.gates:
                left, right = saturation(layer.tensors[gate])
                rows.append({"layer": layer.name, "gate": gate, "left": [round(v, 3) for v in left.tolist()],
                             "right": [round(v, 3) for v in right.tolist()]})
        views.append({"kind": "saturation", "title": "gate saturation: share of steps each unit's gate is < 0.1 "
                                                     "(left) or > 0.9 (right)", "gates": rows,
                      "note": "as Karpathy, Johnson & Fei-Fei (2015), figure 3: one dot per unit"})
    return views


NAMES = {"h": "hidden state h", "c": "cell state c", "i": "input gate i", "f": "forget gate f", "o": "output gate o",
         "g": "candidate g", "z": "update gate z", "r": "reset gate r", "n": "candidate n"}


def describe(name: str) -> str:
    return NAMES.get(name, name)


def page_data(card: Any, examples: list[InspectExample], title: str) -> dict:
    return {"title": title, "model": card.model, "task": card.task,
            "examples": [{"label": e.label, "summary": e.summary, "views": [*e.views, *trace_views(e)]}
                         for e in examples]}


def render(data: dict) -> str:
    """The page: the template with the data inline (`</` escaped, so the JSON cannot close its script)."""
    blob = json.dumps(data, separators=(",", ":"), allow_nan=False).replace("</", "<\\/")
    html = TEMPLATE.read_text(encoding="utf-8")
    return html.replace("__TITLE__", _escape(data["title"])).replace("__DATA__", blob)


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def check_out(out: Path, weights: Path, what: str) -> None:
    """Refuse a page or picture path whose folder is missing, or that is the export itself, before any work."""
    if not out.parent.is_dir():
        raise ZooError(f"{what} {out}: the folder {out.parent} does not exist")
    if out.exists() and (out.is_dir() or out.resolve() == weights.resolve()):
        raise ZooError(f"{what} {out} is {'a folder' if out.is_dir() else 'the export itself'}: choose another path")
    if out.suffix.lower() in (".safetensors",):
        raise ZooError(f"{what} {out} ends in .safetensors: choose an .html (or .png) path, not an export's")


def main_figure(examples: list[InspectExample], path: Path, title: str) -> None:
    """The first example's first layer: its hidden state over the steps, as a picture (`--png`)."""
    from zoo.store.plotting import pyplot, save_figure

    plt = pyplot("--png")
    example = examples[0]
    layer = example.trace.layers[0]
    values = layer.tensors["h"][0].T.float().cpu()
    shown = min(values.shape[1], 200)
    steps = example.steps.get(layer.part, []) if isinstance(example.steps, dict) else example.steps
    size = (max(6, min(16, shown * 0.25 + 2)), max(3, min(10, values.shape[0] * 0.08 + 2)))
    figure, axes = plt.subplots(figsize=size)
    image = axes.imshow(values[:, :shown].numpy(), aspect="auto", cmap="RdBu_r", vmin=-1, vmax=1,
                        interpolation="nearest")
    if steps and shown <= 60:
        axes.set_xticks(range(shown))
        axes.set_xticklabels([repr(s)[1:-1] if len(s) == 1 else s for s in steps[:shown]], fontsize=7)
    axes.set_xlabel("step")
    axes.set_ylabel("unit")
    axes.set_title(f"{title}: {layer.name}, hidden state ({example.label})"[:120], fontsize=9)
    figure.colorbar(image, ax=axes)
    save_figure(figure, path)


def inspect(weights: Path, inputs: tuple[str, ...], out: Path | None, png: Path | None, options: dict,
            overrides: dict, device: str, echo) -> tuple[Path, int]:
    """Load, let the task pick and trace its examples, write the page (and the picture); (path, bytes)."""
    import inspect as signatures

    from zoo.contract.registry import registry
    from zoo.loop.inference import pick_device
    from zoo.store.exports import load, read_card
    from zoo.store.files import replace_atomically

    card = read_card(weights)
    task = registry().get_task(card.task)
    if task.inspect is None:
        raise ZooError(f"task {task.name!r} ({task.plugin or 'unregistered'}) has no views for zoo inspect "
                       f"(its plugin sets none: Task.inspect, docs/inspect.md)")
    out = out or Path(f"{weights.stem if weights.stem != 'model' else weights.parent.name}-inspect.html")
    for path, what in ((out, "--out"), (png, "--png")):
        if path is not None:
            check_out(path, weights, what)
    accepted = signatures.signature(task.inspect).parameters
    for name in options:
        if name not in accepted:
            raise ZooError(f"--{name.replace('_', '-')} does not apply to {task.name} (zoo inspect's options for "
                           f"it: {', '.join('--' + p.replace('_', '-') for p in list(accepted)[2:]) or 'none'})")
    net = load(weights, pick_device(device), overrides)
    examples = task.inspect(net, tuple(inputs), echo=echo, **options) if "echo" in accepted else \
        task.inspect(net, tuple(inputs), **options)
    if not examples:
        raise ZooError(f"task {task.name!r} gave no examples to inspect")
    title = f"{card.model} on {card.task}"
    html = render(page_data(card, examples, title))
    if URL.search(html):  # a view's text (a user's input) may hold one: the page would still not load it
        echo(f"note: the page's text mentions a URL ({URL.search(html).group(0)}...); the page loads nothing")

    def write(tmp):
        Path(tmp).write_text(html, encoding="utf-8")

    replace_atomically(out, write)
    if png is not None:
        main_figure(examples, png, title)
    return out, len(html.encode("utf-8"))
