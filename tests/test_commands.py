"""The command line as a user drives it: `zoo list`, `zoo plugins`, torch-free listing, unknown
commands, and how much a default run prints.
"""

import json
import os
import pty
import re
import select
import subprocess
import sys


from conftest import one_line_error, zoo_cli


def test_list_shows_models_tasks_and_plugins(runner):
    result = zoo_cli(runner, "list")
    assert result.exit_code == 0, result.output
    for name in ("rnn", "lstm-stacked", "gru-bi", "hihello", "charlm", "rnn-zoo 0.1.0"):
        assert name in result.output


def test_list_filters_with_wildcards(runner):
    result = zoo_cli(runner, "list", "lstm*")
    names = [line.split()[0] for line in result.output.splitlines()[1:] if line.strip() and line[0].islower()]
    assert names[:3] == ["lstm", "lstm-bi", "lstm-stacked"] and "gru" not in names


def test_list_json(runner):
    data = json.loads(zoo_cli(runner, "list", "--json").output)
    models = {m["name"]: m for m in data["models"]}
    tasks = {t["name"]: t for t in data["tasks"]}
    assert models["lstm-bi"]["preset"] == {"bidirectional": True}
    assert models["lstm-bi"]["shapes"] == ["many-to-one"]
    assert "lstm" in tasks["charlm"]["fits"] and "lstm-bi" not in tasks["charlm"]["fits"]
    assert tasks["hihello"]["plugin"].startswith("rnn-zoo ")


def test_plugins_lists_hooks_and_versions(runner):
    data = json.loads(zoo_cli(runner, "plugins", "--json").output)
    lstm = next(p for p in data if p["name"] == "zoo_plugins.lstm")
    assert lstm["distribution"] == "rnn-zoo" and lstm["hooks"] == ["register_models"] and lstm["builtin"]


def test_list_and_help_do_not_import_torch():
    code = ("import sys; from zoo.front.cli import cli\n"
            "for args in (['--help'], ['list'], ['plugins'], ['train', '--help']):\n"
            "    cli.main(args, prog_name='zoo', standalone_mode=False)\n"
            "assert 'torch' not in sys.modules, 'torch was imported'\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_unknown_command_is_one_line(runner):
    assert "No such command 'trian'" in one_line_error(zoo_cli(runner, "trian"))


ZOO = [sys.executable, "-m", "zoo"]


# -- output a person reads ------------------------------------------------------------------------------
def screen(shown: bytes) -> list[str]:
    """What a terminal shows after `shown`: carriage returns go back to the line's start, later
    characters overwrite earlier ones, ESC[A goes up a line, ESC[K erases to the line's end."""
    rows, row, col = [""], 0, 0
    for token in re.findall(r"\x1b\[\d*[A-Za-z]|[\r\n]|[^\x1b\r\n]", shown.decode(errors="replace")):
        if token == "\r":
            col = 0
        elif token == "\n":
            row, col = row + 1, 0
            rows += [""] * (row + 1 - len(rows))
        elif token.startswith("\x1b"):
            if token.endswith("A"):
                row = max(0, row - int(token[2:-1] or 1))
            elif token.endswith("K"):
                rows[row] = rows[row][:col]
        else:
            line = rows[row].ljust(col)
            rows[row] = line[:col] + token + line[col + 1:]
            col += 1
    return [line.rstrip() for line in rows]


def on_a_terminal(args, cwd, interrupt_when=None) -> tuple[int, bytes]:
    """Run zoo on a pseudo-terminal of 120 columns as a person's foreground job; `interrupt_when(shown)`
    true types Ctrl-C (the terminal sends SIGINT). Returns the exit status and everything shown."""
    import fcntl
    import struct
    import termios

    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))

    def controlling_terminal():  # after start_new_session's setsid: the pty becomes this session's terminal
        import signal

        signal.signal(signal.SIGINT, signal.SIG_DFL)
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    process = subprocess.Popen([*ZOO, *args], cwd=cwd, stdin=follower, stdout=follower, stderr=follower,
                               start_new_session=True, preexec_fn=controlling_terminal)
    os.close(follower)
    shown, typed_at = b"", None
    while True:
        ready, _, _ = select.select([leader], [], [], 300)
        if not ready:
            break
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the terminal closed with the process
            break
        if not chunk:
            break
        shown += chunk
        if interrupt_when is not None and typed_at is None and interrupt_when(shown):
            os.write(leader, b"\x03")
            typed_at = len(shown)
        if typed_at is not None and len(shown) - typed_at > 1_000_000:  # the Ctrl-C was not heeded: stop here
            process.kill()
            break
    os.close(leader)
    return process.wait(timeout=300), shown


def test_a_default_run_on_a_terminal_prints_few_lines(tmp_path):
    """One bar drawn in place on a terminal; the metric lines and the export line stay, the bar does not."""
    status, shown = on_a_terminal(["train", "rnn", "hihello"], tmp_path)
    assert status == 0
    text = shown.decode()
    assert "saved checkpoints/rnn-hihello/model.safetensors" in text
    assert text.count("\n") <= 25, text
    assert "step/s" in text  # the bar was drawn
    left = screen(shown)
    assert not [line for line in left if "step/s" in line or "%|" in line], left


def test_ctrl_c_on_a_terminal_leaves_no_bar_behind(tmp_path):
    """Ctrl-C while the bar is drawn: the bar is erased, the line saying how to resume takes its place."""
    drawn = b"step/s"
    status, shown = on_a_terminal(["train", "lstm", "charlm", "-e", "100000"], tmp_path,
                                  interrupt_when=lambda shown: shown.count(drawn) >= 3)
    assert status == 130, shown.decode(errors="replace")
    left = [line for line in screen(shown) if line]
    assert not [line for line in left if "step/s" in line or "%|" in line], left
    assert re.match(r"interrupted (in|after) epoch \d+", left[-1]) and "zoo resume" in left[-1], left
