"""Lineage: a run reads and shows only what the stages of its own pipeline wrote. Files of a stage the pipeline
leaves out (the demo's committed reports/attribute/ in an evaluate-only clone) are stale: listed, never read."""

import shutil

from conftest import REPO
from hivelm import paths
from hivelm.config import load_config
from hivelm.contracts import left_out_outputs, stale_files
from hivelm.stages import report, summarize

EXTERNAL = REPO / "configs/external/params.yaml"  # the README's evaluate-only example: no model stage


def demo_reports(root):
    """An evaluate-only project as a fresh clone has it: the demo's committed reports/, every stage's."""
    shutil.copytree(REPO / "reports", root / "reports")
    return root


def test_summarize_reads_no_output_of_a_stage_outside_the_pipeline(tmp_path):
    cfg = load_config(EXTERNAL)
    root = demo_reports(tmp_path)
    left_out = left_out_outputs(cfg)
    communities = list(cfg.communities)
    surveys = summarize.read_surveys(communities, root, left_out)
    summary = summarize.collect(communities, surveys, cfg.survey.statistics, root, left_out)
    assert surveys == {}
    assert "likelihood" not in summary and "generate" not in summary and "survey" not in summary
    assert "fidelity" in summary and "prepare" in summary  # evaluate and prepare are in the pipeline
    stale = stale_files(left_out, root)
    assert stale[f"{paths.ATTRIBUTE_DIR.as_posix()}/"] == "attribute"
    assert stale[paths.survey_report("keto").as_posix()] == "survey"
    # the full pipeline (shipped params.yaml) still reads them
    full = load_config(REPO / "params.yaml")
    assert "likelihood" in summarize.collect(communities, {}, None, root, left_out_outputs(full))


def test_report_shows_no_output_of_a_stage_outside_the_pipeline(tmp_path, monkeypatch):
    cfg = load_config(EXTERNAL)
    monkeypatch.chdir(demo_reports(tmp_path))
    data = report.load(cfg)
    assert data["likelihood"] == {"matrix": None, "attribution": None}
    assert data["surveys"] == {} and not any(data["generated"].values())
    assert {"attribute", "survey", "generate"} <= set(data["left_out"])
    assert data["stale"][f"{paths.ATTRIBUTE_DIR.as_posix()}/"] == "attribute"


def test_the_page_names_stale_files_and_has_no_section_of_a_left_out_stage():
    from hivelm.report_page import page
    from test_report_page import numbers

    stale = {f"{paths.ATTRIBUTE_DIR.as_posix()}/": "attribute"}
    html = page(numbers(surveys=False) | {"left_out": ["attribute", "survey"], "stale": stale,
                                         "likelihood": {"matrix": None, "attribution": None}})
    assert "Which community would have written" not in html and "<h2>Survey" not in html
    assert "Stale files, not shown" in html and "reports/attribute/ (attribute)" in html


def test_every_figure_says_how_many_rows_or_posts_it_rests_on_and_small_ones_are_marked(tmp_path):
    """Issue 30.5: a diagonal share over 4 rows, an FID at a common size of 17: counted, and marked small."""
    import json

    from hivelm import gate

    root = demo_reports(tmp_path)
    cfg = load_config(REPO / "params.yaml")
    surveys = summarize.read_surveys(list(cfg.communities), root)
    summary = summarize.mark_small(summarize.collect(list(cfg.communities), surveys, cfg.survey.statistics, root),
                                   10, 30, root)
    keto = summary["fidelity"]["communities"]["keto"]["finetuned"]
    assert (keto["n"], keto["fid_size"], keto.get("fid_small"), keto.get("small")) == (48, 17, True, None)
    cross = summary["fidelity"]["cross_community"]["finetuned"]
    assert (cross["rows"], cross["small"]) == (4, True)
    macro_f1 = summary["fidelity"]["corpora"]["finetuned"]["macro_f1"]
    assert (macro_f1["n"], macro_f1["smallest_class"], macro_f1.get("small")) == (192, 48, None)
    likelihood = summary["likelihood"]
    assert (likelihood["diagonal_share"]["rows"], likelihood["diagonal_share"]["small"]) == (4, True)
    assert likelihood["attribution"]["likelihood"]["macro_f1"]["n"] == 138
    flagged = {f["figure"]: f for f in summary["small_samples"]}
    assert flagged["likelihood.diagonal_share"] == {"figure": "likelihood.diagonal_share", "n": 4, "unit": "rows",
                                                    "threshold": 10}
    assert "fidelity.communities.keto.finetuned.fid" in flagged and "fidelity.communities.keto.finetuned" not in flagged
    json.dumps(summary, allow_nan=False)  # strict JSON
    # the gate checks the same metrics as before, and none regresses through the new keys
    base = json.loads((REPO / "reports/metrics.json").read_text())
    rules = gate.load_rules(REPO / "configs/metric_rules.yaml")
    checks = gate.compare(base, summary, rules)
    assert [c.metric for c in checks] == [c.metric for c in gate.compare(base, base, rules)]
    assert not any(c.regressed for c in checks)
    ci = json.loads((REPO / "reports/ci-baseline/metrics.json").read_text())
    assert [c for c in gate.compare(ci, summary, rules) if c.regressed] == [
        c for c in gate.compare(ci, base, rules) if c.regressed]


def test_small_sample_thresholds_are_validated(tmp_path):
    import pytest

    from hivelm.config import ConfigError

    with pytest.raises(ConfigError, match="report.small_rows"):
        load_config(REPO / "params.yaml", ["report.small_rows=0"])


def test_the_page_lists_figures_on_small_samples():
    from hivelm.report_page import page
    from test_report_page import numbers

    flagged = [{"figure": "fidelity.cross_community.finetuned.diagonal_share", "n": 2, "unit": "rows",
                "threshold": 10}]
    html = page(numbers() | {"small_samples": flagged})
    assert "Figures on small samples" in html
    assert "<td>fidelity.cross_community.finetuned.diagonal_share</td><td>2</td><td>rows</td><td>10</td>" in html
    assert "of 2 rows" in html  # the heatmap's title counts its rows
