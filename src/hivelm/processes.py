"""Process handling, in one place: how hivelm starts, signals and ends the processes it runs (Linux).

- signals: SIGINT and SIGTERM unwind like Ctrl-C (`interrupt`), whatever the shell let us inherit, held while
  a write to the tracking store finishes (`interrupts_held`);
- ending with DVC: a stage DVC starts ends when DVC dies (`end_with_dvc`, prctl(2) PR_SET_PDEATHSIG);
- `python -m hivelm.processes PARENT_PID COMMAND...` execs COMMAND after asking the kernel to send it SIGTERM
  when PARENT_PID exits (the setting survives exec). `hivelm run` starts DVC this way, so a SIGKILLed
  `hivelm run` does not leave DVC running the rest of the pipeline. A wrapper process instead of Popen's
  preexec_fn, which the subprocess documentation calls unsafe in a process with threads;
- process groups: `stop_group` ends DVC's whole group as Ctrl-C would;
- the stage server (hivelm/forkserver.py, which runs in its own process): `start`, `stop` and `sweep` it, and
  `delegate`, the client a stage started by DVC becomes under `hivelm run`;
- run identity: whether the process behind an MLflow run still lives (`identity`, `gone`).

Nothing here imports hivelm.cli: the CLI, the pipeline and the stage server import this module.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

log = logging.getLogger(__name__)

TEMP_PREFIX = "hivelm-fs-"  # the server's socket folder: hivelm-fs-<pid of hivelm run>-XXXX in the temp dir
ENV = "HIVELM_FORKSERVER"  # the server's socket path, set by `hivelm run` for the stages DVC starts
DISABLE_ENV = "HIVELM_NO_FORKSERVER"  # set to 1: every stage starts as a fresh process
HEADER = struct.Struct("!I")  # a request's length, before it (client and server)


PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def end_with_parent(sig: int = signal.SIGTERM) -> bool:
    """Ask the kernel to send `sig` to this process when its parent exits; False where prctl is missing."""
    import ctypes

    try:
        return ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(sig)) == 0
    except (OSError, AttributeError):  # not Linux
        return False


def start_time(pid: int) -> str | None:
    """When process `pid` started, as '<boot id>:<clock ticks since boot>' (proc(5), /proc/PID/stat field 22):
    equal only for the same process, even when its pid is reused later. None when it is gone or not Linux."""
    try:
        with open(f"/proc/{pid}/stat") as file:
            stat = file.read()
        with open("/proc/sys/kernel/random/boot_id") as file:
            boot = file.read().strip()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()  # the name before it may hold spaces and parentheses
    return f"{boot}:{fields[19]}"


def identity() -> dict[str, str]:
    """This process as MLflow run tags, so a later process can tell whether the run's process still lives."""
    return {"process_host": socket.gethostname(), "process_pid": str(os.getpid()),
            "process_start": start_time(os.getpid()) or ""}


def gone(tags: dict[str, str]) -> bool:
    """True when the process that `identity()` described is known to have ended (on this host only)."""
    if tags.get("process_host") != socket.gethostname() or not tags.get("process_pid", "").isdigit():
        return False
    started = start_time(int(tags["process_pid"]))
    return started is None or (bool(tags.get("process_start")) and started != tags["process_start"])


def interrupt(signum, frame):
    raise KeyboardInterrupt(signal.Signals(signum).name)


@contextlib.contextmanager
def interrupts_held():
    """Hold SIGINT and SIGTERM (where `interrupt` handles them) while the block runs, then raise the first one
    that arrived as `interrupt` would. For writes to the tracking store: a KeyboardInterrupt raised inside
    SQLite's commit left the database locked, and ending the run KILLED then failed ('database is locked')."""
    if threading.current_thread() is not threading.main_thread():  # signal() refuses other threads
        yield
        return
    arrived: list[int] = []
    held = {sig: signal.signal(sig, lambda signum, frame: arrived.append(signum))
            for sig in (signal.SIGINT, signal.SIGTERM) if signal.getsignal(sig) is interrupt}
    try:
        yield
    finally:
        for sig, handler in held.items():
            signal.signal(sig, handler)
    if arrived:
        interrupt(arrived[0], None)


SHELLS = frozenset({"sh", "dash", "bash", "zsh", "fish", "ksh"})


def name_and_parent(pid: int) -> tuple[str, int] | None:
    """A process's command name and parent pid from /proc; None when it is gone (or not Linux)."""
    try:
        with open(f"/proc/{pid}/stat") as file:
            stat = file.read()
    except OSError:
        return None
    name_end = stat.rindex(")")  # the name itself may hold spaces and parentheses
    return stat[stat.index("(") + 1:name_end], int(stat[name_end + 2:].split()[1])


def end_with_dvc() -> bool:
    """Under `dvc repro`, end (SIGTERM, so runs close as KILLED) when DVC dies: a killed `dvc repro` would
    otherwise leave its stage (say, a trainer) running on as an orphan. DVC starts a stage through $SHELL -c;
    bash execs the command, so DVC is our parent, but dash (/bin/sh on Debian) stays between us. So: the
    kernel signals us when our parent dies, and where shells stand between, a watcher notices the outermost
    shell losing DVC as its parent. False when DVC is already gone."""
    if not end_with_parent(signal.SIGTERM):  # not Linux: the stage lock still refuses a second trainer
        return True
    shell, dvc = None, os.getppid()
    while (found := name_and_parent(dvc)) and found[0] in SHELLS:
        shell, dvc = dvc, found[1]
    if dvc == 1 or found is None:
        return False
    if shell is not None:
        def watch(shell: int = shell, dvc: int = dvc) -> None:
            while (found := name_and_parent(shell)) and found[1] == dvc:
                time.sleep(1)
            os.kill(os.getpid(), signal.SIGTERM)

        threading.Thread(target=watch, name="end-with-dvc", daemon=True).start()
    return True


def stop_group(process: subprocess.Popen, grace_s: float = 30.0) -> None:
    """Interrupt every process in `process`'s group (DVC, its shell, the stage) as Ctrl-C would, wait until
    all have exited, and kill what is left after `grace_s`. Further signals are ignored meanwhile, so a
    second Ctrl-C cannot orphan the stage or leave the parent run RUNNING."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    for sig, wait_s in ((signal.SIGINT, grace_s), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            process.poll()  # reap DVC itself, else it stays in the group as a zombie
            try:
                os.killpg(process.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.2)
        log.warning("dvc repro (process group %d) still running %.0f s after %s", process.pid, wait_s, sig.name)


# --- the stage server, from outside: start, stop, sweep; and its client

def serves(devices: list[str]) -> bool:
    """Whether `hivelm run` starts a stage server for these configured devices: not when switched off, and not
    when any of them is not the CPU: a CUDA process cannot be forked safely once CUDA has been touched, and the
    imports may touch it, so on an accelerator every stage starts fresh (import time is small beside its work
    there anyway). bench/gpu_check.py asserts it on the GPU machine."""
    return os.environ.get(DISABLE_ENV, "") in ("", "0") and all(d == "cpu" for d in devices)


def start(env: dict[str, str], devices: list[str]) -> tuple[subprocess.Popen, str] | None:
    """Start a server for one pipeline run; (process, socket path), or None when `serves(devices)` says no
    (`devices`: the configured ones, `pipeline.model_devices`). The server binds its socket before it imports
    anything, so a stage that connects early waits for the imports instead of repeating them. Its own process
    group: `stop` ends it and any child still running with it."""
    if not serves(devices):
        return None
    path = os.path.join(tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}{os.getpid()}-"), "stages.sock")
    server = subprocess.Popen([sys.executable, "-m", "hivelm.forkserver", path, str(os.getpid())], env=env,
                              process_group=0, stdin=subprocess.DEVNULL)
    return server, path


def sweep() -> None:
    """Remove the socket folders of servers whose `hivelm run` (the pid in the name) is gone: a killed run
    cannot remove its own."""
    for folder in Path(tempfile.gettempdir()).glob(f"{TEMP_PREFIX}*-*"):
        pid = folder.name.removeprefix(TEMP_PREFIX).split("-")[0]
        if pid.isdigit() and start_time(int(pid)) is None:
            shutil.rmtree(folder, ignore_errors=True)


def stop(server: subprocess.Popen, path: str) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.pid, signal.SIGTERM)
    try:
        server.wait(10)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()
    with contextlib.suppress(OSError):
        os.unlink(path)
        os.rmdir(os.path.dirname(path))


@contextlib.contextmanager
def address(path: str):
    """`path`, or a short alias of it: a socket path over 107 bytes cannot be bound or connected (AF_UNIX's
    sun_path, unix(7)), and a long $TMPDIR (a cluster job's scratch folder, pytest's) makes one. The alias
    goes through the folder's descriptor, /proc/self/fd/N/NAME, which Linux resolves like the folder."""
    if len(os.fsencode(path)) < 100:
        yield path
        return
    folder = os.open(os.path.dirname(path), os.O_RDONLY | os.O_DIRECTORY)
    try:
        yield f"/proc/self/fd/{folder}/{os.path.basename(path)}"
    finally:
        os.close(folder)


def delegate(argv: list[str]) -> int | None:
    """Run `hivelm argv` in a child of the server named by $HIVELM_FORKSERVER and return its exit code; None
    when no server is there to take it (the caller then runs the stage itself)."""
    path = os.environ.get(ENV)
    if not path:
        return None
    env = {k: v for k, v in os.environ.items() if k != ENV}
    request = json.dumps({"argv": argv, "cwd": os.getcwd(), "env": env}).encode()
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        with address(path) as short:
            conn.connect(short)
        socket.send_fds(conn, [HEADER.pack(len(request)) + request], [0, 1, 2])
        replies = conn.makefile("r", encoding="utf-8")
        first = replies.readline()
    except OSError:
        conn.close()
        return None
    if not first:  # the server went away before it forked: nothing started, run here instead
        conn.close()
        return None
    pid = json.loads(first)["pid"]

    def forward(signum, frame):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, forward)
    last = replies.readline()  # the handlers above forward and return: the read resumes (PEP 475)
    if not last:
        print(f"hivelm {argv[0] if argv else ''}: the stage server exited before the stage did", file=sys.stderr)
        return 1
    return json.loads(last)["exit"]


if __name__ == "__main__":
    parent = int(sys.argv[1])
    end_with_parent()
    if os.getppid() != parent:  # the parent died before prctl: nobody is left to signal us
        sys.exit(128 + signal.SIGTERM)
    os.execv(sys.argv[2], sys.argv[2:])
