"""The eating-disorder preset end to end on a small slice of the real sample (../shared/data/ed-communities),
so the preset cannot rot: its six communities, cleaning, 27-topic prompts, SWED survey and extra sources
all run through the real `dvc repro` under `hivelm run`. Only sizes change (TINY_RUN, a tiny base model,
15 posts per community); every other key is the preset's own."""

import json
from pathlib import Path

import pytest
import yaml

from conftest import BIN, SHARED_DATA, init_pipeline_repo, run

PRESET = Path(__file__).parent.parent / "configs/presets/eating-disorder/params.yaml"
CORPORA = ("finetuned", "untuned", "in_context")

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not (SHARED_DATA / "tweets.csv").is_file(),
                       reason=f"real sample not present at {SHARED_DATA} (../shared is optional)"),
]


@pytest.fixture
def preset_repo(tmp_path, mlflow_template_db, tiny_model_dir):
    # The preset reads ../shared/data/... relative to the project root: mirror that layout, reading in place.
    (tmp_path / "shared").symlink_to(SHARED_DATA.parent.parent)
    params = yaml.safe_load(PRESET.read_text())
    params["prepare"]["max_posts_per_community"] = 15
    params["generate"]["topics"] = params["generate"]["topics"][:2]
    params["generate"]["samples_per_topic"] = 1
    params["survey"]["validity"] = {"enabled": False}  # test_pipeline checks the card whole; here it costs CI time
    return init_pipeline_repo(tmp_path / "project", params, mlflow_template_db, tiny_model_dir)


def test_preset_runs_end_to_end_on_a_slice_of_the_sample(preset_repo):
    repo = preset_repo
    preset = yaml.safe_load(PRESET.read_text())
    communities = list(preset["communities"])
    result = run([str(BIN / "hivelm"), "run"], repo)
    ran = [line.split("'")[1] for line in result.stdout.splitlines() if line.startswith("Running stage")]
    for stage in ("instruct", "tune", "generate", "survey"):
        assert sorted(s for s in ran if s.startswith(f"{stage}@")) == sorted(f"{stage}@{c}" for c in communities)

    metrics = json.loads((repo / "reports/metrics.json").read_text())
    prepared = json.loads((repo / "reports/prepare/stats.json").read_text())["communities"]
    assert all(prepared[c]["after_cap"] == 15 for c in communities)
    assert prepared["body_image"]["input"] > 300  # tweets.csv's 16 posts plus the instruction posts
    for community in communities:
        for corpus in CORPORA:
            fidelity = metrics["fidelity"]["communities"][community][corpus]
            assert fidelity["fid"] >= 0 and 0 <= fidelity["auc"] <= 1
            wcs = metrics["survey"]["communities"][community][corpus]["C1"]
            assert 0 <= wcs["low"] <= wcs["value"] <= wcs["high"] <= 100
    # The preset's full SWED: all 21 items asked, and the paper's four criteria scored.
    assert {"C1", "C2", "C3", "C4"} <= set(metrics["survey"]["communities"]["pro_ed"]["finetuned"])

    # Nothing real or generated leaks into the report: its samples are off in the preset.
    page = (repo / "reports/report.html").read_text()
    real = [json.loads(line)["text"] for c in communities for line in (repo / f"data/prepared/{c}/heldout.jsonl").open()]
    assert not any(text in page for text in real if len(text) > 30)
