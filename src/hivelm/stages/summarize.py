"""summarize: every stage's summary -> reports/metrics.json, the one file the regression gate and
`dvc metrics` read.

    hivelm summarize

Sections: `prepare` (data counts), `generate` (post-filter counts per community and corpus), `fidelity`
(evaluate) and `survey`; a stage that is switched off simply has no section.
"""

from __future__ import annotations

import json
from pathlib import Path

from hivelm.config import HiveConfig
from hivelm.io import write_json

SOURCES = {
    "prepare": Path("reports/prepare/stats.json"),
    "fidelity": Path("reports/metrics/summary.json"),
    "survey": Path("reports/survey/summary.json"),
}
OUTPUT = Path("reports/metrics.json")


def collect(communities: list[str], root: Path = Path(".")) -> dict:
    """Pure-ish core: read what exists and nest it by section."""
    summary = {name: json.loads((root / path).read_text()) for name, path in SOURCES.items()
               if (root / path).is_file()}
    if "prepare" in summary:
        summary["prepare"] = summary["prepare"]["total"]
    generated = {c: root / f"reports/generate/{c}.json" for c in communities}
    summary["generate"] = {c: json.loads(p.read_text()) for c, p in generated.items() if p.is_file()}
    return summary


def main(cfg: HiveConfig) -> dict:
    from hivelm import tracking

    with tracking.stage_run(cfg, "summarize", sections=("communities",)) as run:
        summary = collect(list(cfg.communities))
        write_json(OUTPUT, summary)
        run.log_artifact(OUTPUT)
    return summary
