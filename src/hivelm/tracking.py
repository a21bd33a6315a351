"""The one place that talks to MLflow.

Every executed stage opens one run (one per community for fanned-out stages). When `hivelm run` drives the
pipeline it creates a parent run and hands its id to each stage through HIVELM_PARENT_RUN_ID; stages attach
with `parent_run_id` (never by exporting MLFLOW_RUN_ID, which would merge every stage into one run).

Tracking URI: MLFLOW_TRACKING_URI when set (e.g. a server), else an absolute sqlite `mlflow.db` at the
project root (DVC_ROOT inside DVC, which points at the parent repo even in `dvc exp run --temp`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

from hivelm.config import HiveConfig, flatten
from hivelm.errors import HiveError, redact
from hivelm.processes import interrupts_held

log = logging.getLogger(__name__)

PARENT_ENV = "HIVELM_PARENT_RUN_ID"
# MLflow 3 opens an experiment in its GenAI view unless the experiment says it trains models.
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}
MAX_PARAM_CHARS = 6000  # MLflow's limit on a param value
# MLflow's HTTP client retries a dead server for about four minutes (7 retries, backoff factor 2), so a stage
# whose server went away mid-run would hang that long. These defaults ride out a blip of a few seconds, then
# fail; set the variables to wait longer.
HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
                 "MLFLOW_HTTP_REQUEST_TIMEOUT": "30"}


def project_root() -> Path:
    return Path(os.environ.get("DVC_ROOT") or Path.cwd()).resolve()


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{project_root() / 'mlflow.db'}"


def ensure_store(uri: str | None = None) -> str:
    """Check that the tracking store answers and create (migrate) it once; call before any work.

    A server is probed with a short timeout (MLflow itself would retry for minutes); a sqlite store is
    created under a lock beside the file, because two processes migrating one fresh file corrupt it.
    Raises HiveError naming the URI or file. Every later request of this process gets HTTP_DEFAULTS' bounded
    retries (stages and the pipeline's parent run alike), unless the user set them.
    """
    for key, value in HTTP_DEFAULTS.items():
        os.environ.setdefault(key, value)
    uri = uri or tracking_uri()
    if uri.startswith(("http://", "https://")):
        _probe_server(uri)
    elif uri.startswith("sqlite:///"):
        _open_sqlite(uri)
    else:
        _probe_database(uri)
        try:
            _search(uri)
        except Exception as err:  # a missing driver, a refused login, a missing database: many types
            reason = str(getattr(err, "orig", None) or err).strip().splitlines()[0] if str(err).strip() else \
                type(err).__name__
            raise HiveError(redact(f"tracking store {uri} (MLFLOW_TRACKING_URI) cannot be opened: {reason}")) \
                from None
    end_runs_of_dead_processes(uri)
    return uri


@lru_cache(maxsize=8)
def end_runs_of_dead_processes(uri: str) -> int:
    """Mark KILLED the RUNNING runs whose process (tagged by base_tags) has ended on this host: a SIGKILLed
    stage or `hivelm run` cannot end its own run, which would stay RUNNING for ever. Once per process and store.
    Returns how many were ended."""
    from mlflow.tracking import MlflowClient

    from hivelm import processes

    client = MlflowClient(uri)
    experiments = [e.experiment_id for e in client.search_experiments(max_results=1000)]
    if not experiments:
        return 0
    running = client.search_runs(experiments, "attributes.status = 'RUNNING' and tags.process_host = "
                                 f"'{socket.gethostname()}'", max_results=10000)
    dead = [run for run in running if processes.gone(run.data.tags)]
    for run in dead:
        client.set_terminated(run.info.run_id, status="KILLED")
    if dead:
        log.warning("%d MLflow run(s) left RUNNING by processes that no longer exist ended as KILLED: %s",
                    len(dead), ", ".join(r.info.run_name or r.info.run_id for r in dead[:5]))
    return len(dead)


DATABASE_PORTS = {"postgresql": 5432, "mysql": 3306, "mssql": 1433}
"""Default ports of the databases MLflow stores runs in (mlflow/store/db/db_types.py)."""


def _probe_database(uri: str, timeout_s: float = 5.0) -> None:
    """A database that does not answer fails in seconds: MLflow would retry for about 100 s
    (create_sqlalchemy_engine_with_retry) and end in a traceback. Other URIs are left to MLflow."""
    import socket

    from sqlalchemy.engine import make_url

    try:
        url = make_url(uri)
    except Exception:  # not a database URL (file:, databricks): MLflow decides
        return
    port = url.port or DATABASE_PORTS.get(url.get_backend_name())
    if not url.host or port is None:
        return
    try:
        socket.create_connection((url.host, port), timeout=timeout_s).close()
    except OSError as err:
        raise HiveError(redact(f"tracking store {uri} (MLFLOW_TRACKING_URI) is unreachable: "
                               f"{getattr(err, 'strerror', None) or err}; start the database, or unset "
                               "MLFLOW_TRACKING_URI to log to mlflow.db")) from None


def _search(uri: str) -> None:
    from mlflow.tracking import MlflowClient

    MlflowClient(uri).search_experiments(max_results=1)


def _probe_server(uri: str, timeout_s: float = 5.0) -> None:
    """Any HTTP answer (even 401 or 404 from a proxy) proves the server is reachable; only a connection
    failure or a timeout does not."""
    import urllib.error
    import urllib.request

    try:
        urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout_s).close()
    except urllib.error.HTTPError:
        pass
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        raise HiveError(redact(f"tracking server {uri} (MLFLOW_TRACKING_URI) is unreachable: {reason}; start it, "
                               "or unset MLFLOW_TRACKING_URI to log to mlflow.db")) from None


def _open_sqlite(uri: str) -> None:
    from hivelm.artifacts import file_lock, lock_beside

    db = Path(uri.removeprefix("sqlite:///"))
    if db.exists() and not os.access(db, os.W_OK):
        raise HiveError(f"{db}: the MLflow store is read-only; make it writable or set MLFLOW_TRACKING_URI")
    with file_lock(lock_beside(db), f"MLflow store {db}"):
        try:
            _search(uri)
        except Exception as err:  # SQLAlchemy and MLflow raise many types; one line naming the file is enough
            reason = str(getattr(err, "orig", None) or err).strip().splitlines()[0]
            raise HiveError(f"{db}: cannot open as an MLflow sqlite store ({reason}); move it aside to start "
                            "a new one") from None


def ensure_experiment(name: str, uri: str | None = None) -> str:
    """The id of experiment `name`, created (or tagged) as a model-training experiment for the UI."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri or tracking_uri())
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        return client.create_experiment(name, tags=EXPERIMENT_KIND)
    for key, value in EXPERIMENT_KIND.items():
        if experiment.tags.get(key) != value:
            client.set_experiment_tag(experiment.experiment_id, key, value)
    return experiment.experiment_id


@lru_cache(maxsize=1)
def git_state() -> tuple[str, bool]:
    """(commit, dirty) of the working tree, or ('unknown', False) outside git."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                                check=True).stdout.strip()
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                                capture_output=True, text=True, check=True).stdout
        return commit, bool(status.strip())
    except (OSError, subprocess.CalledProcessError):
        return "unknown", False


def base_tags(stage: str, community: str | None) -> dict[str, str]:
    from hivelm import processes

    commit, dirty = git_state()
    return {
        "stage": stage,
        "community": community or "all",
        "git_commit": commit,
        "git_dirty": str(dirty).lower(),
        "dvc_exp": os.environ.get("DVC_EXP_NAME", ""),
        **processes.identity(),  # lets a later process end this run KILLED if this one is killed outright
    }


class StageRun:
    """Thin handle over an active MLflow run: numeric metrics (nested dicts flattened), artifacts.

    `params` are the stage's declared params as logged (also what a stage fingerprints its inputs with)."""

    def __init__(self, run, params: dict[str, Any], config_hash: str, opener=None):
        self.run = run
        self.run_id = run.info.run_id if run is not None else ""
        self.params, self.config_hash = params, config_hash
        self._opener = opener

    def child(self, community: str):
        """A nested run of the same stage for one community (e.g. evaluate's per-community metrics)."""
        return self._opener(community)

    def log_metrics(self, metrics: dict[str, Any], step: int | None = None) -> None:
        import mlflow

        numeric = {k: float(v) for k, v in flatten(metrics).items()
                   if isinstance(v, (int, float)) and not isinstance(v, bool)}
        if numeric:
            with interrupts_held():
                mlflow.log_metrics(numeric, step=step)

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        import mlflow

        path = Path(path)
        with interrupts_held():
            if path.is_dir():
                mlflow.log_artifacts(str(path), artifact_path=artifact_path or path.name)
            else:
                mlflow.log_artifact(str(path), artifact_path=artifact_path)

    def set_tags(self, tags: dict[str, str]) -> None:
        import mlflow

        with interrupts_held():
            mlflow.set_tags(tags)

    def log_dict(self, payload: Any, artifact_file: str) -> None:
        import mlflow

        with interrupts_held():
            mlflow.log_dict(payload, artifact_file)

    def log_text(self, text: str, artifact_file: str) -> None:
        import mlflow

        with interrupts_held():
            mlflow.log_text(text, artifact_file)

    def register_model(self, name: str, artifact_path: str) -> str:
        """Register this run's artifact folder as a new version of model `name`; returns the version."""
        import mlflow
        from mlflow.tracking import MlflowClient

        client = MlflowClient()
        try:
            client.get_registered_model(name)
        except mlflow.exceptions.MlflowException:
            client.create_registered_model(name, tags={"hivelm": "community adapter"})
        source = f"{mlflow.get_artifact_uri(artifact_path)}"
        version = client.create_model_version(name, source, run_id=self.run_id)
        return version.version


class _NoRun(StageRun):
    """Stands in for the run on non-main processes of a multi-GPU launch: they log nothing."""

    def child(self, community: str):
        return contextlib.nullcontext(self)

    def log_metrics(self, *args, **kwargs) -> None: ...
    def log_artifact(self, *args, **kwargs) -> None: ...
    def set_tags(self, *args, **kwargs) -> None: ...
    def log_dict(self, *args, **kwargs) -> None: ...
    def log_text(self, *args, **kwargs) -> None: ...
    def register_model(self, *args, **kwargs) -> str:
        return ""


def is_main_process() -> bool:
    """Rank 0 (or no distributed launch at all): only it talks to MLflow under `accelerate launch`."""
    return int(os.environ.get("RANK", "0")) == 0


def loss_callback():
    """A transformers TrainerCallback that logs every numeric training log (loss, eval_loss, learning rate)
    to the active MLflow run at its optimizer step, so loss curves show in the UI."""
    import mlflow
    from transformers import TrainerCallback

    class MlflowLossCallback(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if state.is_world_process_zero and logs and mlflow.active_run():
                numeric = {k: float(v) for k, v in logs.items() if isinstance(v, (int, float))}
                with interrupts_held():
                    mlflow.log_metrics(numeric, step=state.global_step)

    return MlflowLossCallback()


@contextmanager
def stage_run(cfg: HiveConfig, stage: str, community: str | None,
              params: Callable[[str | None], tuple[dict[str, Any], str]]) -> Iterator[StageRun]:
    """Open the MLflow run of one stage (and community), log exactly its declared params and their hash, and
    time it. `params(community)` gives them (hivelm.declared.declared_params: this module never reads a
    contract, so a stage that logs through it does not depend on the read guard). The run ends KILLED if the
    block is interrupted (Ctrl-C, or SIGTERM through the CLI's handler), FAILED if it raises; the exception
    propagates."""
    import resource

    import mlflow

    started, cpu = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
    name = f"{stage}@{community}" if community else stage
    view, config_hash = params(community)
    if not is_main_process():
        yield _NoRun(None, view, config_hash)
        return
    log.info("stage %s: start", name)
    uri = ensure_store()
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment(experiment_id=ensure_experiment(cfg.tracking.experiment, uri))
    tags = base_tags(stage, community) | {"config_hash": config_hash}
    active = mlflow.active_run()  # a stage's per-community child runs nest under the stage's run
    parent = active.info.run_id if active else os.environ.get(PARENT_ENV) or None
    # Every write to the store holds SIGINT/SIGTERM until it is done (processes.interrupts_held), so an
    # interrupt lands between writes and the run still ends KILLED.
    with tracking_failures(uri, name):
        run = None
        try:
            with interrupts_held():
                run = mlflow.start_run(run_name=name, parent_run_id=parent, tags=tags, nested=active is not None)
                logged = {k: str(v)[:MAX_PARAM_CHARS] for k, v in flatten(view).items()}
                if logged:
                    mlflow.log_params(logged)
                if cfg.tracking.log_config_artifact:
                    mlflow.log_dict(view, "config/resolved.yaml")
            yield StageRun(run, view, config_hash, lambda c: stage_run(cfg, stage, c, params))
        except BaseException as error:  # KeyboardInterrupt: Ctrl-C, or SIGTERM through the CLI's handler
            interrupted = isinstance(error, KeyboardInterrupt)
            log.error("stage %s: %s after %.1f s", name, "interrupted" if interrupted else "failed",
                      time.perf_counter() - started)
            if run is not None:  # else no run of ours is active (end_run would end the parent's)
                with interrupts_held():
                    mlflow.end_run("KILLED" if interrupted else "FAILED")
            raise
        seconds = time.perf_counter() - started
        user, system = cpu_seconds(cpu)
        with interrupts_held():
            mlflow.log_metrics({"duration_s": seconds, "cpu_user_s": user, "cpu_system_s": system})
            mlflow.end_run()
    log.info("stage %s: done in %.1f s (CPU: user %.1f s, system %.1f s, %.0f%% in the kernel)", name, seconds,
             user, system, 100 * system / max(user + system, 1e-9))


def cpu_seconds(since=None) -> tuple[float, float]:
    """User and system CPU seconds of this process (all its threads) since `since` (a resource.getrusage
    result), or in all. System time is the kernel working for us (page faults of fresh tensor memory, threads
    spinning and waking, tokenizer threads), not arithmetic: docs/explanation/performance.md."""
    import resource

    now = resource.getrusage(resource.RUSAGE_SELF)
    return (now.ru_utime - (since.ru_utime if since else 0.0), now.ru_stime - (since.ru_stime if since else 0.0))


@contextmanager
def tracking_failures(uri: str, name: str) -> Iterator[None]:
    """A tracking store that fails mid-stage (a server gone away) ends the stage with a HiveError naming the
    store, not a traceback; the stage's outputs are swapped in only on success, so the previous ones stay."""
    from mlflow.exceptions import MlflowException
    from requests.exceptions import RequestException

    try:
        yield
    except (MlflowException, RequestException) as err:
        reason = str(getattr(err, "message", err)).strip().splitlines()[0][:400]
        raise HiveError(redact(f"MLflow tracking at {uri} failed during {name}: {reason}")) from None


@contextmanager
def pipeline_run(cfg: HiveConfig, name: str | None = None) -> Iterator[str]:
    """Create the parent run of one pipeline run and yield its id; mark it FINISHED, FAILED, or KILLED when
    interrupted (Ctrl-C, or SIGTERM through the CLI's handler)."""
    from mlflow.tracking import MlflowClient

    uri = ensure_store()
    client = MlflowClient(uri)
    experiment_id = ensure_experiment(cfg.tracking.experiment, uri)
    tags = base_tags("pipeline", None) | {"mlflow.runName": name or time.strftime("pipeline-%Y%m%d-%H%M%S")}
    run = client.create_run(experiment_id, tags=tags)
    status = "FAILED"
    try:
        yield run.info.run_id
        status = "FINISHED"
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    finally:
        for path in ("params.yaml", "dvc.lock"):
            if Path(path).is_file():
                client.log_artifact(run.info.run_id, path)
        client.set_terminated(run.info.run_id, status=status)


def log_parent_metrics(parent_id: str, metrics: dict, uri: str | None = None) -> None:
    """Numbers on the parent run itself (nested dicts flattened with dots), so its row in the UI's runs table
    has values in the headline columns, not only its children's rows."""
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    stamp = int(time.time() * 1000)
    batch = [Metric(k, float(v), stamp, 0) for k, v in flatten(metrics).items()]
    MlflowClient(uri or tracking_uri()).log_batch(parent_id, metrics=batch)


RESTORED_TAG = "restored_from_dvc_lock"


def log_skipped_stages(cfg: HiveConfig, parent_id: str, uri: str | None = None) -> list[str]:
    """Under the parent run, one run per stage (and community) that DVC skipped because its outputs matched
    dvc.lock, holding the numbers of its committed metrics and reports (tagged restored_from_dvc_lock), so
    every figure of a pipeline run is findable in MLflow even on a fresh clone. Returns their names."""
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    from hivelm.contracts import CONTRACTS, KEY, left_out_stages

    client = MlflowClient(uri or tracking_uri())
    parent = client.get_run(parent_id)
    ran = {run.info.run_name for run in client.search_runs(  # stage runs are named stage or stage@community
        [parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent_id}'")}
    left_out, restored = set(left_out_stages(cfg)), []
    for contract in CONTRACTS:
        if not contract.in_dvc or contract.name in left_out:
            continue
        communities = list(cfg.communities) if contract.per_community else [None]
        for community in communities:
            name = f"{contract.name}@{community}" if community else contract.name
            if name in ran:
                continue
            files = [Path(p.replace(KEY, community or "")) for p in (*contract.reports, *contract.metrics)]
            files = [f for p in files for f in (sorted(p.rglob("*.json")) if p.is_dir() else [p]) if f.is_file()]
            numbers = {}
            for file in files:
                flat = flatten(json.loads(file.read_text(encoding="utf-8")), file.stem)
                numbers |= {k: float(v) for k, v in flat.items()
                            if isinstance(v, (int, float)) and not isinstance(v, bool)}
            if not numbers:
                continue
            tags = base_tags(contract.name, community) | {
                RESTORED_TAG: "true", "mlflow.parentRunId": parent_id, "mlflow.runName": name,
                "mlflow.note.content": "DVC skipped this stage: its outputs matched dvc.lock. These are the numbers "
                                       "of its committed outputs; the run that produced them is in git history."}
            run = client.create_run(parent.info.experiment_id, tags=tags)
            stamp = int(time.time() * 1000)
            metrics = [Metric(k, v, stamp, 0) for k, v in numbers.items()]
            for start in range(0, len(metrics), 1000):  # MLflow's batch limit
                client.log_batch(run.info.run_id, metrics=metrics[start:start + 1000])
            client.set_terminated(run.info.run_id)
            restored.append(name)
    if restored:
        log.info("restored from dvc.lock into MLflow (stages DVC skipped): %s", ", ".join(restored))
    return restored
