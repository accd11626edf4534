"""Writes stay inside the run (issue 24): a run folder is input like an export, and nothing in it (a
`.lock` or `curves.png` that is a link, a recorded export path, a state copied from another run) makes
zoo write, replace or trust a file outside it. Each case: one line, its exit code, nothing changed.

These run as root, as CI does: root may write anywhere, so only zoo's own checks stand in the way.
"""

import json
import os
import shutil
import signal
import stat

import pytest
from safetensors import safe_open
from safetensors.torch import save_file

import zoo
from conftest import one_line_error, zoo_cli
from zoo.store.files import FolderLock


def quiet(line):
    pass


def snapshot(folder):
    """Every file below `folder`, links as links: the bytes, or where a link points."""
    found = {}
    for path in sorted(folder.rglob("*")):
        key = str(path.relative_to(folder))
        if path.is_symlink():
            found[key] = ("link", os.readlink(path))
        elif path.is_file():
            found[key] = path.read_bytes()
    return found


@pytest.fixture
def outside(tmp_path):
    """A folder beside the work folder, holding a user's notes: it must never change."""
    folder = tmp_path / "home"
    folder.mkdir()
    (folder / "notes.txt").write_text("my notes\n")
    return folder


def stopped(tmp_path, name="run", model="gru", **settings):
    """A run of `model` on hihello in tmp/work/NAME, stopped by Ctrl-C after epoch 2 of 30."""
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    os.chdir(work)

    def log(line):
        if line.startswith("epoch  2/30"):
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(zoo.ZooError, match="interrupted after epoch 2"):
        zoo.train(model, "hihello", {"epochs": 30, **settings}, run_dir=name, log=log, log_every=1)
    return work / name


@pytest.fixture
def stopped_run(tmp_path):
    return stopped(tmp_path)


def finished(tmp_path, name="done", **settings):
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    os.chdir(work)
    zoo.train("rnn", "hihello", {"epochs": 2, **settings}, run_dir=name, log=quiet)
    return work / name


# -- the lock file ---------------------------------------------------------------------------------------
def test_a_lock_that_is_a_symlink_is_never_written_through(runner, stopped_run, outside):
    os.symlink(outside / "notes.txt", stopped_run / ".lock")
    before, run = snapshot(outside), snapshot(stopped_run)
    result = zoo_cli(runner, "resume", stopped_run)
    line = one_line_error(result)
    assert result.exit_code == 1
    assert ".lock is a symbolic link or not a regular file, not a lock zoo made" in line
    assert snapshot(outside) == before and snapshot(stopped_run) == run  # the link itself stays too


@pytest.mark.parametrize("kind", ["fifo", "hard link", "folder"])
def test_a_lock_that_is_no_plain_file_of_ours_is_refused(tmp_path, outside, kind):
    folder = tmp_path / "f"
    folder.mkdir()
    lock = folder / ".lock"
    if kind == "fifo":
        os.mkfifo(lock)
    elif kind == "hard link":
        os.link(outside / "notes.txt", lock)
    else:
        lock.mkdir()
    before = snapshot(outside)
    with pytest.raises(zoo.ZooError, match="not a lock zoo made"):
        FolderLock(folder).acquire()
    assert snapshot(outside) == before and (lock.exists() or lock.is_symlink())
    assert FolderLock(folder).holder() is None and not FolderLock(folder).in_use()


def test_a_stale_lock_of_ours_is_taken_over(tmp_path):
    (tmp_path / ".lock").write_text("999999999")  # left by a killed process
    lock = FolderLock(tmp_path)
    assert lock.acquire()
    assert (tmp_path / ".lock").read_text() == str(os.getpid())
    lock.release()
    assert not (tmp_path / ".lock").exists()


def test_bench_out_with_a_symlinked_lock_is_refused(runner, tmp_path, outside):
    grid = ["rnn", "hihello", "--seeds", "0", "--epochs", "1", "--workers", "1", "--out", "B"]
    first = zoo_cli(runner, "bench", *grid)
    assert first.exit_code == 0, first.output
    os.symlink(outside / "notes.txt", tmp_path / "B" / ".lock")
    before, results = snapshot(outside), snapshot(tmp_path / "B")
    result = zoo_cli(runner, "bench", *grid)
    assert result.exit_code == 1
    assert "B/.lock is a symbolic link or not a regular file, not a lock zoo made" in one_line_error(result)
    assert snapshot(outside) == before and snapshot(tmp_path / "B") == results


# -- the export a run's config records is never followed ----------------------------------------------------
@pytest.mark.parametrize("recorded", ["absolute", "../../home/x/y/z.safetensors"])
def test_resume_exports_into_the_run_whatever_config_json_says(runner, tmp_path, stopped_run, outside, recorded):
    target = str(outside / "notes.txt") if recorded == "absolute" else recorded
    config = json.loads((stopped_run / "config.json").read_text())
    (stopped_run / "config.json").write_text(json.dumps({**config, "export": target}))
    before = snapshot(outside)
    result = zoo_cli(runner, "resume", stopped_run, "-q")
    assert result.exit_code == 0, result.output
    assert (stopped_run / "model.safetensors").is_file() and f"saved {stopped_run / 'model.safetensors'}" in \
        result.output
    assert snapshot(outside) == before and not (tmp_path / "home" / "x").exists()


def test_eval_of_a_run_reads_its_own_export_not_the_recorded_one(runner, tmp_path, outside):
    run = finished(tmp_path)
    foreign = outside / "foreign.safetensors"
    shutil.copy(run / "model.safetensors", foreign)
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**config, "export": str(foreign)}))
    (run / "model.safetensors").unlink()
    line = one_line_error(zoo_cli(runner, "eval", run))  # the foreign file is named, never evaluated
    assert f"was exported with --out to {foreign}, which zoo does not follow from a run folder" in line
    for command in (["predict", run, "hihell"], ["info", run]):
        assert "does not follow" in one_line_error(zoo_cli(runner, *command))


def test_an_export_put_elsewhere_with_out_is_named_by_the_run(runner, tmp_path):
    result = zoo_cli(runner, "train", "rnn", "hihello", "-e", "2", "--run-dir", "r", "--out", "w.safetensors", "-q")
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "r" / "config.json").read_text())["export"] == "../w.safetensors"
    assert zoo_cli(runner, "eval", "w.safetensors").exit_code == 0
    assert "exported with --out to w.safetensors" in one_line_error(zoo_cli(runner, "eval", "r"))


# -- zoo plot --------------------------------------------------------------------------------------------
def test_plot_never_writes_through_a_curves_png_symlink(runner, stopped_run, outside):
    os.symlink(outside / "notes.txt", stopped_run / "curves.png")
    before = snapshot(outside)
    result = zoo_cli(runner, "plot", stopped_run)
    assert result.exit_code == 1
    line = one_line_error(result)
    assert "curves.png is a symbolic link: zoo does not write through links" in line
    assert snapshot(outside) == before and (stopped_run / "curves.png").is_symlink()
    assert not [p for p in stopped_run.iterdir() if p.name.endswith(".tmp")]


def test_plot_replaces_its_own_png_atomically(runner, stopped_run):
    assert zoo_cli(runner, "plot", stopped_run).exit_code == 0
    first = (stopped_run / "curves.png").stat().st_ino
    assert zoo_cli(runner, "plot", stopped_run).exit_code == 0
    assert (stopped_run / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (stopped_run / "curves.png").stat().st_ino != first  # renamed over, not rewritten in place


# -- --out and --run-dir ---------------------------------------------------------------------------------
def _devnull():
    status = os.stat("/dev/null")
    return stat.S_ISCHR(status.st_mode), status.st_rdev, status.st_ino


@pytest.mark.parametrize("kind", ["/dev/null", "fifo", "symlink"])
def test_out_onto_a_device_a_fifo_or_a_link_is_refused(runner, tmp_path, outside, kind):
    before, null = snapshot(outside), _devnull()
    if kind == "/dev/null":
        out, said = "/dev/null", "/dev/null is a character device: zoo replaces only regular files"
    elif kind == "fifo":
        out, said = tmp_path / "pipe", "pipe is a named pipe (FIFO): zoo replaces only regular files"
        os.mkfifo(out)
    else:
        out, said = tmp_path / "link.safetensors", "link.safetensors is a symbolic link: zoo does not write through"
        os.symlink(outside / "notes.txt", out)
    for command in (["train", "rnn", "hihello", "-e", "1", "--out", out], ["plot", "run", "--out", out]):
        if command[0] == "plot" and not (tmp_path / "run").exists():
            assert zoo_cli(runner, "train", "rnn", "hihello", "-e", "1", "--run-dir", "run", "-q").exit_code == 0
        result = zoo_cli(runner, *command)
        assert result.exit_code == 1
        assert said in one_line_error(result)
    assert _devnull() == null and snapshot(outside) == before
    assert not (tmp_path / "checkpoints").exists()


@pytest.mark.parametrize("folder", ["/", "home"])
def test_run_dir_onto_a_folder_zoo_did_not_make_is_refused(runner, tmp_path, outside, folder):
    target = "/" if folder == "/" else outside
    listing, before = sorted(os.listdir(target)), snapshot(outside)
    for extra in ([], ["--overwrite"]):
        result = zoo_cli(runner, "train", "rnn", "hihello", "-e", "1", "--run-dir", target, *extra)
        assert result.exit_code == 1
        line = one_line_error(result)
        assert "holds files zoo did not write, and no zoo run: give a new or empty folder" in line
    assert sorted(os.listdir(target)) == listing and snapshot(outside) == before


def test_a_users_own_config_json_is_not_a_run(runner, tmp_path, outside):
    for name, text in (("config.json", '{"model": "lstm", "task": "charlm", "mine": true}\n'),
                       ("metrics.jsonl", '{"epoch": 1}\n'), ("curves.png", "my picture")):
        (outside / name).write_text(text)
    before = snapshot(outside)
    for extra in (["--overwrite"], []):
        line = one_line_error(zoo_cli(runner, "train", "rnn", "hihello", "-e", "1", "--run-dir", outside, *extra))
        assert "holds files zoo did not write, and no zoo run" in line
    line = one_line_error(zoo_cli(runner, "train", "rnn", "hihello", "--run-dir", outside, "--resume"))
    assert "no saved state" in line
    assert snapshot(outside) == before


def test_overwrite_still_replaces_a_run_zoo_made(runner, tmp_path):
    run = finished(tmp_path)
    assert json.loads((run / "config.json").read_text())["format"] == "zoo-run/1"
    result = zoo_cli(runner, "train", "rnn", "hihello", "-e", "3", "--run-dir", run, "--overwrite", "-q")
    assert result.exit_code == 0, result.output
    assert json.loads((run / "config.json").read_text())["train_config"]["epochs"] == 3


# -- the state is checked against the run before it is restored ----------------------------------------------
def test_a_state_from_another_model_is_refused(runner, tmp_path):
    gru, rnn = stopped(tmp_path, "gru"), stopped(tmp_path, "rnn", model="rnn")
    shutil.copy(rnn / "state.safetensors", gru / "state.safetensors")
    before = snapshot(gru)
    result = zoo_cli(runner, "resume", gru)
    assert result.exit_code == 1
    line = one_line_error(result)
    assert "is not the state of the run in" in line and "its model is 'rnn'" in line and "says 'gru'" in line
    assert snapshot(gru) == before


def test_a_state_of_another_size_is_refused(runner, tmp_path):
    small, big = stopped(tmp_path, "small", hidden_size=8), stopped(tmp_path, "big", hidden_size=16)
    shutil.copy(small / "state.safetensors", big / "state.safetensors")
    before = snapshot(big)
    line = one_line_error(zoo_cli(runner, "resume", big, "-e", "40"))
    assert "is not the state of the run in" in line and "model_config" in line
    assert snapshot(big) == before


def _rewrite_state(path, info_change=None, tensor_change=None):
    with safe_open(str(path), "pt") as f:
        metadata, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
    info = json.loads(metadata["state"])
    if info_change:
        info_change(info)
    if tensor_change:
        tensor_change(tensors)
    metadata["state"] = json.dumps(info)
    save_file(tensors, str(path), metadata=metadata)


def _set(path, value):
    def change(info):
        *parents, last = path.split(".")
        for key in parents:
            info = info[key]
        if value is KeyError:
            del info[last]
        else:
            info[last] = value
    return change


def _first(prefix):
    return lambda tensors: next(k for k in tensors if k.startswith(prefix))


DAMAGED_INFO = {
    "epoch -5": ("progress.epoch", -5, "progress.epoch is -5"),
    "epoch a string": ("progress.epoch", "3", "progress.epoch is '3'"),
    "epoch beyond the run": ("progress.epoch", 10**6, "progress.epoch is 1000000"),
    "batch negative": ("progress.batch", -1, "progress.batch is -1"),
    "loss NaN": ("progress.loss_sum", float("nan"), "progress.loss_sum is nan"),
    "lr null": ("progress.lr", None, "progress.lr is None"),
    "done a string": ("progress.done", "no", "progress.done is 'no'"),
    "schedule_ends not a list": ("progress.schedule_ends", 30, "progress.schedule_ends is 30"),
    "progress field missing": ("progress.examples", KeyError, "its progress is not the fields"),
    "no optimizer groups": ("optimizer_groups", KeyError, "optimizer_groups is not this network's"),
    "optimizer groups of another network": ("optimizer_groups", [{"params": [0]}], "optimizer_groups is not"),
    "numpy rng": ("numpy_rng", ["MT19937", 9999, 0, 0.0], "numpy_rng is not"),
    "python rng short": ("python_rng", [3, [1, 2, 3], None], "python_rng is not"),
    "train_config not an object": ("train_config", [], "train_config is missing or of the wrong type"),
    "model name a number": ("model", 3, "model is missing or of the wrong type"),
}


@pytest.mark.parametrize("case", DAMAGED_INFO)
def test_a_damaged_state_is_one_line_and_changes_nothing(runner, stopped_run, case):
    key, value, said = DAMAGED_INFO[case]
    _rewrite_state(stopped_run / "state.safetensors", info_change=_set(key, value))
    resume_is_refused(runner, stopped_run, said, "state.safetensors")


def resume_is_refused(runner, run, *said):
    """`zoo resume RUN` fails with one line saying all of `said`, and the folder stays as it was."""
    before = snapshot(run)
    result = zoo_cli(runner, "resume", run)
    assert result.exit_code == 1
    line = one_line_error(result)
    assert all(part in line for part in said), line
    assert snapshot(run) == before


def _drop(prefix):
    def change(tensors):
        del tensors[_first(prefix)(tensors)]
    return change


def _reshape(prefix):
    def change(tensors):
        key = _first(prefix)(tensors)
        tensors[key] = tensors[key].flatten()[:1].clone()
    return change


DAMAGED_TENSORS = {
    "a weight missing": (_drop("model/"), "its weights are not this network's: missing"),
    "a weight of another shape": (_reshape("model/"), "its weights are not this network's"),
    "torch rng cut short": (_reshape("rng/torch"), "rng/torch is missing or not 5056 bytes"),
    "shuffle rng missing": (_drop("rng/shuffle"), "rng/shuffle is missing"),
    "numpy rng missing": (_drop("rng/numpy"), "rng/numpy is missing"),
    "an Adam moment of another shape": (_reshape("optimizer/0/exp_avg"), "optimizer/0/exp_avg is (1,)"),
    "an Adam moment missing": (_drop("optimizer/0/exp_avg_sq"), "the optimizer state of parameter 0 is incomplete"),
    "a stray tensor": (lambda t: t.update({"extra": t["rng/torch"].clone()}), "unexpected tensor 'extra'"),
}


@pytest.mark.parametrize("case", DAMAGED_TENSORS)
def test_a_state_with_damaged_tensors_is_one_line_and_changes_nothing(runner, stopped_run, case):
    change, said = DAMAGED_TENSORS[case]
    _rewrite_state(stopped_run / "state.safetensors", tensor_change=change)
    resume_is_refused(runner, stopped_run, said, "is damaged or not this run's state")
