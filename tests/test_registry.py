"""The registry: built-ins, lookups, wildcards, and what a third-party plugin can get wrong."""

import types

import pytest

import zoo
from conftest import zoo_cli
from zoo.contract.registry import LOAD_ENV, Plugin, Registry, registry


def module_with(**hooks) -> types.ModuleType:
    module = types.ModuleType("throwaway")
    for name, function in hooks.items():
        setattr(module, name, zoo.hookimpl(function))
    return module


def toy_model(name="toy"):
    from zoo_plugins.rnn import make_cell

    return zoo.cell_models(name, "a copy of the RNN", make_cell)[0]


def test_builtins_are_registered_with_their_presets():
    models = {m.name for m in zoo.list_models()}
    for cell in ("rnn", "lstm", "gru"):
        assert {cell, f"{cell}-stacked", f"{cell}-bi"} <= models
    assert {"hihello", "charlm"} <= {t.name for t in zoo.list_tasks()}
    assert zoo.get_model("lstm-stacked").defaults == {"num_layers": 2}
    assert all(m.plugin.startswith("rnn-zoo ") for m in zoo.list_models())


def test_wildcards_filter_names():
    assert [m.name for m in zoo.list_models("lstm*")] == ["lstm", "lstm-bi", "lstm-stacked"]
    assert [m.name for m in zoo.list_models("*-bi")] == ["gru-bi", "lstm-bi", "rnn-bi"]
    assert zoo.list_tasks("nothing*") == []


def test_unknown_names_come_with_suggestions():
    with pytest.raises(zoo.ZooError, match="did you mean 'lstm'"):
        zoo.get_model("lsmt")
    with pytest.raises(zoo.ZooError, match="did you mean 'charlm'"):
        zoo.get_task("charml")


def test_bidirectional_models_only_fit_many_to_one():
    reg = registry()
    charlm = reg.get_task("charlm")
    assert "lstm-bi" not in reg.compatible_models(charlm)
    assert "lstm" in reg.compatible_models(charlm)
    assert zoo.get_model("lstm-bi").supported_shapes() == (zoo.MANY_TO_ONE,)


def test_a_plugin_registered_in_a_fixture_is_listed():
    reg = registry()
    plugin = module_with(register_models=lambda register: register(toy_model()))
    reg.add(plugin, Plugin("toy", "toy-dist", "1.0", False))
    assert reg.get_model("toy").plugin == "toy-dist 1.0"
    assert reg.plugins["toy"].hooks == ["register_models"]


def test_a_name_clash_with_a_built_in_keeps_the_built_in_and_names_both(runner):
    reg = registry()
    plugin = module_with(register_models=lambda register: [register(toy_model("lstm")), register(toy_model("mine"))])
    reg.add(plugin, Plugin("copycat", "cc", "2.0", False))
    assert reg.models["lstm"].plugin.startswith("rnn-zoo ") and reg.models["mine"].plugin == "cc 2.0"
    [warning] = reg.warnings
    assert "'copycat' (cc 2.0)" in warning and "'lstm' skipped" in warning and "zoo_plugins.lstm" in warning
    result = zoo_cli(runner, "list", "lstm")
    assert result.exit_code == 0 and "rnn-zoo" in result.output, result.output


def test_a_name_clash_between_third_parties_says_which_loads_and_how_to_choose():
    reg = registry()
    for name in ("alpha", "beta"):
        reg.add(module_with(register_models=lambda register: register(toy_model("mgu"))),
                Plugin(name, f"{name}-dist", "1.0", False))
    assert reg.models["mgu"].plugin == "alpha-dist 1.0"
    [warning] = reg.warnings
    assert "'beta'" in warning and "'alpha'" in warning and "loads first" in warning and LOAD_ENV in warning
    assert reg.plugins["beta"].problems == [warning.split("): ", 1)[1]]


def test_a_hook_that_raises_is_a_warning_and_the_rest_still_works(capsys):
    reg = registry()

    def register_models(register):
        register(toy_model("half"))
        raise RuntimeError("boom")

    reg.add(module_with(register_models=register_models), Plugin("flaky", "flaky-dist", "0.1", False))
    assert "half" not in reg.models  # all or nothing per plugin
    assert "lstm" in reg.models
    assert "flaky" in capsys.readouterr().err
    assert any("flaky" in w and "boom" in w for w in reg.warnings)


def test_registering_the_wrong_thing_is_a_warning():
    reg = registry()
    reg.add(module_with(register_tasks=lambda register: register("charlm")), Plugin("wrong", "w", "1", False))
    assert set(reg.tasks) >= {"charlm", "hihello"}
    assert any("wrong" in w and "zoo.Task" in w for w in reg.warnings)


def test_a_misspelled_hook_is_reported():
    module = module_with(register_model=lambda register: None)
    reg = Registry(builtins=())
    reg.add(module, Plugin("typo", "typo-dist", "1", False))
    reg._check_hook_names()
    assert any("register_model" in w and "did you mean 'register_models'" in w for w in reg.warnings)


def test_builtins_implement_only_known_hooks():
    assert registry().warnings == []


def test_entry_point_plugins_are_discovered(fake_distribution, adding_source, monkeypatch):
    fake_distribution(adding_source)
    monkeypatch.setenv(LOAD_ENV, "adding")
    reg = Registry()
    assert reg.plugins["adding"].distribution == "zoo-adding"
    assert reg.get_task("adding").plugin == "zoo-adding 0.1.0"
    assert "lstm" in reg.compatible_models(reg.get_task("adding"))


def test_entry_points_can_be_switched_off(fake_distribution, adding_source, monkeypatch):
    fake_distribution(adding_source)
    monkeypatch.setenv(LOAD_ENV, "")
    assert "adding" not in Registry().tasks
    monkeypatch.delenv(LOAD_ENV)
    assert "adding" in Registry().tasks  # unset: everything installed loads


def test_a_plugin_that_fails_to_import_is_a_warning(fake_distribution, monkeypatch):
    fake_distribution("raise ImportError('needs a missing package')\n", module="broken_plugin", entry="broken",
                      dist="broken_plugin")
    monkeypatch.setenv(LOAD_ENV, "broken")
    reg = Registry()
    assert not reg.plugins["broken"].loaded
    assert any("'broken'" in w and "broken-plugin 0.1.0" in w and "missing package" in w for w in reg.warnings)
    assert "lstm" in reg.models
