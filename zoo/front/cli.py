"""The `zoo` command line: thin click commands over the public API.

Importing this module does not import torch, so `zoo --help`, `zoo list` and `zoo plugins` stay fast.
Every mistake a user can make ends as one `Error: ...` line on stderr and a non-zero exit.
"""

from __future__ import annotations

import difflib
import errno
import functools
import json
import os
import re
import signal
import sys
import threading
import warnings
from typing import Any

import click

from zoo import __version__
from zoo.contract.config import field_help, field_types, route_overrides, to_dict
from zoo.store.display import printable
from zoo.contract.registry import matching, registry
from zoo.contract.specs import Stopped, Terminated, TrainConfig, ZooError
from zoo.loop.threads import THREADS_ENV


class UserError(click.ClickException):
    """Shown as a single `Error: ...` line (click's UsageError would add the usage block)."""

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(message)
        self.exit_code = exit_code


class StopLine(UserError):
    """A stop on request (zoo.contract.specs.Stopped, or Ctrl-C while starting): said plainly, not as an error."""

    def show(self, file=None) -> None:
        click.echo(self.format_message(), err=True)


def interrupted_line(e: BaseException) -> UserError:
    signum = getattr(e, "signal", signal.SIGINT)
    return StopLine("interrupted; nothing was written", exit_code=128 + signum)


class ZooGroup(click.Group):
    """Adds plugin commands lazily and turns user errors into one line."""

    def main(self, *args, standalone_mode: bool = True, **kwargs):
        """click's main, except that Ctrl-C or SIGTERM at any moment ends in one line and 130 or 143
        (click would print `Aborted!` and exit 1)."""
        if not standalone_mode:
            return super().main(*args, standalone_mode=False, **kwargs)
        try:
            code = super().main(*args, standalone_mode=False, **kwargs)
        except click.ClickException as e:
            _leaving()
            e.show()
            sys.exit(e.exit_code)
        except click.Abort as e:
            if not isinstance(e.__context__, KeyboardInterrupt):
                raise
            _leaving()
            stopped = interrupted_line(e.__context__)
            stopped.show()
            sys.exit(stopped.exit_code)
        _leaving()
        sys.exit(code if isinstance(code, int) else 0)

    loaded_for = None  # the registry whose plugins added their commands (tests swap registries)
    plugin_commands: set = set()

    def _load_plugin_commands(self) -> None:
        reg = registry()
        if self.loaded_for is not reg:
            for name in self.plugin_commands:
                self.commands.pop(name, None)
            self.loaded_for, before = reg, set(self.commands)
            reg.run_hook("register_commands", lambda plugin: {"cli": self})
            self.plugin_commands = set(self.commands) - before

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
            with warnings.catch_warnings():
                warnings.showwarning = functools.partial(_show_warning, warnings.showwarning)
                return super().invoke(ctx)
        except Stopped as e:  # training or a bench stopped on request: what was kept, and how to go on
            raise StopLine(printable(str(e), newlines=False), exit_code=128 + e.signal) from None
        except ZooError as e:  # may quote a file's contents: escaped, and kept to one line
            raise UserError(printable(str(e), newlines=False)) from None
        except click.NoSuchOption as e:
            params = e.ctx.command.get_params(e.ctx) if e.ctx else []
            takes = [opt for param in params if isinstance(param, click.Option)
                     for opt in param.opts if opt.startswith("--") and opt != "--help"]
            known = "shows what it takes" in e.format_message()  # zoo predict says already where to look
            hint = f" ({e.ctx.command_path} takes {', '.join(takes)})" if takes and not known else ""
            raise UserError(e.format_message() + hint, e.exit_code) from None
        except click.UsageError as e:
            raise UserError(e.format_message(), e.exit_code) from None
        except KeyboardInterrupt as e:
            raise interrupted_line(e) from None
        except OSError as e:  # a full disk or a permission problem while writing, say
            if e.errno == errno.EPIPE:
                raise  # `zoo list | head`: click ends quietly
            where = f": {e.filename}" if e.filename else ""
            raise UserError(printable(f"{e.strerror or e}{where}", newlines=False)) from None


def _show_warning(previous, message, category, *args, **kwargs) -> None:
    """zoo's own warnings as one line on stderr; others as Python shows them."""
    from zoo.store.checkpoint import ZooWarning

    if issubclass(category, ZooWarning):
        click.echo(f"Warning: {printable(str(message), newlines=False)}", err=True)
    else:
        previous(message, category, *args, **kwargs)


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
    rows = [[printable(str(cell), newlines=False) for cell in row] for row in rows]  # names from files and plugins
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
    """List plugins, their hooks, and what failed (ZOO_DEBUG=1: with tracebacks)."""
    reg = registry()
    _ = reg.models, reg.tasks  # run the hooks, so that a plugin failing in one is marked
    click.get_current_context().find_root().command._load_plugin_commands()
    plugins = list(reg.plugins.values())
    if as_json:
        click.echo(json.dumps([{"name": p.name, "distribution": p.distribution, "version": p.version,
                                "builtin": p.builtin, "hooks": p.hooks, "loaded": p.loaded, "problems": p.problems}
                               for p in plugins], indent=2))
        return
    _table([[p.name, p.distribution, p.version, "built-in" if p.builtin else "entry point", ", ".join(p.hooks),
             p.status if p.loaded else f"FAILED: {p.status}"] for p in plugins],
           ["PLUGIN", "DISTRIBUTION", "VERSION", "FROM", "HOOKS", "STATUS"])


def option_pairs(tokens: list[str], configs: list[type], options: tuple[str, ...] = ()) -> list[str]:
    """Turn `--hidden-size 32 --bidirectional --text=a.txt` into `key=value` strings.

    An unknown name is answered in the form it was typed: `--hiden-size` suggests `--hidden-size`."""
    flags = {name for cls in configs for name, tp in field_types(cls).items() if tp is bool}
    known = {name for cls in configs for name in field_types(cls)}
    pairs, i = [], 0
    while i < len(tokens):
        token = tokens[i]
        if not token.startswith("--") or token == "--":
            raise ZooError(f"unexpected argument {token!r}: give hyperparameters as --name value or -o name=value")
        name, eq, value = token[2:].partition("=")
        key = name.replace("-", "_")
        bare = key[3:] if key.startswith("no_") and key[3:] in flags else key
        if "." not in key and bare not in known:
            dashed = "_" not in name
            names = {f"--{n.replace('_', '-') if dashed else n}" for n in known} | {o for o in options if dashed}
            close = difflib.get_close_matches("--" + name, sorted(names), n=1, cutoff=0.6)
            raise ZooError(f"no such option: --{name}" + (f"; did you mean {close[0]!r}?" if close else ""))
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

    OWN = ("epochs", "lr", "batch_size", "seed")  # hyperparameters train has options of its own for

    def help_plan(self, ctx: click.Context):
        """The plan this command line would train with (its options, defaults fitted to its data), or None."""
        from zoo.loop.plan import plan

        if "zoo.plan" not in ctx.meta:
            args = [a for a in ctx.meta.get("zoo.args", []) if a not in self.get_help_option_names(ctx)]
            given = self.make_context(ctx.info_name, args, parent=ctx.parent, resilient_parsing=True).params
            p = None
            if given.get("model") and given.get("task"):
                try:
                    p = plan(given["model"], given["task"], _override_pairs(**given))
                except ZooError:
                    try:
                        p = plan(given["model"], given["task"])
                    except ZooError:
                        pass
            ctx.meta["zoo.plan"] = p
        return ctx.meta["zoo.plan"]

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The options; with a pair, -e/--lr/-b/--seed are listed once, with the training hyperparameters."""
        listed = self.help_plan(ctx) is not None
        rows = [param.get_help_record(ctx) for param in self.get_params(ctx)
                if not (listed and getattr(param, "name", None) in self.OWN)]
        rows = [row for row in rows if row is not None]
        if rows:
            with formatter.section("Options"):
                formatter.write_dl(rows)

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        p = self.help_plan(ctx)
        if p is None:
            formatter.write_paragraph()
            formatter.write_text("Any hyperparameter of the model, the task or the training loop can be given as "
                                 "--name value or -o name=value; `zoo train MODEL TASK --help` lists them.")
            return
        short = {param.name: ", ".join(param.opts) for param in self.params if param.name in self.OWN}
        for title, config in ((f"model {p.model.name}", p.model_config), (f"task {p.task.name}", p.task_config),
                              ("training", p.train_config)):
            helps = field_help(type(config))
            rows = [(short.get(k) if title == "training" and k in short else f"--{k.replace('_', '-')}",
                     f"{helps[k]} [now: {v}]") for k, v in to_dict(config).items()]
            if rows:
                with formatter.section(f"Hyperparameters of {title}"):
                    formatter.write_dl(rows)
        if p.note:
            formatter.write_paragraph()
            formatter.write_text(f"{p.note[:1].upper()}{p.note[1:]}.")  # what the run would say when it starts


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
              help="the run's folder [default: a new checkpoints/MODEL-TASK, -2, -3, ...]")
@click.option("--out", type=click.Path(dir_okay=False), help="put the export here instead of RUN_DIR/model.safetensors")
@click.option("--resume", is_flag=True, help="continue the run in --run-dir (default: the pair's newest run)")
@click.option("--overwrite", is_flag=True, help="replace the run that --run-dir holds")
@click.option("--init-from", type=click.Path(), metavar="WEIGHTS",
              help="start from the weights of an export (or run) of the same model and task, e.g. to fine-tune")
@click.option("--threads", metavar="N", help=f"CPU threads [default: adapt to the machine's load; ${THREADS_ENV}]")
@click.option("--log-every", type=int, default=0, help="epochs between metric lines [default: about 20 lines]")
@click.option("-q", "--quiet", is_flag=True, help="no progress bar or per-epoch lines, only where the export went")
@click.option("--force", is_flag=True, help="train even when the memory estimate says it will not fit, or with more "
                                            "--threads than CPUs")
@click.option("--max-time", metavar="DURATION", help="a time budget (90s, 20m, 1h30m): stop at the first safe point "
                                                     "after it and export (the best weights when validated)")
def train(model, task, hyperparameters, epochs, lr, batch_size, seed, settings, device, run_dir, out, resume,
          overwrite, init_from, threads, log_every, quiet, force, max_time):
    """Train MODEL on TASK and export the weights.

    Each run gets a folder of its own (printed at the start and the end): config.json, metrics.jsonl,
    the resumable state and the export model.safetensors. Ctrl-C stops between two steps and saves
    the state for `zoo resume RUN_DIR`.
    """
    if overwrite and not run_dir:
        raise ZooError("--overwrite replaces the run in --run-dir DIR; without --run-dir every run gets a folder of "
                       "its own and none is replaced")
    pairs = _override_pairs(model, task, hyperparameters, epochs, lr, batch_size, seed, settings)
    _run_training(model, task, pairs, device=device, out=out, run_dir=run_dir, resume=resume, overwrite=overwrite,
                  init_from=init_from, threads=threads, quiet=quiet, log_every=log_every, force=force,
                  max_time=max_time)


def _override_pairs(model, task, hyperparameters, epochs, lr, batch_size, seed, settings, **_) -> list[str]:
    """`key=value` strings for plan(): train's own options, then --name value hyperparameters, then -o."""
    reg = registry()
    spec, job = reg.get_model(model), reg.get_task(task)
    chosen = {"epochs": epochs, "lr": lr, "batch_size": batch_size, "seed": seed}
    pairs = [f"train.{k}={v}" for k, v in chosen.items() if v is not None]
    options = tuple(o for param in train.params for o in getattr(param, "opts", ()) if o.startswith("--"))
    return pairs + option_pairs(list(hyperparameters or ()), [spec.config, job.config, TrainConfig], options) + list(
        settings or ())


def _run_training(model, task, pairs, *, quiet, threads, device, log_every, force=False, max_time=None, **options):
    """Settle the run once, torch-free (every mistake in the settings is answered at once), then train it."""
    from zoo.loop.clock import Budget, parse_duration
    from zoo.loop.threads import prepare

    # a time budget counts from the command's start; a bad --max-time is answered before torch is imported
    budget = max_time if isinstance(max_time, Budget) or max_time is None else Budget(parse_duration(max_time))
    # a bad --threads or ZOO_THREADS is answered before torch is imported; the policy's first sample of the
    # machine's load is taken now, so that its first choice also measures the seconds torch takes to load
    policy = prepare(threads, force)
    from zoo.loop.plan import plan_run

    begun = plan_run(model, task, pairs, **options)
    from zoo.loop.training import run

    # -q keeps one line: where the export went
    def echo(line: str) -> None:  # names, paths and metric strings from plugins and files: escaped
        click.echo(printable(line))

    log = (lambda line: line.startswith("saved ") and echo(line)) if quiet else echo
    run(begun, device=device, threads=policy, log=log, progress=not quiet, log_every=log_every, force=force,
        budget=budget)


def _located(target: str, need: str = "export"):
    """The one run locator (zoo.store.runs.find) for a command's argument: an export, or a run with a
    resumable state, or a run; a name that chose among several runs says which on stderr."""
    from zoo.store import runs

    found = (runs.export_of(target) if need == "export" else runs.resumable(target)[0] if need == "resume" else
             runs.run_of(target, verb=need))
    if found.picked:
        click.echo(printable(found.picked, newlines=False), err=True)
    return found.path if need == "export" else found.run


@cli.command("resume")
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("-e", "--epochs", type=int, help="extend the run to this many epochs in all")
@click.option("--device", default="auto", show_default=True)
@click.option("--threads", metavar="N", help=f"CPU threads [default: adapt to the machine's load; ${THREADS_ENV}]")
@click.option("-q", "--quiet", is_flag=True, help="no progress bar or per-epoch lines")
@click.option("--max-time", metavar="DURATION", help="a time budget for this session (90s, 20m, 1h30m), as zoo train's")
def resume_command(run_dir, epochs, device, threads, quiet, max_time):
    """Continue a stopped run, or extend a finished one (--epochs).

    Extending keeps the seed stream; a cosine or one-cycle schedule gets a new one of the same kind
    over the added epochs, after the first has ended.
    """
    run = _located(run_dir, "resume")
    info = run.state_info()
    pairs = [f"train.epochs={epochs}"] if epochs is not None else []
    _run_training(info["model"], info["task"], pairs, device=device, out=None, run_dir=run.dir, resume=True,
                  threads=threads, quiet=quiet, log_every=0, max_time=max_time)


@cli.command("runs")
@click.argument("root", required=False, type=click.Path(file_okay=False))
@click.option("--json", "as_json", is_flag=True, help="print JSON instead of a table")
def runs_command(root, as_json):
    """List the runs found under ROOT (default: the runs root, checkpoints)."""
    from zoo.store.runs import RUNS_ROOT, find_runs, summary

    root = root or RUNS_ROOT

    rows = []
    for run in find_runs(root):
        try:
            rows.append(summary(run))
        except ZooError as e:  # one damaged run does not hide the others
            rows.append({"run": str(run.dir), "model": "?", "task": "?", "epochs": "?", "status": "damaged",
                         "metric": "", "best": None, "best_epoch": None, "export": None, "export_metric": None,
                         "export_value": None, "problem": str(e)})
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        raise ZooError(f"no runs in {root}")
    def best(r):  # what the export reports, as zoo eval does; before it exists, the best monitored epoch
        if r.get("export_value") is not None:
            return f"{r['export_metric']} {r['export_value']:.4f} (export)"
        return "" if r["best"] is None else f"{r['metric']} {r['best']:.4f} (epoch {r['best_epoch']})"

    _table([[r["run"], r["model"], r["task"], r["epochs"], r["status"], best(r)] for r in rows],
           ["RUN", "MODEL", "TASK", "EPOCHS", "STATUS", "BEST"])


@cli.command("plot")
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--out", type=click.Path(dir_okay=False), help="the PNG to write [default: RUN_DIR/curves.png]")
def plot_command(run_dir, out):
    """Draw a run's loss and metric curves (matplotlib)."""
    from zoo.store.runs import plot_curves

    run = _located(run_dir, "plot")
    out = out or os.path.join(run.dir, "curves.png")
    plot_curves(run, out)
    click.echo(f"plotted {run.dir} to {out}")


@cli.command("bench")
@click.argument("names", nargs=-1, metavar="MODELS TASKS")
@click.option("--seeds", default="0,1,2", show_default=True, help="seeds to train each pair with, comma-separated")
@click.option("--workers", type=int, help="training processes at a time [default: the CPU cores]")
@click.option("--out", default="results", show_default=True, type=click.Path(), help="the results folder")
@click.option("-o", "--set", "settings", multiple=True, metavar="KEY=VALUE",
              help="a setting for every pair that has it, e.g. -o hidden_size=32 (repeatable)")
@click.option("-e", "--epochs", metavar="N|TASK=N,...", help="the budget: N epochs for every task, or per task")
@click.option("--shard", metavar="I/N", help="run only the I-th of N slices of the grid (I from 0), e.g. a SLURM "
                                               "array's $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT")
@click.option("--merge", is_flag=True, help="join the results folders given instead of MODELS TASKS into --out")
@click.option("--threads", metavar="N", help="CPU threads per worker [default: the cores / --workers]")
@click.option("--plot", is_flag=True, help="also draw each task's metric against train time (summary.png)")
@click.option("--max-time", metavar="DURATION", help="the same time budget for every cell (zoo train --max-time)")
def bench_command(names, seeds, workers, out, settings, epochs, shard, merge, threads, plot, max_time):
    """Train and evaluate every model that fits each task, over seeds, into a results table.

    \b
      zoo bench '*' 'hihello,charlm' --seeds 0,1,2     every cell that fits, 3 seeds
      zoo bench 'lstm*,mycell' stock --epochs 50        a new cell beside the built-ins
      zoo bench '*' '*' --shard 0/4 --out shards/0      one of 4 machines' share
      zoo bench --merge shards/* --out results          join the shards

    MODELS and TASKS are names, comma lists or wildcards. Each (model, task, seed) trains in its own
    process into OUT/runs/ and becomes a row of OUT/results.jsonl; the summary (mean ± std over seeds,
    the best per task in bold) is printed and written to OUT/summary.md. Rerunning skips finished rows
    and resumes stopped runs.
    """
    from zoo.front import bench

    if merge:
        bench.merge(list(names), out, plot=plot, echo=click.echo)
        return
    if len(names) != 2:
        raise ZooError(f"zoo bench takes MODELS and TASKS (or --merge FOLDERS...), got {len(names)} argument"
                       f"{'s' * (len(names) != 1)}")
    bench.bench(names[0], names[1], seeds=seeds, workers=workers, out=out, settings=settings, epochs=epochs,
                shard=shard, plot=plot, threads=threads, max_time=max_time, echo=click.echo)


def _task_overrides(tokens: list[str], settings: tuple[str, ...], task_config: type) -> dict[str, str]:
    pairs = option_pairs(tokens, [task_config]) + list(settings)
    return route_overrides(pairs, {"task": ("the task", task_config)})["task"]


NEGATIVE = re.compile(r"^-\.?\d")  # a negative number, or text that starts with one


class TaskCommand(click.Command):
    """A command about a weights file that also takes the options of the file's task (`zoo predict`)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        path = next((a for a in args if not a.startswith("-")), None)
        ctx.meta["zoo.task"] = task = _task_of(path) if path else None
        if task is None:  # an unreadable file: take any arguments, so that loading it says what is wrong
            ctx.allow_extra_args = ctx.ignore_unknown_options = True
        elif any(NEGATIVE.match(a) for a in args):  # `-0.5` or `-3 2*` is an argument, not an option
            ctx.ignore_unknown_options = True
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
    from zoo.store.exports import read_metadata
    from zoo.store.runs import export_of

    try:
        return registry().tasks.get(read_metadata(export_of(path).path).get("task", ""))
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
@click.option("--threads", metavar="N", help=f"CPU threads [default: adapt to the machine's load; ${THREADS_ENV}]")
def eval_command(weights, task_options, settings, device, as_json, plot, threads):
    """Recompute the metrics of exported weights."""
    from zoo.loop.threads import prepare

    policy = prepare(threads)  # before torch loads: its first choice measures the load meanwhile
    from zoo.store.exports import load, read_card, read_header, read_metadata
    from zoo.loop.data import device_of
    from zoo.loop.inference import evaluate, pick_device

    weights = _located(weights)
    header = read_header(weights)  # once: the card, and the architecture check before loading (None: ONNX)
    task = registry().tasks.get(read_metadata(weights, header).get("task", ""))
    overrides = _task_overrides(list(task_options), settings, task.config) if task is not None else {}
    card = read_card(weights, overrides, header)  # says what is wrong with the file, or which plugin is missing
    missing = {name: path for name, path in card.sources.items() if name not in overrides}
    if missing:
        raise ZooError(f"{weights} was trained on " + " and ".join(f"--{k.replace('_', '-')} {v!r}" for k, v in
                       missing.items()) + "; zoo does not open files a weights file names: give "
                       + " and ".join(f"--{k.replace('_', '-')} PATH" for k in missing) + " to evaluate it")
    net = load(weights, pick_device(device), overrides, header=header, card=card)
    policy.start()  # the evaluation and a backtest's refits follow it
    data = _plugin_call(task, "its data", task.load_data, net.zoo.task_config, net.zoo.meta).to(device_of(net))
    if data.problem != card.problem:  # the file's meta (a vocabulary, say) and its problem disagree
        raise ZooError(f"{weights} has damaged zoo metadata: its meta makes a {data.problem} out of it, but the "
                       f"weights were made for a {card.problem}")
    split = data.report_split
    if plot and task.plot is None:
        raise ZooError(f"task {task.name!r} has no plot")
    metrics = {"split": split, **_plugin_call(task, "the evaluation", evaluate, task, net, data, split)}
    if plot:
        task.plot(net, data, split, plot)
        click.echo(f"plotted {split} predictions to {plot}", err=True)
    if as_json:
        click.echo(json.dumps(metrics, indent=2))
        return
    count = len(data.split(split))
    click.echo(printable(f"{card.model} on {card.task}, {split} split ({count:,} example{'s' * (count != 1)})"))
    if task.format_metrics is not None:
        click.echo(printable(task.format_metrics(metrics)))
        return
    stored = card.metrics if card.metrics.get("split") == split else {}
    width = max(len(k) for k in metrics)
    for key, value in metrics.items():
        if key == "split":
            continue
        shown = f"{value:.4f}" if isinstance(value, float) else str(value)
        then = stored.get(key)
        note = f"  (at export: {then:.4f})" if isinstance(then, float) and isinstance(value, float) else ""
        click.echo(printable(f"  {key:<{width}}  {shown}{note}"))


def _plugin_call(task, what: str, function, *args):
    """Call a task's code on a file's contents; what it cannot take is one line (ZOO_DEBUG=1: the traceback)."""
    try:
        return function(*args)
    except ZooError:
        raise
    except Exception as e:  # the input reached plugin code that could not take it
        from zoo.contract.specs import plugin_failed

        if os.environ.get("ZOO_DEBUG"):
            raise
        raise plugin_failed("task", task.name, task.plugin, what, e) from None


@cli.command("predict", cls=TaskCommand)
@click.argument("weights")
@click.option("--device", default="cpu", show_default=True)
@click.option("--threads", "zoo_threads", metavar="N",
              help=f"CPU threads [default: adapt to the machine's load; ${THREADS_ENV}]")
def predict_command(weights, device, zoo_threads, **options):
    """Run exported weights on new input.

    WEIGHTS is an export or a run folder; the arguments and options depend on its task: `zoo predict
    WEIGHTS --help` shows them.
    """
    from zoo.loop.threads import prepare

    policy = prepare(zoo_threads)  # before torch loads
    from zoo.store.exports import load
    from zoo.loop.inference import pick_device

    net = load(_located(weights), pick_device(device))
    policy.start()
    task = registry().get_task(net.zoo.task)
    if task.predict is None:
        raise ZooError(f"task {task.name!r} does not support zoo predict")
    def show():
        answer = task.predict(net, **options)
        if isinstance(answer, str):
            click.echo(printable(answer))  # vocabulary-made text: escape sequences in it are shown, not obeyed
            return
        for piece in answer:  # an iterator of pieces (generated text): each shown as it comes
            click.echo(printable(str(piece)), nl=False)
            sys.stdout.flush()
        click.echo()

    _plugin_call(task, "that input", show)


@cli.command("export")
@click.argument("source", metavar="RUN|FILE")
@click.option("--format", "fmt", default="safetensors", show_default=True, metavar="safetensors|onnx",
              help="safetensors: a stopped run's export as it stands; onnx: a graph onnxruntime runs without torch, "
                   "the recurrent state in and out (docs/onnx.md)")
@click.option("--out", type=click.Path(dir_okay=False),
              help="the file to write [default: the run's model.safetensors; onnx: the export's, .onnx]")
@click.option("--device", default="auto", show_default=True, help="safetensors: where the run's state is loaded")
@click.option("--threads", metavar="N", help=f"CPU threads [default: adapt to the machine's load; ${THREADS_ENV}]")
@click.option("-q", "--quiet", is_flag=True, help="only the line saying where the export went")
def export_command(source, fmt, out, device, threads, quiet):
    """Export a stopped run as it stands (the default), or a run's or an export's network as ONNX.

    \b
    zoo export RUN                      the run's export from its saved state, without training
                                        further: its best weights so far when it monitors a
                                        validation split, else its weights as they stand; the run
                                        stays resumable (zoo resume RUN)
    zoo export RUN|FILE --format onnx   an ONNX file beside the export (docs/onnx.md)
    """
    if fmt != "safetensors":
        from zoo.loop.threads import prepare

        policy = prepare(threads)  # tracing and checking the graph compute: the same thread policy
        from zoo.store.onnx_export import export

        if fmt == "onnx":
            policy.start()
        click.echo(f"wrote {export(_located(source) if fmt == 'onnx' else source, fmt, out)}")
        return
    from pathlib import Path

    from zoo.loop.clock import Budget

    if Path(source).is_file():
        raise ZooError(f"{source} is a file, not a run: zoo export RUN exports a stopped run (its folder or name) as "
                       f"it stands, and --format onnx converts an export")
    run = _located(source, "resume")
    info = run.state_info()
    if run.in_use():
        raise ZooError(f"{run.dir} is in use by another process (pid {run.locked_by()}): stop it first (Ctrl-C or "
                       f"kill -TERM), then zoo export {run.dir}")
    if info.get("status") == "finished" and run.export_path.is_file():
        raise ZooError(f"the run in {run.dir} has finished and exported {run.export_path} already")
    _run_training(info["model"], info["task"], [], device=device, out=out, run_dir=run.dir, resume=True,
                  threads=threads, quiet=quiet, log_every=0, max_time=Budget(0))


@cli.command("inspect", context_settings={"ignore_unknown_options": True})
@click.argument("weights")
@click.argument("inputs", nargs=-1)
@click.option("--out", type=click.Path(dir_okay=False), help="the page to write [default: NAME-inspect.html here]")
@click.option("--png", type=click.Path(dir_okay=False), help="also draw the main figure (a hidden state) to this PNG")
@click.option("--feature", "features", multiple=True, metavar="NAME|regex:PATTERN",
              help="charlm: rank units by correlation with a feature (quotes, brackets, parentheses, "
                   "bracket-depth, line-position, or regex:PATTERN); repeatable")
@click.option("--beam", type=click.IntRange(min=2), help="translate: also show the beam's alternatives")
@click.option("--count", type=click.IntRange(1, 64), help="how many of the task's own examples [default: the task's]")
@click.option("-o", "--set", "settings", multiple=True, metavar="KEY=VALUE",
              help="change a task setting, e.g. where the data is: -o root=datasets")
@click.option("--device", default="cpu", show_default=True)
@click.option("--threads", metavar="N", help=f"CPU threads [default: adapt to the machine's load; ${THREADS_ENV}]")
def inspect_command(weights, inputs, out, png, features, beam, count, settings, device, threads):
    """Write one self-contained HTML page of what every cell computed, step by step.

    INPUTS are what `zoo predict` takes for the task (a text or a text file, image files, sentences, a
    price file); none: a few examples of the task's own. The task's settings go among them as for zoo
    eval (`--train F --test G`) or with -o. docs/inspect.md describes the views.
    """
    from pathlib import Path

    from zoo.loop.threads import prepare

    policy = prepare(threads)  # the thread policy of every command that computes (issue 23)
    from zoo.front.inspect import inspect
    from zoo.store.exports import read_card

    weights = _located(weights)
    task = registry().get_task(read_card(weights).task)
    policy.start()
    inputs, task_options = _inputs_and_task_options(inputs, task.config)
    overrides = _task_overrides(task_options, settings, task.config)
    options = {k: v for k, v in {"feature": list(features), "beam": beam, "count": count}.items() if v}
    page, size = _plugin_call(task, "the inspection", inspect, weights, inputs, Path(out) if out else None,
                              Path(png) if png else None, options, overrides, device,
                              lambda line: click.echo(line, err=True))
    click.echo(f"wrote {page} ({size / 1e6:.2f} MB){f' and {png}' if png else ''}")


def _inputs_and_task_options(tokens: tuple[str, ...], task_config: type) -> tuple[tuple[str, ...], list[str]]:
    """zoo inspect's INPUTS apart from the task settings among them (`--train F`, `--no-bucket`, `--level=char`),
    which zoo eval takes the same way; an unknown --name is refused by option_pairs, `-1,2` stays an input."""
    flags = {name for name, tp in field_types(task_config).items() if tp is bool}
    inputs, options, i = [], [], 0
    while i < len(tokens):
        token = tokens[i]
        if not token.startswith("--") or token == "--":
            inputs.append(token)
            i += 1
            continue
        key = token[2:].partition("=")[0].replace("-", "_")
        takes_value = "=" not in token and key not in flags and not (key.startswith("no_") and key[3:] in flags)
        options += tokens[i: i + 2] if takes_value else [token]
        i += 2 if takes_value else 1
    return tuple(inputs), options


@cli.command("info")
@click.argument("weights")
@click.option("--json", "as_json", is_flag=True, help="print the card as JSON")
def info_command(weights, as_json):
    """Show what an export says about itself."""
    from zoo.store.checkpoint import missing_plugins, provenance
    from zoo.store.exports import describe

    fields = describe(_located(weights))  # the metadata alone: the plugins need not be installed
    task = registry().tasks.get(fields["task"])
    files = provenance(fields["task_config"], task.config) if task is not None else {}
    if files:
        fields["trained_on"] = files
    if as_json:
        click.echo(json.dumps(fields, indent=2))
        return
    for key, value in fields.items():
        if key not in ("meta", "plugins"):
            click.echo(f"{key:<13} {printable(value, newlines=False) if isinstance(value, str) else json.dumps(value)}")
    made_by = [f"{r['role']} {r['name']}: {r['distribution']} {r['version']}".rstrip() for r in fields["plugins"]]
    click.echo(printable(f"{'plugins':<13} {'; '.join(made_by)}", newlines=False))
    for missing in missing_plugins(fields):
        click.echo(printable(f"{'':<13} not installed: {missing}", newlines=False))


@cli.command("new-plugin")
@click.argument("name")
@click.option("--cell", is_flag=True, help="a recurrent cell (with --task: both; neither: both)")
@click.option("--task", is_flag=True, help="a task")
@click.option("--dir", "where", default=".", type=click.Path(file_okay=False), show_default=True,
              help="the folder to write zoo-NAME/ in")
def new_plugin_command(name, cell, task, where):
    """Write a ready plugin package zoo-NAME: entry point, module, conformance tests."""
    from zoo.front.scaffold import new_plugin

    root = new_plugin(name, cell, task, where)
    click.echo(f"wrote {root}/: pyproject.toml, {root.name.replace('-', '_')}.py, tests/"
               f"\nnext: pip install -e {root} && zoo list {name} && (cd {root} && pytest)")


def _terminate(signum, frame):
    raise Terminated()


_own_process = False  # main() runs zoo as a process of its own (not inside a test's CliRunner)


def _leaving() -> None:
    """zoo is about to exit: a late Ctrl-C (the second of two 10 ms apart, or `timeout -s INT`
    signalling the whole group) must neither print "Exception ignored in atexit callback" nor turn the
    exit status into -2."""
    if _own_process and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)


def main() -> None:
    global _own_process
    _own_process = True
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_IGN:  # an inherited ignore stays
        signal.signal(signal.SIGTERM, _terminate)  # SIGTERM stops zoo the way Ctrl-C does, at any moment
    cli(prog_name="zoo")


if __name__ == "__main__":
    sys.exit(main())
