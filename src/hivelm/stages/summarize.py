"""summarize: every stage's summary -> the metrics file (paths.METRICS), the one file the regression gate and
`dvc metrics` read.

    hivelm summarize

Sections: `prepare` (data counts), `generate` (post-filter counts per community and corpus), `fidelity`
(evaluate), `survey` (criteria per community and model, pairwise community contrasts of the primary
score with intervals and permutation p-values, and `survey.validity`: the validity card's verdicts, figures
and which contrasts it supports) and `likelihood` (attribute: the likelihood matrix's diagonal
share, attribution by adapter likelihood beside the TF-IDF classifier); `small_samples` lists every figure
resting on fewer rows or posts than report.small_rows / report.small_posts, and each figure carries its count
(and `small: true`) beside it (`mark_small`). A stage that is not in the rendered pipeline
(hivelm.contracts.left_out_stages: with only external corpora, every model stage) has no section, and its files
from an earlier pipeline (the demo's committed attribute results) are neither read nor shown: a warning names
them as stale.
"""

from __future__ import annotations

import logging
from pathlib import Path

from hivelm import paths
from hivelm.artifacts import read_json, staged_outputs, write_json
from hivelm.config import HiveConfig
from hivelm.contracts import in_pipeline, left_out_outputs, stale_files
from hivelm.headline import counts
from hivelm.headline import read as read_headline

SOURCES = {"prepare": paths.PREPARE_STATS, "fidelity": paths.fidelity_summary(),
           "likelihood": paths.attribute_summary()}
log = logging.getLogger(__name__)


def read_surveys(communities: list[str], root: Path = Path("."), left_out: dict[str, str] | None = None) -> dict:
    """{community: its survey report} for the communities whose survey has run (none if the survey stage is
    not in the pipeline: `left_out`, from hivelm.contracts.left_out_outputs)."""
    files = {c: paths.survey_report(c) for c in communities}
    return {c: read_json(root / p) for c, p in files.items()
            if in_pipeline(p, left_out or {}) and (root / p).is_file()}


def collect(communities: list[str], surveys: dict, statistics=None, root: Path = Path("."),
            left_out: dict[str, str] | None = None) -> dict:
    """Pure-ish core: read the other stages' summaries and nest them by section with the survey results
    (`read_surveys`) and their contrasts between communities (`statistics`: survey.statistics). Outputs of the
    stages the pipeline leaves out (`left_out`: hivelm.contracts.left_out_outputs) are not read."""
    left_out = left_out or {}
    summary = {name: read_json(root / path) for name, path in SOURCES.items()
               if in_pipeline(path, left_out) and (root / path).is_file()}
    if "prepare" in summary:
        summary["prepare"] = summary["prepare"]["total"]
    if in_pipeline(paths.GENERATE_STATS, left_out):
        generated = {c: root / paths.generate_stats(c) for c in communities}
        summary["generate"] = {c: read_json(p) for c, p in generated.items() if p.is_file()}
    if surveys and statistics is not None:
        summary["survey"] = survey_section(surveys, statistics)
    return summary


def mark_small(summary: dict, small_rows: int, small_posts: int, root: Path = Path(".")) -> dict:
    """Beside each figure, how many rows or posts it rests on, and `small_samples`: every figure under the
    thresholds (report.small_rows, report.small_posts) as {figure, n, unit, threshold}. Reads the per-community
    FID sizes and the cross-community rows (evaluate) and the attributed posts per class (attribute)."""
    flagged = []

    def mark(figure: str, where: dict, n: int | None, unit: str, threshold: int, key: str = "small") -> None:
        if n is not None and n < threshold:
            where[key] = True
            flagged.append({"figure": figure, "n": n, "unit": unit, "threshold": threshold})

    fidelity = summary.get("fidelity") or {}
    sizes = {c: read_json(p).get("fid_size") for c in fidelity.get("communities", {})
             if (p := root / paths.community_metrics(c)).is_file()}
    classes: dict[str, list[int]] = {}
    for community, corpora in (fidelity.get("communities") or {}).items():
        for corpus, row in corpora.items():
            where = f"fidelity.communities.{community}.{corpus}"
            row["fid_size"] = sizes.get(community) if row.get("fid") is not None else None
            mark(f"{where}.fid", row, row["fid_size"], "posts (FID size)", small_posts, key="fid_small")
            if "reason" not in row:  # an insufficient corpus has no figure to mark
                classes.setdefault(corpus, []).append(row["n"])
                mark(where, row, row["n"], "posts", small_posts)
    for corpus, scores in (fidelity.get("corpora") or {}).items():
        counts = classes.get(corpus, [])
        scores["macro_f1"] |= {"n": sum(counts), "smallest_class": min(counts, default=0)}
        mark(f"fidelity.corpora.{corpus}.macro_f1", scores["macro_f1"], min(counts, default=0),
             "posts (smallest class)", small_posts)
    cross = root / paths.cross_community()
    matrices = read_json(cross) if cross.is_file() and fidelity else {}
    for corpus, share in (fidelity.get("cross_community") or {}).items():
        share["rows"] = len(matrices.get(corpus, {}).get("rows") or [])
        mark(f"fidelity.cross_community.{corpus}.diagonal_share", share, share["rows"], "rows", small_rows)
    likelihood = summary.get("likelihood")
    if likelihood:
        likelihood["diagonal_share"]["rows"] = likelihood["communities"]
        mark("likelihood.diagonal_share", likelihood["diagonal_share"], likelihood["communities"], "rows",
             small_rows)
        attribution = root / paths.attribute_attribution()
        confusion = read_json(attribution) if attribution.is_file() else {}
        for name, scores in (likelihood.get("attribution") or {}).items():
            smallest = min((sum(row) for row in confusion.get(name, {}).get("confusion", [])), default=None)
            for key in ("accuracy", "macro_f1"):
                scores[key] |= {"n": likelihood["posts"], "smallest_class": smallest}
                mark(f"likelihood.attribution.{name}.{key}", scores[key], smallest, "posts (smallest class)",
                     small_posts)
    summary["small_samples"] = flagged
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
    if any("validity" in s for r in surveys.values() for s in r["corpora"].values()):
        section["validity"] = validity_section(surveys, section["contrasts"])
    return section


CARD_FIGURES = ("order_sensitivity", "majority_survives")


def validity_section(surveys: dict, contrasts_: dict) -> dict:
    """The validity card in the metrics file: per community and model the verdict, the failed checks, the
    share of checks passed and each check's figure (with its interval where it has one); per community the
    dose-response and variance shares; per contrast whether it is supported, and why not (survey.validity)."""
    from hivelm.survey.validity import contrast_support

    out: dict = {"communities": {}, "contrasts": {}}
    for community, report in surveys.items():
        rows = {}
        for corpus, summary in report["corpora"].items():
            card = summary.get("validity")
            if not card:
                continue
            rows[corpus] = {"verdict": card["verdict"], "failed": card["failed"], "checks_passed": card["checks_passed"],
                            "checks": {k: {"value": c["value"], "passed": c["passed"]} for k, c in card["checks"].items()}}
            rows[corpus] |= {k: card[k] for k in CARD_FIGURES if card.get(k)}
            rows[corpus]["alpha"] = {cid: c["alpha"] for cid, c in card.get("consistency", {}).items()}
            rows[corpus]["omega"] = {cid: c["omega"] for cid, c in card.get("consistency", {}).items()}
            rows[corpus]["null_distance"] = {k: v["distance"] for k, v in card["nulls"].items()}
            rows[corpus]["retest_icc"] = card["retest"]["icc"]
            if card.get("acquiescence"):
                rows[corpus]["endorse_both"] = card["acquiescence"]["endorse_both"]
        extra = report.get("validity") or {}
        out["communities"][community] = rows | {"variance": extra.get("variance")} | (
            {"dose": {k: extra["dose"][k] for k in ("slope", "monotone", "s0_max_abs_difference") if k in extra["dose"]}}
            if extra.get("dose") else {})
    for corpus, pairs in contrasts_.items():
        out["contrasts"][corpus] = {}
        for pair, contrast in pairs.items():
            a, b = pair.split(" vs ")
            cards = [surveys[c]["corpora"].get(corpus, {}).get("validity") for c in (a, b)]
            out["contrasts"][corpus][pair] = contrast_support(contrast, *cards)
    return out


NO_SURVEY = {"administered": False}
"""The metrics file's survey section when the project declares no instrument (survey.instrument: null)."""


def main(cfg: HiveConfig, run) -> dict:
    left_out = left_out_outputs(cfg)
    for path, stage in stale_files(left_out).items():
        log.warning("%s: written by stage %s, which this pipeline leaves out (evaluate.corpora is empty): stale, "
                    "not read", path, stage)
    surveys = read_surveys(list(cfg.communities), left_out=left_out)
    summary = mark_small(collect(list(cfg.communities), surveys, cfg.survey.statistics, left_out=left_out),
                         cfg.report.small_rows, cfg.report.small_posts)
    if cfg.survey.instrument is None:  # said, not left to be guessed from a missing section
        summary["survey"] = NO_SURVEY
    headline = counts(read_headline(list(cfg.communities)))
    with staged_outputs() as out:  # the metrics file, the plot rows and the MLflow record change together
        write_json(out.path(paths.METRICS), summary)
        write_json(out.path(paths.HEADLINE), headline)
        run.log_metrics({"headline": headline})
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
