"""prepare on the public sample of the paper's real posts (../shared/data/ed-communities), when present."""

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import SHARED_DATA
from hivelm.cli import main as cli

TWEETS = SHARED_DATA / "tweets.csv"
PRESET = Path(__file__).parent.parent / "configs/presets/eating-disorder/params.yaml"
pytestmark = [pytest.mark.heavy, pytest.mark.skipif(not TWEETS.is_file(),
                                                    reason=f"real sample not present at {TWEETS} (../shared is optional)")]

COMMUNITIES = {
    "pro_ed": "Eating Disorder", "lifestyle": "Healthy lifestyle and Weight Loss", "keto": "Keto and Diet",
    "drugs": "Weight Loss Drugs", "spam": "Spam", "anti_ed": "Anti Eating Disorder", "body_image": "Body Image",
}


@pytest.fixture
def real_project(project):
    (project / "data").mkdir(exist_ok=True)
    (project / "data/tweets.csv").symlink_to(TWEETS)  # read in place: never copy the real data
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["communities"] = {k: {"label": v, "name": v} for k, v in COMMUNITIES.items()}
    params["data"] = {"path": "data/tweets.csv", "columns": {"text": "text", "community": "community_name"}}
    params["prepare"].update(min_chars=10, min_posts_per_community=5)
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    return project


def test_prepare_handles_the_real_sample_with_a_tiny_community(real_project):
    assert cli(["prepare"]) == 0
    stats = json.loads((real_project / "reports/prepare/stats.json").read_text())["communities"]
    assert stats["pro_ed"]["input"] == 1294 and stats["body_image"]["input"] == 16
    for key, counts in stats.items():
        assert counts["train"] >= 1 and counts["heldout"] >= 1
        assert counts["train"] + counts["heldout"] == counts["after_cap"] <= counts["input"]
        texts = [json.loads(line)["text"] for split in ("train", "heldout")
                 for line in (real_project / f"data/prepared/{key}/{split}.jsonl").open()]
        assert len(set(texts)) == len(texts), f"{key}: duplicates survived"
    # The sample holds 188 duplicate texts; exact dedupe must remove most of them.
    removed = sum(c["after_length"] - c["after_exact_dedupe"] for c in stats.values())
    assert removed >= 100


def test_preset_merges_the_instruction_posts_and_dedupes_across_files(project):
    """The eating-disorder preset reads tweets.csv plus instructions/*.json in place: the small communities
    grow from 16-18 posts to hundreds, and no text survives twice."""
    import shutil

    preset = yaml.safe_load(PRESET.read_text())
    shutil.copy(PRESET, project / "params.yaml")
    shared = project.parent / "shared"  # the preset's data paths are ../shared/...
    if not shared.exists():
        shared.symlink_to(SHARED_DATA.parent.parent)
    assert cli(["prepare"]) == 0
    stats = json.loads((project / "reports/prepare/stats.json").read_text())["communities"]
    assert set(stats) == set(preset["communities"])
    assert stats["body_image"]["input"] > 300 and stats["anti_ed"]["input"] > 250
    assert stats["drugs"]["input"] == 64  # its instructions file has empty outputs and is left out
    for key in stats:
        texts = [json.loads(line)["text"] for split in ("train", "heldout")
                 for line in (project / f"data/prepared/{key}/{split}.jsonl").open()]
        assert len(set(texts)) == len(texts) == stats[key]["after_cap"]


def test_tiny_real_community_fails_by_name_when_below_the_minimum(real_project, capsys):
    assert cli(["prepare", "prepare.min_posts_per_community=20"]) == 2
    error = capsys.readouterr().err
    assert "community 'anti_ed'" in error or "community 'body_image'" in error
    assert not (real_project / "data/prepared").exists()


def test_fidelity_metrics_are_sane_on_real_posts():
    """Two random halves of one community are indistinguishable (AUC near 0.5) and closer in FID than the
    community is to another one."""
    import pandas as pd
    from sklearn.decomposition import PCA

    from hivelm import metrics
    from hivelm.scorers.embed import Embedder

    frame = pd.read_csv(TWEETS, dtype=str, keep_default_na=False)
    posts = lambda name, n: (frame[(frame.community_name == name) & (frame.text.str.len() > 20)]  # noqa: E731
                             .text.drop_duplicates().sample(n, random_state=0).tolist())
    pro_ed, lifestyle = posts("Eating Disorder", 300), posts("Healthy lifestyle and Weight Loss", 150)
    half_a, half_b = pro_ed[:150], pro_ed[150:]
    labels, scores = metrics.discriminator_scores(half_a, half_b)
    assert 0.35 < metrics.auc(labels, scores) < 0.65
    labels, scores = metrics.discriminator_scores(half_a, lifestyle)
    assert metrics.auc(labels, scores) > 0.75
    embedder = Embedder()
    a, b, other = (embedder.encode(t) for t in (half_a, half_b, lifestyle))
    pca = PCA(16, random_state=0).fit(np.vstack([a, b, other]))
    a, b, other = (pca.transform(x) for x in (a, b, other))
    assert metrics.fid(a, b) < metrics.fid(a, other)
