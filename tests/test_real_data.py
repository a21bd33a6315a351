"""prepare on the public sample of the paper's real posts (../shared/data/ed-communities), when present."""

import json

import pytest
import yaml

from conftest import SHARED_DATA
from hivelm.cli import main as cli

TWEETS = SHARED_DATA / "tweets.csv"
pytestmark = pytest.mark.skipif(not TWEETS.is_file(),
                                reason=f"real sample not present at {TWEETS} (../shared is optional)")

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


def test_tiny_real_community_fails_by_name_when_below_the_minimum(real_project, capsys):
    assert cli(["prepare", "prepare.min_posts_per_community=20"]) == 2
    error = capsys.readouterr().err
    assert "community 'anti_ed'" in error or "community 'body_image'" in error
    assert not (real_project / "data/prepared").exists()
