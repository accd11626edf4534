"""The plugin manager: built-in plugins, then the `zoo` entry-point group; lookups by name and pattern.

Plugins cannot take zoo down. Each is loaded and called on its own, so a broken one (an import
error, a hook that raises, even one that calls sys.exit()) becomes one warning line naming it, is
marked in `zoo plugins`, and the rest keep working; ZOO_DEBUG=1 adds the traceback. A name a
built-in has stays the built-in's; two third parties registering one name: the first entry point
in name order keeps it, with a warning saying how to choose. Set ZOO_LOAD_PLUGINS to choose which
installed plugins load: unset loads all, an empty value loads none (the tests do that), `a,b` loads
the entry points named a and b.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import importlib
import importlib.metadata
import inspect
import os
import re
import signal
import sys
import threading
import time
import traceback
from contextlib import contextmanager, redirect_stdout
from dataclasses import dataclass, field
from typing import Any, Callable

import pluggy

from zoo import hookspecs
from zoo.contract.config import suggest
from zoo.contract.specs import Model, Task, ZooError
from zoo.store.display import printable

ENTRY_POINT_GROUP = "zoo"
LOAD_ENV = "ZOO_LOAD_PLUGINS"
DEBUG_ENV = "ZOO_DEBUG"  # set to 1: a plugin's failure also prints its full traceback
DISTRIBUTION = "rnn-zoo"  # the distribution that ships zoo and its built-in plugins
BUILTIN_PLUGINS = (
    "zoo_plugins.rnn",
    "zoo_plugins.lstm",
    "zoo_plugins.gru",
    "zoo_plugins.hihello",
    "zoo_plugins.charlm",
    "zoo_plugins.mnist",
    "zoo_plugins.stock",
    "zoo_plugins.seq2seq",
    "zoo_plugins.translate",
    "zoo_plugins.sequences",
)
NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$")


def error_line(error: BaseException) -> str:
    """An exception as one line: its type and the first line of its message."""
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__


SLOW_PLUGIN_SECONDS = 2.0  # a plugin's import or hook running longer is named on stderr while it runs


def _say_slow(doing: str, started: float) -> None:
    print(f"zoo: {printable(doing, newlines=False)} has taken {time.monotonic() - started:.0f} s so far "
          f"({LOAD_ENV} chooses which plugins load)", file=sys.stderr, flush=True)


@contextmanager
def plugin_code(doing: str | None = None):
    """Run plugin code so that nothing it raises ends zoo, except a real Ctrl-C or SIGTERM.

    sys.exit(), SystemExit and a KeyboardInterrupt the plugin raises itself come out as
    `PluginFailure`; a signal that arrives meanwhile is told apart by a handler that notes it and
    then does what the handler before it did (zoo's command line turns SIGTERM into `Terminated`).
    What the plugin prints goes to stderr: stdout is the command's own (`zoo list --json | jq`).
    When it runs past SLOW_PLUGIN_SECONDS, `doing` ("plugin 'x' (dist 1.0) loading") is said on stderr.
    """
    real: list[int] = []
    replaced = {}
    # off the main thread no handler can be set, so a KeyboardInterrupt cannot be told apart; on it,
    # one that no handler noted is the plugin's own (an ignored SIGINT raises nothing)
    tellable = threading.current_thread() is threading.main_thread()
    if tellable:
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous = signal.getsignal(signum)
            if (signum == signal.SIGTERM and not callable(previous)) or previous is signal.SIG_IGN:
                continue  # the default kills the process, an inherited ignore stays: nothing to tell apart

            def on_signal(number, frame, previous=previous):
                real.append(number)
                if callable(previous):
                    previous(number, frame)
                raise KeyboardInterrupt

            replaced[signum] = previous
            signal.signal(signum, on_signal)
    timer = threading.Timer(SLOW_PLUGIN_SECONDS, _say_slow, (doing, time.monotonic())) if doing else None
    if timer is not None:
        timer.daemon = True
        timer.start()
    try:
        with redirect_stdout(sys.stderr):
            yield
    except KeyboardInterrupt as e:
        if real or not tellable:  # the user's signal (or no way to tell it apart): honour it
            raise
        raise PluginFailure(e) from e
    except (Exception, SystemExit, GeneratorExit) as e:
        raise PluginFailure(e) from e
    finally:
        if timer is not None:
            timer.cancel()
        for signum, previous in replaced.items():
            signal.signal(signum, previous)


class PluginFailure(Exception):
    """Whatever a plugin raised, wrapped so that the registry can report it and go on."""

    def __init__(self, error: BaseException):
        super().__init__(error_line(error))
        self.error = error


@dataclass
class Plugin:
    """A loaded plugin and where it came from."""

    name: str  # the module for built-ins, the entry-point name for the rest
    distribution: str
    version: str
    builtin: bool
    hooks: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # one line each: what failed or was skipped
    loaded: bool = True  # False: it failed to load, or was refused; it contributes nothing

    @property
    def status(self) -> str:
        return "; ".join(self.problems) if self.problems else "ok"

    @property
    def provider(self) -> str:
        return f"{self.distribution} {self.version}"


def _own_version() -> str:
    try:
        return importlib.metadata.version(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        from zoo import __version__

        return __version__


class Registry:
    """Loads the plugins once; collects their models and tasks the first time they are asked for."""

    def __init__(self, builtins: tuple[str, ...] = BUILTIN_PLUGINS, entry_points: bool = True):
        self.pm = pluggy.PluginManager("zoo")
        self.pm.add_hookspecs(hookspecs)
        self.plugins: dict[str, Plugin] = {}
        self.warnings: list[str] = []
        self._models: dict[str, Model] | None = None
        self._tasks: dict[str, Task] | None = None
        version = _own_version()
        for module in builtins:
            self.add(importlib.import_module(module), Plugin(module, DISTRIBUTION, version, builtin=True))
        if entry_points:
            self._load_entry_points()
        self._check_hook_names()

    # -- loading -------------------------------------------------------------------------------
    def add(self, module: Any, plugin: Plugin) -> None:
        """Register a plugin module (tests use this for throwaway plugins).

        Hooks whose arguments zoo does not pass refuse the plugin; undecorated `register_*`
        functions are reported, since zoo would never call them.
        """
        self.plugins[plugin.name] = plugin
        self._models = self._tasks = None
        for name, function in vars(module).items():
            if (name.startswith("register_") and inspect.isfunction(function)
                    and getattr(function, "__module__", None) == getattr(module, "__name__", None)
                    and not hasattr(function, "zoo_impl")):
                self._problem(plugin, f"{name} lacks @zoo.hookimpl, so zoo never calls it")
        wrong = self._wrong_arguments(module)
        if wrong:
            self._problem(plugin, wrong)
            plugin.loaded = False
            return
        try:
            self.pm.register(module, name=plugin.name)
        except Exception as e:  # pluggy's own validation, in one line
            self._problem(plugin, f"not registered: {error_line(e)}", e)
            plugin.loaded = False
            return
        plugin.hooks = sorted(caller.name for caller in self.pm.get_hookcallers(module) or [])

    @staticmethod
    def _wrong_arguments(module: Any) -> str:
        """Say which hook takes arguments zoo does not pass (pluggy would refuse it in many lines)."""
        for name, function in vars(module).items():
            spec = getattr(hookspecs, name, None)
            if not (hasattr(function, "zoo_impl") and callable(spec) and hasattr(spec, "zoo_spec")):
                continue
            expected = list(inspect.signature(spec).parameters)
            try:
                given = [n for n, p in inspect.signature(function).parameters.items() if p.default is p.empty]
            except (TypeError, ValueError):
                continue
            unknown = [n for n in given if n not in expected]
            if unknown:
                return (f"{name}({', '.join(given)}) takes {', '.join(map(repr, unknown))}, which zoo does not "
                        f"pass: its argument is named {', '.join(map(repr, expected))}; the plugin is not loaded")
        return ""

    def _warn(self, message: str, error: BaseException | None = None) -> None:
        self.warnings.append(message)
        print(f"zoo: warning: {printable(message, newlines=False)}", file=sys.stderr)
        if error is not None and os.environ.get(DEBUG_ENV):
            traceback.print_exception(type(error), error, error.__traceback__, file=sys.stderr)

    def _problem(self, plugin: Plugin, problem: str, error: BaseException | None = None) -> None:
        """One warning line naming the plugin, kept for `zoo plugins`; said once, however often the hooks run."""
        if problem in plugin.problems:
            return
        plugin.problems.append(problem)
        hint = f" (set {DEBUG_ENV}=1 for the traceback)" if error is not None and not os.environ.get(DEBUG_ENV) else ""
        self._warn(f"plugin {plugin.name!r} ({plugin.provider}): {problem}{hint}", error)

    def _load_entry_points(self) -> None:
        chosen = os.environ.get(LOAD_ENV)
        allowed = None if chosen is None else {n.strip() for n in chosen.split(",") if n.strip()}
        # name order, so that which of two clashing plugins keeps a name does not depend on install order
        found = sorted(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: ep.name)
        for ep in found:
            if allowed is not None and ep.name not in allowed:
                continue
            dist = ep.dist.name if ep.dist else "unknown"
            version = ep.dist.version if ep.dist else "?"
            plugin = Plugin(ep.name, dist, version, builtin=False)
            if ep.name in self.plugins:
                self._warn(f"plugin {ep.name!r} ({dist} {version}) skipped: a plugin of that name is already loaded "
                           f"({self.plugins[ep.name].provider})")
                continue
            try:
                with plugin_code(f"loading plugin {ep.name!r} ({dist} {version})"):  # a broken plugin must not
                    module = ep.load()  # take zoo down with it
            except PluginFailure as e:
                self.plugins[ep.name] = plugin
                plugin.loaded = False
                self._problem(plugin, f"failed to load: {e}", e.error)
                continue
            self.add(module, plugin)
        if allowed:
            unknown = sorted(allowed - {ep.name for ep in found})
            if unknown:
                names = ", ".join(sorted({ep.name for ep in found})) or "none"
                self._warn(f"{LOAD_ENV} names {', '.join(map(repr, unknown))}, which no installed distribution "
                           f"provides (installed zoo plugins: {names})")

    def _check_hook_names(self) -> None:
        """A misspelled hook would silently never run; say so, naming the plugin."""
        known = [name for name in dir(hookspecs) if name.startswith("register_")]
        for hook_name, caller in vars(self.pm.hook).items():
            if hook_name.startswith("_") or caller.has_spec():
                continue
            for impl in caller.get_hookimpls():
                self._problem(self.plugins[impl.plugin_name],
                              f"implements {hook_name!r}, which is not a zoo hook{suggest(hook_name, known)}")

    def run_hook(self, hook: str, kwargs_for: Callable[[Plugin], dict]) -> list[Plugin]:
        """Call each plugin's implementation on its own; one that raises becomes a warning naming it.

        Returns the plugins whose implementation ran to the end.
        """
        completed = []
        for impl in getattr(self.pm.hook, hook).get_hookimpls():
            plugin = self.plugins[impl.plugin_name]
            kwargs = kwargs_for(plugin)
            try:
                with plugin_code(f"{hook} of plugin {plugin.name!r} ({plugin.provider})"):  # a broken plugin
                    # must not take the others down
                    impl.function(**{arg: kwargs[arg] for arg in impl.argnames})
            except PluginFailure as e:
                self._problem(plugin, f"failed in {hook}: {e}", e.error)
            else:
                completed.append(plugin)
        return completed

    def _collect(self, hook: str, kind: type) -> dict[str, Any]:
        """Gather what each plugin registers; a plugin whose hook fails contributes nothing."""
        pending: dict[str, list[Any]] = {}

        def kwargs_for(plugin: Plugin) -> dict:
            def register(spec: Any) -> None:
                if not isinstance(spec, kind):
                    raise TypeError(f"register() takes zoo.{kind.__name__} objects, got {type(spec).__name__}")
                if not isinstance(spec.name, str) or not NAME.match(spec.name):
                    raise ValueError(f"{kind.__name__.lower()} name {spec.name!r} is not valid: use lowercase "
                                     f"letters, digits, '.', '_' and '-', starting with a letter or digit")
                pending[plugin.name].append(spec)

            pending[plugin.name] = []
            return {"register": register}

        found: dict[str, Any] = {}
        owner: dict[str, Plugin] = {}
        what = kind.__name__.lower()
        for plugin in self.run_hook(hook, kwargs_for):
            for spec in pending[plugin.name]:
                first = owner.get(spec.name)
                if first is not None:  # built-ins load first, third parties in entry-point name order
                    if first.builtin:
                        self._problem(plugin, f"{what} {spec.name!r} skipped: the built-in {what} of that name "
                                              f"(plugin {first.name!r}, {first.provider}) keeps it")
                    else:
                        self._problem(plugin, f"{what} {spec.name!r} skipped: plugin {first.name!r} "
                                              f"({first.provider}) registers it too and loads first; to use "
                                              f"{plugin.name!r}'s, leave {first.name!r} out of {LOAD_ENV} "
                                              f"(a comma-separated list of the plugins to load)")
                    continue
                found[spec.name] = dataclasses.replace(spec, plugin=plugin.provider)
                owner[spec.name] = plugin
        return dict(sorted(found.items()))

    # -- lookups -------------------------------------------------------------------------------
    @property
    def models(self) -> dict[str, Model]:
        if self._models is None:
            self._models = self._collect("register_models", Model)
        return self._models

    @property
    def tasks(self) -> dict[str, Task]:
        if self._tasks is None:
            self._tasks = self._collect("register_tasks", Task)
        return self._tasks

    def get_model(self, name: str) -> Model:
        if name not in self.models:
            raise ZooError(f"unknown model {name!r}{suggest(name, self.models)} (`zoo list` shows all models)")
        return self.models[name]

    def get_task(self, name: str) -> Task:
        if name not in self.tasks:
            raise ZooError(f"unknown task {name!r}{suggest(name, self.tasks)} (`zoo list` shows all tasks)")
        return self.tasks[name]

    def compatible_models(self, task: Task) -> list[str]:
        return [name for name, model in self.models.items() if task.shape in model.supported_shapes()]

    def compatible_tasks(self, model: Model) -> list[str]:
        shapes = model.supported_shapes()
        return [name for name, task in self.tasks.items() if task.shape in shapes]


def matching(names: Any, pattern: str | None) -> list[str]:
    """Names that match a shell-style wildcard pattern such as `lstm*` (all names when None)."""
    return [n for n in names if pattern is None or fnmatch.fnmatchcase(n, pattern)]


_registry: Registry | None = None


def registry() -> Registry:
    """The process-wide registry, loaded on first use."""
    global _registry
    if _registry is None:
        _registry = Registry()
    return _registry


def reset() -> None:
    """Forget the loaded plugins, so the next lookup loads them again (tests, ZOO_LOAD_PLUGINS changes)."""
    global _registry
    _registry = None
