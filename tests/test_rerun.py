"""Rerunning a finished pipeline: the lineage rule for params switched back, `dvc exp run -S`, and a failed stage
that keeps the previous outputs. Apart from tests/test_pipeline.py so `make test`'s workers (one test file each
at a time) can run the two long end-to-end files side by side."""


import pytest
import yaml

from conftest import BIN, copy_pipeline, run
from test_pipeline import ran_stages, runs_by_parent

pytestmark = pytest.mark.integration


def test_rerun_cache_rule_and_a_failed_stage_keeps_previous_outputs(keto_pipeline, tmp_path):
    """Switching params back re-executes the stage (and logs a run) instead of a silent run-cache restore
    (the lineage rule in the README); then a failing stage leaves the previous outputs intact. Starts from a
    copy of the session's finished keto-only pipeline (conftest.keto_pipeline)."""
    repo = copy_pipeline(keto_pipeline[0], tmp_path / "repo")
    params = yaml.safe_load((repo / "params.yaml").read_text())
    assert ran_stages(run([str(BIN / "hivelm"), "run"], repo).stdout) == []  # the copy is up to date
    for value in (0.5, 0.95):
        params["generate"]["decoding"]["temperature"] = value
        (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        assert sorted(ran_stages(run([str(BIN / "hivelm"), "run"], repo).stdout)) == [
            "evaluate", "generate@keto", "report", "summarize"]
    _, _, children = runs_by_parent(repo)
    # base_model, prepare, instruct, tune, generate, survey, evaluate, attribute, summarize, report; none for
    # the up-to-date run; then generate, evaluate, summarize, report, each time (evaluate@keto nests under its
    # evaluate run).
    assert [len(kids) for kids in children.values()] == [10, 0, 4, 4]

    # The README's experiment command, as a user types it in the activated venv (`hivelm` on PATH, as
    # `source .venv/bin/activate` puts it): only the stages that read the key rerun, and their runs say which
    # experiment they belong to.
    experiment = run(["dvc", "exp", "run", "-S", "evaluate.statistics.bootstrap_resamples=30"], repo)
    assert sorted(ran_stages(experiment.stdout)) == ["evaluate", "report", "summarize"]
    client, _, _ = runs_by_parent(repo)
    tagged = client.search_runs([client.get_experiment_by_name("hivelm-demo").experiment_id],
                                "tags.stage = 'evaluate' and tags.community = 'all'", order_by=["attributes.start_time DESC"])
    assert tagged[0].data.params["evaluate.statistics.bootstrap_resamples"] == "30" and tagged[0].data.tags["dvc_exp"]
    assert ran_stages(run(["dvc", "repro"], repo).stdout) == []

    before = {p: p.read_bytes() for p in sorted((repo / "data/prepared").rglob("*.jsonl"))}
    (repo / "data/demo/posts.csv").write_text("")
    # --no-check: past `hivelm check` (which would stop at the empty file before any run), so prepare fails in DVC
    failed = run([str(BIN / "hivelm"), "run", "--no-check"], repo, check=False)
    assert failed.returncode != 0
    assert "posts.csv: file is empty" in failed.stderr
    assert {p: p.read_bytes() for p in sorted((repo / "data/prepared").rglob("*.jsonl"))} == before
    _, parents, _ = runs_by_parent(repo)
    assert [p.info.status for p in parents] == ["FINISHED"] * 4 + ["FAILED"]
