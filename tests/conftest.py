"""Shared fixtures: a temporary project directory and a pre-migrated MLflow store copied per test."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data" / "ed-communities"

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


@pytest.fixture(scope="session")
def mlflow_template_db(tmp_path_factory) -> Path:
    """Migrating a fresh sqlite store takes seconds: do it once per session, copy it per test."""
    from hivelm.tracking import ensure_store

    path = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    ensure_store(f"sqlite:///{path}")
    return path


@pytest.fixture
def project(tmp_path, monkeypatch, mlflow_template_db) -> Path:
    """A temporary project root (cwd) with the shipped params, templates and a private MLflow store."""
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    shutil.copytree(REPO / "configs", tmp_path / "configs")
    shutil.copy(mlflow_template_db, tmp_path / "mlflow.db")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.delenv("HIVELM_PARENT_RUN_ID", raising=False)
    monkeypatch.delenv("DVC_ROOT", raising=False)
    return tmp_path


def write_corpus(path: Path, rows: list[dict]) -> Path:
    import pandas as pd

    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


VOCABULARY = {
    "keto": "almond flour cauliflower rice net carbs fat bombs electrolytes bacon avocado butter cheese macros "
            "meal prep eggs salmon zucchini noodles coconut oil ketones breakfast dinner recipe crispy oven",
    "running": "tempo run long run intervals taper week new shoes cadence hill repeats marathon half parkrun pace "
               "splits gels race day shin splints warmup cooldown track miles kilometres legs",
    "body_positivity": "self acceptance fashion diet culture mirror talk representation rest joy bodies clothes "
                       "swimsuit summer media kindness worth confidence neutral gentle proud skin stretch marks",
    "ed_recovery": "dietitian fear foods therapy hard days meal plan support group recovery hope relapse "
                   "prevention gentle progress snack journal team nourish courage rest tiny wins proud",
}


def community_posts(community: str, n: int, seed: int = 0) -> list[dict]:
    """n distinct posts for one community: seeded draws from its own vocabulary, so communities differ
    in vocabulary and posts are too different from each other to count as near duplicates."""
    import random

    words = VOCABULARY[community].split()
    rng = random.Random(f"{community}-{seed}")
    return [{
        "post_id": f"{community}-{i}",
        "community": community,
        "author_id": f"u{i % 9}",
        "created_at": f"2026-01-{1 + i % 28:02d}T10:00:00",
        "text": " ".join(rng.choice(words) for _ in range(12)) + f" #{community} {i}",
    } for i in range(n)]


@pytest.fixture
def small_corpus(project) -> Path:
    """A 4-community corpus of 40 posts each at the path params.yaml expects."""
    rows = [row for community in VOCABULARY for row in community_posts(community, 40)]
    return write_corpus(project / "data" / "demo" / "posts.csv", rows)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A saved tiny random Llama with a ChatML tokenizer (see tests/tiny_model.py)."""
    from tiny_model import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")
