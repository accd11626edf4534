"""Plugins cannot take zoo down: every fault is one warning line naming the plugin, and zoo goes on."""

import signal

import pytest

import zoo
from conftest import zoo_cli
from zoo.contract.registry import DEBUG_ENV, LOAD_ENV, Registry, registry

MGU = "mgu"


def plugin_source(body: str) -> str:
    return "import sys\nimport zoo\n\n" + body


def load(fake_distribution, monkeypatch, body: str) -> Registry:
    fake_distribution(plugin_source(body), module="broken_plugin", entry="broken", dist="broken_plugin")
    monkeypatch.setenv(LOAD_ENV, "broken")
    reg = Registry()
    _ = reg.models, reg.tasks  # run the hooks
    return reg


def only_warning(reg: Registry) -> str:
    assert len(reg.warnings) == 1, reg.warnings
    assert "\n" not in reg.warnings[0]
    assert "'broken'" in reg.warnings[0]
    return reg.warnings[0]


@pytest.mark.parametrize("body,says", [
    ("sys.exit(3)\n", "SystemExit: 3"),
    ("raise KeyboardInterrupt\n", "KeyboardInterrupt"),
    ("@zoo.hookimpl\ndef register_models(register):\n    sys.exit('bye')\n", "SystemExit: bye"),
    ("@zoo.hookimpl\ndef register_tasks(register):\n    raise KeyboardInterrupt\n", "KeyboardInterrupt"),
    ("@zoo.hookimpl\ndef register_commands(cli):\n    raise SystemExit(2)\n", "SystemExit: 2"),
])
def test_exits_and_interrupts_from_a_plugin_do_not_end_zoo(body, says, fake_distribution, monkeypatch, runner):
    reg = load(fake_distribution, monkeypatch, body)
    if "register_commands" not in body:  # commands are added by the command line only
        assert says in only_warning(reg)
    assert "lstm" in reg.models and "hihello" in reg.tasks
    monkeypatch.setattr(zoo.contract.registry, "_registry", reg)
    result = zoo_cli(runner, "plugins")
    assert result.exit_code == 0, result.output
    row = next(line for line in result.output.splitlines() if line.startswith("broken "))
    assert says in row and ("FAILED" in row or "failed in" in row)


def test_a_real_ctrl_c_while_a_plugin_runs_still_stops_zoo(fake_distribution, monkeypatch):
    body = "import os, signal\nos.kill(os.getpid(), signal.SIGINT)\n"
    fake_distribution(plugin_source(body), module="broken_plugin", entry="broken", dist="broken_plugin")
    monkeypatch.setenv(LOAD_ENV, "broken")
    with pytest.raises(KeyboardInterrupt):
        Registry()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handler is put back


def test_a_plugins_own_interrupt_under_an_ignored_sigint_does_not_end_zoo(fake_distribution, monkeypatch):
    """A background job inherits SIGINT ignored: no Ctrl-C can arrive, so a KeyboardInterrupt is the plugin's."""
    before = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        reg = load(fake_distribution, monkeypatch, "raise KeyboardInterrupt\n")
    finally:
        signal.signal(signal.SIGINT, before)
    assert "KeyboardInterrupt" in only_warning(reg) and "lstm" in reg.models


def test_a_real_sigterm_while_a_plugin_runs_still_stops_zoo(fake_distribution, monkeypatch):
    from zoo.front.cli import _terminate
    from zoo.contract.specs import Terminated

    body = "import os, signal\nos.kill(os.getpid(), signal.SIGTERM)\n"
    fake_distribution(plugin_source(body), module="broken_plugin", entry="broken", dist="broken_plugin")
    monkeypatch.setenv(LOAD_ENV, "broken")
    previous = signal.signal(signal.SIGTERM, _terminate)  # as zoo's command line sets it
    try:
        with pytest.raises(Terminated):
            Registry()
        assert signal.getsignal(signal.SIGTERM) is _terminate
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_zoo_debug_adds_the_traceback(fake_distribution, monkeypatch, capsys):
    body = "@zoo.hookimpl\ndef register_models(register):\n    raise RuntimeError('deep down')\n"
    monkeypatch.setenv(DEBUG_ENV, "")
    reg = load(fake_distribution, monkeypatch, body)
    err = capsys.readouterr().err
    assert "Traceback" not in err and f"{DEBUG_ENV}=1" in err and "deep down" in only_warning(reg)
    monkeypatch.setenv(DEBUG_ENV, "1")
    _ = Registry().models
    err = capsys.readouterr().err
    assert "Traceback" in err and "raise RuntimeError('deep down')" in err


def test_unknown_names_in_zoo_load_plugins_are_a_warning(monkeypatch):
    monkeypatch.setenv(LOAD_ENV, "nosuchplugin,other")
    reg = Registry()
    [warning] = reg.warnings
    assert LOAD_ENV in warning and "'nosuchplugin', 'other'" in warning


def test_an_undecorated_register_function_is_a_warning(fake_distribution, monkeypatch):
    reg = load(fake_distribution, monkeypatch, "def register_models(register):\n    pass\n")
    assert "register_models lacks @zoo.hookimpl" in only_warning(reg)
    assert reg.plugins["broken"].loaded


def test_a_hook_with_a_wrong_argument_name_is_one_line(fake_distribution, monkeypatch):
    reg = load(fake_distribution, monkeypatch, "@zoo.hookimpl\ndef register_models(reg):\n    pass\n")
    warning = only_warning(reg)
    assert "register_models(reg)" in warning and "'register'" in warning
    assert not reg.plugins["broken"].loaded


@pytest.mark.parametrize("name", ["My Cell", "MGU", "mgu cell", ""])
def test_a_model_name_with_capitals_or_spaces_is_one_line(name, fake_distribution, monkeypatch):
    body = ("from zoo_plugins.gru import make_cell\n\n@zoo.hookimpl\ndef register_models(register):\n"
            f"    register(zoo.Model({name!r}, 'x', build=None, cell=make_cell))\n")
    reg = load(fake_distribution, monkeypatch, body)
    assert f"model name {name!r} is not valid" in only_warning(reg)


def test_a_task_with_an_unknown_shape_is_one_line(fake_distribution, monkeypatch):
    body = ("@zoo.hookimpl\ndef register_tasks(register):\n"
            "    register(zoo.Task('odd', 'x', shape='one-to-many', data=None, evaluate=None))\n")
    reg = load(fake_distribution, monkeypatch, body)
    assert "unknown shape 'one-to-many'" in only_warning(reg)


def test_zoo_plugins_marks_a_failed_hook(runner):
    import types

    module = types.ModuleType("flaky")
    module.register_tasks = zoo.hookimpl(lambda register: 1 / 0)
    registry().add(module, zoo.contract.registry.Plugin("flaky", "flaky-dist", "0.1", False))
    result = zoo_cli(runner, "plugins")
    assert result.exit_code == 0
    row = next(line for line in result.output.splitlines() if line.startswith("flaky "))
    assert "failed in register_tasks: ZeroDivisionError: division by zero" in row
    assert all(line.rstrip().endswith("ok") for line in result.output.splitlines() if "built-in" in line)
