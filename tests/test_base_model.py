"""stages/base_model.py: a local folder (or the embedded GGUF: tests/test_strong_signal.py) -> the plain model folder
every later stage loads."""

from __future__ import annotations

import json

import pytest

from hivelm.errors import HiveError


@pytest.mark.heavy  # torch, transformers
def test_build_saves_a_folder_that_loads_to_the_same_model_with_its_provenance(tiny_model_dir, tmp_path):
    import torch

    from hivelm.models import load_causal_lm
    from hivelm.stages.base_model import build

    out = tmp_path / "models/base"
    provenance = build(str(tiny_model_dir), out)
    assert json.loads((out / "hivelm_base.json").read_text()) == provenance
    assert provenance["source"] == str(tiny_model_dir) and provenance["dtype"] == "float32"
    assert (out / "config.json").is_file() and list(out.glob("*.safetensors"))
    original, tokenizer = load_causal_lm(tiny_model_dir)
    copy, _ = load_causal_lm(out)
    assert provenance["parameters"] == sum(p.numel() for p in copy.parameters())
    ids = tokenizer("a few words about running", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        assert torch.equal(original(ids).logits, copy(ids).logits)
    build(str(tiny_model_dir), out)  # a rebuild swaps the folder whole: nothing left beside it
    assert sorted(p.name for p in out.parent.iterdir() if not p.name.startswith(".")) == ["base"]


@pytest.mark.heavy  # transformers
def test_a_missing_local_source_is_one_line_naming_it_and_writes_nothing(tmp_path, monkeypatch):
    """A local-looking path fails at once, never tried on the hub. (A hub-shaped id that is neither a folder
    here nor on a reachable hub names base_model.source too, after the hub client's retries: ~50 s offline,
    too slow for the suite.)"""
    from hivelm.stages.base_model import build

    monkeypatch.chdir(tmp_path)
    with pytest.raises(HiveError, match="models/nothere"):
        build("./models/nothere", tmp_path / "out")
    assert not (tmp_path / "out").exists()
