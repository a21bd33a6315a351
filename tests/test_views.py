"""DVC and MLflow views that fit (issue 23.6): the DVC metrics are the headline, numbers only; `dvc plots show`
renders offline."""

import html
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import BIN, chromium_flags, run
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


# After the page's scripts ran (vega-embed renders asynchronously; --virtual-time-budget runs the timer), the
# size of each plot's drawing (vega's svg or canvas, class marks), as an attribute --dump-dom shows.
MEASURE_PLOTS = """<script>
window.addEventListener('load', () => setTimeout(() => {
  const sizes = [...document.querySelectorAll('body > div[id]')].map(plot => {
    const drawing = plot.querySelector('svg.marks, canvas.marks');
    const box = drawing ? drawing.getBoundingClientRect() : {width: 0, height: 0};
    return [Math.round(box.width), Math.round(box.height)];
  });
  document.body.setAttribute('data-plots', JSON.stringify(sizes));
}, 3000));
</script>"""


@pytest.mark.heavy  # runs DVC and Chromium
def test_dvc_plots_show_renders_the_demo_plots_with_the_network_blocked(tmp_path):
    """The page loads vega from configs/dvc-plots (plots.html_template in .dvc/config), not DVC's CDN links."""
    project = tmp_path / "project"
    for name in ("dvc.yaml", "params.yaml", ".dvc/config", "configs/dvc-plots", "reports"):
        copy = shutil.copytree if (REPO / name).is_dir() else shutil.copy2
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        copy(REPO / name, project / name)
    run(["git", "init", "-q"], project)
    run([str(BIN / "dvc"), "plots", "show"], project)  # a plain `dvc plots show`: the config picks the template
    page = project / "dvc_plots/index.html"
    text = page.read_text(encoding="utf-8")
    assert "cdn.jsdelivr.net" not in text and "../configs/dvc-plots/vega.min.js" in text
    plots = text.count("vegaEmbed(")
    assert plots >= 5  # the per-community fidelity bars, cross-community FID, survey, confusion matrices

    measured = page.with_name("measured.html")  # beside the page: the same relative script paths
    measured.write_text(text.replace("</body>", MEASURE_PLOTS + "</body>"), encoding="utf-8")
    offline = "--host-resolver-rules=MAP * ~NOTFOUND"  # no host name resolves: a CDN link would fail
    dom = subprocess.run([*chromium_flags(tmp_path / "chrome"), offline, "--dump-dom", measured.as_uri()],
                         check=True, capture_output=True, text=True, timeout=120).stdout
    found = re.search(r'data-plots="([^"]*)"', dom)
    assert found, "the measuring script did not run"
    sizes = json.loads(html.unescape(found.group(1)))
    assert len(sizes) == plots and all(w > 50 and h > 50 for w, h in sizes), sizes
