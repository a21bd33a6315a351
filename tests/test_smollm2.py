"""End to end with the real embedded SmolLM2-135M-Instruct: convert, tune a few steps, generate a few posts."""

import json
import shutil
from pathlib import Path

import pytest

from hivelm.cli import main as cli

REPO = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.slow, pytest.mark.integration]


def test_embedded_smollm2_converts_tunes_and_generates(project):
    (project / "data/demo").mkdir(parents=True)
    shutil.copy(REPO / "data/demo/posts.csv", project / "data/demo/posts.csv")
    assert cli(["base_model"]) == 0
    provenance = json.loads((project / "models/base/hivelm_base.json").read_text())
    assert provenance["architecture"] == "LlamaForCausalLM" and provenance["parameters"] > 100_000_000
    assert (project / "models/base/model.safetensors").is_file()
    assert cli(["prepare"]) == 0
    assert cli(["instruct", "--community", "keto"]) == 0
    assert cli(["tune", "--community", "keto", "tune.max_steps=3", "tune.eval_steps=3",
                "tune.max_length=64"]) == 0
    assert (project / "models/adapters/keto/adapter_model.safetensors").is_file()
    assert cli(["generate", "--community", "keto", "generate.topics=[breakfast]", "generate.samples_per_topic=3",
                "generate.decoding.max_new_tokens=24", "generate.in_context.k=3"]) == 0
    stats = json.loads((project / "reports/generate/keto.json").read_text())
    for corpus in ("finetuned", "untuned", "in_context"):
        raw = [json.loads(line) for line in (project / f"data/generated/keto/{corpus}.raw.jsonl").open()]
        assert len(raw) == stats[corpus]["generated"] == 3
        assert sum(bool(r["text"]) for r in raw) >= 2
        assert raw[0]["decoding"]["temperature"] == 0.95 and raw[0]["topic"] == "breakfast"
        assert stats[corpus]["new_tokens"] > 0
