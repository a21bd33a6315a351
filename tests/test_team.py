"""Beyond one laptop, with the real components: tuning under `accelerate launch` (DDP over gloo), a DVC remote
round trip, and an MLflow server on PostgreSQL (README, "Working as a team")."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from conftest import BIN, copy_pipeline, free_port, make_pipeline_repo, run
from hivelm import ui

pytestmark = pytest.mark.integration


def command_env(**extra: str) -> dict[str, str]:
    """The environment of a `hivelm` command as a user runs it: the venv's bin first, telemetry off."""
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}", MLFLOW_DISABLE_TELEMETRY="true")
    for key in ("HIVELM_PARENT_RUN_ID", "DVC_ROOT"):
        env.pop(key, None)
    return env | extra


def run_checked(cmd: list[str], cwd: Path, env: dict[str, str], timeout: float = 600):
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise AssertionError(f"{cmd} failed ({result.returncode}):\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
    return result


# --- several processes for tuning -----------------------------------------------------------------------

# Every Python process of the launch records, per rank, what it writes under models/adapters and every MLflow
# store it opens (audit hooks see the interpreter's own file, directory and sqlite events).
AUDIT_HOOK = '''
import os, sys
if os.environ.get("HIVELM_AUDIT_DIR") and "RANK" in os.environ:
    _log = open(os.path.join(os.environ["HIVELM_AUDIT_DIR"], "rank-" + os.environ["RANK"] + ".txt"), "a",
                buffering=1)

    def _hook(event, args):
        if event == "open" and isinstance(args[0], str) and "models/adapters" in args[0] \\
                and (args[2] & (os.O_WRONLY | os.O_RDWR | os.O_CREAT)):
            _log.write(f"write {args[0]}\\n")
        elif event in ("os.mkdir", "os.rename") and "models/adapters" in str(args[0]):
            _log.write(f"{event} {args[0]}\\n")
        elif event == "sqlite3.connect" and "mlflow" in str(args[0]):
            _log.write(f"mlflow {args[0]}\\n")

    sys.addaudithook(_hook)
'''

POSTS = ["almond flour fat bombs", "cauliflower rice and salmon meal prep with garlic butter tonight",
         "net carbs matter more than you think", "eggs and cheese for breakfast again, the third day running, and I "
         "still love it", "zucchini noodles", "electrolytes fixed my keto flu within a day"]


def write_demonstrations(path: Path, n: int) -> None:
    """Demonstrations of different lengths, so a loss averaged per device (not per token) would show."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as f:
        for i in range(n):
            f.write(json.dumps({"id": f"d{i}", "community": "keto", "messages": [
                {"role": "system", "content": "You are a helpful assistant."},
                {"role": "user", "content": "You belong to the keto cooking community. What would you post?"},
                {"role": "assistant", "content": POSTS[i % len(POSTS)]}]}) + "\n")


# The same global batch of 8 either way: 2 processes x 4, or 1 process x 4 x 2 accumulation steps (each
# optimizer step then sees the same 8 demonstrations: accelerate hands consecutive batches to the ranks).
# No dropout and no length grouping (its mega-batches depend on the per-step batch): the runs are comparable.
TUNE = ["tune.batch_size=4", "tune.max_steps=6", "tune.eval_steps=6", "tune.lora_dropout=0.0",
        "tune.learning_rate=0.01", "tune.group_by_length=false", "base_model.num_threads=1"]
# Max |difference| of any adapter weight. Measured 0 on this CPU: gloo's all-reduce of two gradients adds them
# as accumulation does. More ranks or another backend reorder float sums; 1e-4 is far below one update (lr).
DDP_TOLERANCE = 1e-4


def test_accelerate_launch_two_processes_matches_one(project, tiny_model_dir):
    from mlflow.tracking import MlflowClient
    from safetensors.torch import load_file

    shutil.copytree(tiny_model_dir, project / "models/base")
    # 53 = 48 training demonstrations (6 full global batches) + 5 for eval (tune.eval_fraction 0.1). With a
    # partial last batch the runs would differ by design: accelerate fills the last DDP batch from the start.
    write_demonstrations(project / "data/instructions/keto.jsonl", 53)
    adapter = project / "models/adapters/keto"
    env = command_env()

    run_checked([str(BIN / "hivelm"), "tune", "--community", "keto", *TUNE, "tune.gradient_accumulation_steps=2"],
                project, env)
    single = load_file(str(adapter / "adapter_model.safetensors"))

    hooks = project / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(AUDIT_HOOK)
    audit = project / "audit"
    audit.mkdir()
    ddp_env = env | {"HIVELM_AUDIT_DIR": str(audit),
                     "PYTHONPATH": os.pathsep.join([str(hooks), *filter(None, [env.get("PYTHONPATH")])])}
    # `--cpu` would pick accelerate's simple launcher (one process unless MPI is set up); `--multi_gpu` starts
    # torchrun's workers, and tune's TrainingArguments(use_cpu=True) makes them train on CPU over gloo.
    launch = [str(BIN / "accelerate"), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
              "--mixed_precision", "no", "--dynamo_backend", "no", "--num_cpu_threads_per_process", "1",
              "--main_process_port", str(free_port()), "-m", "hivelm", "tune", "--community", "keto", *TUNE]
    result = subprocess.run(launch, cwd=project, env=ddp_env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]

    ranks = {p.name: p.read_text().splitlines() for p in sorted(audit.glob("rank-*.txt"))}
    assert sorted(ranks) == ["rank-0.txt", "rank-1.txt"], ranks  # two worker processes ran
    assert any(line.startswith("write ") for line in ranks["rank-0.txt"])
    assert any(line.startswith("mlflow ") for line in ranks["rank-0.txt"])
    assert ranks["rank-1.txt"] == [], ranks["rank-1.txt"]  # rank 1 neither writes the adapter nor logs

    client = MlflowClient(os.environ["MLFLOW_TRACKING_URI"])
    runs = client.search_runs([client.get_experiment_by_name("hivelm-demo").experiment_id],
                              order_by=["attributes.start_time ASC"])
    assert [r.data.tags["stage"] for r in runs] == ["tune", "tune"]  # one run per invocation, not per rank
    ddp = runs[1]
    assert ddp.info.status == "FINISHED" and ddp.data.params["tune.gradient_accumulation_steps"] == "1"
    assert [m.step for m in client.get_metric_history(ddp.info.run_id, "loss")] == list(range(1, 7))
    assert ddp.data.metrics["steps"] == 6
    assert ddp.data.metrics["tokens_seen"] == runs[0].data.metrics["tokens_seen"]  # counted over both ranks

    parallel = load_file(str(adapter / "adapter_model.safetensors"))
    assert parallel.keys() == single.keys()
    # lora_B starts at zero: the adapters trained, so their agreeing is not trivial
    assert max(float(single[k].abs().max()) for k in single if "lora_B" in k) > 1e-3
    worst = max(float((single[k] - parallel[k]).abs().max()) for k in single)
    assert worst < DDP_TOLERANCE, worst
    print(f"DDP vs single process: max |diff| {worst:.2e}", file=sys.stderr)


# --- DVC remote round trip -------------------------------------------------------------------------------


def ran_stages(output: str) -> list[str]:
    return [line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage")]


def outputs(repo: Path) -> dict[str, bytes]:
    """Every file the pipeline wrote (adapters, reports, generated corpora), by path; lock files beside
    outputs are not outputs (.dvcignore)."""
    return {str(p.relative_to(repo)): p.read_bytes() for top in ("data/prepared", "data/instructions",
                                                                  "data/generated", "models/adapters", "reports")
            for p in sorted((repo / top).rglob("*")) if p.is_file() and not p.name.endswith(".lock")}


def test_dvc_remote_round_trip_needs_no_retraining(keto_pipeline, tmp_path, mlflow_template_db):
    """The session's finished keto-only pipeline (the smallest slice with every stage; conftest.keto_pipeline),
    pushed to a DVC remote and pulled into a fresh clone, reruns nothing there."""
    repo = copy_pipeline(keto_pipeline[0], tmp_path / "repo")
    assert "tune@keto" in ran_stages(keto_pipeline[1]) and (repo / "reports/report.html").is_file()
    remote = tmp_path / "remote"
    run([str(BIN / "dvc"), "remote", "add", "-d", "storage", str(remote)], repo)
    run(["git", "add", "-A"], repo)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "results"], repo)
    run([str(BIN / "dvc"), "push"], repo)
    assert any(p.is_file() for p in remote.rglob("*"))

    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(repo), str(clone)], tmp_path)
    assert not (clone / "models/adapters/keto").exists()  # adapters and data come from the remote only
    shutil.copy(mlflow_template_db, clone / "mlflow.db")  # a pre-migrated store, as on the first machine
    run([str(BIN / "dvc"), "pull"], clone)
    assert json.loads(run([str(BIN / "dvc"), "status", "--json"], clone).stdout) == {}
    again = run([str(BIN / "hivelm"), "run"], clone)
    assert ran_stages(again.stdout) == [], again.stdout  # nothing retrained, nothing regenerated
    assert outputs(clone) == outputs(repo) and (clone / "models/adapters/keto/adapter_model.safetensors").is_file()


# --- MLflow server on PostgreSQL ------------------------------------------------------------------------


def postgres_bin() -> Path | None:
    """The folder of initdb / pg_ctl / createdb: on PATH, or where Debian's `postgresql` package puts them."""
    found = shutil.which("pg_ctl")
    candidates = [Path(found).resolve()] if found else sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    for pg_ctl in reversed(candidates):
        if (pg_ctl.parent / "initdb").is_file() and (pg_ctl.parent / "createdb").is_file():
            return pg_ctl.parent
    return None


def unprivileged() -> tuple[list[str], str | None]:
    """(command prefix, user) to run the cluster as: initdb refuses root. Debian's package creates `postgres`."""
    if os.geteuid() != 0:
        return [], None
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "postgres"],
                       check=True, capture_output=True)
    return ["runuser", "-u", "postgres", "--"], "postgres"


@pytest.fixture
def postgres() -> str:
    """A throwaway PostgreSQL cluster on a free loopback port; yields the URI of an empty database `mlflow`."""
    bindir = postgres_bin()
    if bindir is None:
        pytest.skip("PostgreSQL is not installed and `make setup` could not install it (Debian package postgresql)")
    prefix, user = unprivileged()
    home = Path(tempfile.mkdtemp(prefix="hivelm-pg-"))  # not under pytest's tmp: root-only, unreachable for `user`
    if user:
        shutil.chown(home, user)
    data, port = home / "data", free_port()
    try:
        subprocess.run([*prefix, bindir / "initdb", "-D", data, "-A", "trust", "-U", "postgres", "--no-sync",
                        "-E", "UTF8", "--locale=C"], check=True, capture_output=True)
        started = subprocess.run([*prefix, bindir / "pg_ctl", "-D", data, "-w", "-l", home / "server.log", "-o",
                                  f"-p {port} -k {home} -c listen_addresses=127.0.0.1 -c fsync=off", "start"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # the server keeps pipes open
        log = (home / "server.log").read_text() if (home / "server.log").exists() else ""
        assert started.returncode == 0, f"pg_ctl start failed:\n{log}"
        subprocess.run([bindir / "createdb", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "mlflow"],
                       check=True, capture_output=True)
        yield f"postgresql://postgres@127.0.0.1:{port}/mlflow"
    finally:
        subprocess.run([*prefix, bindir / "pg_ctl", "-D", data, "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(home, ignore_errors=True)


@dataclass
class TeamServer:
    uri: str  # what the team sets as MLFLOW_TRACKING_URI
    backend: str  # the database behind it
    artifacts: Path  # the server's artifact root (clients upload through the server)
    process: subprocess.Popen

    def stop(self) -> None:
        ui.stop(self.process)


@pytest.fixture
def team_server(postgres, tmp_path) -> TeamServer:
    """`mlflow server` on the PostgreSQL cluster with a local artifact root and `hivelm ui`'s light settings."""
    port, artifacts = free_port(), tmp_path / "mlflow-artifacts"
    command = [*ui.server_command("127.0.0.1", port), "--artifacts-destination", str(artifacts)]
    env = dict(os.environ, MLFLOW_BACKEND_STORE_URI=postgres, MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false",
               MLFLOW_DISABLE_TELEMETRY="true")
    with (tmp_path / "mlflow-server.log").open("w") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    server = TeamServer(f"http://127.0.0.1:{port}", postgres, artifacts, process)
    try:
        ui.wait_healthy(server.uri, process)
        yield server
    finally:
        server.stop()


def test_pipeline_on_an_mlflow_server_backed_by_postgresql(team_server, tmp_path, monkeypatch, mlflow_template_db,
                                                           tiny_model_dir):
    import mlflow
    from mlflow.tracking import MlflowClient

    repo = make_pipeline_repo(tmp_path / "repo", mlflow_template_db, tiny_model_dir)
    (repo / "mlflow.db").unlink()  # every run must go to the server
    env = command_env(MLFLOW_TRACKING_URI=team_server.uri)
    run_checked([str(BIN / "hivelm"), "run", "--name", "team", "--", "tune@keto"], repo, env)
    assert not (repo / "mlflow.db").exists() and not (repo / "mlruns").exists()

    client = MlflowClient(team_server.uri)
    experiment = client.get_experiment_by_name("hivelm-demo")
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    runs = client.search_runs([experiment.experiment_id])
    parent = next(r for r in runs if r.data.tags["stage"] == "pipeline")
    assert parent.info.run_name == "team" and parent.info.status == "FINISHED"
    assert {a.path for a in client.list_artifacts(parent.info.run_id)} >= {"params.yaml", "dvc.lock"}
    kids = {(r.data.tags["stage"], r.data.tags["community"]): r for r in runs if r is not parent}
    assert sorted(kids) == [("base_model", "all"), ("instruct", "keto"), ("prepare", "all"), ("tune", "keto")]
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True).stdout.strip()
    for kid in kids.values():
        assert kid.data.tags["mlflow.parentRunId"] == parent.info.run_id and kid.info.status == "FINISHED"
        assert kid.data.tags["git_commit"] == head and len(kid.data.tags["config_hash"]) == 16
        assert "duration_s" in kid.data.metrics
    assert kids["prepare", "all"].data.metrics["communities.keto.input"] == 45
    tune = kids["tune", "keto"]
    assert tune.data.params["tune.max_steps"] == "4" and "communities.running.name" not in tune.data.params
    assert [m.step for m in client.get_metric_history(tune.info.run_id, "loss")] == [1, 2, 3, 4]
    assert "eval_loss" in tune.data.metrics

    # The adapter went through the server into its artifact root, and the registry serves it back.
    weights = (repo / "models/adapters/keto/adapter_model.safetensors").read_bytes()
    assert "adapter/adapter_model.safetensors" in {a.path for a in client.list_artifacts(tune.info.run_id, "adapter")}
    assert [p.read_bytes() == weights for p in team_server.artifacts.rglob("adapter_model.safetensors")] == [True]
    versions = client.search_model_versions("name='hivelm-keto'")
    assert [(v.version, v.run_id) for v in versions] == [("1", tune.info.run_id)]
    # `models:/` URIs resolve through MLflow's global store, which an earlier test in this process may have set
    # (and which download_artifacts' own uri arguments do not reach in MLflow 3.17): point it here for now.
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils

    monkeypatch.setenv("MLFLOW_TRACKING_URI", team_server.uri)
    monkeypatch.setattr(tracking_utils, "_tracking_uri", team_server.uri)
    monkeypatch.setattr(registry_utils, "_registry_uri", None)
    served = mlflow.artifacts.download_artifacts("models:/hivelm-keto/1", dst_path=str(tmp_path / "served"))
    assert (Path(served) / "adapter_model.safetensors").read_bytes() == weights

    # The server goes away in the middle of a stage: the stage fails within seconds naming the URI, exits
    # non-zero, and the previous adapter stays as it was.
    adapter = repo / "models/adapters/keto"
    before = {p.relative_to(adapter): p.read_bytes() for p in adapter.rglob("*") if p.is_file()}
    output = tmp_path / "stage.log"
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["tune"].update(max_steps=100000, eval_steps=100000)  # trains until the server is gone
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    with output.open("w") as log:  # through `hivelm run`: the stage fails, then so does the parent run's close
        stage = subprocess.Popen([str(BIN / "hivelm"), "run", "--", "tune@keto"], cwd=repo, env=env, stdout=log,
                                 stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while not [r for r in client.search_runs([experiment.experiment_id],
                                                 "tags.stage = 'tune' and attributes.status = 'RUNNING'")
                   if client.get_metric_history(r.info.run_id, "loss")]:  # training, and logging its loss
            assert stage.poll() is None and time.monotonic() < deadline, output.read_text()
            time.sleep(0.3)
        team_server.stop()
        stopped = time.monotonic()
        try:
            code = stage.wait(timeout=60)
        except subprocess.TimeoutExpired:
            code = None  # hung: MLflow's default retries would wait about four minutes
        seconds = time.monotonic() - stopped
    finally:
        if stage.poll() is None:
            stage.kill()
            stage.wait()
    message = output.read_text()
    print(f"stage failed {seconds:.1f} s after the server stopped; exit {code}", file=sys.stderr)
    assert code not in (None, 0) and seconds < 20, message
    assert team_server.uri in message and "Traceback" not in message, message
    assert {p.relative_to(adapter): p.read_bytes() for p in adapter.rglob("*") if p.is_file()} == before
    assert not (repo / "mlflow.db").exists()  # no silent fallback to a local store
    # What was logged before stays in the database: the finished run in full, the interrupted one unfinished.
    store = MlflowClient(team_server.backend)
    tunes = store.search_runs([experiment.experiment_id], "tags.stage = 'tune'", order_by=["attributes.start_time ASC"])
    assert [r.info.status for r in tunes] == ["FINISHED", "RUNNING"]
    assert [m.step for m in store.get_metric_history(tunes[0].info.run_id, "loss")] == [1, 2, 3, 4]
    assert store.get_metric_history(tunes[1].info.run_id, "loss")
