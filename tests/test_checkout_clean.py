"""The test suite leaves the checkout as it found it: conftest's end-of-run check fails a run that left files."""

import os
import shutil
import subprocess
import sys

import pytest

from conftest import ROOT, checkout_files


def a_checkout(tmp_path, test_source: str):
    """A git checkout holding this suite's conftest and one test file."""
    repo = tmp_path / "clone"
    (repo / "tests").mkdir(parents=True)
    shutil.copy(ROOT / "tests" / "conftest.py", repo / "tests" / "conftest.py")
    (repo / ".gitignore").write_text("/checkpoints/*\n!/checkpoints/README.md\n")
    (repo / "checkpoints").mkdir()
    (repo / "checkpoints" / "README.md").write_text("runs go here\n")
    (repo / "tests" / "test_one.py").write_text(test_source)
    if subprocess.run(["git", "init", "-q", str(repo)], capture_output=True).returncode != 0:
        pytest.skip("git is not available")
    subprocess.run(["git", "-C", str(repo), "add", ".gitignore", "checkpoints/README.md"], check=True)
    return repo


def run_pytest(repo):
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"], cwd=repo,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=600)


LEAVES_A_RUN = """
from conftest import ROOT

def test_writes_into_the_checkout():
    (ROOT / "checkpoints" / "lstm-hihello").mkdir(parents=True)
    (ROOT / "checkpoints" / "lstm-hihello" / "model.safetensors").write_bytes(b"x")
"""

STAYS_IN_TMP = """
def test_writes_into_its_folder(tmp_path):
    (tmp_path / "checkpoints").mkdir()
    import pathlib
    pathlib.Path("here.txt").write_text("the working folder is a tmp folder")
"""


def test_a_test_that_leaves_a_file_in_the_checkout_fails_the_run(tmp_path):
    done = run_pytest(a_checkout(tmp_path, LEAVES_A_RUN))
    assert done.returncode != 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout  # the test itself passed: the end-of-run check failed the run
    assert "left 1 new entry in the checkout" in done.stdout and "checkpoints/lstm-hihello/" in done.stdout


def test_tests_that_work_in_temporary_folders_pass(tmp_path):
    done = run_pytest(a_checkout(tmp_path, STAYS_IN_TMP))
    assert done.returncode == 0, done.stdout + done.stderr


def test_outside_a_git_checkout_the_check_is_skipped(tmp_path):
    assert checkout_files(tmp_path) is None


def test_results_and_checkpoints_are_ignored():
    lines = (ROOT / ".gitignore").read_text().splitlines()
    assert "/results/" in lines and "/checkpoints/*" in lines
