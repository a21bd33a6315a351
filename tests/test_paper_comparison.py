"""docs/paper-comparison.md is generated from the archived run in reports/paper-sample/ by its page.py (issue 28):
the committed page is the generator's output, every interval printed on it holds its estimate or carries the
mark that says it does not, and on a made-up archive the verdict words follow the numbers (flip a number, the
verdict flips), with the archive's optional parts (run.json, attribute/, the validity card) present or not."""

from __future__ import annotations

import copy
import importlib.util
import json
import re
from itertools import combinations
from pathlib import Path

import pytest
import yaml

from conftest import REPO, assert_strict_reports, intervals, strict_json

ARCHIVE = REPO / "reports" / "paper-sample"
_spec = importlib.util.spec_from_file_location("paper_page", ARCHIVE / "page.py")
page = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(page)

NUMBER = r"-?\d+(?:\.\d+)?"
PRINTED = re.compile(rf"({NUMBER}) \[({NUMBER}), ({NUMBER})\]([{page.OUTSIDE}{page.SMALL}]*)")


def printed_intervals(text: str) -> list[tuple[float, float, float, str]]:
    """Every `value [low, high]` on a page, with the marks after it."""
    return [(float(v), float(lo), float(hi), marks) for v, lo, hi, marks in PRINTED.findall(text)]


def verdicts(text: str) -> dict[str, str]:
    """The summary table's verdict per paper finding (first column -> second, bold stripped)."""
    rows = text.split("## Summary", 1)[1].split("\n## ", 1)[0]
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in rows.splitlines() if line.startswith("| ")]
    return {row[0]: row[1].strip("*") for row in cells[1:]}


def prose(text: str) -> str:
    """The page with its prose unwrapped (every run of whitespace one space), for finding a sentence in it."""
    return " ".join(text.split())


def verdict(text: str, key: str) -> str:
    return verdicts(text)[page.CLAIMS[key]]


# ------------------------------------------------------------------------------------- the committed page

def test_the_committed_page_is_the_generators_output():
    committed = page.PAGE.read_text(encoding="utf-8")
    assert page.first_difference(committed, page.render()) is None, "run `make paper-page` and commit the page"
    assert page.main(["--check"]) == 0


def test_a_number_edited_by_hand_is_found_with_its_line():
    committed = page.PAGE.read_text(encoding="utf-8")
    value, low, high, _ = printed_intervals(committed)[0]
    shown = re.search(PRINTED, committed).group(0)
    edited = committed.replace(shown, shown.replace(shown.split(" ")[0], "9.99", 1), 1)
    problem = page.first_difference(edited, page.render())
    line = committed[:committed.index(shown)].count("\n") + 1
    assert problem is not None and problem.startswith(f"line {line}:") and "9.99" in problem


def test_check_exits_1_naming_the_line_and_writing_fixes_it(tmp_path, monkeypatch, capsys):
    stale = tmp_path / "docs" / "paper-comparison.md"
    stale.parent.mkdir()
    stale.write_text(page.render().replace("## Claim 1", "## Claim one", 1), encoding="utf-8")
    monkeypatch.setattr(page, "REPO", tmp_path)
    monkeypatch.setattr(page, "PAGE", stale)
    assert page.main(["--check"]) == 1
    assert "docs/paper-comparison.md is stale (line " in capsys.readouterr().err
    assert page.main([]) == 0 and page.main(["--check"]) == 0


def test_every_interval_on_the_page_holds_its_estimate_or_is_marked():
    """House style 12: an estimate printed outside its own interval carries page.OUTSIDE (and a footnote)."""
    text = page.PAGE.read_text(encoding="utf-8")
    shown = printed_intervals(text)
    assert len(shown) > 50  # the extraction finds what the page holds
    assert [s for s in shown if not s[1] <= s[0] <= s[2] and page.OUTSIDE not in s[3]] == []
    marked = any(page.OUTSIDE in s[3] for s in shown)
    assert (page.OUTSIDE in text) == marked == (f"{page.OUTSIDE} The estimate" in text)


def test_the_archive_is_strict_json_and_an_estimate_outside_its_interval_is_flagged_on_the_page():
    """A run at HEAD (it writes run.json) reports every estimate inside its interval; the older archive (before
    issue 13: plug-in FID with a basic-bootstrap interval) does not, and the page flags each such FID it prints
    and says how many the archive holds."""
    outside = []
    for path in sorted(ARCHIVE.rglob("*.json")):
        tree = strict_json(path.read_text(encoding="utf-8"), str(path))
        outside += [f"{path.name}{where}" for where, t in intervals(tree)
                    if None not in (t["value"], t["low"], t["high"]) and not t["low"] <= t["value"] <= t["high"]]
    text = page.PAGE.read_text(encoding="utf-8")
    if (ARCHIVE / "run.json").is_file():
        assert assert_strict_reports(ARCHIVE) > 100
    if not outside:
        assert page.OUTSIDE not in text
        return
    assert said(text, f"This archive holds {len(outside)} such estimates")
    flagged = 0
    for community in page.PAPER:
        for corpus, metrics in page.Archive(ARCHIVE).per[community]["corpora"].items():
            fid = metrics["fid"]
            if not fid["low"] <= fid["value"] <= fid["high"]:
                assert f"{page.est(fid, 3)}" in text and page.est(fid, 3).endswith(page.OUTSIDE), (community, corpus)
                flagged += 1
    assert flagged == sum(".fid" in o for o in outside) > 0


# ------------------------------------------------------------------------------------ a made-up archive

COMMUNITIES = list(page.PAPER)
TRAIN = {"pro_ed": 1700, "body_image": 230, "keto_diet": 860, "anti_ed": 220, "lifestyle": 1230, "drugs": 50}
WCS = {"pro_ed": 60.0, "keto_diet": 55.0, "drugs": 52.0, "body_image": 51.0, "lifestyle": 50.5, "anti_ed": 49.0}


def triple(value: float, spread: float = 0.05) -> dict:
    return {"value": value, "low": value - spread, "high": value + spread}


def made_up() -> dict[str, object]:
    """Every file of an archive (name -> JSON tree, or text for params.yaml) in which every claim holds."""
    corpora = ("finetuned", "untuned", "in_context")
    fid = {"finetuned": 0.2, "untuned": 0.5, "in_context": 0.4}
    files: dict[str, object] = {}
    for c in COMMUNITIES:
        hot = 10 if c == "anti_ed" else 2  # Anti-ED's real posts the most toxic, as in the paper
        files[f"metrics/{c}.json"] = {
            "community": c, "fid_size": 20,
            "corpora": {k: {"n": 54, "fid": triple(fid[k]) | {"size": 20},
                            "emotion_alignment": triple(0.9 if k == "finetuned" else 0.75),
                            "toxicity": {"toxicity": {"wasserstein": triple(0.02 if k == "finetuned" else 0.1, 0.01)}}}
                        for k in corpora},
            "profiles": {"real": {"toxicity_histogram": {"toxicity": [50, 0, 0, 0, 0, hot, 0, 0, 0, 0]}}}}
        files[f"survey/{c}.json"] = {"community": c, "corpora": {k: {
            "personas": 12, "mode": "loglik",
            "criteria": {"C1": {"mean": triple(WCS[c] if k == "finetuned" else 50.0, 0.4), "majority": WCS[c]},
                         **{cid: {"rate": triple(0.5), "majority": True} for cid in ("C2", "C3", "C4")}},
            "items": {q: {"shares": {"a": 0.1, "b": 0.1, "c": 0.2, "d": 0.3, "e": 0.3}, "majority": "d"}
                      for q in ("Q5", "Q6", "Q7", "Q8", "Q9")}} for k in corpora}}
    diagonal = [[0.1 if i == j else 0.5 for j in range(6)] for i in range(6)]
    files["metrics/cross_community.json"] = {k: {"rows": COMMUNITIES, "columns": COMMUNITIES, "fid": diagonal,
                                                 "size": 20, "diagonal_share": 1.0} for k in ("real", *corpora)}
    contrasts = {}
    for k in corpora:
        contrasts[k] = {}
        for a, b in combinations(sorted(COMMUNITIES), 2):
            d = WCS[a] - WCS[b] if k == "finetuned" else 0.0
            contrasts[k][f"{a} vs {b}"] = {"criterion": "C1", "difference": d, "low": d - 0.5, "high": d + 0.5,
                                           "p_value": 0.001 if abs(d) > 0.5 else 0.8}
    card = {"verdict": "informative", "failed": [], "checks_passed": 1.0, "checks": {}}
    files["metrics.json"] = {
        "fidelity": {
            "communities": {c: {k: {"attribution": 0.8 if k == "finetuned" else 0.2, "auc": 0.9, "fid": fid[k],
                                    "n": 54} for k in corpora} for c in COMMUNITIES},
            "corpora": {k: {"macro_f1": triple(0.5 if k == "finetuned" else 0.2)} for k in corpora},
            "classifier": {"heldout_accuracy": triple(0.75), "heldout_macro_f1": triple(0.5)},
            "scorers": {"embedder": {"model": "embedded:all-MiniLM-L6-v2"}},
            "methods": {"fid": "FID at one common sample size per community"}},
        "generate": {c: {k: {"generated": 54, "after_empty": 54, "after_exact_duplicate": 54,
                             "after_near_duplicate": 54, "after_refusal": 53, "after_leakage": 53, "kept": 53}
                         for k in corpora} for c in COMMUNITIES},
        "survey": {"contrasts": contrasts, "validity": {
            "communities": {c: {k: dict(card) for k in corpora} | {"dose": {"slope": triple(5.0, 1.0)}}
                            for c in COMMUNITIES},
            "contrasts": {k: {pair: {"supported": v["low"] > 0 or v["high"] < 0,
                                     "reasons": [] if v["low"] > 0 or v["high"] < 0
                                     else ["the order-averaged difference's interval includes 0"]}
                              for pair, v in pairs.items()} for k, pairs in contrasts.items()}}},
        "small_samples": []}
    files["prepare-stats.json"] = {"communities": {c: {"after_cap": int(TRAIN[c] * 1.25), "train": TRAIN[c],
                                                       "heldout": int(TRAIN[c] / 4)} for c in COMMUNITIES}}
    gain = [[0.8 if i == j else 0.5 for j in range(6)] for i in range(6)]
    files["attribute/matrix.json"] = {
        "rows": COMMUNITIES, "columns": COMMUNITIES, "n": [40] * 6, "gain": gain,
        "low": [[g - 0.05 for g in row] for row in gain], "high": [[g + 0.05 for g in row] for row in gain],
        "diagonal_share": {"value": 1.0, "low": 0.83, "high": 1.0}}
    scores = {"likelihood": {"accuracy": triple(0.6), "macro_f1": triple(0.55)},
              "tfidf": {"accuracy": triple(0.7), "macro_f1": triple(0.65)}}
    files["attribute/summary.json"] = {"communities": 6, "posts": 240, "diagonal_share": triple(1.0, 0.0),
                                       "mean_gain_own": 0.8, "mean_gain_other": 0.5, "attribution": scores}
    files["attribute/attribution.json"] = {"labels": COMMUNITIES} | scores
    files["run.json"] = {"commit": "abc1234", "command": "hivelm run", "wall_s": 3600.0,
                         "stages": {"tune": 1800.0, "survey": 1200.0}, "machine": "one test machine"}
    files["params.yaml"] = {
        "data": {"path": "../shared/data/ed-communities/tweets.csv", "extra_sources": []},
        "prepare": {"heldout_fraction": 0.2}, "base_model": {"source": "embedded:smollm2"},
        "tune": {"lora_r": 8, "target_modules": ["q_proj", "v_proj"], "max_steps": 80, "batch_size": 4,
                 "learning_rate": 0.001, "epochs": 1},
        "generate": {"topics": ["fasting", "thinspo"], "samples_per_topic": 27, "filters": {"leakage_threshold": 0.7},
                     "in_context": {"k": 20, "words": 20}, "decoding": {"max_new_tokens": 48}},
        "survey": {"items": ["Q5", "Q6", "Q7", "Q8", "Q9"], "statistics": {"confidence": 0.95},
                   "in_context": {"k": 8}},
        "evaluate": {"fid_dimensions": 32}}
    return files


def write(files: dict, root: Path) -> Path:
    for name, tree in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(tree) if name.endswith(".yaml") else json.dumps(tree), encoding="utf-8")
    return root


def rendered(tmp_path: Path, files: dict, docs: Path | None = None) -> str:
    root = write(files, tmp_path / f"archive{len(list(tmp_path.iterdir()))}")
    return page.render(root, docs or tmp_path)


def said(text: str, *sentences: str) -> bool:
    return all(s in prose(text) for s in sentences)


@pytest.fixture
def files():
    return made_up()


def test_on_a_made_up_archive_where_every_claim_holds_the_page_says_so(tmp_path, files):
    text = rendered(tmp_path, files)
    assert {v for k, v in verdicts(text).items() if k in page.CLAIMS.values()} == {page.HOLDS}
    assert verdicts(text)["SWED: Pro-ED above Anti-ED"] == page.HOLDS
    assert said(text, "validity card: supported")
    assert said(text, "**Run:** commit `abc1234`, `hivelm run`, 60 min wall clock on one test machine")
    assert page.OUTSIDE not in text and page.MISSING not in text
    assert said(text, "6 of 6 communities' held-out posts the community's own adapter gains most")


def test_the_classifier_verdict_follows_the_macro_f1(tmp_path, files):
    corpora = files["metrics.json"]["fidelity"]["corpora"]
    corpora["finetuned"]["macro_f1"] = triple(0.25)  # above both baselines (0.2), intervals overlapping
    assert verdict(rendered(tmp_path, files), "classifier") == page.PARTLY
    corpora["finetuned"]["macro_f1"] = triple(0.1)
    assert verdict(rendered(tmp_path, files), "classifier") == page.FAILS


def test_the_fid_verdict_follows_which_corpus_is_closest(tmp_path, files):
    for c in ("pro_ed", "drugs"):
        files[f"metrics/{c}.json"]["corpora"]["finetuned"]["fid"] = triple(0.6) | {"size": 20}
    text = rendered(tmp_path, files)
    assert verdict(text, "fid") == page.PARTLY and said(text, "the FID claim partly holds (4 of 6;")
    assert "| no (in_context) |" in text
    for c in ("body_image", "keto_diet"):
        files[f"metrics/{c}.json"]["corpora"]["finetuned"]["fid"] = triple(0.6) | {"size": 20}
    assert verdict(rendered(tmp_path, files), "fid") == page.FAILS


def test_the_likelihood_verdict_follows_the_matrix(tmp_path, files):
    matrix = files["attribute/matrix.json"]
    matrix["gain"][5][0] = 0.9  # Weight Loss Drugs' posts gain most under Pro-ED's adapter
    matrix["high"][5][0] = 0.95
    text = rendered(tmp_path, files)
    assert verdict(text, "likelihood") == page.PARTLY
    assert said(text, "on 5 of 6 communities' held-out posts", "Weight Loss Drugs (50 training posts)")


def test_the_survey_verdicts_follow_the_wcs_and_the_validity_card(tmp_path, files):
    text = rendered(tmp_path, files)
    assert said(text, "Pro-ED ranks 1st and Anti-ED 6th of 6") and verdict(text, "survey") == page.HOLDS
    for k in ("pro_ed", "anti_ed"):  # swap Pro-ED's and Anti-ED's finetuned WCS
        files[f"survey/{k}.json"]["corpora"]["finetuned"]["criteria"]["C1"]["mean"] = triple(
            WCS["anti_ed" if k == "pro_ed" else "pro_ed"], 0.4)
    pair = files["metrics.json"]["survey"]["contrasts"]["finetuned"]["anti_ed vs pro_ed"]
    pair |= {"difference": 11.0, "low": 10.5, "high": 11.5}
    card = files["metrics.json"]["survey"]["validity"]["contrasts"]["finetuned"]["anti_ed vs pro_ed"]
    card |= {"supported": False, "reasons": ["first model uninformative (order_sensitivity)"]}
    text = rendered(tmp_path, files)
    assert verdict(text, "survey") == page.FAILS and said(text, "Pro-ED ranks 6th and Anti-ED 1st of 6")
    assert verdicts(text)["SWED: Pro-ED above Anti-ED"] == page.FAILS
    assert said(text, "no, the opposite (-11.0 [-11.5, -10.5]")
    assert said(text, "not supported: first model uninformative (order_sensitivity)")


def test_the_baseline_verdict_follows_the_contrasts(tmp_path, files):
    untuned = files["metrics.json"]["survey"]["contrasts"]["untuned"]
    for pair in list(untuned)[:3]:
        untuned[pair] |= {"difference": 2.0, "low": 1.5, "high": 2.5, "p_value": 0.0005}
    assert verdict(rendered(tmp_path, files), "baselines") == page.PARTLY  # fewer than finetuned, but Bonferroni-strong
    for pair in untuned:
        untuned[pair] |= {"difference": 2.0, "low": 1.5, "high": 2.5, "p_value": 0.0005}
    assert verdict(rendered(tmp_path, files), "baselines") == page.FAILS


def test_the_matrix_and_tone_verdicts_follow_their_numbers(tmp_path, files):
    cross = files["metrics/cross_community.json"]["finetuned"]
    cross["fid"] = copy.deepcopy(cross["fid"])
    for i in range(4):
        cross["fid"][i][5] = 0.05
    for c in COMMUNITIES[:4]:
        files[f"metrics/{c}.json"]["corpora"]["finetuned"]["emotion_alignment"] = triple(0.5)
    files["metrics/anti_ed.json"]["profiles"]["real"]["toxicity_histogram"]["toxicity"] = [60] + [0] * 9
    text = rendered(tmp_path, files)
    assert verdict(text, "matrix") == page.FAILS and said(text, "2 of 6 finetuned rows")
    assert verdict(text, "emotion") == page.FAILS and verdict(text, "toxicity") == page.HOLDS
    assert said(text, "Anti-ED the most toxic among real posts: no")


def test_a_claim_closest_on_values_but_not_on_intervals_only_partly_holds(tmp_path, files):
    for c in COMMUNITIES:
        files[f"metrics/{c}.json"]["corpora"]["finetuned"]["emotion_alignment"] = triple(0.78)  # baselines 0.75
    text = rendered(tmp_path, files)
    assert verdict(text, "emotion") == page.PARTLY
    assert said(text, "closest emotion profile in 6 of 6 communities (0 with its interval apart")


def test_an_estimate_outside_its_interval_is_marked_and_counted(tmp_path, files):
    files["metrics/pro_ed.json"]["corpora"]["untuned"]["fid"] = {"value": 0.5, "low": 0.3, "high": 0.45, "size": 20}
    text = rendered(tmp_path, files)
    assert f"0.500 [0.300, 0.450]{page.OUTSIDE}" in text
    assert said(text, f"{page.OUTSIDE} The estimate lies outside its own interval. This archive holds 1 such estimates")


def test_an_archive_without_the_optional_parts_says_what_it_lacks(tmp_path, files):
    for name in ("run.json", "attribute/matrix.json", "attribute/summary.json", "attribute/attribution.json"):
        del files[name]
    del files["metrics.json"]["survey"]["validity"]
    text = rendered(tmp_path, files)
    assert verdict(text, "likelihood") == page.MISSING
    assert said(text, f"**Ours:** {page.MISSING} (it predates the attribute stage's `attribute/` folder)")
    assert said(text, f"validity card: {page.MISSING}", f"Pairs the validity card supports: {page.MISSING}")
    assert said(text, f"**Run:** commit {page.LEGACY_COMMIT}")
    assert verdict(text, "classifier") == page.HOLDS  # the rest of the page is unchanged


def test_the_planted_truth_section_links_the_benchmark_only_once_it_exists(tmp_path, files):
    docs = tmp_path / "docs"
    docs.mkdir()
    assert "has not been run yet" in rendered(tmp_path, files, docs)
    (docs / "planted.md").write_text("# planted\n", encoding="utf-8")
    text = rendered(tmp_path, files, docs)
    assert said(text, "[planted-truth benchmark](planted.md)") and "has not been run yet" not in text


def test_page_lines_never_start_a_list_or_heading_by_wrapping(tmp_path, files):
    text = rendered(tmp_path, files)
    code = False
    for before, line in zip(text.splitlines(), text.splitlines()[1:]):
        code ^= line.startswith("```")
        if not code and before.strip() and not before.startswith(("|", "#", "- ", "  ", "```")):
            assert not re.match(r"([-+*>#]|\d+[.)]) ", line), line
