"""`hivelm ui`: the MLflow UI over this project's tracking store, light enough for a laptop.

Settings measured on 2 cores: one worker and no job execution (2 processes, about 0.5 GB, healthy in ~10 s,
instead of 15 processes and 2.7 GB). The server runs in its own process group, so Ctrl-C or SIGTERM (turned
into KeyboardInterrupt by the CLI) stops all of it.
"""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from hivelm.errors import HiveError


def server_command(host: str, port: int) -> list[str]:
    """No store URI here: any local user can read a command line (/proc/PID/cmdline), and the URI may hold a
    database password. `start` hands it over in the environment, which only its owner can read."""
    mlflow = str(Path(sys.executable).parent / "mlflow")
    return [mlflow, "server", "--host", host, "--port", str(port), "--workers", "1"]


def start(uri: str, host: str = "127.0.0.1", port: int = 5000) -> subprocess.Popen:
    # `mlflow server` reads --backend-store-uri from MLFLOW_BACKEND_STORE_URI (its click option's envvar).
    env = dict(os.environ, MLFLOW_BACKEND_STORE_URI=uri, MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false",
               MLFLOW_DISABLE_TELEMETRY=os.environ.get("MLFLOW_DISABLE_TELEMETRY", "true"))
    return subprocess.Popen(server_command(host, port), env=env, start_new_session=True)


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
    try:
        os.killpg(process.pid, signal.SIGTERM)  # even when the leader is gone, a worker may not be
    except ProcessLookupError:
        return
    try:
        process.wait(grace_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


VIEW_KEY = "hivelm-headline"
"""MLflow's UI restores a runs-table view (its columns) from the experiment tag `mlflow.sharedViewState.<key>`
when the URL says `?viewStateShareKey=<key>`: what its Share button writes (useSharedExperimentViewState in
mlflow/server/js/src/experiment-tracking/components/experiment-page/hooks). Plain JSON is read as well as the
compressed form it writes."""


def headline_view() -> dict:
    """The runs table with the headline metrics as its columns (MLflow's column key: metrics.`name`)."""
    from hivelm.headline import mlflow_keys

    return {"selectedColumns": [f"metrics.`{key}`" for key in mlflow_keys()]}


def runs_url(base_url: str, uri: str, experiment: str) -> str:
    """The runs table with the headline columns, in the UI's model-training view.

    The bare experiment URL opens a GenAI overview instead, and a browser that has never opened MLflow starts in the
    GenAI side navigation (traces, judges) whatever the experiment's kind: `workflowType=machine_learning` is the
    UI's own query parameter for its "Model training" switch."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    found = client.get_experiment_by_name(experiment)
    if not found:
        return base_url
    client.set_experiment_tag(found.experiment_id, f"mlflow.sharedViewState.{VIEW_KEY}", json.dumps(headline_view()))
    return f"{base_url}/#/experiments/{found.experiment_id}/runs?viewStateShareKey={VIEW_KEY}&workflowType=machine_learning"


def is_loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def port_in_use(host: str, port: int) -> bool:
    """Something already listens there (e.g. a server orphaned by a killed `hivelm ui`): ours would fail to
    bind, and the health check would find the other one."""
    target = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    try:
        socket.create_connection((target, port), timeout=1).close()
        return True
    except OSError:
        return False


def main(cfg, host: str = "127.0.0.1", port: int = 5000) -> int:
    from hivelm import tracking

    if not is_loopback(host):
        print(f"warning: --host {host} serves the MLflow UI and its API without authentication to every "
              "machine that can reach this one: anyone there can read, change and delete runs", file=sys.stderr)
    if port_in_use(host, port):
        raise HiveError(f"port {port} on {host} is already in use (a running or orphaned `hivelm ui`?): "
                        "stop it or pass another --port")
    uri = tracking.ensure_store()
    base_url = f"http://{host}:{port}"
    process = start(uri, host, port)
    try:
        wait_healthy(base_url, process)
        print(f"MLflow UI: {runs_url(base_url, uri, cfg.tracking.experiment)}  (Ctrl-C to stop)", flush=True)
        process.wait()
    except KeyboardInterrupt:  # the CLI exits 128 + the signal's number, as for every command
        print("stopping the MLflow server", flush=True)
        raise
    finally:
        stop(process)
    return 0
