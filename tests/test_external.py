"""Corpora generated elsewhere, evaluated through the real DVC pipeline with no base model, tuning or generation
(README: "Evaluate generations you already have")."""

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import BIN, REPO, assert_strict_reports, init_pipeline_repo, run

pytestmark = pytest.mark.integration

COMMUNITIES = ("keto", "running")


def demo_texts(community: str, start: int, n: int) -> list[str]:
    """Posts standing in for another model's generations: demo posts of the community, reworded a little."""
    demo = pd.read_csv(REPO / "data/demo/posts.csv", dtype=str, keep_default_na=False)
    texts = demo[demo["community"] == community]["text"].tolist()[start:start + n]
    return [f"{text} (take {i})" for i, text in enumerate(texts)]


def params_of(repo: Path) -> dict:
    return yaml.safe_load((repo / "params.yaml").read_text())


@pytest.fixture
def external_repo(tmp_path, mlflow_template_db):
    demo = pd.read_csv(REPO / "data/demo/posts.csv", dtype=str, keep_default_na=False)
    repo = tmp_path / "repo"
    (repo / "data/demo").mkdir(parents=True)
    demo[demo["community"].isin(COMMUNITIES)].groupby("community").head(60).to_csv(repo / "data/demo/posts.csv",
                                                                                 index=False)
    # one file per community, the text under another field name
    for community in COMMUNITIES:
        path = repo / f"data/external/llama3/{community}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(json.dumps({"content": t}) + "\n" for t in demo_texts(community, 100, 12)))
    # one file with a community column (labels), filtered: running has only 2 posts (insufficient), and a
    # refusal and a post of a community the project does not declare are dropped
    rows = ([{"group": "keto", "post": t} for t in demo_texts("keto", 130, 11)]
            + [{"group": "keto", "post": "I cannot tweet about extreme fasting or weight loss goals."},
               {"group": "running", "post": demo_texts("running", 130, 1)[0]},
               {"group": "running", "post": demo_texts("running", 140, 1)[0]},
               {"group": "gardening", "post": "Tomatoes are finally ripening on the balcony."}])
    pd.DataFrame(rows).to_csv(repo / "data/external/api_personas.csv", index=False)
    # as in a fresh clone: the demo's committed results of the attribute stage, which this pipeline leaves out
    shutil.copytree(REPO / "reports/attribute", repo / "reports/attribute")
    params = yaml.safe_load((REPO / "configs/external/params.yaml").read_text())  # the shipped example
    params["communities"] = {k: params["communities"][k] for k in COMMUNITIES}
    params["prepare"]["min_posts_per_community"] = 10
    init_pipeline_repo(repo, params, mlflow_template_db, Path("unused-no-base-model"))
    params = params_of(repo)  # after the tiny-run sizes: a corpus below 5 posts is insufficient here
    params["evaluate"] |= {"min_posts": 5, "statistics": {"bootstrap_resamples": 20, "confidence": 0.95, "seed": 0}}
    params["evaluate"]["external"][1]["unmatched"] = "skip"  # gardening: left out, counted
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return repo


def test_external_corpora_run_through_the_evaluate_only_pipeline(external_repo):
    repo = external_repo
    run([str(BIN / "hivelm"), "dvc-yaml"], repo)
    stages = yaml.safe_load((repo / "dvc.yaml").read_text())["stages"]
    assert list(stages) == ["prepare", "evaluate", "summarize", "report"]  # no base model, tune, generate, survey
    assert {"data/external/llama3/keto.jsonl", "data/external/llama3/running.jsonl",
            "data/external/api_personas.csv"} <= set(stages["evaluate"]["deps"])
    assert "models/base" not in stages["prepare"]["deps"] and "data/generated" not in stages["report"]["deps"]
    run(["git", "add", "-A"], repo)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "external"], repo)
    out = run([str(BIN / "hivelm"), "run"], repo)
    ran = [line.split("'")[1] for line in out.stdout.splitlines() if line.startswith("Running stage")]
    assert ran == ["prepare", "evaluate", "summarize", "report"]

    assert "likelihood" not in json.loads((repo / "reports/metrics.json").read_text())  # stale: not read
    metrics = json.loads((repo / "reports/metrics.json").read_text())["fidelity"]
    for community in COMMUNITIES:
        assert set(metrics["communities"][community]) == {"llama3_ft", "api_personas"}
        assert metrics["communities"][community]["llama3_ft"]["fid"] is not None
    assert metrics["communities"]["running"]["api_personas"] == {
        "attribution": None, "auc": None, "fid": None, "fid_size": None, "emotion_alignment": None, "toxicity_wasserstein": None,
        "n": 2, "reason": "insufficient: 2 posts < min_posts 5"}
    sources = metrics["sources"]
    provenance = params_of(repo)["evaluate"]["external"][0]["provenance"]
    assert sources["llama3_ft"]["provenance"] == provenance
    assert sources["api_personas"]["filter_counts"]["keto"]["after_refusal"] == 11  # the refusal is gone
    assert sources["api_personas"]["dropped"]["unmatched_community"] == {"posts": 1, "values": 1,
                                                                        "shown": {"'gardening'": 1}}
    assert set(metrics["cross_community"]) == {"real", "llama3_ft", "api_personas"}
    cross = json.loads((repo / "reports/metrics/cross_community.json").read_text())
    assert cross["llama3_ft"]["rows"] == list(COMMUNITIES) and cross["api_personas"]["rows"] == ["keto"]

    page = (repo / "reports/report.html").read_text()
    assert provenance in page and "an API model prompted with our persona templates" in page
    assert "insufficient" in page
    assert "Which community would have written" not in page and "reports/attribute/ (attribute)" in page
    assert "skipped 1 posts of 1 community values matching no declared community" in page
    assert "base model" not in page.split("<h2>Fidelity")[0]  # no model of ours made these corpora
    assert_strict_reports(repo / "reports")

    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{repo / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(params_of(repo)["tracking"]["experiment"])
    nested = client.search_runs([experiment.experiment_id], "tags.stage = 'evaluate' and tags.community != 'all'")
    metrics_by_community = {r.data.tags["community"]: r.data.metrics for r in nested}
    assert {"fid/llama3_ft", "fid/api_personas", "auc/llama3_ft/low"} <= set(metrics_by_community["keto"])
    assert "fid/llama3_ft" in metrics_by_community["running"] and "fid/api_personas" not in metrics_by_community["running"]
    assert metrics_by_community["running"]["n/api_personas"] == 2

    assert json.loads(run([str(BIN / "dvc"), "status", "--json"], repo).stdout) == {}
    with (repo / "data/external/llama3/running.jsonl").open("a") as handle:
        handle.write(json.dumps({"content": "One more generated post about tempo runs and new shoes."}) + "\n")
    assert set(json.loads(run([str(BIN / "dvc"), "status", "--json"], repo).stdout)) == {"evaluate"}

    # Bad inputs: every problem listed at once, before any model loads; exit 2, no traceback.
    with (repo / "data/external/llama3/keto.jsonl").open("a") as handle:
        handle.write(json.dumps({"text": "the field is named content here"}) + "\n")
    (repo / "data/external/api_personas.csv").unlink()
    failed = run([str(BIN / "hivelm"), "evaluate"], repo, check=False)
    assert failed.returncode == 2 and "Traceback" not in failed.stderr
    assert "data/external/llama3/keto.jsonl:13: missing field 'content'" in failed.stderr
    assert "data/external/api_personas.csv: file not found (evaluate.external[1].path)" in failed.stderr
