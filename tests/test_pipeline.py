"""End to end: a copy of the project in a temporary git repo, the real `dvc repro` through `hivelm run`,
and the real MLflow store it writes."""

import json
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import (
    BIN,
    assert_strict_reports,
    chromium_flags,
    make_pipeline_repo,
    not_blank,
    overflowing_tables,
    run,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def pipeline_repo(tmp_path, mlflow_template_db, tiny_model_dir):
    return make_pipeline_repo(tmp_path / "repo", mlflow_template_db, tiny_model_dir)


def ran_stages(output: str) -> list[str]:
    return [line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage")]


def runs_by_parent(repo: Path):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{repo / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(yaml.safe_load((repo / "params.yaml").read_text())
                                               ["tracking"]["experiment"])
    runs = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time ASC"])
    parents = [r for r in runs if r.data.tags["stage"] == "pipeline"]
    # children: the stage runs that ran (not the runs restored from dvc.lock for stages DVC skipped)
    return client, parents, {p.info.run_id: [r for r in runs if r.data.tags.get("mlflow.parentRunId")
                                             == p.info.run_id and "restored_from_dvc_lock" not in r.data.tags]
                             for p in parents}


def restored_runs(client, parent_id: str) -> dict:
    """{stage run name: run} of the runs `hivelm run` restored from dvc.lock under `parent_id`."""
    experiment = client.get_run(parent_id).info.experiment_id
    found = client.search_runs([experiment], f"tags.mlflow.parentRunId = '{parent_id}' and "
                                             "tags.restored_from_dvc_lock = 'true'")
    return {r.info.run_name: r for r in found}


def test_repro_builds_outputs_and_tracks_every_stage_under_one_parent(pipeline_repo):
    repo = pipeline_repo
    communities = list(yaml.safe_load((repo / "params.yaml").read_text())["communities"])
    first = run([str(BIN / "hivelm"), "run"], repo)
    per_community = ["instruct", "tune", "generate", "survey"]
    downstream = ["evaluate", "attribute", "summarize", "report"]
    assert sorted(ran_stages(first.stdout)) == sorted(
        ["base_model", "prepare", *[f"{s}@{c}" for s in per_community for c in communities], *downstream])
    for community in communities:
        assert (repo / f"data/prepared/{community}/train.jsonl").stat().st_size > 0
        assert (repo / f"data/prepared/{community}/heldout.jsonl").stat().st_size > 0
        assert (repo / f"data/instructions/{community}.jsonl").stat().st_size > 0
        assert (repo / f"models/adapters/{community}/adapter_model.safetensors").is_file()
        for corpus in ("finetuned", "untuned", "in_context"):
            assert (repo / f"data/generated/{community}/{corpus}.raw.jsonl").stat().st_size > 0
        assert (repo / f"reports/generate/{community}.json").is_file()
    assert (repo / "reports/prepare/stats.json").is_file() and (repo / "dvc.lock").is_file()
    assert (repo / "models/base/hivelm_base.json").is_file()
    page = (repo / "reports/report.html").read_text()
    assert "Content warning" in page and "<svg" in page and "Survey" in page
    assert "<script" not in page and "cdn" not in page.lower()  # opens offline
    generated = [json.loads(line)["text"] for c in communities for path in (repo / f"data/generated/{c}").glob("*.jsonl")
                 for line in path.open()]
    assert not any(text in page for text in generated if len(text) > 20)  # no generated text by default
    flags = chromium_flags(repo / ".chrome")
    report_url = (repo / "reports/report.html").as_uri()
    subprocess.run([*flags, f"--screenshot={repo / 'report.png'}", report_url], check=True, capture_output=True,
                   timeout=120)
    assert not_blank(repo / "report.png")
    assert overflowing_tables(repo / "reports/report.html", repo / ".chrome") == []  # at 1,400 px, as shot
    dom = subprocess.run([*flags, "--dump-dom", report_url], check=True, capture_output=True, text=True,
                         timeout=120).stdout
    for heading in ("Provenance", "Fidelity per community", "Cross-community distance", "Which community would",
                    "Emotion profiles", "Survey", "Data counts"):
        assert f"<h2>{heading}" in dom, heading
    summary = json.loads((repo / "reports/metrics.json").read_text())
    assert {"prepare", "generate", "fidelity", "survey", "likelihood"} <= set(summary)
    assert {"value", "low", "high"} <= set(summary["likelihood"]["attribution"]["likelihood"]["macro_f1"])
    assert json.loads((repo / "reports/attribute/matrix.json").read_text())["rows"] == communities
    assert_strict_reports(repo / "reports")  # strict JSON everywhere, every estimate inside its interval
    assert set(summary["fidelity"]["communities"][communities[0]]) == {"finetuned", "untuned", "in_context"}
    # The survey's validity card: every model has every check and a verdict, the finetuned adapters their
    # dose-response, every contrast a supported / not-supported call; the report shows it above the scores.
    from hivelm.survey.validity import CHECKS

    validity = summary["survey"]["validity"]
    for community in communities:
        surveyed = json.loads((repo / f"reports/survey/{community}.json").read_text())
        for corpus in ("finetuned", "untuned", "in_context"):
            card = surveyed["corpora"][corpus]["validity"]
            # the retest needs something redrawn under the second seed: in_context's posts; the other two models
            # give the same probabilities again, scored exactly, so their retest is skipped
            skipped = [] if corpus == "in_context" else ["retest"]
            assert set(card["checks"]) | set(card["skipped"]) == set(CHECKS) and card["skipped"] == skipped, corpus
            assert card["verdict"] in {"informative", "uninformative"} and card["probes"] >= 1
            assert validity["communities"][community][corpus]["verdict"] == card["verdict"]
            assert card["answer_modes"]["items"] and len(card["per_order"]) == 2
        dose = surveyed["validity"]["dose"]
        assert dose["scales"] == [0.0, 0.5, 1.0, 1.5] and dose["slope"]["value"] is not None
        assert {"order", "paraphrase", "persona", "model"} <= set(surveyed["validity"]["variance"])
    assert all("supported" in call for pairs in validity["contrasts"].values() for call in pairs.values())
    assert dom.index("Validity card") < dom.index("Scores (order-averaged)")

    client, parents, children = runs_by_parent(repo)
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    kids = children[parents[0].info.run_id]
    assert sorted((r.data.tags["stage"], r.data.tags["community"]) for r in kids) == sorted(
        [("base_model", "all"), ("prepare", "all"), ("evaluate", "all"), ("attribute", "all"), ("summarize", "all"),
         ("report", "all")]
        + [(s, c) for s in per_community for c in communities])
    evaluate_run = next(k for k in kids if k.data.tags["stage"] == "evaluate")
    nested = client.search_runs([evaluate_run.info.experiment_id],
                                f"tags.mlflow.parentRunId = '{evaluate_run.info.run_id}'")
    assert sorted(r.data.tags["community"] for r in nested) == sorted(communities)
    assert all("fid/finetuned" in r.data.metrics for r in nested)
    head = run(["git", "rev-parse", "HEAD"], repo).stdout.strip()
    for kid in kids:
        assert kid.info.status == "FINISHED" and kid.data.tags["git_commit"] == head
        assert kid.data.tags["git_dirty"] == "false"
        assert "duration_s" in kid.data.metrics
        # CPU time in arithmetic (user) and in the kernel (system), from resource.getrusage
        assert kid.data.metrics["cpu_user_s"] > 0 and kid.data.metrics["cpu_system_s"] >= 0
        assert "config/resolved.yaml" in [a.path for a in client.list_artifacts(kid.info.run_id, "config")]
    prepare = next(k for k in kids if k.data.tags["stage"] == "prepare")
    assert prepare.data.params["prepare.min_posts_per_community"] == "10"
    assert prepare.data.metrics[f"communities.{communities[0]}.input"] == 45
    # Every run logs exactly the params its contract declares (and hashes exactly those).
    from hivelm.config import flatten, load_config
    from hivelm.contracts import STAGES
    from hivelm.declared import select

    cfg = load_config(repo / "params.yaml")
    for kid in kids:
        community = None if kid.data.tags["community"] == "all" else kid.data.tags["community"]
        declared = {k: str(v) for k, v in flatten(select(cfg, STAGES[kid.data.tags["stage"]].params, community)).items()}
        assert kid.data.params == declared, kid.data.tags["stage"]
    summarize = next(k for k in kids if k.data.tags["stage"] == "summarize")
    assert {"survey.statistics.bootstrap_resamples", "survey.statistics.permutations", "survey.statistics.confidence",
            "survey.statistics.seed"} <= set(summarize.data.params)
    keto = next(k for k in kids if k.data.tags["community"] == communities[0] and k.data.tags["stage"] == "instruct")
    assert keto.data.params["instruct.seed"] == "0" and f"communities.{communities[1]}.name" not in keto.data.params
    for community in communities:
        versions = client.search_model_versions(f"name='hivelm-{community}'")
        assert len(versions) == 1 and versions[0].run_id in {k.info.run_id for k in kids}
    tune_run = next(k for k in kids if k.data.tags["stage"] == "tune")
    assert [m.step for m in client.get_metric_history(tune_run.info.run_id, "loss")] == [1, 2, 3, 4]
    assert "eval_loss" in tune_run.data.metrics
    generate_run = next(k for k in kids if k.data.tags["stage"] == "generate")
    assert generate_run.data.params["generate.decoding.temperature"] == "0.95"
    assert {"finetuned.refusal_rate", "untuned.kept", "in_context.after_leakage"} <= set(generate_run.data.metrics)
    assert not client.list_artifacts(generate_run.info.run_id, "samples")  # text stays on disk by default

    # Nothing changed: nothing runs, no new child runs.
    second = run([str(BIN / "hivelm"), "run"], repo)
    assert ran_stages(second.stdout) == []
    assert sum(len(v) for v in runs_by_parent(repo)[2].values()) == len(kids)
    # issue 23.6: the skipped stages' committed numbers are still in MLflow, under the new parent run
    client, parents, _ = runs_by_parent(repo)
    restored = restored_runs(client, parents[-1].info.run_id)
    assert {"prepare", "evaluate", "summarize"} <= set(restored)
    assert any(k.endswith("corpora.finetuned.fid.value") for k in restored["evaluate"].data.metrics)

    # One community's training post edited: only that community's stages (after prepare) rerun.
    edited = json.loads((repo / f"data/prepared/{communities[0]}/train.jsonl").open().readline())["post_id"]
    posts = pd.read_csv(repo / "data/demo/posts.csv", dtype=str, keep_default_na=False)
    posts.loc[posts["post_id"] == edited, "text"] += " (edited)"
    posts.to_csv(repo / "data/demo/posts.csv", index=False)
    third = run([str(BIN / "hivelm"), "run"], repo)
    assert sorted(ran_stages(third.stdout)) == sorted(
        ["prepare", *[f"{s}@{communities[0]}" for s in per_community], *downstream])

    # Only instruct params changed: DVC sees exactly the instruct@* stages out of date, nothing upstream.
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["instruct"]["seed"] = 1
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    status = json.loads(run([str(BIN / "dvc"), "status", "--json"], repo).stdout)
    assert sorted(status) == sorted(f"instruct@{c}" for c in communities)
