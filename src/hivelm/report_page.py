"""The HTML report's rendering: numbers in, one self-contained page out (inline SVG plots, no network).

Pure functions of the dict `hivelm.stages.report.load` reads from the pipeline's outputs, so they are tested
without running the pipeline. Generated text appears only as the already redacted `samples`.
"""

from __future__ import annotations

import html
import io

from hivelm import headline

CORPORA_ORDER = ("finetuned", "untuned", "in_context")
METRIC_LABELS = headline.METRICS


def svg(figure) -> str:
    """The figure as inline SVG, byte-identical for the same numbers: no date in its metadata, and element ids
    hashed from a fixed salt instead of random ones (so the report's hash in dvc.lock is stable)."""
    import matplotlib
    import matplotlib.pyplot as plt

    buffer = io.StringIO()
    with matplotlib.rc_context({"svg.hashsalt": "hivelm"}):
        figure.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(figure)
    text = buffer.getvalue()
    return text[text.index("<svg"):]


def error_bar(estimate: dict | None) -> list[float]:
    """[below, above] for matplotlib. Evaluate's intervals hold their estimate; each side is still clipped at
    zero for intervals from elsewhere; missing or NaN bounds draw no bar."""
    import math

    if not estimate or estimate.get("low") is None or estimate.get("value") is None:
        return [0.0, 0.0]
    below, above = estimate["value"] - estimate["low"], estimate["high"] - estimate["value"]
    return [max(0.0, below) if math.isfinite(below) else 0.0, max(0.0, above) if math.isfinite(above) else 0.0]


def cell_colour(image, value: float) -> str:
    """Black or white text, whichever contrasts more with the cell's colour: black above relative luminance
    0.179, where WCAG 2.1's contrast ratios against black and white are equal, (L + 0.05) / 0.05 = 1.05 / (L +
    0.05) (https://www.w3.org/TR/WCAG21/#dfn-contrast-ratio; sRGB linearised approximately with gamma 2.2)."""
    if value != value:  # NaN: matplotlib leaves the cell blank
        return "black"
    red, green, blue, _ = image.cmap(image.norm(value))
    luminance = 0.2126 * red ** 2.2 + 0.7152 * green ** 2.2 + 0.0722 * blue ** 2.2
    return "black" if luminance > 0.179 else "white"


def legend_outside(axis, fontsize: int = 8) -> None:
    """The legend right of the axes, where it cannot cover a bar or a line (the SVG is cropped to fit it)."""
    axis.legend(fontsize=fontsize, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)


def p_value_text(p: float | None) -> str:
    """A p-value as a reader should see it: "< 0.001" below that (a permutation p is never 0), else two
    significant digits."""
    if p is None or p != p:
        return "-"
    return "< 0.001" if p < 0.001 else f"{p:.2g}"


def has_values(per_community: dict, key: str, corpora=CORPORA_ORDER) -> bool:
    """Whether any corpus of any community has an estimate of `key` (else its plot would be empty axes)."""
    estimates = (((result.get("corpora") or {}).get(corpus) or {}).get(key) or {}
                 for result in per_community.values() for corpus in corpora)
    return any(e.get("value") is not None for e in estimates)


def fidelity_bars(per_community: dict, key: str, corpora=CORPORA_ORDER) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    communities = list(per_community)
    figure, axis = plt.subplots(figsize=(7, 2.8))
    width = 0.8 / len(corpora)
    for index, corpus in enumerate(corpora):
        values = [per_community[c]["corpora"].get(corpus, {}).get(key) for c in communities]
        points = [v["value"] if v and v.get("value") is not None else np.nan for v in values]
        errors = np.array([error_bar(v) for v in values]).T
        axis.bar(np.arange(len(communities)) + index * width, points, width, yerr=errors, capsize=3, label=corpus)
    axis.set_xticks(np.arange(len(communities)) + width, communities)
    label, better = METRIC_LABELS[key]
    axis.set_title(f"{label} ({better} is better)", fontsize=10)
    legend_outside(axis)
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
        axis.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=7, color=cell_colour(image, value))
    figure.colorbar(image, ax=axis, shrink=0.8)
    size = f", n={matrix['size']}" if matrix.get("size") else ""
    rows = len(matrix.get("rows") or [])
    axis.set_title(f"{title}{size}: diagonal minimum in {matrix['diagonal_share']:.0%} of {rows} rows", fontsize=9)
    return svg(figure)


def matrix_plot(values, rows: list[str], columns: list[str], title: str, xlabel: str, ylabel: str,
                cmap: str = "viridis", fmt: str = "{:.2f}", diverging: bool = False) -> str:
    """Any rows x columns matrix as an annotated heatmap (byte-stable SVG, like `heatmap`); `diverging`
    centres the colour scale on 0 (for signed numbers such as log-likelihood gains)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    values = np.array(values, dtype=float)
    figure, axis = plt.subplots(figsize=(4.2, 3.4))
    scale = {}
    if diverging:
        bound = float(np.nanmax(np.abs(values))) if np.isfinite(values).any() else 1.0
        scale = {"vmin": -bound or -1.0, "vmax": bound or 1.0}
    image = axis.imshow(values, cmap=cmap, **scale)
    axis.set_xticks(range(len(columns)), columns, rotation=45, ha="right", fontsize=8)
    axis.set_yticks(range(len(rows)), rows, fontsize=8)
    axis.set_xlabel(xlabel)
    axis.set_ylabel(ylabel)
    for (i, j), value in np.ndenumerate(values):
        axis.text(j, i, fmt.format(value), ha="center", va="center", fontsize=7, color=cell_colour(image, value))
    figure.colorbar(image, ax=axis, shrink=0.8)
    axis.set_title(title, fontsize=9)
    return svg(figure)


def likelihood_section(likelihood: dict | None) -> str:
    """The attribute stage: the community x adapter gain matrix, and attribution of held-out posts by argmax
    gain beside the TF-IDF classifier (scores and confusion matrices). `likelihood`: {"matrix", "attribution"}
    as the stage wrote them."""
    if not likelihood or not likelihood.get("matrix"):
        return "<p>No likelihood results (the attribute stage has not run).</p>"
    matrix, attribution = likelihood["matrix"], likelihood.get("attribution") or {}
    share = matrix["diagonal_share"]
    parts = ["<p>Mean per-token log-likelihood gain of each adapter over the base model on each community's "
             "real held-out posts (same prompt, no generation). The own adapter gains most in "
             f"{interval(share)} of {len(matrix['rows'])} communities (diagonal share, bootstrap interval over "
             "posts).</p>",
             "<div class='row'>" + matrix_plot(matrix["gain"], matrix["rows"], matrix["columns"],
                                               "mean log-likelihood gain (nats per token)", "adapter of",
                                               "held-out posts of", cmap="RdBu", fmt="{:+.3f}", diverging=True)]
    rows = []
    for name, label in (("likelihood", "argmax adapter gain"), ("tfidf", "TF-IDF origin classifier")):
        scores = attribution.get(name)
        if scores:
            rows.append([label, interval(scores["accuracy"]), interval(scores["macro_f1"])])
            parts.append(matrix_plot(scores["confusion"], attribution["labels"], attribution["labels"],
                                     f"attributed by {label}", "attributed to", "posts of", cmap="Blues",
                                     fmt="{:.0f}"))
    parts.append("</div>")
    if rows:
        parts.append(table(["attribution of held-out posts by", "accuracy", "macro-F1"], rows))
    return "\n".join(parts)


def profile_plot(profiles: dict, kind: str, label: str | None = None) -> str:
    """Emotion profiles (kind='emotion') or one toxicity label's histogram, real vs each corpus; "" when no
    corpus has data for it (no empty axes)."""
    if kind == "emotion":
        profiles = {name: p for name, p in profiles.items() if p.get("emotion")}
    else:
        profiles = {name: p for name, p in profiles.items()
                    if sum((p.get("toxicity_histogram") or {}).get(label) or []) > 0}
    if not profiles:
        return ""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    figure, axis = plt.subplots(figsize=(5.5, 2.4))
    for name, profile in profiles.items():
        if kind == "emotion":
            keys = list(profile["emotion"])  # empty when the posts carry no emotion signal
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
    legend_outside(axis, fontsize=7)
    return svg(figure)


def table(headers: list[str], rows: list[list], text: bool = False) -> str:
    """Numbers (right-aligned) unless `text`: then cells are left-aligned prose that wraps anywhere (hashes,
    paths). A header may break after `_` (prepare's step names), so a table of many counts fits the page."""
    head = "".join(f"<th>{html.escape(str(h)).replace('_', '_<wbr>')}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    kind = " class='text'" if text else ""
    thead = f"<thead><tr>{head}</tr></thead>" if any(headers) else ""  # a key-value list needs no header row
    return f"<table{kind}>{thead}<tbody>{body}</tbody></table>"


def interval(metric: dict | None) -> str:
    if metric and metric.get("value") is None and str(metric.get("reason", "")).startswith("insufficient"):
        return f"<span class='insufficient' title='{html.escape(metric['reason'])}'>insufficient</span>"
    if not metric or metric.get("value") is None:
        return "-"
    if metric.get("low") is None or metric["low"] != metric["low"]:
        return f"{metric['value']:.3f}"
    return f"{metric['value']:.3f} <small>[{metric['low']:.3f}, {metric['high']:.3f}]</small>"


def survey_plot(results: dict) -> str:
    """The primary score (e.g. WCS) per community and model, with bootstrap intervals over personas, as points:
    the axis spans the data (labelled so), since from 0 it hid differences such as 53 vs 50, and bars must
    start at 0 (Cleveland & McGill 1984, https://doi.org/10.1080/01621459.1984.10478080)."""
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
        axis.errorbar(np.arange(len(communities)) + index * width, values, yerr=errors, fmt="o", capsize=3,
                      label=corpus)
    axis.set_xticks(np.arange(len(communities)) + width, communities)
    low, high = axis.get_ylim()  # matplotlib's autoscale spans the points and their intervals, with a margin
    axis.set_ylabel(f"{primary} (axis {low:.3g} to {high:.3g}, not from 0)", fontsize=8)
    axis.set_title(f"{primary} per community and model (95% bootstrap interval over personas)", fontsize=10)
    legend_outside(axis)
    return svg(figure)


def validity_plot(results: dict) -> str:
    """Left: each model's order sensitivity (mean TV across option orders) with its interval; right: the
    finetuned model's primary score against the adapter scale s (dose-response), one line per community."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    communities = list(results)
    figure, (left, right) = plt.subplots(1, 2, figsize=(9, 2.8))
    width = 0.8 / len(CORPORA_ORDER)
    for index, corpus in enumerate(CORPORA_ORDER):
        cards = [(results[c]["corpora"].get(corpus) or {}).get("validity") or {} for c in communities]
        estimates = [card.get("order_sensitivity") or {} for card in cards]
        values = [e.get("value") if e.get("value") is not None else np.nan for e in estimates]
        errors = np.array([error_bar(e) for e in estimates]).T
        left.bar(np.arange(len(communities)) + index * width, values, width, yerr=errors, capsize=3, label=corpus)
    left.set_xticks(np.arange(len(communities)) + width, communities)
    left.set_title("order sensitivity (mean TV across option orders)", fontsize=9)
    left.legend(fontsize=7)
    for community in communities:
        dose = (results[community].get("validity") or {}).get("dose") or {}
        primary = dose.get("primary")
        points = [(s, (dose["criteria"][str(s)].get(primary) or {}).get("value")) for s in dose.get("scales", [])]
        points = [(s, v) for s, v in points if v is not None]
        if points:
            right.plot(*zip(*points), marker="o", label=community)
            right.set_title(f"dose-response: {primary} vs adapter scale s", fontsize=9)
    right.set_xlabel("s (0 = untuned, 1 = finetuned)")
    if right.get_legend_handles_labels()[0]:
        right.legend(fontsize=7)
    return svg(figure)


def validity_table(results: dict) -> str:
    """One row per model: verdict, the checks it failed, and the figures they rest on."""
    rows = []
    for community, result in results.items():
        for corpus, scored in result["corpora"].items():
            card = scored.get("validity")
            if not card:
                continue
            figures = {name: "-" if check["value"] is None else f"{check['value']:.2f}"
                       for name, check in card["checks"].items()} | {name: "skipped" for name in card["skipped"]}
            verdict = card["verdict"] if card["verdict"] == "informative" else f"<b>{card['verdict']}</b>"
            rows.append([html.escape(community), corpus, verdict, html.escape(", ".join(card["failed"]) or "none"),
                         *[figures.get(n, "-") for n in ("order_sensitivity", "position_bias", "majority_survives",
                                               "distinct_from_uniform", "distinct_from_position", "acquiescence",
                                               "internal_consistency", "retest")]])
    if not rows:
        return ""
    return table(["community", "model", "verdict", "failed checks", "order TV", "position bias", "majority kept",
                  "from uniform (low)", "from position (low)", "endorse both", "alpha (min)", "retest ICC"], rows)


def survey_section(results: dict, contrasts: dict, validity: dict | None = None) -> str:
    """The validity card (verdicts, then order sensitivity and dose-response plots), then the primary score
    plot, criteria table, per-item majority answers and unparseable rates, and the contrasts, greyed where
    the card does not support them. `results`: {community: its survey report}; `contrasts` and `validity`:
    the `survey.contrasts` and `survey.validity` sections of the metrics file."""
    from hivelm.survey.scoring import estimate

    if not results:
        return "<p>No survey results (the survey stage has not run).</p>"
    parts = []
    if card := validity_table(results):
        parts += ["<h3>Validity card</h3><p>Does each model read the items? A model is <i>informative</i> when "
                  "it fails none of the checks (README: \"Is the survey measuring anything?\"); scores of an "
                  "uninformative model, and contrasts that rest on one, are not evidence about a community.</p>",
                  card, validity_plot(results), "<h3>Scores (order-averaged)</h3>"]
    parts.append(survey_plot(results))
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
    support = (validity or {}).get("contrasts", {})
    contrast_rows = []
    for corpus, pairs in contrasts.items():
        for pair, c in pairs.items():
            verdict = support.get(corpus, {}).get(pair)
            cells = [corpus, html.escape(pair), f"{c['difference']:.1f}" if c["difference"] is not None else "-",
                     f"[{c['low']:.1f}, {c['high']:.1f}]" if c["low"] is not None else "-",
                     p_value_text(c["p_value"])]
            if verdict is not None:
                cells.append("supported" if verdict["supported"] else html.escape("; ".join(verdict["reasons"])))
                if not verdict["supported"]:  # greyed: the card does not back this difference
                    cells = [f"<span style='color:#999'>{cell}</span>" for cell in cells]
            contrast_rows.append(cells)
    if contrast_rows:
        headers = ["model", "pair", "difference", "interval", "p"] + (["validity"] if support else [])
        parts.append("<p>Community contrasts of the primary score (permutation p-values, not corrected for "
                     "multiple comparisons; greyed where the validity card does not support them):</p>"
                     + table(headers, [row + ["-"] * (len(headers) - len(row)) for row in contrast_rows]))
    return "\n".join(parts)


def small_samples_section(flagged: list[dict]) -> str:
    """summarize's `small_samples`: each figure resting on fewer rows or posts than report.small_rows /
    report.small_posts, with the count it rests on (the metrics file has the count beside every figure)."""
    if not flagged:
        return ""
    rows = [[html.escape(f["figure"]), f["n"], html.escape(f["unit"]), f["threshold"]] for f in flagged]
    return ("<p class='insufficient'>Figures on small samples (report.small_rows, report.small_posts): read them "
            "as rough.</p>" + table(["figure", "rests on", "of", "threshold"], rows))


def headline_section(per_community: dict) -> str:
    """The page's opening: hivelm.headline's rows, the same ones `hivelm run` prints at its end."""
    rows = headline.rows(per_community)
    if not rows:
        return "<h2>Did tuning help?</h2><p>No finetuned corpus was evaluated: nothing to compare.</p>"
    return ("<h2>Did tuning help?</h2><p>The finetuned model against both baselines on the headline metrics, with "
            "intervals. <i>yes</i>: its interval lies on the better side of every baseline's; <i>no</i>: on the "
            "worse side of every one; <i>unclear</i>: the intervals overlap.</p>"
            + table(headline.HEADERS, [[html.escape(cell) for cell in row] for row in rows]))


def page(data: dict) -> str:
    """The HTML page from the numbers `hivelm.stages.report.load` collects (pure: no file is read)."""
    per_community, summary, cross, prepare = (data["per_community"], data["summary"], data["cross_community"],
                                              data["prepare"])
    title = data.get("title") or f"HiveLM report: {data['experiment']}"
    warning = data.get("content_warning")
    parts = [f"<h1>{html.escape(title)}</h1>",
             *([f"<p class='warning'><b>Content warning.</b> {html.escape(warning)}</p>"] if warning else []),
             headline_section(per_community),
             "<h2>Provenance</h2>", table(["", ""], [[html.escape(str(c)) for c in row] for row in data["provenance"]],
                                          text=True)]
    left_out = set(data.get("left_out") or ())
    if data.get("stale"):  # files of stages this pipeline leaves out: from an earlier pipeline, never shown
        parts.append("<p class='warning'><b>Stale files, not shown.</b> Written by stages this pipeline leaves out: "
                     + ", ".join(f"{html.escape(path)} ({html.escape(stage)})" for path, stage in data["stale"].items())
                     + ".</p>")
    corpora = list(data.get("corpora") or CORPORA_ORDER)
    methods = (summary or {}).get("methods") or {}
    parts.append("<h2>Fidelity per community</h2><p>Each metric against the community's own real held-out "
                 "posts, with its interval: " + html.escape(methods.get("intervals", "bootstrap intervals")) + ". "
                 + (f"FID: {html.escape(methods['fid'])} (the FID n column); FIDs of different communities are "
                    "at different sizes. " if "fid" in methods else "")
                 + (f"A corpus with fewer than {summary['min_posts']} posts in a community (evaluate.min_posts) "
                    "is marked insufficient." if (summary or {}).get("min_posts") else "") + "</p>")
    rows = []
    for community, result in per_community.items():
        for corpus in corpora:
            m = result["corpora"].get(corpus)
            if m:
                fid_size = (m["fid"] or {}).get("size") or "-"
                rows.append([html.escape(community), html.escape(corpus), m["n"], fid_size,
                             *[interval(m[k]) for k in METRIC_LABELS],
                             interval(m["toxicity"].get("toxicity", {}).get("wasserstein"))])
    parts.append(table(["community", "corpus", "posts", "FID n", *[v[0] for v in METRIC_LABELS.values()],
                        "toxicity Wasserstein"], rows))
    parts += [fidelity_bars(per_community, key, corpora) for key in METRIC_LABELS
              if has_values(per_community, key, corpora)]
    if summary:
        classifier = summary.get("classifier", {})
        parts.append("<p>Community classifier on real held-out posts: accuracy "
                     f"{interval(classifier.get('heldout_accuracy'))}, macro-F1 "
                     f"{interval(classifier.get('heldout_macro_f1'))}. Macro-F1 on generated posts: " +
                     ", ".join(f"{html.escape(c)} {interval(v['macro_f1'])}"
                               for c, v in summary.get("corpora", {}).items()) +
                     " (paper: 0.53 finetuned, 0.40 in-context).</p>")
    parts.append(small_samples_section(data.get("small_samples") or []))
    parts.append("<h2>Cross-community distance</h2><div class='row'>" +
                 "".join(heatmap(m, name) if m.get("rows") else
                         f"<p>{html.escape(name)}: {html.escape(m.get('reason', 'no rows'))}</p>"
                         for name, m in cross.items()) + "</div>")
    if "attribute" not in left_out:
        parts.append("<h2>Which community would have written this post (adapter likelihood)</h2>"
                     + likelihood_section(data.get("likelihood")))
    parts.append("<h2>Emotion profiles and toxicity</h2>")
    for community, result in per_community.items():
        profiles = result.get("profiles", {})
        plots = profile_plot(profiles, "emotion") + profile_plot(profiles, "toxicity", "toxicity")
        parts.append(f"<h3>{html.escape(community)}</h3>"
                     + (f"<div class='row'>{plots}</div>" if plots else "<p>No emotion or toxicity data.</p>"))
    if data.get("instrument", "declared") is None:
        parts.append("<h2>Survey</h2><p>No survey: this project declares no instrument (survey.instrument: null), "
                     "so none was administered or scored.</p>")
    elif "survey" not in left_out:
        parts.append("<h2>Survey</h2>" + survey_section(data["surveys"], data["contrasts"], data.get("validity")))
    parts.append("<h2>Data counts</h2>")
    # one row per prepare step, one column per community: a dozen steps side by side ran past the window
    counts = prepare["communities"]
    steps = list(next(iter(counts.values()), {}))
    parts.append(table(["prepare step", *counts], [[html.escape(step), *(c.get(step, "-") for c in counts.values())]
                                                   for step in steps]))
    generated = data["generated"]
    gen_rows = [[html.escape(c), corpus, counts.get("generated"), counts.get("after_near_duplicate"),
                 f"{counts.get('refusal_rate', 0):.1%}", counts.get("after_leakage"), counts.get("kept")]
                for c, stats in generated.items() if stats for corpus, counts in stats.items()]
    for name, source in ((summary or {}).get("sources") or {}).items():  # external corpora filtered in evaluate
        gen_rows += [[html.escape(c), html.escape(name), counts.get("generated"), counts.get("after_near_duplicate"),
                      f"{counts.get('refusal_rate', 0):.1%}", counts.get("after_leakage"), counts.get("kept")]
                     for c, counts in (source.get("filter_counts") or {}).items()]
    parts.append(table(["community", "corpus", "generated", "after dedupe", "refusals", "after leakage", "kept"],
                       gen_rows))
    if data["samples"]:
        parts.append("<h2>Samples (redacted)</h2>")
        for (community, corpus), samples in data["samples"].items():
            parts.append(f"<h3>{html.escape(community)} / {corpus}</h3><ul>" +
                         "".join(f"<li>{html.escape(s)}</li>" for s in samples) + "</ul>")
    return PAGE.format(title=html.escape(title), body="\n".join(parts))


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }}
table {{ border-collapse: collapse; margin: 1em 0; font-size: 0.85em; }}
th, td {{ border: 1px solid #ccc; padding: 0.25em 0.5em; text-align: right; }}
th {{ background: #f3f3f3; }} td:first-child {{ text-align: left; }}
table.text td {{ text-align: left; overflow-wrap: anywhere; }} table.text td:first-child {{ white-space: nowrap; }}
.insufficient {{ color: #a05a00; font-style: italic; }}
.warning {{ background: #fff4e5; border-left: 4px solid #e69500; padding: 0.6em; }}
.row {{ display: flex; flex-wrap: wrap; gap: 1em; }} svg {{ max-width: 100%; height: auto; }}
</style></head><body>
{body}
</body></html>
"""
