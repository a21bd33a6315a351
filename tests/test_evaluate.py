"""evaluate's core on synthetic communities with stand-in scorers (no model), and the stage's small pure parts;
then the origin classifier with the real shipped scorers (heavy)."""

import math
import random
import zlib

import numpy as np
import pytest

from conftest import REPO
from hivelm.config import load_config
from hivelm.corpora import Inputs
from hivelm.stages import evaluate as stage

SHARED = ["food", "body", "weight", "day", "today", "feel", "eat", "want", "need", "love", "time", "good"]
OWN = {"keto": ["butter", "bacon", "carbs", "ketosis", "avocado"], "running": ["marathon", "pace", "miles", "tempo",
       "trail"], "body_positivity": ["curves", "selfie", "fashion", "confidence", "mirror"],
       "ed_recovery": ["therapist", "meal", "plan", "relapse", "support"]}


def posts(own: list[str], n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(SHARED) for _ in range(10)) + f" {rng.choice(own)} {rng.choice(own)}"
            for _ in range(n)]


class Embedder:
    """Bag of words, each word a fixed random 16-d vector: posts sharing words sit close."""

    info = {"backend": "stand-in", "model": "bag of words"}

    def encode(self, texts: list[str]) -> np.ndarray:
        def vector(word):
            return np.random.default_rng(zlib.crc32(word.encode())).normal(size=16)
        return np.array([np.mean([vector(w) for w in text.split()], axis=0) for text in texts])


class Emotion:
    labels = ["joy", "sadness"]
    info = {"backend": "stand-in"}

    def score(self, texts: list[str]) -> np.ndarray:
        return np.array([[t.split().count("love") + t.split().count("good"), t.split().count("feel")] for t in texts],
                        dtype=float)


class Toxicity:
    info = {"backend": "stand-in"}

    def score(self, texts: list[str]) -> dict[str, np.ndarray]:
        return {"insult": np.array([sum(w in OWN["running"] for w in t.split()) / 12 for t in texts])}


def config(**overrides):
    defaults = {"evaluate.statistics.bootstrap_resamples": 30, "evaluate.fid_dimensions": 8,
                "evaluate.discriminator_folds": 3, "evaluate.min_posts": 10}
    return load_config(REPO / "params.yaml", [f"{k}={v}" for k, v in (defaults | overrides).items()])


def synthetic_inputs(communities) -> Inputs:
    train = {c: posts(OWN[c], 60, i) for i, c in enumerate(communities)}
    heldout = {c: posts(OWN[c], 30, 10 + i) for i, c in enumerate(communities)}
    finetuned = {c: posts(OWN[c], 30, 20 + i) for i, c in enumerate(communities)}
    other = {c: communities[(i + 1) % len(communities)] for i, c in enumerate(communities)}  # another's words
    untuned = {c: posts(OWN[other[c]], 3 if c == "ed_recovery" else 30, 30 + i) for i, c in enumerate(communities)}
    return Inputs(train, heldout, {"finetuned": finetuned, "untuned": untuned})


def intervals(node):
    """Every {value, low, high} estimate in a metrics tree."""
    if isinstance(node, dict):
        if {"value", "low", "high"} <= set(node):
            yield node
        for value in node.values():
            yield from intervals(value)


def test_evaluate_tells_a_faithful_corpus_from_another_communitys_without_any_model():
    cfg = config()
    per_community, summary = stage.evaluate(cfg, (Embedder(), Toxicity(), Emotion()), inputs=synthetic_inputs(
        list(cfg.communities)))
    for c, result in per_community.items():
        faithful = result["corpora"]["finetuned"]
        assert faithful["attribution"]["value"] > 0.8, c
        assert faithful["auc"]["direction"] == "lower" and faithful["attribution"]["direction"] == "higher"
        assert result["fid_size"] == stage.common_size([30, 30] + ([] if c == "ed_recovery" else [30]), 0.5)
        if c != "ed_recovery":
            unfaithful = result["corpora"]["untuned"]
            assert unfaithful["attribution"]["value"] < 0.2 < faithful["attribution"]["value"], c
            assert unfaithful["auc"]["value"] > 0.9 > faithful["auc"]["value"], c
            assert unfaithful["fid"]["value"] > faithful["fid"]["value"], c
    assert per_community["keto"]["corpora"]["untuned"]["toxicity"]["insult"]["mean_diff"]["value"] > 0.1
    for estimate in intervals(per_community):  # every reported value lies inside its interval
        if estimate["value"] is not None:
            assert estimate["low"] <= estimate["value"] <= estimate["high"], estimate
    small = per_community["ed_recovery"]["corpora"]["untuned"]  # 3 posts < min_posts: reasons, not numbers
    assert small["n"] == 3 and small["insufficient"].startswith("insufficient: 3 posts < min_posts 10")
    assert summary["communities"]["ed_recovery"]["untuned"]["reason"] == small["insufficient"]
    assert "untuned" not in per_community["ed_recovery"]["profiles"]
    assert summary["cross_community"]["real"]["diagonal_share"] == 1.0
    assert summary["cross_community"]["untuned"]["rows"] == ["keto", "running", "body_positivity"]
    assert summary["classifier"]["heldout_accuracy"]["value"] > 0.9
    assert summary["scorers"]["embedder"] == Embedder.info


def test_one_community_has_nothing_to_attribute_between():
    cfg = config()
    cfg.communities = {"keto": cfg.communities["keto"]}
    per_community, summary = stage.evaluate(cfg, (Embedder(), Toxicity(), Emotion()), inputs=synthetic_inputs(["keto"]))
    attribution = per_community["keto"]["corpora"]["finetuned"]["attribution"]
    assert attribution["value"] is None and "one community" in attribution["reason"]
    assert summary["classifier"]["heldout_macro_f1"]["reason"] == "fewer than two communities with enough posts"


def test_headline_plot_rows_and_mlflow_names_leave_out_what_was_not_measured():
    measured = {"n": 40, **{key: {"value": 0.5, "low": 0.4, "high": 0.6} for key in stage.HEADLINE},
                "toxicity": {"insult": {"wasserstein": {"value": 0.1}, "ks": {"value": math.nan}},
                             "threat": {"wasserstein": {"value": 0.3}, "ks": {"value": 0.2}}}}
    small = stage.insufficient(4, "insufficient: 4 posts < min_posts 10", ["insult"])
    assert stage.headline(measured) == {**dict.fromkeys(stage.HEADLINE, 0.5), "n": 40,
                                        "toxicity_wasserstein": pytest.approx(0.2)}
    assert stage.headline(small) == {**dict.fromkeys(stage.HEADLINE), "toxicity_wasserstein": None, "n": 4,
                               "reason": "insufficient: 4 posts < min_posts 10"}
    assert small["toxicity"]["insult"]["mean_diff"]["direction"] == "closer_to_zero"
    per_community = {"keto": {"corpora": {"finetuned": measured, "untuned": small}}}
    assert stage.plot_rows(per_community, "fid") == [{"model": "keto/finetuned", "community": "keto",
                                                "corpus": "finetuned", "fid": 0.5, "low": 0.4, "high": 0.6}]
    names = stage.mlflow_names(per_community["keto"])
    assert names["fid/finetuned"] == 0.5 and names["fid/finetuned/low"] == 0.4 and names["n/untuned"] == 4
    assert names["toxicity/threat/ks/finetuned"] == 0.2
    assert "toxicity/insult/ks/finetuned" not in names and "fid/untuned" not in names  # NaN and null left out


def test_profiles_histogram_clipped_scores_and_name_a_missing_emotion_signal():
    described = {"emotion": np.zeros((3, 2)), "toxicity": {"insult": np.array([-0.2, 0.05, 1.3])}}
    shown = stage.profiles(described, ["joy", "sadness"])
    assert shown["emotion"] == {} and shown["emotion_reason"] == "no emotion signal in these posts"
    assert shown["toxicity_histogram"]["insult"] == [2, 0, 0, 0, 0, 0, 0, 0, 0, 1]
    described["emotion"] = np.array([[1.0, 0.0], [np.nan, np.nan], [1.0, 2.0]])  # a NaN row has no signal
    assert stage.profiles(described, ["joy", "sadness"])["emotion"] == {"joy": 0.5, "sadness": 0.5}


def test_fid_size_and_an_empty_cross_community_matrix():
    assert stage.common_size([40, 100], 0.5) == 20 and stage.common_size([3, 100], 0.5) == 2
    fitted = stage.Fitted.__new__(stage.Fitted)  # no scorers needed when no community has a corpus to compare
    fitted.communities = ["keto", "running"]
    empty = stage.cross_community(fitted, {})
    assert empty["diagonal_share"] is None and empty["columns"] == ["keto", "running"] and empty["reason"]


@pytest.mark.heavy  # the real embedder and toxicity model
def test_a_small_community_is_still_attributed_next_to_a_large_one():
    """40x fewer training posts (the public sample: Weight Loss Drugs 50 vs Pro-ED 1,722) must not make the
    small community unpredictable: without class weights its attribution was 0 for every corpus."""
    large, small = ["gym", "protein", "workout", "prep", "calories", "steps"], ["ozempic", "wegovy", "dose", "pharmacy", "injection"]
    train = {"large": posts(large, 600, 0), "small": posts(small, 15, 1)}
    heldout = {"large": posts(large, 40, 2), "small": posts(small, 40, 3)}
    cfg = load_config(REPO / "params.yaml")
    fitted = stage.Fitted(cfg.evaluate, train, heldout, stage.make_scorers(cfg))
    assert np.mean(fitted.predict(posts(small, 50, 4)) == "small") > 0.8
    assert np.mean(fitted.predict(posts(large, 50, 5)) == "large") > 0.8
