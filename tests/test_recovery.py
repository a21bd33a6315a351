"""Recovery measures (hivelm.recovery, issue 26 point 3) on fake planted projects, and bench/planted.py's grid and
power table on fake cells: numbers only, no model, no pipeline."""

from __future__ import annotations

import importlib.util
import json
import random
import re
import shlex
import sys

import pytest

from conftest import REPO
from hivelm import paths, plant, recovery
from hivelm.config import StatisticsConfig

STATS = StatisticsConfig(bootstrap_resamples=200, permutations=50)
CORPORA = recovery.SURVEY_CORPORA


@pytest.fixture(scope="module")
def vocabulary():
    return plant.load_vocabulary(REPO / plant.VOCABULARY)


@pytest.fixture(scope="module")
def detector(vocabulary):
    return recovery.train_detector(vocabulary)


def write(path, payload):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload), encoding="utf-8")


def write_jsonl(path, records):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")


def fake_project(root, vocabulary, rates, follow=None, validity=False, gains=True, generated=True, per_community=60):
    """A finished planted project as the pipeline leaves it: the corpus and labels (hivelm.plant), the metrics
    file's survey section (the committed demo's shape), survey reports with per-persona scores, attribute's
    summary, generated posts and per-post gains. Every measure rises with `follow` (default: the planted
    rates); pass reversed rates to plant the opposite order in the results."""
    follow = follow or rates
    rows = plant.plant(rates, per_community, 0, vocabulary)
    labels = plant.write(rows, root / "data" / "planted" / "posts.csv")
    names = sorted(rates)
    survey = {"communities": {}, "contrasts": {}}
    for c in rates:
        survey["communities"][c] = {corpus: {"unparseable_rate": 0.0,
                                             "C1": {"value": 40 + 20 * follow[c], "low": 38 + 20 * follow[c],
                                                    "high": 42 + 20 * follow[c]},
                                             "WCS_high": {"value": 0.3 + 0.4 * follow[c], "low": 0.25 + 0.4 * follow[c],
                                                          "high": 0.35 + 0.4 * follow[c]}}
                                    for corpus in CORPORA}
        personas = {f"p{i:02d}": (40 + 20 * follow[c] + (i % 3 - 1), 0.3 + 0.4 * follow[c] + 0.02 * (i % 3 - 1))
                    for i in range(1, 13)}
        write(root / paths.survey_report(c), {"community": c, "corpora": {corpus: {
            "primary": "C1", "criteria": {
                "C1": {"numeric": True, "per_persona": {p: v[0] for p, v in personas.items()}},
                "WCS_high": {"numeric": False, "per_persona": {p: v[1] for p, v in personas.items()}}}}
            for corpus in CORPORA}})
    for corpus in CORPORA:
        survey["contrasts"][corpus] = {}
        for i, a in enumerate(names):
            for b in names[i + 1:]:
                d = 20 * (follow[a] - follow[b])
                survey["contrasts"][corpus][f"{a} vs {b}"] = {"criterion": "C1", "difference": d, "low": d - 1.5,
                                                              "high": d + 1.5, "p_value": 0.01}
    if validity:
        survey["validity"] = {
            "communities": {c: {"dose": {"slope": {"value": 4 * follow[c] - 2, "low": 4 * follow[c] - 2.5,
                                                   "high": 4 * follow[c] - 1.5}, "monotone": True}} for c in rates},
            "contrasts": {corpus: {pair: {"supported": True, "sign_kept": 1.0, "orders": 2, "reasons": []}
                                   for pair in survey["contrasts"][corpus]} for corpus in CORPORA}}
    write(root / paths.METRICS, {"survey": survey})
    write(root / paths.attribute_summary(), {"communities": len(rates), "posts": 40,
                                             "diagonal_share": {"value": 1.0, "low": 1.0, "high": 1.0}})
    if generated:
        for i, c in enumerate(rates):  # generated posts: a fresh planted draw at the rate the results follow
            posts = plant.plant({c: follow[c]}, 40, 100 + i, vocabulary)
            for corpus in CORPORA:
                write_jsonl(root / paths.corpus(c, corpus), [{"text": r["text"]} for r in posts])
    if gains:
        noise = random.Random(0)
        sign = {"attitude": 1.0, "opposite": -1.0, "neutral": 0.0}
        write_jsonl(root / paths.attribute_gains(), [
            {"post_id": r["post_id"], "gain": {c: 0.5 + sign[r["label"]] * follow[c] + noise.gauss(0, 0.1)
                                               for c in rates}} for r in rows[: len(rows) // 3]])
    return labels


def run(root, labels, **kwargs):
    return recovery.recover(root, labels, statistics=STATS, vocabulary=REPO / plant.VOCABULARY, **kwargs)


RATES = {"group_a": 0.0, "group_b": 0.5, "group_c": 1.0}
REVERSED = {"group_a": 1.0, "group_b": 0.5, "group_c": 0.0}


def test_every_measure_recovers_a_planted_order_and_flips_when_it_is_reversed(tmp_path, vocabulary):
    right = run(tmp_path / "right", fake_project(tmp_path / "right", vocabulary, RATES, validity=True))
    wrong = run(tmp_path / "wrong", fake_project(tmp_path / "wrong", vocabulary, RATES, REVERSED, validity=True))
    measures, flipped = recovery.flatten(right), recovery.flatten(wrong)
    order = [name for name, m in measures.items() if m.get("rule") == recovery.ORDER_RULE]
    assert len(order) == 2 * 3 + 3 + 1 + 1  # survey C1 and WCS_high x 3 corpora, generation x 3, label gain, dose
    for name in order:
        assert measures[name]["recovered"] is True and measures[name]["value"] == pytest.approx(1.0), name
        assert flipped[name]["recovered"] is False and flipped[name]["value"] == pytest.approx(-1.0), name
        assert measures[name]["contrast"]["top"] == "group_c" and measures[name]["contrast"]["bottom"] == "group_a"
    assert measures["likelihood.diagonal_share"]["recovered"] is True  # low 1.0 > chance 1/3
    assert right["communities"]["group_c"] == {"planted_rate": 1.0, "posts": 60, "attitude_share": 1.0}


def test_survey_values_and_contrasts_come_from_the_metrics_file_with_the_pair_turned_top_minus_bottom(
        tmp_path, vocabulary):
    rates = {"alpha": 1.0, "beta": 0.0}  # summarize's pair "alpha vs beta" is top minus bottom already
    result = run(tmp_path, fake_project(tmp_path, vocabulary, rates))
    c1 = result["survey"]["finetuned"]["C1"]
    assert c1["communities"] == {"alpha": {"planted_rate": 1.0, "value": 60.0},
                                 "beta": {"planted_rate": 0.0, "value": 40.0}}
    assert c1["contrast"] == {"top": "alpha", "bottom": "beta", "difference": 20.0, "low": 18.5, "high": 21.5,
                                   "supported": True, "source": "interval"}
    rates = {"alpha": 0.0, "beta": 1.0}  # "alpha vs beta" is bottom minus top: negated, bounds swapped
    result = run(tmp_path / "b", fake_project(tmp_path / "b", vocabulary, rates))
    assert result["survey"]["finetuned"]["C1"]["contrast"] == {
        "top": "beta", "bottom": "alpha", "difference": 20.0, "low": 18.5, "high": 21.5, "supported": True,
        "source": "interval"}
    wcs = result["survey"]["finetuned"]["WCS_high"]["contrast"]  # not the metrics' criterion: recomputed
    assert wcs["difference"] == pytest.approx(0.4) and wcs["low"] > 0 and wcs["source"] == "interval"


def test_the_validity_cards_contrast_call_stands_over_the_interval(tmp_path, vocabulary):
    labels = fake_project(tmp_path, vocabulary, RATES, validity=True)
    metrics = json.loads((tmp_path / paths.METRICS).read_text())
    metrics["survey"]["validity"]["contrasts"]["finetuned"]["group_a vs group_c"] = {
        "supported": False, "reasons": ["first model uninformative (majority_survives)"]}
    write(tmp_path / paths.METRICS, metrics)
    survey = run(tmp_path, labels)["survey"]
    c1 = survey["finetuned"]["C1"]
    assert c1["value"] == pytest.approx(1.0) and c1["contrast"]["low"] > 0  # the interval alone would support it
    assert c1["recovered"] is False and c1["contrast"]["source"] == "validity"
    assert c1["contrast"]["reasons"] == ["first model uninformative (majority_survives)"]
    assert survey["in_context"]["C1"]["recovered"] is True  # the card supports that one
    assert survey["finetuned"]["WCS_high"]["contrast"]["source"] == "interval"  # the card judges C1 only


def test_the_untuned_corpus_is_a_null_check(tmp_path, vocabulary):
    result = run(tmp_path, fake_project(tmp_path, vocabulary, RATES))
    for measure in (result["survey"]["untuned"]["C1"], result["generation"]["untuned"]):
        assert measure["null_check"] is True
        assert recovery.verdict_word(measure) == "order found (a null check should not)"
    assert "null_check" not in result["survey"]["finetuned"]["C1"]


def test_missing_inputs_give_null_with_a_reason(tmp_path, vocabulary):
    labels = fake_project(tmp_path, vocabulary, RATES, gains=False, generated=False)
    (tmp_path / paths.METRICS).unlink()
    (tmp_path / paths.attribute_summary()).unlink()
    result = run(tmp_path, labels)
    for name, measure in recovery.flatten(result).items():
        if name == "generation.detector":
            continue
        assert measure["value"] is None and measure["recovered"] is None and measure["reason"], name
    assert result["survey"]["finetuned"]["C1"]["reason"] == "no metrics file"
    assert result["likelihood"]["label_gain"]["reason"].endswith("run the attribute stage")
    assert result["generation"]["finetuned"]["reason"] == "no generated finetuned posts for group_a, group_b, group_c"
    assert "validity card" in result["dose"]["slope"]["reason"]
    assert result["likelihood"]["diagonal_share"]["reason"].startswith("no attribute summary")
    nothing = recovery.recover(tmp_path, labels, statistics=STATS, vocabulary=tmp_path / "none.yaml")
    assert nothing["generation"]["detector"]["reason"] == "no vocabulary to train the stance detector on"


def test_one_community_missing_from_the_results_is_named(tmp_path, vocabulary):
    labels = fake_project(tmp_path, vocabulary, RATES, validity=True)
    metrics = json.loads((tmp_path / paths.METRICS).read_text())
    del metrics["survey"]["communities"]["group_b"]["finetuned"]
    del metrics["survey"]["validity"]["communities"]["group_b"]
    write(tmp_path / paths.METRICS, metrics)
    (tmp_path / paths.corpus("group_c", "finetuned")).unlink()
    result = run(tmp_path, labels)
    assert result["survey"]["finetuned"]["C1"] == recovery.null("no value for group_b")
    assert result["dose"]["slope"] == recovery.null("no dose-response slope for group_b")
    assert result["generation"]["finetuned"] == recovery.null("no generated finetuned posts for group_c")


def test_order_verdict_rules():
    two = {"low": 0.0, "high": 1.0}
    supported = {"top": "high", "bottom": "low", "difference": 2.0, "low": 1.0, "high": 3.0, "supported": True}
    verdict = recovery.order_verdict(two, {"low": 1.0, "high": 3.0}, supported)
    assert verdict["recovered"] is True and verdict["value"] == pytest.approx(1.0)
    unsupported = supported | {"low": -1.0, "supported": False}
    assert recovery.order_verdict(two, {"low": 1.0, "high": 3.0}, unsupported)["recovered"] is False
    assert recovery.order_verdict(two, {"low": 3.0, "high": 1.0}, None)["recovered"] is False  # wrong order
    assert recovery.order_verdict(two, {"low": 1.0, "high": 3.0}, None).items() >= {
        "recovered": None, "reason": "no top-minus-bottom contrast to judge"}.items()
    flat = recovery.order_verdict(two, {"low": 2.0, "high": 2.0}, supported)
    assert flat["recovered"] is False and flat["value"] is None and "same value" in flat["reason"]
    assert recovery.order_verdict({"a": 0.5, "b": 0.5}, {"a": 1.0, "b": 2.0}, supported) == recovery.null(
        "needs at least two communities with different planted rates")
    three = {"a": 0.0, "b": 0.5, "c": 1.0}  # rho 0.5 < 0.8: not recovered, whatever the contrast says
    assert recovery.order_verdict(three, {"a": 1.0, "b": 3.0, "c": 2.0}, supported)["recovered"] is False
    assert recovery.interval_contrast("c", "a", {"value": 1.0, "low": 0.0, "high": 2.0})["supported"] is False


def test_diagonal_share_is_recovered_when_its_interval_clears_chance():
    summary = {"communities": 2, "diagonal_share": {"value": 1.0, "low": 0.5, "high": 1.0}}
    assert recovery.diagonal_share(summary)["recovered"] is False  # low 0.5 is chance for 2 communities
    summary["diagonal_share"]["low"] = 1.0
    assert recovery.diagonal_share(summary).items() >= {"value": 1.0, "chance": 0.5, "recovered": True}.items()


def test_label_gain_joins_held_out_post_ids_to_labels():
    labels = [{"post_id": "p1", "label": "attitude"}, {"post_id": "p2", "label": "opposite"},
              {"post_id": "p3", "label": "neutral"}, {"post_id": "p4", "label": "attitude"},
              {"post_id": "p5", "label": "opposite"}]
    gains = [{"post_id": "p1", "gain": {"lo": 0.1, "hi": 0.9}}, {"post_id": "p2", "gain": {"lo": 0.8, "hi": 0.2}},
             {"post_id": "p3", "gain": {"lo": 5.0, "hi": -5.0}}, {"post_id": "p4", "gain": {"lo": 0.3, "hi": 1.1}},
             {"post_id": "p5", "gain": {"lo": 0.6, "hi": 0.4}}, {"post_id": "unlabelled", "gain": {"lo": 9, "hi": 9}}]
    rates = {"lo": 0.0, "hi": 1.0}
    measure = recovery.label_gain(rates, labels, gains, STATS)
    assert measure["communities"]["lo"]["value"] == pytest.approx(0.2 - 0.7)  # neutral p3 left out
    assert measure["communities"]["hi"]["value"] == pytest.approx(1.0 - 0.3)
    assert measure["contrast"]["difference"] == pytest.approx(0.7 + 0.5)
    assert (measure["attitude_posts"], measure["opposite_posts"]) == (2, 2) and measure["recovered"] is True
    only = [g for g in gains if g["post_id"] in ("p1", "p4")]
    assert recovery.label_gain(rates, labels, only, STATS)["reason"].startswith("no held-out post labelled opposite")


def test_the_stance_detector_reads_planted_posts_and_is_at_chance_on_shuffled_labels(vocabulary, detector):
    rows = plant.plant({"group_a": 0.0, "group_b": 0.5, "group_c": 1.0}, 150, 3, vocabulary)
    texts, labels = [r["text"] for r in rows], [r["label"] for r in rows]
    _, scores = recovery.stance_detector(texts, labels, seed=0)
    assert scores["accuracy"] >= 0.9 and scores["test_posts"] == 113
    shuffled = labels[:]
    random.Random(0).shuffle(shuffled)
    _, chance = recovery.stance_detector(texts, shuffled, seed=0)
    guessing = sum((labels.count(k) / len(labels)) ** 2 for k in set(labels))  # labels guessed at their rates
    assert abs(chance["accuracy"] - guessing) <= 0.1 and chance["accuracy"] <= chance["chance"] + 0.05
    model, trained = detector  # the one `recover` uses: drawn fresh from the generator, 2,000 posts
    assert trained["accuracy"] >= 0.95 and trained["train_posts"] + trained["test_posts"] == recovery.DETECTOR_POSTS
    assert sum(p == r["label"] for p, r in zip(model.predict(texts), rows)) / len(rows) >= 0.95


def test_an_untrustworthy_detector_reports_no_generation_share(detector):
    model, scores = detector
    rates = {"a": 0.0, "b": 1.0}
    out = recovery.generation_measures(rates, (model, scores | {"accuracy": 0.6}), [], None,
                                       {"finetuned": {"a": ["x"], "b": ["y"]}}, STATS)
    assert out["detector"]["trusted"] is False and "under 0.8" in out["finetuned"]["reason"]
    assert recovery.verdict_word(out["detector"]) == "not trusted"


def test_recover_writes_strict_json_and_prints_a_verdict_beside_every_number(tmp_path, vocabulary, monkeypatch,
                                                                            capsys):
    from types import SimpleNamespace

    fake_project(tmp_path, vocabulary, RATES, validity=True)
    (tmp_path / "configs" / "planted").mkdir(parents=True)
    (tmp_path / plant.VOCABULARY).write_text((REPO / plant.VOCABULARY).read_text())
    monkeypatch.chdir(tmp_path)
    cfg = SimpleNamespace(data=SimpleNamespace(path="data/planted/posts.csv"), survey=SimpleNamespace(statistics=STATS))
    assert recovery.main(cfg, None, None) == 0
    written = json.loads((tmp_path / recovery.RECOVERY).read_text(), parse_constant=pytest.fail)
    assert written["dose"]["slope"]["recovered"] is True
    assert written["generation"]["detector"]["project_accuracy"] >= 0.95
    out = capsys.readouterr().out.splitlines()
    rows = {line.split()[0]: line for line in out[1:-1]}
    assert set(rows) == set(recovery.flatten(written))
    assert rows["survey.finetuned.C1"].split()[1] == "1.000" and "not recovered" not in rows["survey.finetuned.C1"]
    assert rows["survey.finetuned.C1"].endswith("recovered (contrast: the validity card's call)")
    assert rows["likelihood.label_gain"].endswith("recovered")
    assert "[+18.5, +21.5]" in rows["survey.finetuned.C1"]
    assert rows["survey.untuned.C1"].endswith("order found (a null check should not) (contrast: the validity card's call)")
    assert out[-1] == f"wrote {recovery.RECOVERY} and {recovery.RECOVERY.with_suffix('.html')}"
    shown = (tmp_path / recovery.RECOVERY.with_suffix(".html")).read_text()  # the same rows, as a page
    assert shown.count("<tr>") == 1 + len(RATES) + 1 + len(rows) and "http" not in shown  # offline
    assert "[+18.5, +21.5]" in shown and "order found (a null check should not)" in shown


def test_hivelm_recover_is_a_command_outside_the_pipeline():
    from hivelm.cli import STAGES, build_parser

    args = build_parser().parse_args(["recover", "--labels", "x.labels.csv"])
    assert (args.labels, args.out, args.templates) == ("x.labels.csv", None, plant.VOCABULARY)
    assert "recover" not in STAGES  # no stage contract, no DVC stage
    assert "src/hivelm/recovery.py" not in (REPO / "dvc.yaml").read_text()  # and no stage depends on the module
    assert recovery.corpus_path("data/planted/posts.labels.csv").as_posix() == "data/planted/posts.csv"


# ------------------------------------------------------------------------------------------ bench/planted.py

def load_bench():
    spec = importlib.util.spec_from_file_location("bench_planted", REPO / "bench" / "planted.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file runs
    spec.loader.exec_module(module)
    return module


def test_the_bench_grid_and_its_dry_run_estimate(capsys):
    bench = load_bench()
    args = bench.parse_args(["--dry-run", "--cell-seconds", "300"])
    cells = bench.grid(args.sizes, args.gaps, args.seeds)
    assert len(cells) == 3 * 3 * 3 and cells[0] == bench.Cell(50, 0.2, 0)
    for cell in cells:  # counterbalanced: the higher rate on group_b for even seeds, on group_a for odd ones
        low, high = 0.5 - cell.gap / 2, 0.5 + cell.gap / 2
        assert cell.rates() == ({"group_a": high, "group_b": low} if cell.seed % 2 else {"group_a": low, "group_b": high})
    assert bench.Cell(50, 1.0, 2).rates() == {"group_a": 0.0, "group_b": 1.0}
    assert bench.Cell(50, 1.0, 1).rates() == {"group_a": 1.0, "group_b": 0.0}
    assert bench.main(["--dry-run", "--cell-seconds", "300", "--seeds", "0,1,2,3"]) == 0
    out = capsys.readouterr().out.splitlines()
    last = json.loads(out[-1])
    assert last["cells"] == 36 and last["estimated_s"] == 36 * 300 and last["dry_run"] is True
    with pytest.raises(SystemExit):
        bench.parse_args(["--seeds", "0,1"])  # fewer than 3 seeds cannot make an 80% rule


def test_the_bench_params_cut_sizes_and_keep_two_communities():
    import yaml

    bench = load_bench()
    args = bench.parse_args(["--tune-steps", "20", "--personas", "4", "--set", "generate.samples_per_topic=2"])
    text = bench.cell_params(bench.Cell(150, 0.5, 1), args)
    params = yaml.safe_load(text)
    assert list(params["communities"]) == ["group_a", "group_b"]
    assert params["tune"]["max_steps"] == 20 and params["generate"]["samples_per_topic"] == 2
    assert params["survey"]["personas"] == bench.PERSONAS_FILE and params["tune"]["seed"] == 1
    assert bench.cut_personas((REPO / "configs/templates/survey_personas.yaml").read_text(), 4).count("- id:") == 4


def test_the_power_table_finds_the_smallest_size_that_recovers_in_80_percent_of_seeds():
    bench = load_bench()

    def cell(n, gap, seed, recovered):
        return {"n": n, "gap": gap, "seed": seed, "exit_code": 0,
                "measures": {"survey.finetuned.C1": recovered, "likelihood.label_gain": True,
                             "dose.slope": None}}

    cells = []
    for seed in range(5):
        cells.append(cell(50, 1.0, seed, seed < 3))  # 3 of 5: 60%
        cells.append(cell(150, 1.0, seed, seed < 4))  # 4 of 5: 80%
        cells.append(cell(500, 1.0, seed, True))
        cells.append(cell(50, 0.2, seed, False))
        cells.append(cell(150, 0.2, seed, False))
        cells.append(cell(500, 0.2, seed, seed == 0))
    shares = bench.recovery_shares(cells)
    assert shares["survey.finetuned.C1"][(1.0, 50)] == {"recovered": 3, "judged": 5, "seeds": 5}
    table = bench.smallest_sizes(shares, [50, 150, 500], [0.2, 1.0])
    assert table["survey.finetuned.C1"] == {0.2: None, 1.0: 150}
    assert table["likelihood.label_gain"] == {0.2: 50, 1.0: 50}
    assert table["dose.slope"] == {0.2: "n/a", 1.0: "n/a"}  # never judged: no validity card
    failed = [dict(c, exit_code=1, measures={}) if c["n"] == 500 and c["gap"] == 1.0 else c for c in cells]
    assert bench.recovery_shares(failed)["survey.finetuned.C1"][(1.0, 500)] == {"recovered": 0, "judged": 0,
                                                                                 "seeds": 5}
    markdown = bench.markdown_table(table, [0.2, 1.0])
    assert "| survey.finetuned.C1 | not within the grid | 150 |" in markdown
    assert "| dose.slope | n/a | n/a |" in markdown


def test_a_grid_whose_first_cell_fails_stops_there_and_records_nothing(tmp_path, monkeypatch):
    bench = load_bench()
    ran = []

    def failing(cell, args, out):  # what `hivelm run`'s checks do to a bad cut: every cell fails the same way
        ran.append(cell.name)
        return {"n": cell.n, "gap": cell.gap, "seed": cell.seed, "exit_code": 2, "failed_step": "run",
                "seconds": {}, "measures": {}}

    monkeypatch.setattr(bench, "run_cell", failing)
    with pytest.raises(SystemExit, match="n50-gap1-seed0 failed at `run`"):
        bench.main(["--sizes", "50,150", "--gaps", "1", "--out", str(tmp_path)])
    assert ran == ["n50-gap1-seed0"] and list((tmp_path / "cells").iterdir()) == []  # a rerun retries it


def test_the_strong_signal_case_is_the_grids_strongest_cell_over_five_seeds():
    import yaml

    bench = load_bench()
    args = bench.parse_args(["--strong-signal", "--out", "elsewhere"])
    assert (args.sizes, args.gaps, args.seeds, args.out) == ([50], [1.0], [0, 1, 2, 3, 4], "elsewhere")
    params = yaml.safe_load(bench.cell_params(bench.Cell(50, 1.0, 3), args))
    assert params["tune"]["max_steps"] == 30 and params["generate"]["samples_per_topic"] == 6
    assert {params[s]["corpora"][0] for s in ("generate", "survey", "evaluate")} == {"finetuned"}
    grid = bench.parse_args(["--sizes", "50,500", "--gaps", "0.5,1", "--grid-cuts"])
    assert bench.cuts(grid) == bench.cuts(args)  # the grid's n=50, gap-1 cells are the case's first seeds
    bench.check_params(bench.cell_params(bench.Cell(50, 1.0, 0), args))  # the case's params load
    strong = bench.parse_args(bench.STRONG_500)  # the same cuts at 500 posts
    assert (strong.sizes, strong.gaps, strong.seeds, bench.cuts(strong)) == ([500], [1.0], [0, 1, 2, 3, 4],
                                                                           bench.cuts(args))
    tested = bench.parse_args(bench.STRONG_200)  # tests/test_strong_signal.py's case: the same, 200 posts, no survey
    assert (tested.sizes, tested.families) == ([200], ["generation", "likelihood"])
    assert bench.cuts(tested) == bench.cuts(args) | {"families": ["generation", "likelihood"]}
    with pytest.raises(SystemExit):
        bench.parse_args(["--families", "survey,typo"])


def test_every_family_of_measures_names_a_stage_that_writes_what_it_reads(tmp_path, vocabulary):
    """bench/planted.py runs only the stages a test's measures read (MEASURE_STAGES): each family of recover's
    measures names a stage of the pipeline."""
    from hivelm.cli import STAGES

    bench = load_bench()
    families = {name.split(".")[0] for name in recovery.flatten(run(tmp_path, fake_project(tmp_path, vocabulary,
                                                                                            RATES)))}
    assert families == set(bench.MEASURE_STAGES)
    assert set(bench.MEASURE_STAGES.values()) <= set(STAGES)


def test_the_power_plot_is_written(tmp_path):
    bench = load_bench()
    cells = [{"n": n, "gap": 1.0, "seed": s, "exit_code": 0, "measures": {"likelihood.label_gain": n > 50}}
             for n in (50, 150) for s in range(3)]
    bench.plot(bench.recovery_shares(cells), [50, 150], [1.0], tmp_path / "power.png")
    assert (tmp_path / "power.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_every_command_on_the_planted_page_parses():
    from hivelm.cli import build_parser

    bench = load_bench()
    page = (REPO / "docs" / "planted.md").read_text(encoding="utf-8")
    shown = [shlex.split(line.split("#")[0]) for block in re.findall(r"```bash\n(.*?)```", page, re.DOTALL)
             for line in block.splitlines() if line.split("#")[0].strip()]
    assert any("bench/planted.py" in words for words in shown)
    for words in shown:
        if "bench/planted.py" in words:
            bench.parse_args(words[words.index("bench/planted.py") + 1:])
        elif words[0] == "hivelm":
            build_parser().parse_args(words[1:])


def test_reliable_measures_recover_in_80_percent_of_seeds_and_in_the_seed_a_test_runs():
    def cell(seed, **measures):
        return {"seed": seed, "exit_code": 0, "measures": measures}

    results = {"seeds": [0, 1, 2, 3, 4], "records": [
        cell(0, a=True, b=True, c=False, d=None), cell(1, a=True, b=True, c=True, d=None),
        cell(2, a=True, b=False, c=True, d=None), cell(3, a=True, b=True, c=True, d=None),
        cell(4, a=True, b=True, c=True, d=None)]}
    assert recovery.reliable(results, 0) == ["a", "b"]  # c holds in 4 of 5, but not in seed 0
    assert recovery.reliable(results, 1) == ["a", "b", "c"]
    failed = dict(results, records=results["records"][:4] + [{"seed": 4, "exit_code": 1, "measures": {}}])
    assert recovery.reliable(failed, 0) == ["a"]  # a failed cell counts as not recovered: b falls to 3 of 5
    with pytest.raises(ValueError):
        recovery.reliable(dict(results, records=results["records"][:3]), 0)  # a seed without its cell
