"""Process lifetimes (Linux): children that end with their parent, and whether a recorded process still runs.

`python -m hivelm.procs PARENT_PID COMMAND...` execs COMMAND after asking the kernel to send it SIGTERM when
PARENT_PID exits (prctl(2), PR_SET_PDEATHSIG; the setting survives exec). `hivelm run` starts DVC this way,
so a SIGKILLed `hivelm run` does not leave DVC running the rest of the pipeline. A wrapper process instead of
Popen's preexec_fn, which the subprocess documentation calls unsafe in a process with threads.
"""

from __future__ import annotations

import os
import signal
import socket
import sys

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


if __name__ == "__main__":
    parent = int(sys.argv[1])
    end_with_parent()
    if os.getppid() != parent:  # the parent died before prctl: nobody is left to signal us
        sys.exit(128 + signal.SIGTERM)
    os.execv(sys.argv[2], sys.argv[2:])
