"""`zoo new-plugin`: the package it writes installs (a real pip build, into a folder of its own) and its
own tests, the conformance kit, pass unchanged."""

import os
import subprocess
import sys

import pytest

import zoo.testing
from conftest import one_line_error, zoo_cli
from zoo.contract.registry import LOAD_ENV


def test_a_new_plugin_installs_and_passes_its_own_tests(runner, tmp_path):
    result = zoo_cli(runner, "new-plugin", "elman", "--dir", tmp_path)
    assert result.exit_code == 0, result.output
    package, site = tmp_path / "zoo-elman", tmp_path / "site"
    assert {p.name for p in package.iterdir()} == {"pyproject.toml", "zoo_elman.py", "tests", "README.md"}
    # a real build from its pyproject.toml, offline, into a folder of its own: the venv stays as it was
    install = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                              "--no-index", "--target", str(site), str(package)], capture_output=True, text=True)
    assert install.returncode == 0, install.stderr
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    env.pop(LOAD_ENV, None)  # every installed plugin loads, the new one found through its entry point
    listed = subprocess.run([sys.executable, "-m", "zoo", "list", "elman"], capture_output=True, text=True, env=env)
    assert listed.returncode == 0 and listed.stdout.count("zoo-elman 0.1.0") == 2, listed.stdout + listed.stderr
    lazy = "import sys, zoo_elman; assert 'torch' not in sys.modules"  # torch only inside its functions
    assert subprocess.run([sys.executable, "-c", lazy], env=env).returncode == 0
    tests = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=package,
                           capture_output=True, text=True, env=env)
    # a test item per check; two do not apply to its task of equal-length many-to-one sequences (the seq2seq
    # and the variable-length padding checks): skipped
    items = len(zoo.testing.CELL_CHECKS) + len(zoo.testing.TASK_CHECKS)
    assert tests.returncode == 0 and f"{items - 2} passed, 2 skipped" in tests.stdout, tests.stdout + tests.stderr


@pytest.mark.parametrize("flag,has,lacks", [("--cell", "make_cell", "TASK"), ("--task", "TASK", "make_cell")])
def test_one_kind_only(flag, has, lacks, runner, tmp_path):
    assert zoo_cli(runner, "new-plugin", "solo", flag, "--dir", tmp_path).exit_code == 0
    source = (tmp_path / "zoo-solo" / "zoo_solo.py").read_text()
    compile(source, "zoo_solo.py", "exec")
    tests = (tmp_path / "zoo-solo" / "tests" / "test_zoo_solo.py").read_text()
    assert has in source and has in tests and lacks not in source and lacks not in tests


@pytest.mark.parametrize("name,says", [("Bad Name", "is not valid"), ("9lives", "is not valid")])
def test_a_bad_name_is_one_line(name, says, runner, tmp_path):
    assert says in one_line_error(zoo_cli(runner, "new-plugin", name, "--dir", tmp_path))
    assert list(tmp_path.iterdir()) == []


def test_an_existing_folder_is_left_alone(runner, tmp_path):
    (tmp_path / "zoo-elman").mkdir()
    assert "exists already" in one_line_error(zoo_cli(runner, "new-plugin", "elman", "--dir", tmp_path))
    assert list((tmp_path / "zoo-elman").iterdir()) == []
