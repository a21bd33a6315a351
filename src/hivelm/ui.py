"""`hivelm ui`: the MLflow UI over this project's tracking store, light enough for a laptop.

Settings from stack-notes: one worker and no job execution (2 processes, about 0.5 GB, healthy in ~10 s,
instead of 15 processes and 2.7 GB). The server runs in its own process group, so Ctrl-C stops all of it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from hivelm.errors import HiveError


def server_command(uri: str, host: str, port: int) -> list[str]:
    mlflow = str(Path(sys.executable).parent / "mlflow")
    return [mlflow, "server", "--backend-store-uri", uri, "--host", host, "--port", str(port), "--workers", "1"]


def start(uri: str, host: str = "127.0.0.1", port: int = 5000) -> subprocess.Popen:
    env = dict(os.environ, MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false",
               MLFLOW_DISABLE_TELEMETRY=os.environ.get("MLFLOW_DISABLE_TELEMETRY", "true"))
    return subprocess.Popen(server_command(uri, host, port), env=env, start_new_session=True)


def wait_healthy(base_url: str, process: subprocess.Popen, timeout_s: float = 90.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise HiveError(f"mlflow server exited with code {process.returncode} before it was healthy")
        try:
            with urllib.request.urlopen(f"{base_url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.5)
    raise HiveError(f"mlflow server at {base_url} not healthy after {timeout_s:.0f} s")


def stop(process: subprocess.Popen, grace_s: float = 10.0) -> None:
    """Stop the whole process group: a plain SIGTERM to the parent leaves uvicorn workers orphaned."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(grace_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def runs_url(base_url: str, uri: str, experiment: str) -> str:
    """The runs table (the bare experiment URL opens a GenAI overview instead)."""
    from mlflow.tracking import MlflowClient

    found = MlflowClient(uri).get_experiment_by_name(experiment)
    return f"{base_url}/#/experiments/{found.experiment_id}/runs" if found else base_url


def main(cfg, host: str = "127.0.0.1", port: int = 5000) -> int:
    from hivelm import tracking

    uri = tracking.ensure_store()
    base_url = f"http://{host}:{port}"
    process = start(uri, host, port)
    try:
        wait_healthy(base_url, process)
        print(f"MLflow UI: {runs_url(base_url, uri, cfg.tracking.experiment)}  (Ctrl-C to stop)", flush=True)
        process.wait()
    except KeyboardInterrupt:
        print("stopping the MLflow server", flush=True)
    finally:
        stop(process)
    return 0
