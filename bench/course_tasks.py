"""zoo's defaults against the course's own scripts, on the course's two character exercises.

The course scripts are re-typed here as the lecture runs them: hihello is a bare torch.nn.RNN with
hidden size 5 (its outputs are the logits), 100 Adam steps at lr 0.1; the sentence model is a
two-layer torch.nn.RNN with hidden size = vocabulary size plus a linear layer, 100 Adam steps at
lr 0.1 over all windows of 10 at once. Each runs with several seeds; so does `zoo.train`.

    python bench/course_tasks.py [--seeds 10]
"""

import argparse
import time

import torch

import zoo
from zoo_plugins.charlm import SENTENCE

parser = argparse.ArgumentParser()
parser.add_argument("--seeds", type=int, default=10)
args = parser.parse_args()
torch.set_num_threads(1)


def course_hihello(seed: int) -> str:
    torch.manual_seed(seed)
    chars = ["h", "i", "e", "l", "o"]
    x = torch.eye(5)[[0, 1, 0, 2, 3, 3]][None]
    y = torch.tensor([[1, 0, 2, 3, 3, 4]])
    rnn = torch.nn.RNN(5, 5, batch_first=True)
    optimizer = torch.optim.Adam(rnn.parameters(), lr=0.1)
    for _ in range(100):
        optimizer.zero_grad()
        outputs, _ = rnn(x)
        torch.nn.functional.cross_entropy(outputs.view(-1, 5), y.view(-1)).backward()
        optimizer.step()
    return "".join(chars[c] for c in outputs.argmax(-1)[0].tolist())


def course_charseq(seed: int) -> tuple[float, bool]:
    torch.manual_seed(seed)
    chars = sorted(set(SENTENCE))
    ids = torch.tensor([chars.index(c) for c in SENTENCE])
    starts = torch.arange(len(SENTENCE) - 10)
    steps = starts[:, None] + torch.arange(10)
    x, y = torch.eye(len(chars))[ids[steps]], ids[steps + 1]
    rnn = torch.nn.RNN(len(chars), len(chars), num_layers=2, batch_first=True)
    fc = torch.nn.Linear(len(chars), len(chars))
    optimizer = torch.optim.Adam([*rnn.parameters(), *fc.parameters()], lr=0.1)
    for _ in range(100):
        optimizer.zero_grad()
        out = fc(rnn(x)[0])
        torch.nn.functional.cross_entropy(out.reshape(-1, len(chars)), y.reshape(-1)).backward()
        optimizer.step()
    last = (out.argmax(-1)[:, -1] == y[:, -1]).float().mean().item()
    # the course prints the first window's predictions, then the last of each later window
    predicted = out.argmax(-1)
    text = SENTENCE[0] + "".join(chars[c] for c in predicted[0].tolist() + predicted[1:, -1].tolist())
    return last, text == SENTENCE


def timed(function, *a, **kw):
    started = time.perf_counter()
    result = function(*a, **kw)
    return result, time.perf_counter() - started


seeds = range(args.seeds)
print(f"hihello, {args.seeds} seeds: how often the prediction is exactly 'ihello'")
course = [timed(course_hihello, s) for s in seeds]
print(f"  course script (RNN, hidden 5):     {sum(r == 'ihello' for r, _ in course)}/{args.seeds}  "
      f"e.g. {course[0][0]!r}, {sum(t for _, t in course) / args.seeds:.2f} s per run")
for model in ("rnn", "lstm", "gru"):
    runs = [timed(zoo.train, model, "hihello", {"seed": s}, out=False, log=lambda line: None) for s in seeds]
    exact = sum(n.zoo.metrics["prediction"] == "ihello" for n, _ in runs)
    print(f"  zoo train {model} hihello:{'':<{10 - len(model)}}{exact}/{args.seeds}  "
          f"{sum(t for _, t in runs) / args.seeds:.2f} s per run")

print(f"\ncharlm, {args.seeds} seeds: next-character accuracy after each window of 10 (min over seeds), "
      "and runs that rebuild the sentence")
course = [timed(course_charseq, s) for s in seeds]
print(f"  course script (2-layer RNN + FC):  accuracy {min(r[0] for r, _ in course):.4f}  "
      f"rebuilt {sum(r[1] for r, _ in course)}/{args.seeds}  {sum(t for _, t in course) / args.seeds:.2f} s per run")
for model in ("rnn", "lstm", "gru"):
    runs = [timed(zoo.train, model, "charlm", {"seed": s}, out=False, log=lambda line: None) for s in seeds]
    worst = min(n.zoo.metrics["accuracy"] for n, _ in runs)
    print(f"  zoo train {model} charlm:{'':<{11 - len(model)}}accuracy {worst:.4f}  "
          f"rebuilt {sum(n.zoo.metrics['reproduced'] == 1.0 for n, _ in runs)}/{args.seeds}  "
          f"{sum(t for _, t in runs) / args.seeds:.2f} s per run")
