"""The report stage's provenance rows on hand-made summaries (no pipeline; the page itself: test_report_page)."""

from hivelm.stages.report import dropped, provenance


def test_dropped_counts_empty_texts_and_unmatched_communities():
    assert dropped({}) == "; dropped 0 empty texts"
    text = dropped({"empty_text": {"keto": 2, "running": 0},
                    "unmatched_community": {"posts": 5, "values": 2, "shown": {"vegan": 4, "paleo": 1}}})
    assert text == ("; dropped 2 empty texts (keto 2); skipped 5 posts of 2 community values matching no declared "
                    "community (vegan 4, paleo 1)")


def test_provenance_names_external_files_and_scorers_without_a_base_model(tmp_path, monkeypatch):
    from conftest import REPO
    from hivelm.config import load_config

    cfg = load_config(REPO / "params.yaml")
    monkeypatch.chdir(tmp_path)  # no params.yaml, no base model here
    summary = {"sources": {"forum": {"kind": "external", "provenance": "a forum export", "filtered": False,
                                     "files": {"data/forum.csv": "abc123"}}},
               "scorers": {"embedder": {"backend": "hashing", "dim": 16}}}
    rows = provenance(cfg, summary)
    assert rows[1] == ["params.yaml sha256", "-"]
    assert not any(label == "base model" or label.startswith("adapter") for label, _ in rows)  # external only
    assert ["corpus forum", "external: a forum export; files: data/forum.csv (sha256 abc123); not filtered; "
                            "dropped 0 empty texts"] in rows
    assert ["scorer embedder", "backend=hashing, dim=16"] in rows
