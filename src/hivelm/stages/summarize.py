"""summarize: every stage's summary -> reports/metrics.json, the one file the regression gate and
`dvc metrics` read.

    hivelm summarize

Sections: `prepare` (data counts), `generate` (post-filter counts per community and corpus), `fidelity`
(evaluate) and `survey` (criteria per community and model, and pairwise community contrasts of the primary
score with intervals and permutation p-values); a stage that is switched off simply has no section.
"""

from __future__ import annotations

import json
from pathlib import Path

from hivelm.config import HiveConfig
from hivelm.io import write_json

SOURCES = {
    "prepare": Path("reports/prepare/stats.json"),
    "fidelity": Path("reports/metrics/summary.json"),
}
OUTPUT = Path("reports/metrics.json")
SURVEY_PLOT = Path("reports/survey_plot.json")


def collect(communities: list[str], survey_cfg=None, root: Path = Path(".")) -> dict:
    """Pure-ish core: read what exists and nest it by section; survey contrasts between communities."""
    summary = {name: json.loads((root / path).read_text()) for name, path in SOURCES.items()
               if (root / path).is_file()}
    if "prepare" in summary:
        summary["prepare"] = summary["prepare"]["total"]
    generated = {c: root / f"reports/generate/{c}.json" for c in communities}
    summary["generate"] = {c: json.loads(p.read_text()) for c, p in generated.items() if p.is_file()}
    surveys = {c: json.loads((root / f"reports/survey/{c}.json").read_text()) for c in communities
               if (root / f"reports/survey/{c}.json").is_file()}
    if surveys and survey_cfg is not None:
        summary["survey"] = survey_section(surveys, survey_cfg)
    return summary


def survey_section(surveys: dict, survey_cfg) -> dict:
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
            section["contrasts"][corpus] = contrasts(by_community, survey_cfg)
    return section


def main(cfg: HiveConfig) -> dict:
    from hivelm import tracking

    with tracking.stage_run(cfg, "summarize", sections=("communities",)) as run:
        summary = collect(list(cfg.communities), cfg.survey)
        write_json(OUTPUT, summary)
        write_json(SURVEY_PLOT, survey_plot_rows(summary.get("survey", {})))
        run.log_artifact(OUTPUT)
    return summary


def survey_plot_rows(section: dict) -> list[dict]:
    """Rows for `dvc plots`: the primary score (first numeric criterion with an estimate) per community/model."""
    rows = []
    for community, corpora in section.get("communities", {}).items():
        for corpus, criteria in corpora.items():
            name, estimate = next(((n, e) for n, e in criteria.items()
                                   if isinstance(e, dict) and e.get("value") is not None), (None, None))
            if estimate:
                rows.append({"model": f"{community}/{corpus}", "criterion": name, "value": estimate["value"],
                             "low": estimate["low"], "high": estimate["high"]})
    return rows
