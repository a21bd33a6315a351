"""The headline, declared once: did tuning help? Read by the report's first table and by the table `hivelm run`
prints at its end (and a test checks that the two agree).

One row per community and headline metric: the finetuned model beside each baseline, each with its interval as
evaluate wrote it (hivelm.paths.community_metrics), and a verdict. "yes" when the finetuned interval lies on
the better side of every baseline's interval, "no" when it lies on the worse side of every one, "unclear" when
intervals overlap: non-overlapping percentile intervals are a conservative test of a difference
(Schenker & Gentleman 2001, https://doi.org/10.1198/000313001317097960), so "unclear" may hide a real one.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from hivelm import paths

METRICS = {"attribution": ("attribution to own community", "higher"), "auc": ("real-vs-generated AUC", "lower"),
           "fid": ("FID to own held-out posts", "lower"), "emotion_alignment": ("emotion alignment", "higher")}
"""Headline metric key -> (label, which direction is better)."""
TUNED, BASELINES = "finetuned", ("untuned", "in_context")
HEADERS = ["community", "metric", "better", TUNED, *BASELINES, "tuning helped?"]


def estimate_text(metric: dict | None) -> str:
    """`0.285 [0.249, 0.327]` (plain text), `insufficient` or `-`."""
    if metric and metric.get("value") is None and str(metric.get("reason", "")).startswith("insufficient"):
        return "insufficient"
    if not metric or metric.get("value") is None:
        return "-"
    low, high = metric.get("low"), metric.get("high")
    if low is None or high is None or not (math.isfinite(low) and math.isfinite(high)):
        return f"{metric['value']:.3f}"
    return f"{metric['value']:.3f} [{low:.3f}, {high:.3f}]"


def _bounds(metric: dict | None) -> tuple[float, float] | None:
    if not metric or metric.get("value") is None:
        return None
    low, high = metric.get("low"), metric.get("high")
    low = metric["value"] if low is None or not math.isfinite(low) else low
    high = metric["value"] if high is None or not math.isfinite(high) else high
    return low, high


def verdict(tuned: dict | None, baselines: list[dict | None], direction: str) -> str:
    """yes / no / unclear (module docstring); `-` without a finetuned estimate or any baseline to compare."""
    mine = _bounds(tuned)
    others = [b for b in map(_bounds, baselines) if b is not None]
    if mine is None or not others:
        return "-"
    higher = direction == "higher"
    better = all(mine[0] > hi if higher else mine[1] < lo for lo, hi in others)
    worse = all(mine[1] < lo if higher else mine[0] > hi for lo, hi in others)
    return "yes" if better else "no" if worse else "unclear"


def rows(per_community: dict) -> list[list[str]]:
    """Plain-text rows under HEADERS. `per_community`: {community: evaluate's metrics file} (the `corpora`
    key is read); communities without a finetuned corpus give no row."""
    table = []
    for community, result in per_community.items():
        corpora = (result or {}).get("corpora") or {}
        if TUNED not in corpora:
            continue
        for key, (label, better) in METRICS.items():
            tuned = corpora[TUNED].get(key)
            baselines = [(corpora.get(b) or {}).get(key) for b in BASELINES]
            table.append([community, label, better, estimate_text(tuned), *map(estimate_text, baselines),
                          verdict(tuned, baselines, better)])
    return table


def counts(per_community: dict) -> dict:
    """The headline in numbers only, small enough for a `dvc metrics show` line: communities compared, and per
    metric how many said "yes" (tuning helped) and "no"."""
    verdicts = {key: [row[-1] for row in rows(per_community) if row[1] == label]
                for key, (label, _) in METRICS.items()}
    return {"communities": sum(TUNED in ((r or {}).get("corpora") or {}) for r in per_community.values()),
            "helped": {key: found.count("yes") for key, found in verdicts.items()},
            "hurt": {key: found.count("no") for key, found in verdicts.items()}}


def mlflow_keys() -> list[str]:
    """The headline's metric names in MLflow (summarize's run and the pipeline's parent run log
    `{"headline": counts(...)}`, flattened with dots): the columns `hivelm ui` opens the runs table with."""
    from hivelm.config import flatten

    return list(flatten({"headline": counts({})}))


def read(communities) -> dict:
    """{community: evaluate's metrics file} for those that have one."""
    found = {c: paths.community_metrics(c) for c in communities}
    return {c: json.loads(p.read_text(encoding="utf-8")) for c, p in found.items() if p.is_file()}


def terminal(per_community: dict, report: Path | str | None = None) -> str:
    """The headline as an aligned text table, then where the report is: what `hivelm run` prints at its end."""
    body = rows(per_community)
    if not body:
        lines = ["No finetuned corpus was evaluated: no headline (did tuning help?) to show."]
    else:
        widths = [max(len(str(r[i])) for r in [HEADERS, *body]) for i in range(len(HEADERS))]
        lines = ["Did tuning help? (finetuned against both baselines; intervals as in the report)"]
        lines += ["  ".join(str(cell).ljust(w) for cell, w in zip(row, widths)).rstrip()
                  for row in [HEADERS, *body]]
    if report:
        lines.append(f"Report: {report}")
    return "\n".join(lines)
