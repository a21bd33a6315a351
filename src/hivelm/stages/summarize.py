"""summarize: every stage's summary -> the metrics file (paths.METRICS), the one file the regression gate and
`dvc metrics` read.

    hivelm summarize

Sections: `prepare` (data counts), `generate` (post-filter counts per community and corpus), `fidelity`
(evaluate), `survey` (criteria per community and model, and pairwise community contrasts of the primary
score with intervals and permutation p-values) and `likelihood` (attribute: the likelihood matrix's diagonal
share, attribution by adapter likelihood beside the TF-IDF classifier); a stage that is switched off simply
has no section.
"""

from __future__ import annotations

from pathlib import Path

from hivelm import paths
from hivelm.config import HiveConfig
from hivelm.io import read_json, staged_outputs, write_json

SOURCES = {"prepare": paths.PREPARE_STATS, "fidelity": paths.fidelity_summary(),
           "likelihood": paths.attribute_summary()}


def read_surveys(communities: list[str], root: Path = Path(".")) -> dict:
    """{community: its survey report} for the communities whose survey has run."""
    files = {c: root / paths.survey_report(c) for c in communities}
    return {c: read_json(p) for c, p in files.items() if p.is_file()}


def collect(communities: list[str], surveys: dict, statistics=None, root: Path = Path(".")) -> dict:
    """Pure-ish core: read the other stages' summaries and nest them by section with the survey results
    (`read_surveys`) and their contrasts between communities (`statistics`: survey.statistics)."""
    summary = {name: read_json(root / path) for name, path in SOURCES.items() if (root / path).is_file()}
    if "prepare" in summary:
        summary["prepare"] = summary["prepare"]["total"]
    generated = {c: root / paths.generate_stats(c) for c in communities}
    summary["generate"] = {c: read_json(p) for c, p in generated.items() if p.is_file()}
    if surveys and statistics is not None:
        summary["survey"] = survey_section(surveys, statistics)
    return summary


def survey_section(surveys: dict, statistics) -> dict:
    """Per community and model: each criterion's estimate (mean or rate, with interval) and the unparseable
    rate; per model: pairwise community contrasts of the primary score (e.g. WCS)."""
    from hivelm.survey.scoring import contrasts, estimate

    section = {"communities": {}, "contrasts": {}}
    corpora = sorted({corpus for result in surveys.values() for corpus in result["corpora"]})
    for community, result in surveys.items():
        section["communities"][community] = {
            corpus: {"unparseable_rate": s["unparseable_rate"]} | {
                cid: estimate(c) for cid, c in s["criteria"].items()}
            for corpus, s in result["corpora"].items()}
    for corpus in corpora:
        by_community = {c: r["corpora"][corpus] for c, r in surveys.items() if corpus in r["corpora"]}
        if len(by_community) >= 2:
            section["contrasts"][corpus] = contrasts(by_community, statistics)
    return section


def main(cfg: HiveConfig, run) -> dict:
    surveys = read_surveys(list(cfg.communities))
    summary = collect(list(cfg.communities), surveys, cfg.survey.statistics)
    with staged_outputs() as out:  # the metrics file, the plot rows and the MLflow record change together
        write_json(out.path(paths.METRICS), summary)
        write_json(out.path(paths.SURVEY_PLOT), survey_plot_rows(surveys))
        run.log_dict(summary, paths.METRICS.name)
    return summary


def survey_plot_rows(surveys: dict) -> list[dict]:
    """Rows for `dvc plots`: each model's primary score (the instrument's `primary`, e.g. WCS for SWED, the
    global score for EDE-Q) with its interval over personas."""
    from hivelm.survey.scoring import estimate

    rows = []
    for community, report in surveys.items():
        for corpus, summary in report["corpora"].items():
            point = estimate(summary["criteria"].get(summary["primary"]))
            if point and point.get("value") is not None:
                rows.append({"model": f"{community}/{corpus}", "criterion": summary["primary"],
                             "value": point["value"], "low": point["low"], "high": point["high"]})
    return rows
