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
    from hivelm.rendering import page
    from test_rendering import numbers

    stale = {f"{paths.ATTRIBUTE_DIR.as_posix()}/": "attribute"}
    html = page(numbers(surveys=False) | {"left_out": ["attribute", "survey"], "stale": stale,
                                         "likelihood": {"matrix": None, "attribution": None}})
    assert "Which community would have written" not in html and "<h2>Survey" not in html
    assert "Stale files, not shown" in html and "reports/attribute/ (attribute)" in html
