"""bench/repro.py's reading of a pipeline's MLflow runs: stage times, shares, gaps and throughputs."""

from __future__ import annotations

import importlib.util
import json
import shutil

import pytest

from conftest import REPO

pytestmark = pytest.mark.heavy


def load_bench():
    spec = importlib.util.spec_from_file_location("bench_repro", REPO / "bench" / "repro.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_stage_times_from_a_pipeline_store(tmp_path, mlflow_template_db, capsys):
    from mlflow.tracking import MlflowClient

    shutil.copy(mlflow_template_db, tmp_path / "mlflow.db")
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.create_experiment("hivelm-demo")
    t0 = 1_700_000_000_000
    parent = client.create_run(experiment, start_time=t0, tags={"stage": "pipeline"}).info.run_id

    def stage(name, start_s, end_s, metrics=None, parent_id=parent):
        run = client.create_run(experiment, start_time=t0 + start_s * 1000,
                                tags={"stage": name, "mlflow.parentRunId": parent_id}).info.run_id
        for key, value in (metrics or {}).items():
            client.log_metric(run, key, value)
        client.set_terminated(run, end_time=t0 + end_s * 1000)
        return run

    stage("base_model", 2, 12)
    stage("tune", 15, 45, {"tokens_seen": 3000, "train_runtime_s": 25, "cpu_user_s": 50, "cpu_system_s": 5})
    stage("tune", 50, 80, {"tokens_seen": 3000, "train_runtime_s": 35, "cpu_user_s": 40, "cpu_system_s": 25})
    stage("generate", 82, 91, {"finetuned.new_tokens": 400, "finetuned.seconds": 4,
                               "untuned.new_tokens": 200, "untuned.seconds": 4})
    survey = stage("survey", 95, 99, {"survey/prompts/finetuned": 30, "survey/seconds/finetuned": 3})
    stage("survey", 95, 98, parent_id=survey)  # a nested child run is not a stage process: not counted
    client.set_terminated(parent, end_time=t0 + 100_000)
    # an older pipeline run in the same store is ignored
    client.set_terminated(client.create_run(experiment, start_time=t0 - 500_000, tags={"stage": "pipeline"}).info.run_id,
                          end_time=t0 - 400_000)

    bench = load_bench()
    result = bench.stage_times(bench.store_uri(tmp_path))
    assert result["pipeline_run_id"] == parent
    assert result["pipeline_s"] == 100
    assert {k: v["seconds"] for k, v in result["stages"].items()} == {
        "tune": 60, "base_model": 10, "generate": 9, "survey": 4}
    assert list(result["stages"]) == ["tune", "base_model", "generate", "survey"]  # slowest first
    assert result["stages"]["tune"]["runs"] == 2
    assert result["stages"]["tune"]["share"] == pytest.approx(0.6)
    assert result["stages"]["tune"]["throughput"] == pytest.approx(6000 / 60)
    assert result["stages"]["generate"]["throughput"] == pytest.approx(600 / 8)
    assert result["stages"]["survey"]["throughput"] == pytest.approx(10)
    assert result["startup_gaps_s"] == 17
    assert "throughput" not in result["stages"]["base_model"]
    assert (result["stages"]["tune"]["cpu_user_s"], result["stages"]["tune"]["cpu_system_s"]) == (90, 30)
    assert result["stages"]["tune"]["system_share"] == pytest.approx(0.25)  # kernel time over CPU time
    assert "system_share" not in result["stages"]["base_model"]  # a run that logged no CPU time

    assert bench.main(["--from-mlflow", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert json.loads(lines[-1])["stages"]["tune"]["seconds"] == 60
    assert any(line.startswith("(gaps)") and "17.0" in line for line in lines)
    assert any(line.startswith("tune") and "90.0" in line and "25%" in line for line in lines)


def test_missing_store_is_one_line(tmp_path):
    with pytest.raises(SystemExit, match="mlflow.db does not exist"):
        load_bench().store_uri(tmp_path)


def test_the_preset_run_is_the_preset_with_its_cpu_sized_changes(tmp_path):
    """`bench/repro.py --preset eating-disorder` runs the shipped preset with CPU_SIZED applied (and `--set`
    after them); the params it writes are valid, and an unknown preset or a bad change stops it before any run."""
    import yaml

    from hivelm.config import ConfigError, load_config

    bench = load_bench()
    overrides = bench.CPU_SIZED["eating-disorder"] + ["survey.validity.orders=3"]
    written = tmp_path / "params.yaml"
    written.write_text(bench.preset_params("eating-disorder", overrides))
    cfg = load_config(written)
    assert cfg.tune.max_steps == 80 and cfg.generate.samples_per_topic == 2 and cfg.survey.in_context.k == 8
    assert cfg.attribute.max_posts_per_community == 100
    assert cfg.survey.items == ["Q5", "Q6", "Q7", "Q8", "Q9", "Q13", "Q14", "Q15", "Q16"]
    assert cfg.survey.validity.orders == 3
    preset = yaml.safe_load((REPO / "configs/presets/eating-disorder/params.yaml").read_text())
    assert list(cfg.communities) == list(preset["communities"]) and cfg.data.path == preset["data"]["path"]
    assert written.read_text().startswith("# bench/repro.py --preset eating-disorder: ")
    with pytest.raises(SystemExit, match="no preset 'nope'"):
        bench.preset_params("nope", [])
    with pytest.raises(ConfigError, match="tune.max_steps"):
        bench.preset_params("eating-disorder", ["tune.max_steps=many"])


def test_the_baseline_comparison_is_head_over_baseline_per_stage_both_ran():
    """`--baseline COMMIT`: a ratio per stage (below 1: HEAD is faster), for the pipeline and the wall clock;
    a stage only one side ran has no ratio."""
    bench = load_bench()
    baseline = {"commit": "abc1234", "pipeline_s": 200.0, "wall_s": 220.0,
                "stages": {"tune": {"seconds": 100.0}, "survey": {"seconds": 50.0}, "old": {"seconds": 9.0}}}
    head = {"pipeline_s": 150.0, "wall_s": 165.0, "baseline": baseline,
            "stages": {"tune": {"seconds": 60.0}, "survey": {"seconds": 55.0}, "new": {"seconds": 3.0}}}
    head["ratio"] = ratio = bench.ratios(head, baseline)
    assert ratio == {"pipeline": 0.75, "wall": 0.75, "stages": {"tune": 0.6, "survey": 1.1}}
    table = bench.render_ratios(head)
    assert "abc1234" in table and any(line.startswith("tune") and line.endswith("0.60") for line in table.splitlines())


def test_a_baseline_preset_is_read_as_committed_there():
    import subprocess

    bench = load_bench()
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    text = bench.preset_params("eating-disorder", ["survey.items=[Q5]"], commit)  # a clone may be shallow
    assert f"at {commit} with survey.items=[Q5]" in text and "\n  - Q5\n" in text
    # ... with that commit's own CPU sizing, read from its bench/repro.py without running its main
    sized = bench.committed_sizing(commit, "eating-disorder")
    assert "tune.max_steps=80" in sized and all("=" in change for change in sized)
    assert bench.committed_sizing(commit, "nope") == []
    with pytest.raises(SystemExit, match="no preset 'eating-disorder' at 0000000"):
        bench.preset_params("eating-disorder", [], "0000000")
