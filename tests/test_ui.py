"""`hivelm ui`: a real MLflow server over the store of a tiny pipeline run, checked through its REST API and
a headless Chromium screenshot of the runs page."""

import json
import subprocess
import urllib.request

import pytest

from conftest import BIN, chromium_flags, free_port, make_pipeline_repo, not_blank, run
from hivelm import ui

pytestmark = pytest.mark.integration


def post(url: str, payload: dict) -> dict:
    request = urllib.request.Request(url, json.dumps(payload).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def test_ui_serves_the_pipeline_runs_and_renders(tmp_path, mlflow_template_db, tiny_model_dir):
    repo = make_pipeline_repo(tmp_path / "repo", mlflow_template_db, tiny_model_dir)
    run([str(BIN / "hivelm"), "run", "--name", "ui-check", "--", "prepare"], repo)  # base_model + prepare
    uri = f"sqlite:///{repo / 'mlflow.db'}"
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    server = ui.start(uri, port=port)
    try:
        ui.wait_healthy(base_url, server)
        experiments = post(f"{base_url}/api/2.0/mlflow/experiments/search", {"max_results": 10})["experiments"]
        experiment = next(e for e in experiments if e["name"] == "hivelm-demo")
        # opens in the UI's model-training view, not the GenAI one
        assert {"key": "mlflow.experimentKind", "value": "custom_model_development"} in experiment["tags"]
        runs = post(f"{base_url}/api/2.0/mlflow/runs/search",
                    {"experiment_ids": [experiment["experiment_id"]]})["runs"]
        tags = [{t["key"]: t["value"] for t in r["data"]["tags"]} for r in runs]
        parent = next(r for r, t in zip(runs, tags) if t["stage"] == "pipeline")
        assert parent["info"]["run_name"] == "ui-check" and parent["info"]["status"] == "FINISHED"
        children = [(r, t) for r, t in zip(runs, tags) if t.get("mlflow.parentRunId") == parent["info"]["run_id"]]
        assert sorted(t["stage"] for _, t in children) == ["base_model", "prepare"]
        prepare = next(r for r, t in children if t["stage"] == "prepare")
        metric_names = {m["key"] for m in prepare["data"]["metrics"]}
        assert "communities.keto.after_near_dedupe" in metric_names and "duration_s" in metric_names
        # the parent's row has numbers in the headline columns (0 communities compared: nothing evaluated)
        assert {m["key"]: m["value"] for m in parent["data"]["metrics"]}["headline.communities"] == 0

        url = ui.runs_url(base_url, uri, "hivelm-demo")
        assert url.endswith(f"#/experiments/{experiment['experiment_id']}/runs?viewStateShareKey={ui.VIEW_KEY}"
                            "&workflowType=machine_learning")
        screenshot = tmp_path / "runs.png"
        flags = chromium_flags(tmp_path / "chrome")
        subprocess.run([*flags, f"--screenshot={screenshot}", url], check=True, capture_output=True, timeout=120)
        assert not_blank(screenshot)
        dom = subprocess.run([*flags, "--dump-dom", url], check=True, capture_output=True, text=True,
                             timeout=120).stdout
        assert "ui-check" in dom  # the parent run is listed in the rendered runs table
        assert "headline.helped.fid" in dom  # a headline metric is a column of the runs table it opens on
        # a fresh browser profile: the model-training side navigation, not the GenAI one (traces, judges)
        assert "Model registry" in dom and "Judges" not in dom
    finally:
        ui.stop(server)
    assert server.poll() is not None


# --- Issue 31, point 13: a tracking URI's password is never on a command line nor in a message -------------

SECRET_PG = "postgresql://hive:s3cret@127.0.0.1:{port}/mlflow"


def test_the_store_uri_goes_to_mlflow_server_in_its_environment_not_its_command_line(monkeypatch):
    """Any local user can read a process's command line (/proc/PID/cmdline); only its owner its environment."""
    seen = {}
    monkeypatch.setattr(subprocess, "Popen", lambda command, env, **kwargs: seen.update(command=command, env=env))
    uri = SECRET_PG.format(port=5432)
    ui.start(uri, port=5001)
    assert not any("s3cret" in part for part in seen["command"]) and "--backend-store-uri" not in seen["command"]
    assert seen["env"]["MLFLOW_BACKEND_STORE_URI"] == uri


def test_an_unreachable_postgresql_store_is_exit_2_with_one_redacted_line(tmp_path, monkeypatch, capsys):
    from hivelm import cli

    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text("communities:\n  keto: {label: keto, name: keto}\n")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", SECRET_PG.format(port=free_port()))  # nothing listens there
    assert cli.main(["ui", "--port", str(free_port())]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "postgresql://hive:***@127.0.0.1" in error[0] and "is unreachable" in error[0]
    assert "s3cret" not in error[0]


def test_a_server_uri_password_is_redacted_in_errors(monkeypatch):
    from hivelm import tracking
    from hivelm.errors import HiveError, redact

    with pytest.raises(HiveError) as err:
        tracking.ensure_store(f"http://alice:s3cret@127.0.0.1:{free_port()}")
    assert "http://alice:***@127.0.0.1" in str(err.value) and "s3cret" not in str(err.value)
    assert redact("mysql://u:p%40ss@db/x?sslmode=require and https://h/x?token=abc&b=1") == \
        "mysql://u:***@db/x?sslmode=require and https://h/x?token=***&b=1"
