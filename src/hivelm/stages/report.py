"""report: metrics + survey results -> the HTML report, one self-contained page that opens offline.

    hivelm report
    hivelm report report.show_samples=true      # a few redacted generations per corpus

`load` reads every number the page shows from the other stages' outputs (paths from hivelm.paths);
`hivelm.report_page.page` turns them into HTML. Generated text appears only with `report.show_samples`, and then
only a few anonymised, truncated samples.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from hivelm import paths
from hivelm.artifacts import read_json  # a truncated report: one line naming it and its stage
from hivelm.config import HiveConfig
from hivelm.contracts import in_pipeline, left_out_outputs, stale_files
from hivelm.report_page import CORPORA_ORDER


def provenance(cfg: HiveConfig, summary: dict | None) -> list[list[str]]:
    """[label, value] rows (plain text): lineage, params, and where each corpus came from: the base model and
    adapters for the built-in corpora, the declared provenance and file hashes for external ones; the scorers."""
    params = Path("params.yaml")
    # No git commit here: the page is a DVC output, so it must depend on the stage's deps alone (a commit row
    # made every fresh clone's `make repro` rewrite dvc.lock); each stage's MLflow run carries its commit.
    rows = [["lineage", "dvc.lock (hashes of each stage's code, params and data); MLflow runs tagged git_commit"],
            ["params.yaml sha256", hashlib.sha256(params.read_bytes()).hexdigest()[:16] if params.is_file() else "-"]]
    sources = (summary or {}).get("sources") or {}
    built_in = [name for name, source in sources.items() if source.get("kind") == "built-in"]
    if built_in:  # only our own corpora come from the base model (and the adapters)
        base = read_json(paths.base_provenance()) or {}
        rows.append(["base model", f"{base.get('source', cfg.base_model.source)} "
                                   f"({base.get('architecture', '?')}, {base.get('parameters', 0):,} parameters)"])
    if "finetuned" in built_in:
        for community in cfg.communities:
            weights = paths.adapter_weights(community)
            digest = hashlib.sha256(weights.read_bytes()).hexdigest()[:16] if weights.is_file() else "missing"
            rows.append([f"adapter {community}", f"sha256 {digest}"])
    for name, source in sources.items():
        described = source.get("provenance", "?")
        if source.get("kind") == "external":
            files = ", ".join(f"{path} (sha256 {digest})" for path, digest in source.get("files", {}).items())
            described = (f"external: {described}; files: {files}; "
                         + ("post-filtered like generate's corpora" if source.get("filtered") else "not filtered")
                         + dropped(source.get("dropped") or {}))
        rows.append([f"corpus {name}", described])
    for name, info in ((summary or {}).get("scorers") or {}).items():
        rows.append([f"scorer {name}", ", ".join(f"{k}={v}" for k, v in info.items())])
    return rows


def dropped(counts: dict) -> str:
    """What evaluate left out of an external corpus before measuring it, counted (hivelm.corpora)."""
    empty = counts.get("empty_text") or {}
    text = f"; dropped {sum(empty.values())} empty texts" + (
        f" ({', '.join(f'{c} {n}' for c, n in empty.items() if n)})" if any(empty.values()) else "")
    unmatched = counts.get("unmatched_community")
    if unmatched:
        text += (f"; skipped {unmatched['posts']} posts of {unmatched['values']} community values matching no "
                 f"declared community" + (f" ({', '.join(f'{v} {n}' for v, n in unmatched['shown'].items())})"
                                           if unmatched["shown"] else ""))
    return text


def redacted_samples(community: str, corpus: str, count: int) -> list[str]:
    from hivelm.text import redact

    path = paths.corpus(community, corpus)
    if not path.is_file():
        return []
    texts = [json.loads(line)["text"] for line in path.open()][:count]
    return [redact(t) for t in texts]


def load(cfg: HiveConfig) -> dict:
    """Every number the report shows, read from the outputs of the stages in this pipeline (missing ones are
    left out). Files of the stages it leaves out (hivelm.contracts.left_out_outputs) are from an earlier
    pipeline: they are listed as stale, never read."""
    left_out = left_out_outputs(cfg)

    def read(path: Path):
        return read_json(path) if in_pipeline(path, left_out) else None

    communities = list(cfg.communities)
    per_community = {c: read(paths.community_metrics(c)) for c in communities}
    surveys = {c: read(paths.survey_report(c)) for c in communities}
    summary = read(paths.fidelity_summary())
    corpora = list((summary or {}).get("sources") or {}) or list(CORPORA_ORDER)
    samples = {}
    if cfg.report.show_samples and in_pipeline(paths.GENERATED, left_out):  # our own generations only
        samples = {(c, corpus): found for c in communities for corpus in CORPORA_ORDER
                   if (found := redacted_samples(c, corpus, cfg.report.max_samples))}
    return {
        "experiment": cfg.tracking.experiment,
        "title": cfg.report.title or f"HiveLM report: {cfg.tracking.experiment}",
        "content_warning": cfg.report.content_warning,
        "instrument": cfg.survey.instrument,
        "corpora": corpora,
        "provenance": provenance(cfg, summary),
        "per_community": {c: m for c, m in per_community.items() if m},
        "summary": summary,
        "cross_community": read_json(paths.cross_community()) or {},
        "prepare": read_json(paths.PREPARE_STATS) or {"communities": {}},
        "generated": {c: read(paths.generate_stats(c)) for c in communities},
        "surveys": {c: r for c, r in surveys.items() if r},
        "contrasts": ((read(paths.METRICS) or {}).get("survey") or {}).get("contrasts", {}),
        "validity": ((read(paths.METRICS) or {}).get("survey") or {}).get("validity", {}),
        "small_samples": (read(paths.METRICS) or {}).get("small_samples") or [],
        "samples": samples,
        "likelihood": {"matrix": read(paths.attribute_matrix()),
                       "attribution": read(paths.attribute_attribution())},
        "left_out": sorted(set(left_out.values())),
        "stale": stale_files(left_out),
    }


def main(cfg: HiveConfig, run) -> Path:
    from hivelm.artifacts import staged_outputs
    from hivelm.report_page import page

    html_page = page(load(cfg))
    with staged_outputs() as out:  # the page and its MLflow copy change together
        out.path(paths.REPORT).write_text(html_page, encoding="utf-8")
        run.log_text(html_page, paths.REPORT.name)
    return paths.REPORT
