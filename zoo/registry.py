"""The plugin manager: built-in plugins, then the `zoo` entry-point group; lookups by name and pattern.

Each plugin is loaded and called on its own, so a broken one becomes a warning naming it and the
rest keep working. Set ZOO_LOAD_PLUGINS to choose which installed plugins load: unset loads all,
an empty value loads none (the tests do that), `a,b` loads the entry points named a and b.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import importlib
import importlib.metadata
import os
import re
import sys
from dataclasses import dataclass, field
from typing import Any, Callable

import pluggy

from zoo import hookspecs
from zoo.config import suggest
from zoo.specs import Model, Task, ZooError

ENTRY_POINT_GROUP = "zoo"
LOAD_ENV = "ZOO_LOAD_PLUGINS"
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
)
NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$")


@dataclass
class Plugin:
    """A loaded plugin and where it came from."""

    name: str  # the module for built-ins, the entry-point name for the rest
    distribution: str
    version: str
    builtin: bool
    hooks: list[str] = field(default_factory=list)

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
        """Register a plugin module (tests use this for throwaway plugins)."""
        self.pm.register(module, name=plugin.name)
        plugin.hooks = sorted(caller.name for caller in self.pm.get_hookcallers(module) or [])
        self.plugins[plugin.name] = plugin
        self._models = self._tasks = None

    def _warn(self, message: str) -> None:
        self.warnings.append(message)
        print(f"zoo: warning: {message}", file=sys.stderr)

    def _load_entry_points(self) -> None:
        chosen = os.environ.get(LOAD_ENV)
        allowed = None if chosen is None else {n.strip() for n in chosen.split(",") if n.strip()}
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            if allowed is not None and ep.name not in allowed:
                continue
            dist = ep.dist.name if ep.dist else "unknown"
            version = ep.dist.version if ep.dist else "?"
            if ep.name in self.plugins:
                self._warn(f"plugin {ep.name!r} ({dist} {version}) skipped: a plugin of that name is already loaded")
                continue
            try:
                self.add(ep.load(), Plugin(ep.name, dist, version, builtin=False))
            except Exception as e:  # a broken plugin must not take zoo down with it
                self._warn(f"plugin {ep.name!r} ({dist} {version}) failed to load: {type(e).__name__}: {e}")

    def _check_hook_names(self) -> None:
        """A misspelled hook would silently never run; say so, naming the plugin."""
        known = [name for name in dir(hookspecs) if name.startswith("register_")]
        for hook_name, caller in vars(self.pm.hook).items():
            if hook_name.startswith("_") or caller.has_spec():
                continue
            for impl in caller.get_hookimpls():
                self._warn(f"plugin {impl.plugin_name!r} implements {hook_name!r}, which is not a zoo hook"
                           f"{suggest(hook_name, known)}")

    def run_hook(self, hook: str, kwargs_for: Callable[[Plugin], dict]) -> list[Plugin]:
        """Call each plugin's implementation on its own; one that raises becomes a warning naming it.

        Returns the plugins whose implementation ran to the end.
        """
        completed = []
        for impl in getattr(self.pm.hook, hook).get_hookimpls():
            plugin = self.plugins[impl.plugin_name]
            kwargs = kwargs_for(plugin)
            try:
                impl.function(**{arg: kwargs[arg] for arg in impl.argnames})
            except Exception as e:  # a broken plugin must not take the others down
                self._warn(f"plugin {plugin.name!r} ({plugin.provider}) failed in {hook}: {type(e).__name__}: {e}")
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
                if not NAME.match(spec.name):
                    raise ValueError(f"{spec.name!r} is not a valid name (lowercase letters, digits, . _ -)")
                pending[plugin.name].append(spec)

            pending[plugin.name] = []
            return {"register": register}

        found: dict[str, Any] = {}
        owner: dict[str, Plugin] = {}
        for plugin in self.run_hook(hook, kwargs_for):
            for spec in pending[plugin.name]:
                if spec.name in found:
                    first = owner[spec.name]
                    raise ZooError(f"{kind.__name__.lower()} {spec.name!r} is registered twice: by plugin "
                                   f"{first.name!r} ({first.provider}) and by plugin {plugin.name!r} "
                                   f"({plugin.provider}); uninstall one, or choose plugins with {LOAD_ENV}")
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
