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


def test_the_conversion_cache_lives_where_the_environment_says(tmp_path, monkeypatch):
    from hivelm.stages.base_model import cache_root

    monkeypatch.delenv("HIVELM_CACHE", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert cache_root() == tmp_path / ".cache/hivelm"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "xdg/hivelm"
    monkeypatch.setenv("HIVELM_CACHE", str(tmp_path / "mine"))
    assert cache_root() == tmp_path / "mine"
    monkeypatch.setenv("HIVELM_CACHE", "off")
    assert cache_root() is None


@pytest.mark.heavy  # transformers
def test_a_cut_off_cache_entry_is_not_used(tiny_model_dir, tmp_path, monkeypatch):
    """An entry a killed copy or a full disk cut short is converted again, never copied into a project."""
    import shutil

    from hivelm.stages.base_model import cache_entry, cached

    monkeypatch.setenv("HIVELM_CACHE", "off")
    assert cache_entry("embedded:smollm2", "float32") is None
    monkeypatch.setenv("HIVELM_CACHE", str(tmp_path / "cache"))
    assert cache_entry(str(tiny_model_dir), "float32") is None  # a plain folder loads fast: nothing to keep
    entry = cache_entry("embedded:smollm2", "float32")
    assert entry.parent == tmp_path / "cache/embedded" and "float32" in entry.name
    assert not cached(entry)
    shutil.copytree(tiny_model_dir, entry)
    assert cached(entry)
    weights = next(entry.glob("*.safetensors"))
    weights.write_bytes(weights.read_bytes()[:-100])
    assert not cached(entry)
