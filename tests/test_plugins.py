"""Plugins: the registry (built-ins, lookups, wildcards, name clashes, what a third-party plugin can
get wrong), entry-point discovery of an installed distribution, and the example plugins.

Faults a plugin cannot take zoo down with: test_plugin_faults.py; `zoo new-plugin`: test_scaffold.py;
the declared API: test_plugin_api.py; the contract as checks: test_conformance.py.
"""

import os
import re
import subprocess
import sys
import types

import pytest

import zoo
from conftest import EXAMPLE, ROOT, one_line_error, zoo_cli
from zoo.contract.registry import LOAD_ENV, Plugin, Registry, registry, reset


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


def test_example_plugin_trains_evaluates_and_loads(fake_distribution, adding_source, monkeypatch, runner, tmp_path):
    fake_distribution(adding_source)
    monkeypatch.setenv(LOAD_ENV, "adding")
    listed = zoo_cli(runner, "list", "add*")
    assert "adding" in listed.output and "zoo-adding 0.1.0" in listed.output
    out = tmp_path / "adding.safetensors"
    result = zoo_cli(runner, "train", "gru", "adding", "--samples", "200", "--length", "8", "-e", "2", "--out", out)
    assert result.exit_code == 0, result.output
    assert "final (test split): mse" in result.output
    result = zoo_cli(runner, "eval", out)
    assert result.exit_code == 0 and "mse" in result.output, result.output
    result = zoo_cli(runner, "predict", out, "0.5* 0.1 0.25* 0.3")
    assert result.exit_code == 0 and re.fullmatch(r"-?\d+\.\d{3}\n", result.output), result.output
    result = zoo_cli(runner, "predict", out, "-0.5* 0.1 -0.25* 0.3")  # a negative number is not an option
    assert result.exit_code == 0 and re.fullmatch(r"-?\d+\.\d{3}\n", result.output), result.output
    assert "No such option" in zoo_cli(runner, "predict", out, "--nonsense", "1").output
    assert zoo.load(out).zoo.task_config.samples == 200
    # the same file, with the plugin switched off: one clear line
    monkeypatch.setenv(LOAD_ENV, "")
    from zoo.contract.registry import reset

    reset()
    assert "which no installed plugin provides" in one_line_error(zoo_cli(runner, "eval", out))


def test_zoo_list_in_a_new_process_finds_the_plugin(fake_distribution, adding_source):
    site = fake_distribution(adding_source)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    env.pop(LOAD_ENV, None)
    command = [sys.executable, "-m", "zoo", "list", "adding"]
    shown = subprocess.run(command, capture_output=True, text=True, env=env)
    assert shown.returncode == 0, shown.stderr
    assert "zoo-adding 0.1.0" in shown.stdout
    hidden = subprocess.run(command, capture_output=True, text=True, env={**env, LOAD_ENV: ""})
    assert hidden.returncode == 1 and "no model or task matches 'adding'" in hidden.stderr


def test_plugin_docs_show_the_example_plugins_verbatim():
    readme = (ROOT / "docs" / "plugins.md").read_text()
    for example, name in ((EXAMPLE, "zoo_adding.py"), (EXAMPLE, "pyproject.toml"),
                          (EXAMPLE.parent / "zoo-mgu", "zoo_mgu.py"), (EXAMPLE.parent / "zoo-mgu", "pyproject.toml")):
        assert (example / name).read_text().strip() in readme, f"docs' copy of {example.name}/{name} is out of date"


EXAMPLES = ROOT / "examples"
MGU = EXAMPLES / "zoo-mgu"


@pytest.mark.parametrize("example", ["zoo-adding", "zoo-mgu"])
def test_the_examples_own_tests_pass(example):
    folder = EXAMPLES / example
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(folder), os.environ.get("PYTHONPATH", "")]),
           LOAD_ENV: ""}
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"], cwd=folder,
                            capture_output=True, text=True, env=env)
    assert result.returncode == 0 and " passed" in result.stdout, result.stdout + result.stderr


def test_the_mgu_presets_are_real(mgu_installed):
    from zoo.nn.layers import Layers

    problem = zoo.Problem(zoo.MANY_TO_ONE, output_size=2, input_size=3)
    for name, cells in (("mgu", None), ("mgu-stacked", 2), ("mgu-bi", 2)):
        spec = zoo.get_model(name)
        net = spec.build(spec.config(**spec.defaults), problem)
        assert (cells is None and not isinstance(net.rnn, Layers)) or len(net.rnn.cells) == cells


def test_mgu_trains_on_tasks_and_inside_seq2seq_then_loads(mgu_installed, runner, tmp_path, monkeypatch):
    out = tmp_path / "mgu.safetensors"
    result = zoo_cli(runner, "train", "mgu-bi", "stock", "--data", _prices(tmp_path), "-e", 2, "--out", out, "-q")
    assert result.exit_code == 0, result.output
    assert zoo.load(out).zoo.model_config.bidirectional
    translator = tmp_path / "translate.safetensors"
    result = zoo_cli(runner, "train", "seq2seq", "translate", "--cell", "mgu", "--num-layers", 2, "--attention",
                     "luong", "-e", 3, "--out", translator, "-q")
    assert result.exit_code == 0, result.output
    assert zoo_cli(runner, "predict", translator, "i feel hungry.").exit_code == 0
    monkeypatch.setenv(LOAD_ENV, "")  # the cell's plugin gone: one line
    reset()
    assert one_line_error(zoo_cli(runner, "eval", out))


def _prices(tmp_path):
    from conftest import write_course_prices

    return write_course_prices(tmp_path / "prices.csv", days=40)
