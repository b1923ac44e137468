"""Entry points run as ``python SCRIPT ARGS`` would, forked from an interpreter that has already imported torch,
Lightning and finser.

A tiny ``train.py`` run spends ~10 of its ~18 s importing torch and Lightning; most of the suite is such runs. Each
request forks a child of a server that imported them once and has run nothing since (its only threads are idle
OpenBLAS and onnxruntime pools, which survive a fork). The child takes the request's working directory,
environment, argv, ``sys.path[0]`` and a closed stdin, writes stdout and stderr unbuffered to files, runs the script
as ``__main__`` and exits as the interpreter does (threads joined, atexit handlers run, the code of ``sys.exit`` or 1
for an uncaught exception), so its exit code and signals are a real process's. ``FINSER_TESTS_FRESH=1`` runs every
request in a fresh interpreter instead, to check that nothing depends on the preloading.
"""

from __future__ import annotations

import atexit
import io
import json
import logging
import os
import runpy
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import TracebackType

REPO = Path(__file__).resolve().parents[1]
# Read by OpenMP, MKL and CUDA when they load, so a child cannot take another value from its environment.
READ_AT_LOAD = ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "CUDA_VISIBLE_DEVICES")
PRELOADED = ("torch", "lightning", "torchmetrics", "hydra", "omegaconf", "rich", "finser.run", "finser.inference")


def serve() -> None:
    """Read one JSON request per line on stdin; for each, fork a child that runs it, answer ``{"pid": ...}`` at
    once and ``{"returncode": ...}`` when it ends."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # what the entry points set before torch loads
    for name in PRELOADED:
        __import__(name)
    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            run_as_main(request)  # never returns
        answer({"pid": pid})
        _, status = os.waitpid(pid, 0)
        answer({"returncode": os.waitstatus_to_exitcode(status)})


def answer(message: dict) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def run_as_main(request: dict) -> None:
    """In the forked child: become ``python ARGV`` in ``cwd`` with ``env``, then run the script."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    for fd, path in ((1, request["stdout"]), (2, request["stderr"])):
        os.dup2(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), fd)
    sys.stdin = open(os.devnull)  # noqa: SIM115 - the interpreter's own stdin, closed at exit
    sys.stdout = sys.__stdout__ = unbuffered_text(1)
    sys.stderr = sys.__stderr__ = unbuffered_text(2)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    script, *_ = sys.argv = request["argv"]
    sys.path[0] = str(Path(script).resolve().parent)
    try:
        runpy.run_path(script, run_name="__main__")
        code = 0
    except SystemExit as exit:
        code = exit_code(exit.code)
    except BaseException as error:
        trace = from_script(error.__traceback__, script)
        sys.excepthook(type(error), error.with_traceback(trace), trace)
        code = 1
    exit_as_python_does(code)


def from_script(trace: TracebackType | None, script: str) -> TracebackType | None:
    """The traceback from the script's own frame on, as a fresh interpreter prints it (no runpy, no server)."""
    frame = trace
    while frame is not None and frame.tb_frame.f_code.co_filename != script:
        frame = frame.tb_next
    return frame or trace


def exit_code(code: object) -> int:
    """What the interpreter exits with for ``sys.exit(code)``."""
    if code is None or isinstance(code, int):
        return code or 0
    print(code, file=sys.stderr)
    return 1


def exit_as_python_does(code: int) -> None:
    """The interpreter's own exit, less the C++ static destructors: those of a library that started a thread in the
    server (onnxruntime does, when torchmetrics imports it) join a thread the child does not have, and abort."""
    for thread in threading.enumerate():
        if thread is not threading.main_thread() and not thread.daemon:
            thread.join()
    atexit._run_exitfuncs()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def unbuffered_text(fd: int) -> io.TextIOWrapper:
    """What ``PYTHONUNBUFFERED=1`` gives: nothing is lost when the process is killed."""
    return io.TextIOWrapper(io.FileIO(fd, "w", closefd=False), encoding="utf-8", errors="backslashreplace",
                            write_through=True)  # fmt: skip


class PreloadedPython:
    """One server per test process, started on first use."""

    def __init__(self) -> None:
        self.server: subprocess.Popen | None = None
        self.pending = b""

    def run(self, command: list[str], cwd: Path, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess:
        """``command`` (``[sys.executable, SCRIPT, *args]``) in a child of the server."""
        with tempfile.TemporaryDirectory() as tmp:
            stdout, stderr = Path(tmp) / "stdout", Path(tmp) / "stderr"
            server = self.started()
            request = {"argv": command[1:], "cwd": str(cwd), "env": env, "stdout": str(stdout), "stderr": str(stderr)}
            server.stdin.write(json.dumps(request).encode() + b"\n")
            pid = self.reply(server, None)["pid"]
            try:
                returncode = self.reply(server, timeout)["returncode"]
            except subprocess.TimeoutExpired:
                os.kill(pid, signal.SIGKILL)
                self.reply(server, None)
                raise subprocess.TimeoutExpired(command, timeout, stdout.read_text(), stderr.read_text()) from None
            return subprocess.CompletedProcess(command, returncode, stdout.read_text(), stderr.read_text())

    def started(self) -> subprocess.Popen:
        if self.server is None or self.server.poll() is not None:
            self.pending = b""
            self.server = subprocess.Popen([sys.executable, "-c", "from tests.preloaded import serve; serve()"],
                                           cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0,
                                           env={**os.environ, "PYTHONPATH": str(REPO)})  # fmt: skip
        return self.server

    def reply(self, server: subprocess.Popen, timeout: float | None) -> dict:
        """The server's next answer line, read unbuffered so that ``select`` sees every byte not yet read."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while b"\n" not in self.pending:
            wait = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not select.select([server.stdout], [], [], wait)[0]:
                raise subprocess.TimeoutExpired(server.args, timeout)
            chunk = os.read(server.stdout.fileno(), 4096)
            if not chunk:
                raise RuntimeError(f"the preloaded Python exited ({server.wait()})")
            self.pending += chunk
        line, self.pending = self.pending.split(b"\n", 1)
        return json.loads(line)

    def close(self) -> None:
        if self.server is not None:
            self.server.stdin.close()
            self.server.wait(timeout=60)
            self.server, self.pending = None, b""


PRELOADED_PYTHON = PreloadedPython()


def run_python(command: list[str], cwd: Path = REPO, env: dict[str, str] | None = None, timeout: float = 600
               ) -> subprocess.CompletedProcess:  # fmt: skip
    """``subprocess.run(command, stdin=DEVNULL, capture_output=True, text=True)``, preloaded when ``command`` runs a
    script (``[sys.executable, SCRIPT, *args]``) in an environment that sizes no thread pool differently (read once,
    when the library loads); a fresh interpreter otherwise."""
    env = dict(os.environ) if env is None else env
    fresh = (
        os.environ.get("FINSER_TESTS_FRESH") == "1"
        or command[0] != sys.executable
        or command[1].startswith("-")
        or any(env.get(name) != os.environ.get(name) for name in READ_AT_LOAD)
    )
    if fresh:
        return subprocess.run(command, cwd=cwd, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=timeout)  # fmt: skip
    return PRELOADED_PYTHON.run(command, cwd, env, timeout)
