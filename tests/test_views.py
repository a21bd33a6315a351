"""DVC and MLflow views that fit (issue 23.6): the DVC metrics are the headline, numbers only."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from hivelm import contracts, headline, paths

REPO = Path(__file__).resolve().parents[1]


def numbers_only(node) -> bool:
    if isinstance(node, dict):
        return all(numbers_only(v) for v in node.values())
    return isinstance(node, (int, float)) and not isinstance(node, bool)


def test_the_committed_headline_is_the_metrics_file_and_holds_numbers_only(monkeypatch):
    """The only DVC metrics file is the headline, derived from the committed per-community metrics by the
    function the report and the end-of-run table use; text (provenance, scorers) stays in reports/metrics.json,
    which the gate and the report read and DVC tracks as a plain output."""
    monkeypatch.chdir(REPO)
    declared = [m for c in contracts.CONTRACTS for m in c.metrics]
    assert declared == [str(paths.HEADLINE)]
    committed = json.loads(paths.HEADLINE.read_text(encoding="utf-8"))
    communities = [p.stem for p in sorted(paths.METRICS_DIR.glob("*.json")) if p.stem != "cross_community"
                   and p.stem != "summary"]
    assert committed == headline.counts(headline.read(communities)) and numbers_only(committed)
    assert committed["communities"] == 4


@pytest.mark.heavy  # runs DVC
def test_dvc_metrics_show_lines_fit_200_columns_on_the_demo():
    """Issue 23.6: `dvc metrics show` printed 7 lines of 33,132 characters (every count and text as columns)."""
    dvc = Path(sys.executable).with_name("dvc")
    shown = subprocess.run([str(dvc), "metrics", "show"], cwd=REPO, capture_output=True, text=True, check=True,
                           timeout=120).stdout.splitlines()
    assert len(shown) == 2 and shown[1].startswith(str(paths.HEADLINE))
    assert max(map(len, shown)) < 200, shown


@pytest.mark.heavy  # an MLflow store
def test_stages_dvc_skipped_leave_their_numbers_in_mlflow_under_the_parent_run(project):
    """Issue 23.6: on a fresh clone DVC skipped evaluate (outputs matched dvc.lock), so MLflow had no fidelity
    numbers; now a run per skipped stage, tagged restored_from_dvc_lock, carries its committed numbers."""
    from mlflow.tracking import MlflowClient

    from hivelm import tracking
    from hivelm.config import load_config

    cfg = load_config()
    (project / "reports/metrics").mkdir(parents=True)
    (project / "reports/metrics/keto.json").write_text(json.dumps(
        {"corpora": {"finetuned": {"fid": {"value": 0.25, "low": 0.2, "high": 0.3, "direction": "lower"}}}}))
    (project / "reports/prepare").mkdir(parents=True)
    (project / "reports/prepare/stats.json").write_text(json.dumps({"input": 99}))
    client = MlflowClient(tracking.tracking_uri())
    with tracking.pipeline_run(cfg, "p") as parent_id:
        experiment = client.get_run(parent_id).info.experiment_id
        ran = client.create_run(experiment, tags={"mlflow.parentRunId": parent_id, "mlflow.runName": "prepare"})
        client.set_terminated(ran.info.run_id)
        restored = tracking.log_skipped_stages(cfg, parent_id)
    assert restored == ["evaluate"]  # prepare ran; the rest have no committed files here
    run = client.search_runs([experiment], f"tags.{tracking.RESTORED_TAG} = 'true'")[0]
    assert run.data.tags["mlflow.parentRunId"] == parent_id and run.info.run_name == "evaluate"
    assert run.data.metrics["keto.corpora.finetuned.fid.value"] == 0.25
