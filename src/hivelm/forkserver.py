"""A warm start for stage processes: under `hivelm run`, each stage that DVC starts forks from one server that
has already imported torch, transformers, peft, MLflow and scikit-learn, instead of importing them again.

Measured on the 2-core machine: those imports take 5-7 s per process, and the demo pipeline starts 22 stage
processes (9 in a one-community run), so a cold pipeline spent about a minute and a half importing the same
modules. DVC still starts and tracks every stage as an ordinary command (`hivelm <stage>`): that process is a
thin client. It passes its argv, working directory, environment and stdin/stdout/stderr (SCM_RIGHTS) to the
server, which forks a child that runs the stage exactly as the client would have run it (`hivelm.cli.forked_main`)
and reports the child's exit status back; the client exits with it. Signals to the client (Ctrl-C, SIGTERM, a
dying DVC) are forwarded to the child, and a child whose client disappears (SIGKILL) stops itself, so a
stage never outlives the command DVC is waiting for.

Outside `hivelm run` (plain `dvc repro`, `hivelm <stage>` typed by hand) there is no server and stages start
as fresh processes; so they do under `hivelm run` with HIVELM_NO_FORKSERVER=1, when a configured device is
not the CPU (see `start`), or when the server cannot be reached. The results are the same either way
(tests/test_forkserver.py compares them byte for byte).

Forking is safe here because the server only imports: it opens no store, model or thread of its own before it
forks (the few native helper threads that imports start, OpenBLAS's and jemalloc's, re-create themselves in the
child), and each child sets its own seeds as a fresh process does.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import json
import os
import selectors
import signal
import socket
import sys
import threading

from hivelm import cli, processes

# What a stage imports at its slowest. A hint only: a module missing here is imported by the stage itself.
PRELOAD = (
    "numpy", "pandas", "scipy.stats", "torch", "transformers", "transformers.trainer",
    "transformers.models.llama.modeling_llama", "peft", "mlflow", "mlflow.tracking",
    "mlflow.store.tracking.sqlalchemy_store", "sklearn.linear_model", "sklearn.feature_extraction.text",
    "sklearn.model_selection", "sklearn.metrics", "sentence_transformers", "datasets", "matplotlib",
    "hivelm.config", "hivelm.tracking", "hivelm.models", "hivelm.generation", "hivelm.metrics",
)


# --- the server ---------------------------------------------------------------------------------------------

def _receive(conn: socket.socket) -> tuple[dict, list[int]]:
    data, fds, _, _ = socket.recv_fds(conn, 1 << 16, 3)
    if len(data) < processes.HEADER.size:
        raise ConnectionError("short request")
    size = processes.HEADER.unpack_from(data)[0]
    body = data[processes.HEADER.size:]
    while len(body) < size:
        chunk = conn.recv(size - len(body))
        if not chunk:
            raise ConnectionError("truncated request")
        body += chunk
    return json.loads(body), fds


def _child(conn: socket.socket, request: dict, fds: list[int], inherited: list[int]) -> None:
    """In the forked child: become the process `hivelm argv` would have been, run it, exit with its code.
    `inherited`: the server's other descriptors (its socket, other stages' connections), closed first so
    that another stage's client going away is seen by that stage alone."""
    code = 1
    try:
        for fd in inherited:
            os.close(fd)
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD):
            signal.signal(sig, signal.default_int_handler if sig == signal.SIGINT else signal.SIG_DFL)
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        sys.argv = ["hivelm", *request["argv"]]

        def end_with_client() -> None:  # the client is gone (killed): stop as DVC's own child would
            with contextlib.suppress(OSError):
                conn.recv(1)
            os.kill(os.getpid(), signal.SIGTERM)

        threading.Thread(target=end_with_client, name="end-with-client", daemon=True).start()
        try:
            code = cli.forked_main(request["argv"])
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
        except BaseException:
            import traceback

            traceback.print_exc()
            code = 1
    finally:
        try:
            atexit._run_exitfuncs()  # what a normal interpreter exit runs: logging and MLflow flush here
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code if isinstance(code, int) else 1)


def serve(path: str) -> None:
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    with processes.address(path) as short:
        listener.bind(short)
    listener.listen(64)
    for name in PRELOAD:
        with contextlib.suppress(Exception):  # an optional extra not installed: its stage imports what it has
            importlib.import_module(name)
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ, None)
    running: dict[int, tuple[int, socket.socket]] = {}  # pidfd -> (pid, the client's connection)
    while True:
        for key, _ in selector.select():
            if key.data is None:
                conn, _ = listener.accept()
                try:
                    request, fds = _receive(conn)
                except (OSError, ValueError, ConnectionError):
                    conn.close()
                    continue
                sys.stdout.flush()
                sys.stderr.flush()
                inherited = [listener.fileno(), selector.fileno()]
                inherited += [fd for pidfd, (_, other) in running.items() for fd in (pidfd, other.fileno())]
                pid = os.fork()
                if pid == 0:
                    _child(conn, request, fds, inherited)
                for fd in fds:
                    os.close(fd)
                pidfd = os.pidfd_open(pid)
                running[pidfd] = (pid, conn)
                selector.register(pidfd, selectors.EVENT_READ, pidfd)
                with contextlib.suppress(OSError):  # the client is already gone: the child sees that and stops
                    conn.sendall(json.dumps({"pid": pid}).encode() + b"\n")
            else:
                pid, conn = running.pop(key.data)
                selector.unregister(key.fd)
                os.close(key.fd)
                code = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
                with contextlib.suppress(OSError):
                    conn.sendall(json.dumps({"exit": code if code >= 0 else 128 - code}).encode() + b"\n")
                conn.close()


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    processes.end_with_parent()  # a SIGKILLed `hivelm run` must not leave ~640 MB of imports running for good
    if os.getppid() != int(sys.argv[2]):  # it died before the line above
        sys.exit(0)
    serve(sys.argv[1])
