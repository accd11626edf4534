"""The hooks a zoo plugin may implement. A plugin is a module with `@zoo.hookimpl` functions."""

import pluggy

hookspec = pluggy.HookspecMarker("zoo")
hookimpl = pluggy.HookimplMarker("zoo")


@hookspec
def register_models(register):
    """Register models: call ``register(zoo.Model(...))`` once per model or preset."""


@hookspec
def register_tasks(register):
    """Register tasks: call ``register(zoo.Task(...))`` once per task."""


@hookspec
def register_commands(cli):
    """Add commands to the ``zoo`` command line: ``cli`` is the top-level click group."""
