"""report: metrics + survey results -> reports/report.html, one self-contained page that opens offline.

    hivelm report
    hivelm report report.show_samples=true      # a few redacted generations per corpus

Plots are inline SVG (matplotlib); nothing is loaded from the network. Generated text appears only with
`report.show_samples`, and then only a few anonymised, truncated samples.
"""

from __future__ import annotations

import hashlib
import html
import io
import json
from pathlib import Path

from hivelm.config import HiveConfig

OUTPUT = Path("reports/report.html")
CORPORA_ORDER = ("finetuned", "untuned", "in_context")
METRIC_LABELS = {"attribution": ("attribution to own community", "higher"), "auc": ("real-vs-generated AUC", "lower"),
                 "fid": ("FID to own held-out posts", "lower"), "emotion_alignment": ("emotion alignment", "higher")}


def read_json(path: Path):
    return json.loads(path.read_text()) if path.is_file() else None


def svg(figure) -> str:
    import matplotlib.pyplot as plt

    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", bbox_inches="tight")
    plt.close(figure)
    text = buffer.getvalue()
    return text[text.index("<svg"):]


def error_bar(estimate: dict | None) -> list[float]:
    """[below, above] for matplotlib. An interval need not contain the point estimate (FID's basic bootstrap
    interval corrects the plug-in value's upward bias and can lie below it), so each side is clipped at zero;
    missing or NaN bounds draw no bar."""
    import math

    if not estimate or estimate.get("low") is None or estimate.get("value") is None:
        return [0.0, 0.0]
    below, above = estimate["value"] - estimate["low"], estimate["high"] - estimate["value"]
    return [max(0.0, below) if math.isfinite(below) else 0.0, max(0.0, above) if math.isfinite(above) else 0.0]


def fidelity_bars(per_community: dict, key: str) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    communities = list(per_community)
    figure, axis = plt.subplots(figsize=(7, 2.8))
    width = 0.8 / len(CORPORA_ORDER)
    for index, corpus in enumerate(CORPORA_ORDER):
        values = [per_community[c]["corpora"].get(corpus, {}).get(key) for c in communities]
        points = [v["value"] if v else np.nan for v in values]
        errors = np.array([error_bar(v) for v in values]).T
        axis.bar(np.arange(len(communities)) + index * width, points, width, yerr=errors, capsize=3, label=corpus)
    axis.set_xticks(np.arange(len(communities)) + width, communities)
    label, better = METRIC_LABELS[key]
    axis.set_title(f"{label} ({better} is better)", fontsize=10)
    axis.legend(fontsize=8)
    return svg(figure)


def heatmap(matrix: dict, title: str) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    values = np.array(matrix["fid"], dtype=float)
    figure, axis = plt.subplots(figsize=(4.2, 3.4))
    image = axis.imshow(values, cmap="viridis_r")
    axis.set_xticks(range(len(matrix["columns"])), matrix["columns"], rotation=45, ha="right", fontsize=8)
    axis.set_yticks(range(len(matrix["rows"])), matrix["rows"], fontsize=8)
    axis.set_xlabel("real held-out posts of")
    axis.set_ylabel("posts of")
    for (i, j), value in np.ndenumerate(values):
        axis.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=7, color="white")
    figure.colorbar(image, ax=axis, shrink=0.8)
    axis.set_title(f"{title}: diagonal minimum in {matrix['diagonal_share']:.0%} of rows", fontsize=9)
    return svg(figure)


def profile_plot(profiles: dict, kind: str, label: str | None = None) -> str:
    """Emotion profiles (kind='emotion') or one toxicity label's histogram, real vs each corpus."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    figure, axis = plt.subplots(figsize=(5.5, 2.4))
    for name, profile in profiles.items():
        if kind == "emotion":
            keys = list(profile["emotion"])
            axis.plot(keys, [profile["emotion"][k] for k in keys], marker="o", label=name)
        else:
            counts = np.array(profile["toxicity_histogram"][label], dtype=float)
            axis.plot(np.linspace(0.05, 0.95, len(counts)), counts / max(counts.sum(), 1), marker=".", label=name)
    if kind == "emotion":
        axis.tick_params(axis="x", rotation=45, labelsize=7)
        axis.set_ylabel("share")
    else:
        axis.set_xlabel(f"{label} score")
        axis.set_ylabel("share of posts")
    axis.legend(fontsize=7)
    return svg(figure)


def table(headers: list[str], rows: list[list]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def interval(metric: dict | None) -> str:
    if not metric or metric.get("value") is None:
        return "-"
    if metric.get("low") is None or metric["low"] != metric["low"]:
        return f"{metric['value']:.3f}"
    return f"{metric['value']:.3f} <small>[{metric['low']:.3f}, {metric['high']:.3f}]</small>"


def provenance(cfg: HiveConfig, summary: dict | None) -> list[list[str]]:
    from hivelm.tracking import git_state

    commit, dirty = git_state()
    params = Path("params.yaml")
    rows = [["git commit", f"{commit}{' (dirty)' if dirty else ''}"],
            ["params.yaml sha256", hashlib.sha256(params.read_bytes()).hexdigest()[:16] if params.is_file() else "-"]]
    base = read_json(Path("models/base/hivelm_base.json")) or {}
    rows.append(["base model", html.escape(f"{base.get('source', cfg.base_model.source)} "
                                           f"({base.get('architecture', '?')}, {base.get('parameters', 0):,} parameters)")])
    for community in cfg.communities:
        weights = Path(f"models/adapters/{community}/adapter_model.safetensors")
        digest = hashlib.sha256(weights.read_bytes()).hexdigest()[:16] if weights.is_file() else "missing"
        rows.append([f"adapter {html.escape(community)}", f"sha256 {digest}"])
    for name, info in ((summary or {}).get("scorers") or {}).items():
        rows.append([f"scorer {name}", html.escape(", ".join(f"{k}={v}" for k, v in info.items()))])
    return rows


def redacted_samples(community: str, corpus: str, count: int) -> list[str]:
    from hivelm.text import redact

    path = Path(f"data/generated/{community}/{corpus}.jsonl")
    if not path.is_file():
        return []
    texts = [json.loads(line)["text"] for line in path.open()][:count]
    return [html.escape(redact(t)) for t in texts]


def survey_plot(results: dict) -> str:
    """The primary score (e.g. WCS) per community and model, with bootstrap intervals over personas."""
    import matplotlib

    from hivelm.survey.scoring import estimate

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    communities = list(results)
    figure, axis = plt.subplots(figsize=(7, 2.8))
    width = 0.8 / len(CORPORA_ORDER)
    primary = None
    for index, corpus in enumerate(CORPORA_ORDER):
        estimates = []
        for community in communities:
            scored = results[community]["corpora"].get(corpus)
            primary = primary or (scored or {}).get("primary")
            estimates.append(estimate((scored or {}).get("criteria", {}).get(primary)) or {})
        values = [e.get("value") if e.get("value") is not None else np.nan for e in estimates]
        errors = np.array([error_bar(e) for e in estimates]).T
        axis.bar(np.arange(len(communities)) + index * width, values, width, yerr=errors, capsize=3, label=corpus)
    axis.set_xticks(np.arange(len(communities)) + width, communities)
    axis.set_title(f"{primary} per community and model (95% bootstrap interval over personas)", fontsize=10)
    axis.legend(fontsize=8)
    return svg(figure)


def survey_section(cfg: HiveConfig) -> str:
    """Primary score plot, criteria table, per-item majority answers and unparseable rates, contrasts."""
    from hivelm.survey.scoring import estimate

    results = {c: read_json(Path(f"reports/survey/{c}.json")) for c in cfg.communities}
    results = {c: r for c, r in results.items() if r}
    if not results:
        return "<p>No survey results (the survey stage has not run).</p>"
    parts = [survey_plot(results)]
    rows, names = [], []
    for community, result in results.items():
        for corpus, scored in result["corpora"].items():
            names = sorted(scored["criteria"])
            rows.append([html.escape(community), corpus,
                         *[interval(estimate(scored["criteria"][n])) for n in names],
                         f"{scored['unparseable_rate']:.1%}"])
    parts.append(table(["community", "model", *names, "unparseable"], rows))
    item_rows = []
    for community, result in results.items():
        for corpus, scored in result["corpora"].items():
            item_rows.append([html.escape(community), corpus] + [
                f"{html.escape(str(item.get('majority')))} <small>({item.get('unparseable_rate', 0):.0%})</small>"
                for item in scored["items"].values()])
    first_model = next(iter(next(iter(results.values()))["corpora"].values()))
    item_ids = list(first_model["items"])
    parts.append("<p>Majority answer per item (unparseable share in brackets):</p>" +
                 table(["community", "model", *item_ids], item_rows))
    contrasts = ((read_json(Path("reports/metrics.json")) or {}).get("survey") or {}).get("contrasts", {})
    contrast_rows = [[corpus, html.escape(pair), f"{c['difference']:.1f}" if c["difference"] is not None else "-",
                      f"[{c['low']:.1f}, {c['high']:.1f}]" if c["low"] is not None else "-",
                      f"{c['p_value']:.3f}" if c["p_value"] is not None else "-"]
                     for corpus, pairs in contrasts.items() for pair, c in pairs.items()]
    if contrast_rows:
        parts.append("<p>Community contrasts of the primary score (permutation p-values, not corrected for "
                     "multiple comparisons):</p>" + table(["model", "pair", "difference", "interval", "p"],
                                                         contrast_rows))
    return "\n".join(parts)


def build(cfg: HiveConfig) -> str:
    """Pure-ish core: read every report input and return the HTML page."""
    per_community = {c: read_json(Path(f"reports/metrics/{c}.json")) for c in cfg.communities}
    per_community = {c: m for c, m in per_community.items() if m}
    summary = read_json(Path("reports/metrics/summary.json"))
    cross = read_json(Path("reports/metrics/cross_community.json")) or {}
    prepare = read_json(Path("reports/prepare/stats.json")) or {"communities": {}}
    parts = [f"<h1>HiveLM report: {html.escape(cfg.tracking.experiment)}</h1>",
             "<p class='warning'><b>Content warning.</b> This report describes models aligned with online "
             "communities that may discuss eating disorders, dieting and body image. Numbers only, unless "
             "samples were requested.</p>",
             "<h2>Provenance</h2>", table(["", ""], provenance(cfg, summary))]
    parts.append("<h2>Fidelity per community</h2><p>Each metric against the community's own real held-out "
                 "posts, with bootstrap intervals.</p>")
    rows = []
    for community, result in per_community.items():
        for corpus in CORPORA_ORDER:
            m = result["corpora"].get(corpus)
            if m:
                rows.append([html.escape(community), corpus, m["n"], *[interval(m[k]) for k in METRIC_LABELS],
                             interval(m["toxicity"].get("toxicity", {}).get("wasserstein"))])
    parts.append(table(["community", "corpus", "posts", *[v[0] for v in METRIC_LABELS.values()],
                        "toxicity Wasserstein"], rows))
    if per_community:
        parts += [fidelity_bars(per_community, key) for key in METRIC_LABELS]
    if summary:
        classifier = summary.get("classifier", {})
        parts.append("<p>Community classifier on real held-out posts: accuracy "
                     f"{interval(classifier.get('heldout_accuracy'))}, macro-F1 "
                     f"{interval(classifier.get('heldout_macro_f1'))}. Macro-F1 on generated posts: " +
                     ", ".join(f"{c} {interval(v['macro_f1'])}" for c, v in summary.get("corpora", {}).items()) +
                     " (paper: 0.53 finetuned, 0.40 in-context).</p>")
    parts.append("<h2>Cross-community distance</h2><div class='row'>" +
                 "".join(heatmap(m, name) for name, m in cross.items()) + "</div>")
    parts.append("<h2>Emotion profiles and toxicity</h2>")
    for community, result in per_community.items():
        profiles = result.get("profiles", {})
        parts.append(f"<h3>{html.escape(community)}</h3><div class='row'>{profile_plot(profiles, 'emotion')}"
                     f"{profile_plot(profiles, 'toxicity', 'toxicity')}</div>")
    parts.append("<h2>Survey</h2>" + survey_section(cfg))
    parts.append("<h2>Data counts</h2>")
    steps = list(next(iter(prepare["communities"].values()), {}))
    parts.append(table(["community", *steps], [[html.escape(c), *counts.values()]
                                               for c, counts in prepare["communities"].items()]))
    generated = {c: read_json(Path(f"reports/generate/{c}.json")) for c in cfg.communities}
    gen_rows = [[html.escape(c), corpus, counts.get("generated"), counts.get("after_near_duplicate"),
                 f"{counts.get('refusal_rate', 0):.1%}", counts.get("after_leakage"), counts.get("kept")]
                for c, stats in generated.items() if stats for corpus, counts in stats.items()]
    parts.append(table(["community", "corpus", "generated", "after dedupe", "refusals", "after leakage", "kept"],
                       gen_rows))
    if cfg.report.show_samples:
        parts.append("<h2>Samples (redacted)</h2>")
        for community in cfg.communities:
            for corpus in CORPORA_ORDER:
                samples = redacted_samples(community, corpus, cfg.report.max_samples)
                if samples:
                    parts.append(f"<h3>{html.escape(community)} / {corpus}</h3><ul>" +
                                 "".join(f"<li>{s}</li>" for s in samples) + "</ul>")
    return PAGE.format(title=html.escape(cfg.tracking.experiment), body="\n".join(parts))


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>HiveLM report: {title}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }}
table {{ border-collapse: collapse; margin: 1em 0; font-size: 0.85em; }}
th, td {{ border: 1px solid #ccc; padding: 0.25em 0.5em; text-align: right; }}
th {{ background: #f3f3f3; }} td:first-child {{ text-align: left; }}
.warning {{ background: #fff4e5; border-left: 4px solid #e69500; padding: 0.6em; }}
.row {{ display: flex; flex-wrap: wrap; gap: 1em; }} svg {{ max-width: 100%; height: auto; }}
</style></head><body>
{body}
</body></html>
"""


def main(cfg: HiveConfig) -> Path:
    from hivelm import tracking
    from hivelm.io import atomic_path

    with tracking.stage_run(cfg, "report", sections=("communities", "report")) as run:
        page = build(cfg)
        with atomic_path(OUTPUT) as tmp:
            tmp.write_text(page, encoding="utf-8")
        run.log_artifact(OUTPUT)
    return OUTPUT
