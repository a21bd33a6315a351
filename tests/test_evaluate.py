"""evaluate's origin classifier on communities of very different sizes, with the real shipped scorers."""

import random

import numpy as np
import pytest

from conftest import REPO
from hivelm.config import load_config
from hivelm.stages.evaluate import Fitted, make_scorers

pytestmark = pytest.mark.heavy  # the real embedder and toxicity model

SHARED = ["food", "body", "weight", "day", "today", "feel", "eat", "want", "need", "love", "time", "good"]


def posts(own: list[str], n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(SHARED) for _ in range(10)) + f" {rng.choice(own)} {rng.choice(own)}"
            for _ in range(n)]


def test_a_small_community_is_still_attributed_next_to_a_large_one():
    """40x fewer training posts (the public sample: Weight Loss Drugs 50 vs Pro-ED 1,722) must not make the
    small community unpredictable: without class weights its attribution was 0 for every corpus."""
    large, small = ["gym", "protein", "workout", "prep", "calories", "steps"], ["ozempic", "wegovy", "dose", "pharmacy", "injection"]
    train = {"large": posts(large, 600, 0), "small": posts(small, 15, 1)}
    heldout = {"large": posts(large, 40, 2), "small": posts(small, 40, 3)}
    cfg = load_config(REPO / "params.yaml")
    fitted = Fitted(cfg.evaluate, train, heldout, make_scorers(cfg))
    assert np.mean(fitted.predict(posts(small, 50, 4)) == "small") > 0.8
    assert np.mean(fitted.predict(posts(large, 50, 5)) == "large") > 0.8
