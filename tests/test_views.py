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
