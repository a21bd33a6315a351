"""The HTML report's rendering (hivelm.report_page) on hand-made numbers: no pipeline, no model."""

import math
import re
from html import escape

import pytest

from conftest import overflowing_tables
from hivelm.report_page import error_bar, interval, page, table

EMOTIONS = {"joy": 0.5, "fear": 0.3, "anger": 0.2}


def estimate(value, low=None, high=None):
    low = value - 0.1 if low is None else low
    high = value + 0.1 if high is None else high
    return {"value": value, "low": low, "high": high}


def corpus_metrics(fid):
    return {"n": 12, "attribution": estimate(0.5), "auc": estimate(0.9), "fid": estimate(fid),
            "emotion_alignment": estimate(0.8), "toxicity": {"toxicity": {"wasserstein": estimate(0.01, 0.0, 0.02)}}}


def profile():
    return {"emotion": EMOTIONS, "toxicity_histogram": {"toxicity": [5, 3, 1, 0, 0, 0, 0, 0, 0, 1]}}


def survey(wcs):
    return {"community": "keto", "corpora": {"finetuned": {
        "primary": "WCS", "unparseable_rate": 0.0,
        "criteria": {"WCS": {"mean": estimate(wcs, wcs - 1, wcs + 1)}},
        "items": {"Q5": {"majority": "b", "unparseable_rate": 0.0}}}}}


def numbers(surveys=True, samples=None):
    communities = ["keto", "run<ning>"]
    return {
        "experiment": "demo & co",
        "provenance": [["git commit", "abc123"], ["base model", "<script>alert(1)</script>"]],
        "per_community": {c: {"corpora": {"finetuned": corpus_metrics(0.2), "untuned": corpus_metrics(0.4)},
                              "profiles": {"real": profile(), "finetuned": profile()}} for c in communities},
        "summary": {"classifier": {"heldout_accuracy": estimate(0.8), "heldout_macro_f1": estimate(0.7)},
                    "corpora": {"finetuned": {"macro_f1": estimate(0.6)}}},
        "cross_community": {"finetuned": {"rows": communities, "columns": communities,
                                          "fid": [[0.1, 0.3], [0.4, 0.2]], "diagonal_share": 1.0}},
        "prepare": {"communities": {c: {"input": 50, "train": 40, "heldout": 10} for c in communities}},
        "generated": {c: {"finetuned": {"generated": 16, "after_near_duplicate": 15, "refusal_rate": 0.0625,
                                        "after_leakage": 14, "kept": 14}} for c in communities},
        "surveys": {"keto": survey(55.0)} if surveys else {},
        "contrasts": {"finetuned": {"keto vs run<ning>": {"difference": 2.0, "low": 0.5, "high": 3.5,
                                                          "p_value": 0.01}}} if surveys else {},
        "samples": samples or {},
    }


def test_page_has_every_section_and_one_row_per_community_and_corpus():
    html = page(numbers())
    for heading in ("Provenance", "Fidelity per community", "Cross-community distance", "Emotion profiles",
                    "Survey", "Data counts"):
        assert f"<h2>{heading}" in html
    assert html.count("<td>finetuned</td>") >= 2 and html.count("<td>untuned</td>") >= 2
    assert "0.200 <small>[0.100, 0.300]</small>" in html  # FID with its interval
    assert "6.2%" in html  # refusal rate of the generate counts
    assert html.count("<svg") == 4 + 1 + 2 * 2 + 1  # 4 metric bars, 1 heatmap, 2 profiles per community, survey
    assert "<script" not in html and not re.search(r'(src|href)="https?:', html)  # opens offline


def test_the_same_numbers_render_the_same_bytes():
    assert page(numbers()) == page(numbers())  # no dates or random ids: dvc.lock's hash of the page is stable


def test_user_strings_are_escaped():
    html = page(numbers(samples={("keto", "finetuned"): ["I <3 <b>bacon</b> & eggs ..."]}))
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "run&lt;ning&gt;" in html and "<ning>" not in html
    assert "I &lt;3 &lt;b&gt;bacon&lt;/b&gt; &amp; eggs ..." in html and "<h2>Samples (redacted)" in html
    assert "<title>HiveLM report: demo &amp; co</title>" in html


def test_survey_section_says_when_the_survey_has_not_run():
    html = page(numbers(surveys=False))
    assert "No survey results (the survey stage has not run)." in html
    surveyed = page(numbers())
    assert "55.000 <small>[54.000, 56.000]</small>" in surveyed and "[0.5, 3.5]" in surveyed


def test_interval_and_error_bar_handle_missing_and_undefined_bounds():
    assert interval(None) == "-" and interval({"value": None}) == "-"
    assert interval({"value": 0.5, "low": math.nan, "high": math.nan}) == "0.500"
    assert error_bar(estimate(0.5, 0.4, 0.7)) == [0.09999999999999998, 0.19999999999999996]
    assert error_bar({"value": 0.1, "low": 0.2, "high": 0.3}) == [0.0, 0.19999999999999998]  # clipped at zero
    assert error_bar({"value": 0.5, "low": math.nan, "high": math.nan}) == [0.0, 0.0]
    assert table(["a"], [[1], [2]]) == ("<table><thead><tr><th>a</th></tr></thead><tbody><tr><td>1</td></tr>"
                                        "<tr><td>2</td></tr></tbody></table>")
    # a key-value table (the provenance) has no header row of empty cells
    assert table(["", ""], [["commit", "abc"]], text=True) == ("<table class='text'><tbody><tr><td>commit</td>"
                                                                "<td>abc</td></tr></tbody></table>")


def test_external_corpora_and_insufficient_metrics_are_rendered_as_such():
    data = numbers()
    reason = "insufficient: 2 posts < min_posts 10"
    data["corpora"] = ["finetuned", "untuned", "llama3_ft"]
    data["per_community"]["keto"]["corpora"]["llama3_ft"] = corpus_metrics(0.3)
    data["per_community"]["run<ning>"]["corpora"]["llama3_ft"] = {
        "n": 2, "insufficient": reason,
        **{k: {"value": None, "low": None, "high": None, "reason": reason}
           for k in ("attribution", "auc", "fid", "emotion_alignment")},
        "toxicity": {"toxicity": {"wasserstein": {"value": None, "low": None, "high": None, "reason": reason}}}}
    data["summary"] |= {"min_posts": 10, "methods": {"fid": "FID at one common size", "intervals": "percentile"}}
    data["cross_community"]["llama3_ft"] = {"rows": [], "columns": ["keto"], "fid": [], "size": None,
                                            "diagonal_share": None, "reason": "no community has enough posts"}
    html = page(data)
    assert html.count("<td>llama3_ft</td>") == 2
    assert html.count(f"<span class='insufficient' title='{escape(reason)}'>insufficient</span>") == 5
    assert "fewer than 10 posts in a community (evaluate.min_posts) is marked insufficient" in html
    assert "llama3_ft: no community has enough posts" in html and "FID at one common size" in html


@pytest.mark.heavy  # starts a browser
def test_every_table_fits_a_1400_px_window(tmp_path):
    """Issue 30.12: the data-counts table (13 prepare steps) ran past a 1,400 px window, cutting its later
    columns; long provenance values must wrap too."""
    steps = ["input", "after_retweets", "anonymized_email", "anonymized_url", "anonymized_user", "anonymized_phone",
             "after_length", "after_exact_dedupe", "after_near_dedupe", "after_cap", "train", "heldout",
             "dropped_blank_text", "dropped_unmatched_label"]
    data = numbers()
    data["prepare"] = {"communities": {c: {s: 12345 for s in steps} for c in ("keto", "eating_disorder_recovery")}}
    data["provenance"].append(["corpus llama3_ft", "external: Llama-3-8B; files: " + "data/external/llama3/"
                               + "x" * 150 + ".jsonl (sha256 0123456789abcdef)"])
    path = tmp_path / "report.html"
    path.write_text(page(data), encoding="utf-8")
    assert overflowing_tables(path, tmp_path / "chrome") == []


def test_title_warning_and_survey_come_from_params():
    """A project of one's own (hivelm init): its own title, a content warning only when given, and no survey
    when it declares no instrument (the page says so instead of scoring one)."""
    own = page(numbers(surveys=False) | {"title": "Birds & bakers", "content_warning": None, "instrument": None})
    assert "<h1>Birds &amp; bakers</h1>" in own and "<title>Birds &amp; bakers</title>" in own
    assert "Content warning" not in own and "eating" not in own
    assert "No survey: this project declares no instrument (survey.instrument: null)" in own
    warned = page(numbers() | {"content_warning": "Posts discuss <hunting>."})
    assert "<b>Content warning.</b> Posts discuss &lt;hunting&gt;." in warned


def headline_cells(html: str) -> list[list[str]]:
    """The cells of the report's first table, under its "Did tuning help?" heading."""
    from html import unescape

    section = html.split("<h2>Did tuning help?</h2>", 1)[1].split("</table>", 1)[0]
    return [[unescape(re.sub("<[^>]+>", "", cell)) for cell in re.findall(r"<t[dh]>(.*?)</t[dh]>", row)]
            for row in re.findall(r"<tr>(.*?)</tr>", section)]


def test_the_end_of_run_table_and_the_report_headline_agree(tmp_path, monkeypatch):
    """Issue 23.4: the page opens with the headline that `hivelm run` prints at its end, from one function."""
    import json
    from types import SimpleNamespace

    from hivelm import headline
    from hivelm.pipeline import closing_note

    data = numbers()
    data["per_community"]["keto"]["corpora"]["finetuned"]["fid"] = estimate(0.1, 0.05, 0.15)  # beats 0.4 +- 0.1
    html = page(data)
    assert html.index("Did tuning help?") < html.index("<h2>Provenance")  # the page opens with it
    cfg = SimpleNamespace(communities=dict.fromkeys(data["per_community"]))  # closing_note reads only these
    monkeypatch.chdir(tmp_path)
    for community, result in data["per_community"].items():
        path = tmp_path / "reports/metrics" / f"{community}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result))
    printed = closing_note(cfg).splitlines()
    assert not any(line.startswith("Report:") for line in printed)  # no page written yet: no path
    table = [re.split(r"\s{2,}", line) for line in printed[1:]]
    assert table == headline_cells(html) and table[0] == headline.HEADERS
    assert len(table) == 1 + 2 * len(headline.METRICS)
    fid = {row[0]: row[-1] for row in table if row[1].startswith("FID")}
    assert fid == {"keto": "yes", "run<ning>": "unclear"}  # 0.2 +- 0.1 overlaps 0.4 +- 0.1
    (tmp_path / "reports/report.html").write_text(html)
    assert closing_note(cfg).splitlines()[-1] == f"Report: {tmp_path / 'reports/report.html'}"


def test_tuning_verdicts_follow_the_metric_direction():
    from hivelm.headline import verdict

    assert verdict(estimate(0.9), [estimate(0.5), estimate(0.6)], "higher") == "yes"
    assert verdict(estimate(0.9), [estimate(0.5), estimate(0.6)], "lower") == "no"
    assert verdict(estimate(0.9), [estimate(0.5), estimate(0.85)], "higher") == "unclear"
    assert verdict(None, [estimate(0.5)], "higher") == verdict(estimate(0.5), [None], "higher") == "-"


def test_readability_text_colour_legends_p_values_and_axes():
    """Issue 23.4: counts were white on near-white cells, legends sat on bars, p-values printed as 0.000, the
    survey axis from 0 hid 53 vs 50."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from hivelm.report_page import cell_colour, legend_outside, p_value_text, survey_plot

    figure, axis = plt.subplots()
    image = axis.imshow([[0, 50], [10, 100]], cmap="Blues")
    axis.bar([0, 1], [3, 4], label="finetuned")
    legend_outside(axis)
    figure.canvas.draw()
    assert cell_colour(image, 0) == "black" and cell_colour(image, 100) == "white"
    assert axis.get_legend().get_window_extent().x0 >= axis.get_window_extent().x1  # beside the axes, not on them
    plt.close(figure)
    assert [p_value_text(p) for p in (0.0, 0.0004, 0.011, 0.2978, None)] == ["< 0.001", "< 0.001", "0.011", "0.3",
                                                                            "-"]
    results = {"keto": survey(53.0), "running": survey(50.0)}
    drawn = survey_plot(results)
    low = float(re.search(r"axis ([\d.]+) to", drawn).group(1))
    assert 45 < low < 50  # from the data range, labelled as such
    contrasts = page(numbers())
    assert "<td>0.01</td></tr>" in contrasts and "<td>0.010</td></tr>" not in contrasts


def test_plots_without_data_are_left_out():
    """Issue 23.4: a corpus without data showed four empty axes."""
    data = numbers()
    for result in data["per_community"].values():
        for metrics in result["corpora"].values():
            for key in ("attribution", "auc", "fid", "emotion_alignment"):
                metrics[key] = {"value": None, "low": None, "high": None, "reason": "insufficient: 2 posts"}
        result["profiles"] = {"real": {"emotion": {}, "toxicity_histogram": {"toxicity": [0] * 10}}}
    html = page(data)
    assert html.count("<svg") == 1 + 1  # the heatmap and the survey plot only
    assert html.count("No emotion or toxicity data.") == 2
