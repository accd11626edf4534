"""Shared by the tests/test_hostile_*.py files: run zoo commands on hostile input in a subprocess whose
memory is capped (an address-space limit) and whose CPU time is watched, and check what came out.

A hang (a read that never returns) is caught by a generous timeout on the whole subprocess: a busy machine
is slow, not stuck. A case's CPU time is bounded per case (ITIMER_PROF), which load does not stretch.
"""

import hashlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

DRIVER = textwrap.dedent('''
    import json, os, resource, signal, sys, traceback
    import torch, zoo
    from click.testing import CliRunner
    from zoo.contract import registry as registry_module
    from zoo.front.cli import cli

    def used():
        return int(open("/proc/self/statm").read().split()[0]) * os.sysconf("SC_PAGE_SIZE")

    def cpu():
        r = resource.getrusage(resource.RUSAGE_SELF)
        return r.ru_utime + r.ru_stime

    # what importing torch took (about 3 GiB of address space for a CUDA build), plus the allowance:
    # a regression fails with an error instead of taking the machine's memory
    limit = used() + int(float(os.environ.get("HOSTILE_GIB", "2")) * 2**30)
    resource.setrlimit(resource.RLIMIT_AS, (limit, resource.getrlimit(resource.RLIMIT_AS)[1]))
    seconds = float(os.environ.get("HOSTILE_CPU", "120"))

    def peak():  # resident memory at its highest since the last reset (VmHWM), in MiB
        status = open("/proc/self/status").read()
        return int(status.split("VmHWM:")[1].split()[0]) / 1024

    class Hang(Exception):
        pass

    def hang(signum, frame):
        raise Hang(f"over {seconds:g} CPU seconds")

    signal.signal(signal.SIGPROF, hang)
    for name, args, env in json.loads(sys.argv[1]):
        registry_module.reset()
        with open("/proc/self/clear_refs", "w") as f:  # Linux: "5" resets the peak to the present resident size
            f.write("5")
        base, start = peak(), cpu()
        signal.setitimer(signal.ITIMER_PROF, seconds)  # CPU time, which a busy machine does not stretch
        try:
            if args[0] == "load":  # zoo.load, the Python API, rather than a command
                try:
                    zoo.load(args[1])
                    code, out, err = 0, "", ""
                except zoo.ZooError as e:
                    code, out, err = 1, "", "Error: " + str(e)
            else:
                result = CliRunner().invoke(cli, args, prog_name="zoo", env=env)
                code, out, err = result.exit_code, result.stdout, result.stderr
                if result.exception is not None and not isinstance(result.exception, SystemExit):
                    err += "".join(traceback.format_exception(result.exception))
        except BaseException:
            code, out, err = 99, "", traceback.format_exc()
        signal.setitimer(signal.ITIMER_PROF, 0)
        print(json.dumps({"name": name, "code": code, "out": out, "err": err, "cpu": cpu() - start,
                          "grown_mb": peak() - base}), flush=True)
''')


def run_cases(cases, cwd, env=None, gib: float = 2, cpu: float = 120, timeout: float = 1800) -> dict:
    """Run `cases` (name, argv, extra environment) through zoo's command line in one subprocess whose
    address space is capped at what importing torch took plus `gib` GiB, each case stopped after `cpu`
    CPU seconds; argv `["load", PATH]` calls zoo.load. Returns name -> {"code", "out", "err", "cpu",
    "grown_mb"} (grown_mb: how far the case raised the resident peak)."""
    full = {**os.environ, "ZOO_LOAD_PLUGINS": "", "ZOO_THREADS": "1", "OMP_NUM_THREADS": "1",
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]), "HOSTILE_GIB": str(gib),
            "HOSTILE_CPU": str(cpu), **(env or {})}
    cases = [(name, [str(a) for a in args], extra or {}) for name, args, extra in cases]
    done = subprocess.run([sys.executable, "-c", DRIVER, json.dumps(cases)], cwd=cwd, env=full,
                          capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr[-3000:]
    results = {r["name"]: r for r in map(json.loads, done.stdout.splitlines())}
    assert len(results) == len(cases), done.stdout[-3000:]
    return results


def one_line(result, *needles, code: int = 1, noise: str = "\0") -> str:
    """The one `Error:` line a refused case printed on stderr (nothing on stdout, no traceback); lines
    holding `noise` (what a test plugin prints itself) are left out."""
    assert result["code"] == code, result
    assert "Traceback" not in result["err"] + result["out"], result
    lines = [line for line in result["err"].splitlines() if line.strip() and noise not in line]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result
    assert not result["out"].strip(), result
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def snapshot(folder: Path, skip: tuple = ()) -> dict:
    """Every entry under `folder` (but those under `skip`) -> its kind and, for a file, its content's hash."""
    found = {}
    for path in sorted(Path(folder).rglob("*")):
        if any(path == s or s in path.parents for s in map(Path, skip)):
            continue
        if path.is_symlink():
            found[str(path)] = ("link", os.readlink(path))
        elif path.is_file():
            found[str(path)] = ("file", hashlib.sha256(path.read_bytes()).hexdigest())
        elif path.is_dir():
            found[str(path)] = ("dir", "")
        else:
            found[str(path)] = ("other", oct(path.lstat().st_mode))
    return found


def zoo_process(args, cwd, env=None, **kwargs) -> subprocess.Popen:
    """`python -m zoo ARGS` as its own process group (as a shell would start it)."""
    full = {**os.environ, "ZOO_LOAD_PLUGINS": "", "ZOO_THREADS": "1", "OMP_NUM_THREADS": "1",
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]), **(env or {})}
    return subprocess.Popen([sys.executable, "-m", "zoo", *map(str, args)], cwd=cwd, env=full,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL,
                            **kwargs)
