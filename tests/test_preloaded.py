"""The suite's preloaded runner (tests/preloaded.py) gives what a fresh ``python SCRIPT`` gives."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.preloaded import PRELOADED_PYTHON

SCRIPT = """
import atexit, os, signal, sys, threading, time
print("argv", sys.argv[1:], "cwd", os.getcwd(), "path0", sys.path[0], "env", os.environ.get("PROBE"))
print("stdin is /dev/null", os.path.samestat(os.fstat(0), os.stat(os.devnull)), file=sys.stderr)
atexit.register(print, "atexit ran")
what = sys.argv[1]
if what == "thread":
    threading.Thread(target=lambda: (time.sleep(0.5), print("thread finished"))).start()
if what == "exit":
    sys.exit(3)
if what == "message":
    sys.exit("a message")
if what == "raise":
    raise ValueError("bad value")
if what == "kill":
    os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.parametrize("what", ["ok", "thread", "exit", "message", "raise", "kill"])
def test_a_preloaded_run_is_a_fresh_interpreters_run(tmp_path: Path, what: str) -> None:
    """Exit code, stdout and stderr as a fresh interpreter's. The probe checks that stdin is /dev/null rather than
    reading it: where /dev/null is a plain file (the likely cause of a CI failure, stdin read as pytest log lines),
    pytest's own log-file handler, which writes to os.devnull by default, makes its contents grow between the runs."""
    script = tmp_path / "probe.py"
    script.write_text(SCRIPT)
    command, env = [sys.executable, str(script), what], {**os.environ, "PROBE": "set"}
    fresh = subprocess.run(command, cwd=tmp_path, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           timeout=60)  # fmt: skip
    preloaded = PRELOADED_PYTHON.run(command, tmp_path, env, timeout=60)
    assert (preloaded.returncode, preloaded.stdout, preloaded.stderr) == (fresh.returncode, fresh.stdout, fresh.stderr)
    assert fresh.returncode == {"ok": 0, "thread": 0, "exit": 3, "message": 1, "raise": 1, "kill": -9}[what]


def test_the_preloaded_run_found_torch_already_imported(tmp_path: Path) -> None:
    script = tmp_path / "probe.py"
    script.write_text("import sys\nprint('torch' in sys.modules)\n")
    preloaded = PRELOADED_PYTHON.run([sys.executable, str(script)], tmp_path, dict(os.environ), timeout=60)
    assert preloaded.returncode == 0 and preloaded.stdout == "True\n"
