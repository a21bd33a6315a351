"""CI's regression gate, as a test: the Quickstart's `make quick` (configs/ci/params.yaml: two demo communities,
the real embedded SmolLM2, a few steps) in a scratch copy of HEAD, then `hivelm check-metrics` against the
committed reports/ci-baseline/metrics.json. A change that makes the finetuned models worse fails here.

In the suite rather than after it (.ci/run is `make setup` and `make test`): the pipeline's single-threaded
spells (DVC between stages, the model conversion) leave a core idle that the other pytest worker's tests fill,
where run after the suite they were idle time of CI's 15 minutes (docs/how-to/tests.md)."""

import os
import subprocess

import pytest

from conftest import BIN, REPO

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def test_the_ci_sized_pipeline_runs_and_no_gated_metric_regressed(tmp_path):
    quick = tmp_path / "quick"
    env = {k: v for k, v in os.environ.items()  # the scratch project's own MLflow store, no parent run
           if k not in ("MLFLOW_TRACKING_URI", "HIVELM_PARENT_RUN_ID", "DVC_ROOT")}
    built = subprocess.run(["make", "-s", "quick", f"QUICK={quick}", "HIVELM_FLAGS=-q", f"BIN={BIN}"], cwd=REPO,
                           env=env, capture_output=True, text=True)
    assert built.returncode == 0, f"make quick failed:\n{built.stdout[-3000:]}\n{built.stderr[-3000:]}"
    assert "Did tuning help?" in built.stdout and (quick / "reports/report.html").is_file()
    gate = subprocess.run([str(BIN / "hivelm"), "check-metrics", str(REPO / "reports/ci-baseline/metrics.json")],
                          cwd=quick, env=env, capture_output=True, text=True)
    print(gate.stdout)  # the gate's table, in the test's output
    assert gate.returncode == 0, f"a gated metric regressed:\n{gate.stdout[-6000:]}\n{gate.stderr[-2000:]}"
