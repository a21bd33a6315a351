"""summarize's pure parts on hand-made stage summaries: which figures rest on few rows or posts."""

from hivelm import paths
from hivelm.artifacts import write_json
from hivelm.stages.summarize import mark_small


def test_mark_small_flags_every_figure_under_the_thresholds_and_skips_insufficient_corpora(tmp_path):
    write_json(tmp_path / paths.community_metrics("keto"), {"fid_size": 12})
    write_json(tmp_path / paths.cross_community(), {"finetuned": {"rows": ["keto", "running"]}})
    fidelity = {"communities": {"keto": {"finetuned": {"fid": 3.0, "n": 40},
                                         "untuned": {"fid": None, "n": 4, "reason": "insufficient"}}},
                "corpora": {"finetuned": {"macro_f1": {"value": 0.5}}},
                "cross_community": {"finetuned": {"diagonal_share": 1.0}}}
    summary = mark_small({"fidelity": fidelity}, small_rows=10, small_posts=30, root=tmp_path)
    keto = summary["fidelity"]["communities"]["keto"]
    assert keto["finetuned"]["fid_size"] == 12 and keto["finetuned"]["fid_small"] is True
    assert "small" not in keto["finetuned"]  # 40 posts: enough
    assert keto["untuned"]["fid_size"] is None and "small" not in keto["untuned"]
    assert summary["fidelity"]["corpora"]["finetuned"]["macro_f1"] == {
        "value": 0.5, "n": 40, "smallest_class": 40}
    assert summary["fidelity"]["cross_community"]["finetuned"] == {"diagonal_share": 1.0, "rows": 2, "small": True}
    assert summary["small_samples"] == [
        {"figure": "fidelity.communities.keto.finetuned.fid", "n": 12, "unit": "posts (FID size)", "threshold": 30},
        {"figure": "fidelity.cross_community.finetuned.diagonal_share", "n": 2, "unit": "rows", "threshold": 10}]


def test_mark_small_without_fidelity_or_likelihood_flags_nothing(tmp_path):
    assert mark_small({"prepare": {"posts": 3}}, 10, 30, tmp_path) == {"prepare": {"posts": 3}, "small_samples": []}
