"""The `zoo` command line: thin click commands over the public API.

Importing this module does not import torch, so `zoo --help`, `zoo list` and `zoo plugins` stay fast.
Every mistake a user can make ends as one `Error: ...` line on stderr and a non-zero exit.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import click

from zoo import __version__
from zoo.config import field_help, field_types, route_overrides, to_dict
from zoo.registry import matching, registry
from zoo.specs import TrainConfig, ZooError


class UserError(click.ClickException):
    """Shown as a single `Error: ...` line (click's UsageError would add the usage block)."""

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(message)
        self.exit_code = exit_code


class Stopped(UserError):
    """Training stopped on request: said plainly, not as an error."""

    def show(self, file=None) -> None:
        click.echo(self.format_message(), err=True)


class ZooGroup(click.Group):
    """Adds plugin commands lazily and turns user errors into one line."""

    plugins_loaded = False

    def _load_plugin_commands(self) -> None:
        if not self.plugins_loaded:
            self.plugins_loaded = True
            registry().run_hook("register_commands", lambda plugin: {"cli": self})

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        name = name or cmd.name
        if name in self.commands:
            raise ValueError(f"the zoo command {name!r} exists already")
        super().add_command(cmd, name)

    def list_commands(self, ctx: click.Context) -> list[str]:
        self._load_plugin_commands()
        return super().list_commands(ctx)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in self.commands:
            self._load_plugin_commands()
        return super().get_command(ctx, name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ZooError as e:
            raise UserError(str(e)) from None
        except click.UsageError as e:
            raise UserError(e.format_message(), e.exit_code) from None
        except OSError as e:  # a full disk or a permission problem while writing, say
            where = f": {e.filename}" if e.filename else ""
            raise UserError(f"{e.strerror or e}{where}") from None


@click.group(cls=ZooGroup)
@click.version_option(__version__, prog_name="zoo")
def cli():
    """zoo: recurrent neural networks and the classic RNN course's exercises, one command each.

    \b
      zoo list                          models and tasks, and the plugins behind them
      zoo train rnn hihello             train; the run goes to checkpoints/rnn-hihello/
      zoo eval checkpoints/rnn-hihello  recompute the metrics from the exported weights
      zoo predict checkpoints/rnn-hihello hihell
      zoo runs                          the runs so far, with their best metrics
    """


def _table(rows: list[list[str]], header: list[str]) -> None:
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    for row in [header] + rows:
        click.echo("  ".join(str(cell).ljust(w) for cell, w in zip(row, widths)).rstrip())


@cli.command("list")
@click.argument("pattern", required=False)
@click.option("--json", "as_json", is_flag=True, help="print JSON instead of tables")
def list_command(pattern: str | None, as_json: bool):
    """List models and tasks ('lstm*' filters).

    PATTERN filters the names with shell wildcards.
    """
    reg = registry()
    models = [reg.models[n] for n in matching(reg.models, pattern)]
    tasks = [reg.tasks[n] for n in matching(reg.tasks, pattern)]
    if as_json:
        click.echo(json.dumps({
            "models": [{"name": m.name, "description": m.description, "shapes": list(m.supported_shapes()),
                        "preset": dict(m.defaults), "fits": reg.compatible_tasks(m), "plugin": m.plugin}
                       for m in models],
            "tasks": [{"name": t.name, "description": t.description, "shape": t.shape, "metric": t.metric,
                       "fits": reg.compatible_models(t), "plugin": t.plugin} for t in tasks],
        }, indent=2))
        return
    if not models and not tasks:
        raise ZooError(f"no model or task matches {pattern!r}")
    if models:
        _table([[m.name, ", ".join(m.supported_shapes()), m.plugin, m.description] for m in models],
               ["MODEL", "SHAPES", "PLUGIN", "DESCRIPTION"])
    if models and tasks:
        click.echo()
    if tasks:
        _table([[t.name, t.shape, t.plugin, t.description] for t in tasks], ["TASK", "SHAPE", "PLUGIN", "DESCRIPTION"])
    click.echo("\nA model fits a task when it does the task's shape; zoo train MODEL TASK --help shows the "
               "hyperparameters of a pair.")


@cli.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="print JSON instead of a table")
def plugins_command(as_json: bool):
    """List loaded plugins and their hooks."""
    plugins = list(registry().plugins.values())
    if as_json:
        click.echo(json.dumps([{"name": p.name, "distribution": p.distribution, "version": p.version,
                                "builtin": p.builtin, "hooks": p.hooks} for p in plugins], indent=2))
        return
    _table([[p.name, p.distribution, p.version, "built-in" if p.builtin else "entry point", ", ".join(p.hooks)]
            for p in plugins], ["PLUGIN", "DISTRIBUTION", "VERSION", "FROM", "HOOKS"])


def option_pairs(tokens: list[str], configs: list[type]) -> list[str]:
    """Turn `--hidden-size 32 --bidirectional --text=a.txt` into `key=value` strings."""
    flags = {name for cls in configs for name, tp in field_types(cls).items() if tp is bool}
    pairs, i = [], 0
    while i < len(tokens):
        token = tokens[i]
        if not token.startswith("--") or token == "--":
            raise ZooError(f"unexpected argument {token!r}: give hyperparameters as --name value or -o name=value")
        name, eq, value = token[2:].partition("=")
        key = name.replace("-", "_")
        if eq:
            i += 1
        elif key in flags or (key.startswith("no_") and key[3:] in flags):
            key, value = (key, "true") if key in flags else (key[3:], "false")
            i += 1
        elif i + 1 < len(tokens):
            value, i = tokens[i + 1], i + 2
        else:
            raise ZooError(f"option {token} needs a value")
        pairs.append(f"{key}={value}")
    return pairs


class TrainCommand(click.Command):
    """`zoo train MODEL TASK --help` also lists the hyperparameters of that pair, with their defaults."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.meta["zoo.args"] = list(args)
        return super().parse_args(ctx, args)

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        from zoo.plan import plan

        names = [a for a in ctx.meta.get("zoo.args", []) if not a.startswith("-")][:2]
        try:
            p = plan(*names) if len(names) == 2 else None
        except ZooError:
            p = None
        if p is None:
            formatter.write_paragraph()
            formatter.write_text("Any hyperparameter of the model, the task or the training loop can be given as "
                                 "--name value or -o name=value; `zoo train MODEL TASK --help` lists them.")
            return
        for title, config in ((f"model {p.model.name}", p.model_config), (f"task {p.task.name}", p.task_config),
                              ("training", p.train_config)):
            helps = field_help(type(config))
            rows = [(f"--{k.replace('_', '-')}", f"{helps[k]} [now: {v}]") for k, v in to_dict(config).items()]
            if rows:
                with formatter.section(f"Hyperparameters of {title}"):
                    formatter.write_dl(rows)


@cli.command(cls=TrainCommand, context_settings={"ignore_unknown_options": True})
@click.argument("model")
@click.argument("task")
@click.argument("hyperparameters", nargs=-1, type=click.UNPROCESSED)
@click.option("-e", "--epochs", type=int, help="passes over the training data [default: the task's]")
@click.option("--lr", type=float, help="Adam learning rate [default: the task's]")
@click.option("-b", "--batch-size", type=int, help="examples per step [default: the task's]")
@click.option("--seed", type=int, help="random seed [default: 0]")
@click.option("-o", "--set", "settings", multiple=True, metavar="KEY=VALUE",
              help="any model, task or training hyperparameter, e.g. -o hidden_size=32 (repeatable)")
@click.option("--device", default="auto", show_default=True, help="auto (CUDA, then MPS, then CPU), cpu, cuda, mps")
@click.option("--run-dir", type=click.Path(file_okay=False),
              help="the run's folder: config, metrics log, state, export [default: checkpoints/MODEL-TASK]")
@click.option("--out", type=click.Path(dir_okay=False), help="put the export here instead of RUN_DIR/model.safetensors")
@click.option("--resume", is_flag=True, help="continue the run saved in the run folder")
@click.option("--log-every", type=int, default=0, help="epochs between metric lines [default: about 20 lines]")
@click.option("-q", "--quiet", is_flag=True, help="no progress bar or per-epoch lines")
def train(model, task, hyperparameters, epochs, lr, batch_size, seed, settings, device, run_dir, out, resume,
          log_every, quiet):
    """Train MODEL on TASK and export the weights.

    Everything goes to the run folder: config.json, metrics.jsonl, the resumable state and the
    export model.safetensors. Ctrl-C stops between two steps and saves the state for --resume (or
    `zoo resume RUN_DIR`).
    """
    reg = registry()
    spec, job = reg.get_model(model), reg.get_task(task)
    chosen = {"epochs": epochs, "lr": lr, "batch_size": batch_size, "seed": seed}
    pairs = [f"train.{k}={v}" for k, v in chosen.items() if v is not None]
    pairs += option_pairs(list(hyperparameters), [spec.config, job.config, TrainConfig]) + list(settings)
    _run_training(model, task, pairs, device=device, out=out, run_dir=run_dir, resume=resume, quiet=quiet,
                  log_every=log_every)


def _run_training(model, task, pairs, *, quiet, **options):
    from zoo.plan import plan

    if not options.get("resume"):
        plan(model, task, pairs)  # settings are checked before torch is imported: mistakes are answered at once
    from zoo.training import Interrupted
    from zoo.training import train as run

    try:
        run(model, task, pairs, log=(lambda line: None) if quiet else click.echo, progress=not quiet, **options)
    except Interrupted as e:
        raise Stopped(f"{e}; the state is saved", exit_code=128 + e.signal) from None


@cli.command("resume")
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--device", default="auto", show_default=True)
@click.option("-q", "--quiet", is_flag=True, help="no progress bar or per-epoch lines")
def resume_command(run_dir, device, quiet):
    """Continue a stopped training run."""
    from zoo.runs import Run

    info = Run(run_dir).state_info()
    _run_training(info["model"], info["task"], [], device=device, out=None, run_dir=run_dir, resume=True,
                  quiet=quiet, log_every=0)


@cli.command("runs")
@click.argument("root", default="checkpoints", type=click.Path(file_okay=False))
@click.option("--json", "as_json", is_flag=True, help="print JSON instead of a table")
def runs_command(root, as_json):
    """List the runs found under ROOT (default: checkpoints)."""
    from zoo.runs import find_runs, summary

    rows = [summary(run) for run in find_runs(root)]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        raise ZooError(f"no runs in {root}")
    _table([[r["run"], r["model"], r["task"], r["epochs"], r["status"],
             "" if r["best"] is None else f"{r['metric']} {r['best']:.4f} (epoch {r['best_epoch']})"] for r in rows],
           ["RUN", "MODEL", "TASK", "EPOCHS", "STATUS", "BEST"])


@cli.command("plot")
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--out", type=click.Path(dir_okay=False), help="the PNG to write [default: RUN_DIR/curves.png]")
def plot_command(run_dir, out):
    """Draw a run's loss and metric curves (matplotlib)."""
    from zoo.runs import Run, plot_curves

    out = out or os.path.join(run_dir, "curves.png")
    plot_curves(Run(run_dir), out)
    click.echo(f"plotted {run_dir} to {out}")


def _task_overrides(tokens: list[str], settings: tuple[str, ...], task_config: type) -> dict[str, str]:
    pairs = option_pairs(tokens, [task_config]) + list(settings)
    return route_overrides(pairs, {"task": ("the task", task_config)})["task"]


class TaskCommand(click.Command):
    """A command about a weights file that also takes the options of the file's task (`zoo predict`)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        path = next((a for a in args if not a.startswith("-")), None)
        ctx.meta["zoo.task"] = task = _task_of(path) if path else None
        if task is None:  # an unreadable file: take any arguments, so that loading it says what is wrong
            ctx.allow_extra_args = ctx.ignore_unknown_options = True
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as e:
            if task is not None:  # the arguments may be meant for a model of another task
                e.message += f" ({path} is a {task.name} model: `zoo predict {path} --help` shows what it takes)"
            raise

    def get_params(self, ctx: click.Context) -> list[click.Parameter]:
        params = super().get_params(ctx)
        task = ctx.meta.get("zoo.task")
        return params + list(task.predict_params) if task is not None else params


def _task_of(path: str):
    """The registered task a weights file names, or None (the command then reports what is wrong)."""
    from zoo.checkpoint import read_header, weights_file

    try:
        return registry().tasks.get(read_header(weights_file(path))[0].get("task", ""))
    except ZooError:
        return None


@cli.command("eval", context_settings={"ignore_unknown_options": True})
@click.argument("weights")
@click.argument("task_options", nargs=-1, type=click.UNPROCESSED)
@click.option("-o", "--set", "settings", multiple=True, metavar="KEY=VALUE",
              help="change a task setting, e.g. the data to evaluate on: -o text=other.txt")
@click.option("--device", default="cpu", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="print the metrics as JSON")
@click.option("--plot", type=click.Path(dir_okay=False), help="also draw predictions against the truth to this PNG")
def eval_command(weights, task_options, settings, device, as_json, plot):
    """Recompute the metrics of exported weights."""
    from zoo.checkpoint import load, read_card, weights_file
    from zoo.data import device_of
    from zoo.training import evaluate, pick_device

    weights = weights_file(weights)
    card = read_card(weights)
    task = registry().get_task(card.task)
    overrides = _task_overrides(list(task_options), settings, task.config)
    net = load(weights, pick_device(device), overrides)
    data = task.data(net.zoo.task_config, net.zoo.meta).to(device_of(net))
    split = data.report_split
    if plot and task.plot is None:
        raise ZooError(f"task {task.name!r} has no plot")
    metrics = {"split": split, **evaluate(task, net, data, split)}
    if plot:
        task.plot(net, data, split, plot)
        click.echo(f"plotted {split} predictions to {plot}", err=True)
    if as_json:
        click.echo(json.dumps(metrics, indent=2))
        return
    click.echo(f"{card.model} on {card.task}, {split} split ({len(data.split(split)):,} examples)")
    if task.format_metrics is not None:
        click.echo(task.format_metrics(metrics))
        return
    stored = card.metrics if card.metrics.get("split") == split else {}
    width = max(len(k) for k in metrics)
    for key, value in metrics.items():
        if key == "split":
            continue
        shown = f"{value:.4f}" if isinstance(value, float) else str(value)
        then = stored.get(key)
        note = f"  (at export: {then:.4f})" if isinstance(then, float) and isinstance(value, float) else ""
        click.echo(f"  {key:<{width}}  {shown}{note}")


@cli.command("predict", cls=TaskCommand)
@click.argument("weights")
@click.option("--device", default="cpu", show_default=True)
def predict_command(weights, device, **options):
    """Run exported weights on new input.

    WEIGHTS is an export or a run folder; the arguments and options depend on its task: `zoo predict
    WEIGHTS --help` shows them.
    """
    from zoo.checkpoint import load, weights_file
    from zoo.training import pick_device

    net = load(weights_file(weights), pick_device(device))
    task = registry().get_task(net.zoo.task)
    if task.predict is None:
        raise ZooError(f"task {task.name!r} does not support zoo predict")
    try:
        answer = task.predict(net, **options)
        if isinstance(answer, str):
            click.echo(answer)
        else:  # an iterator of pieces (generated text): each shown as it comes
            for piece in answer:
                click.echo(piece, nl=False)
                sys.stdout.flush()
            click.echo()
    except ZooError:
        raise
    except Exception as e:  # the input reached plugin code that could not take it
        if os.environ.get("ZOO_DEBUG"):
            raise
        raise ZooError(f"{task.name} could not handle that input ({type(e).__name__}: {e}); set ZOO_DEBUG=1 "
                       f"for the traceback") from None


@cli.command("info")
@click.argument("weights")
@click.option("--json", "as_json", is_flag=True, help="print the card as JSON")
def info_command(weights, as_json):
    """Show what an export says about itself."""
    from dataclasses import asdict

    from zoo.checkpoint import read_card, weights_file

    card = read_card(weights_file(weights))
    fields = {"model": card.model, "task": card.task, "model_config": to_dict(card.model_config),
              "task_config": to_dict(card.task_config), "train_config": to_dict(card.train_config),
              "problem": asdict(card.problem), "metrics": card.metrics, "versions": card.versions}
    if as_json:
        click.echo(json.dumps({**fields, "meta": card.meta}, indent=2))
        return
    for key, value in fields.items():
        click.echo(f"{key:<13} {json.dumps(value) if not isinstance(value, str) else value}")


def main() -> None:
    cli(prog_name="zoo")


if __name__ == "__main__":
    sys.exit(main())
