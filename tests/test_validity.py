"""The survey's validity card on planted responders: synthetic option log-probs, no model. Each responder is
asked the demo's SWED items through the real prompt builder (counterbalanced orders, paraphrases, twins) and
its answers go through the real mapping back and scoring, so each check must find exactly what was planted."""

from pathlib import Path

import pytest

from hivelm.config import ConfigError, StatisticsConfig, ValidityConfig, load_config
from hivelm.survey.answers import build_item_prompts, distributions_by_variant, softmax
from hivelm.survey.instrument import InstrumentError, load_instrument, select_items
from hivelm.survey.validity import (
    CHECKS,
    ballots,
    contrast_support,
    cronbach_alpha,
    icc_2_1,
    item_variants,
    mcdonald_omega,
    model_card,
    option_orders,
    split_variants,
    variance_shares,
)
from hivelm.templates import load_templates

REPO = Path(__file__).resolve().parents[1]
DEMO_ITEMS = ["Q5", "Q6", "Q7", "Q8", "Q9", "Q13", "Q14", "Q15", "Q16"]
SWED = select_items(load_instrument(REPO / "configs/instruments/swed.yaml"), DEMO_ITEMS)
PERSONAS = load_templates(REPO / "configs/templates/survey_personas.yaml", slots=("community",))
STATS = StatisticsConfig(bootstrap_resamples=100, permutations=100)
VCFG = ValidityConfig(orders=2, personas=len(PERSONAS))  # every persona a probe: the checks see everything
TRAIT = {p.id: -1.5 + 3 * i / (len(PERSONAS) - 1) for i, p in enumerate(PERSONAS)}


def position(item, key: str) -> float:
    """An option's keyed value placed in [-1, 1] within its item's range."""
    values = [item.keyed(o.code) for o in item.options]
    low, high = min(values), max(values)
    return 2 * (item.keyed(item.option(key).code) - low) / (high - low) - 1


def content(record, item) -> list[float]:
    """A respondent who reads the item: its trait pulls it up or down the keyed range (down on a twin)."""
    sign = -1 if record["twin"] else 1
    return [3 * sign * TRAIT[record["persona_id"]] * position(item, key) for key, _ in record["choices"]]


RESPONDERS = {
    "content": content,
    "first_position": lambda record, item: [8.0 * (j == 0) for j in range(len(record["choices"]))],
    "acquiescent": lambda record, item: [c + 8.0 * (item.type == "yes_no" and position(item, key) > 0)  # says yes
                                         for c, (key, _) in zip(content(record, item), record["choices"])],
    "uniform": lambda record, item: [0.0] * len(record["choices"]),
}
FAILS = {
    "content": set(),
    "first_position": {"order_sensitivity", "position_bias", "majority_survives", "distinct_from_position",
                       "internal_consistency", "retest"},  # personas change nothing: nothing to be consistent about
    "acquiescent": {"acquiescence"},
    "uniform": {"distinct_from_uniform", "internal_consistency", "retest"},
}


def administer_planted(scorer, vcfg=VCFG) -> dict:
    variants = {iid: item_variants(item, vcfg, 0) for iid, item in SWED.items.items()}
    asked = ballots([p.id for p in PERSONAS], vcfg)
    records = build_item_prompts(SWED, PERSONAS, "keto", mode="loglik",
                                 variants=lambda item, persona: asked(variants[item.id], persona.id))
    probabilities = [softmax(scorer(r, SWED.items[r["item_id"]])) for r in records]
    return {"mode": "loglik"} | split_variants(distributions_by_variant(records, probabilities), variants)


@pytest.mark.parametrize("name", list(RESPONDERS))
def test_planted_responders_trip_exactly_their_checks(name):
    administered = administer_planted(RESPONDERS[name])
    # the retest needs a second administration: a planted responder gives the same distributions again
    card = model_card(SWED, administered, VCFG, STATS, draws=40, retest_distributions=administered["distributions"])
    assert set(card["failed"]) == FAILS[name], card["checks"]
    assert card["verdict"] == ("informative" if name == "content" else "uninformative")
    assert set(card["checks"]) | set(card["skipped"]) == set(CHECKS) and not card["skipped"]


def test_letters_follow_the_displayed_position_and_answers_map_back():
    variants = {iid: item_variants(item, VCFG, 0) for iid, item in SWED.items.items()}
    records = build_item_prompts(SWED, PERSONAS[:1], "keto", mode="loglik", variants=lambda item, _: variants[item.id])
    reverse = next(r for r in records if r["item_id"] == "Q6" and r["order"] == 1 and not r["twin"])
    assert reverse["prompt"].endswith("a. Terrified\nb. Very afraid\nc. Moderately afraid\nd. Slightly afraid\n"
                                      "e. Not afraid at all\nAnswer with the letter of one option only.")
    assert [key for key, _ in reverse["choices"]] == ["e", "d", "c", "b", "a"]  # keyed letters, for scoring
    plain = next(r for r in records if r["item_id"] == "Q6" and r["order"] == 0 and r["form"] == 0 and not r["twin"])
    assert plain["id"] == f"swed-{PERSONAS[0].id}-0-Q6"  # the single-order survey's ids are unchanged
    administered = administer_planted(RESPONDERS["first_position"])
    q6 = administered["validity"]["by_order"][1][PERSONAS[0].id]["Q6"]
    assert q6["e"] > 0.99  # first shown in the reverse order, so recorded as the keyed "e"
    assert administered["distributions"][PERSONAS[0].id]["Q6"]["a"] == pytest.approx(0.5, abs=0.01)


def test_split_ballots_keep_the_headline_order_balanced_with_two_probes():
    """The default design: two probe personas answer every variant; the others one order each, alternating."""
    vcfg = ValidityConfig(orders=2, personas=2)
    administered = administer_planted(RESPONDERS["first_position"], vcfg)
    by_order = administered["validity"]["by_order"]
    ids = [p.id for p in PERSONAS]
    assert set(by_order[0]) == {ids[0], ids[1], *ids[2::2]} and set(by_order[1]) == {ids[0], ids[1], *ids[3::2]}
    assert set(administered["validity"]["twins"]) == set(ids[:2])
    q6 = [administered["distributions"][p]["Q6"]["a"] for p in ids]  # position-only: "a" first in order 0 only
    assert sum(q6) / len(q6) == pytest.approx(0.5, abs=0.01)  # balanced over the ballots
    card = model_card(SWED, administered, vcfg, STATS, draws=20)
    assert card["probes"] == 2 and {"order_sensitivity", "distinct_from_position"} <= set(card["failed"])
    assert "retest" in card["skipped"] and card["retest"]["skipped"].startswith("nothing to redraw")


def test_option_orders_are_the_original_the_reverse_then_distinct_seeded_permutations():
    orders = option_orders("abcde", 4, 0, "Q6")
    assert orders[:2] == [tuple("abcde"), tuple("edcba")] and len(set(orders)) == 4
    assert orders == option_orders("abcde", 4, 0, "Q6") != option_orders("abcde", 4, 1, "Q6")
    assert option_orders("ab", 5, 0, "Q13") == [("a", "b"), ("b", "a")]  # a yes/no item has two


def test_reliability_formulas_match_hand_computed_values():
    # Cronbach 1951 on a 4 x 3 table: item variances 1, 1, 1 (ddof 1 sums to 3); total variance 20/3 * ...
    table = [[1, 2, 2], [2, 2, 3], [3, 4, 3], [4, 4, 4]]
    import numpy as np

    x = np.array(table, dtype=float)
    k, items, total = 3, x.var(0, ddof=1).sum(), x.sum(1).var(ddof=1)
    assert cronbach_alpha(table) == pytest.approx(k / (k - 1) * (1 - items / total))
    rng = np.random.default_rng(0)
    factor = rng.normal(size=(2000, 1))
    strong = factor @ np.full((1, 4), 0.8) + rng.normal(scale=0.6, size=(2000, 4))  # loadings 0.8 each
    assert mcdonald_omega(strong) == pytest.approx((4 * 0.8) ** 2 / ((4 * 0.8) ** 2 + 4 * 0.36), abs=0.02)
    # ICC(2,1), Shrout & Fleiss 1979 Table 2's data (6 targets, first two judges): hand-computed 0.0 < icc < 1
    perfect = [[1, 1], [2, 2], [3, 3], [5, 5]]
    assert icc_2_1(perfect) == pytest.approx(1.0)
    shifted = [[1, 2], [2, 3], [3, 4], [5, 6]]  # absolute agreement: a constant offset costs
    assert 0.5 < icc_2_1(shifted) < 1.0


def test_contrasts_are_supported_only_when_both_models_read_the_items_and_the_sign_holds():
    good = {"verdict": "informative", "failed": [], "per_order": [{"p": 60.0}, {"p": 58.0}]}
    low = {"verdict": "informative", "failed": [], "per_order": [{"p": 40.0}, {"p": 41.0}]}
    flipped = {"verdict": "informative", "failed": [], "per_order": [{"p": 70.0}, {"p": 30.0}]}
    bad = {"verdict": "uninformative", "failed": ["retest"], "per_order": [{"p": 40.0}, {"p": 41.0}]}
    holds = {"difference": 18.5, "low": 10.0, "high": 25.0}
    assert contrast_support(holds, good, low)["supported"]
    assert contrast_support(holds, good, bad)["reasons"] == ["second model uninformative (retest)"]
    assert "keep its sign" in contrast_support(holds, flipped, low | {"per_order": [{"p": 40.0}, {"p": 50.0}]}
                                               )["reasons"][0]
    assert "includes 0" in contrast_support({"difference": 2.0, "low": -1.0, "high": 5.0}, good, low)["reasons"][0]


def test_variance_shares_find_the_factor_that_moves_the_score():
    rows = [{"model": m, "persona": p, "order": o, "form": 0, "score": 10.0 * o + 0.1 * p}
            for m in ("a", "b") for p in range(4) for o in (0, 1)]
    shares = variance_shares(rows)
    assert shares["order"] > 0.95 and shares["model"] == pytest.approx(0.0) and shares["persona"] < 0.05


def test_instrument_paraphrases_and_twins_are_validated(tmp_path):
    base = ("id: t\nname: t\nsource: t\nitems:\n  - id: Q1\n    type: multi_select\n    stem: s\n"
            "    options: [{text: x}, {text: y}]\n")
    for extra, message in (("    paraphrases: s2\n", "paraphrases must be a list"),
                           ("    twin: not mine\n", "only single_choice and yes_no items take a twin"),
                           ("    paraphrases: [s2]\n", "take no paraphrases")):
        path = tmp_path / "t.yaml"
        path.write_text(base + extra)
        with pytest.raises(InstrumentError, match=message):
            load_instrument(path)
    assert all(SWED.items[i].paraphrases for i in DEMO_ITEMS)  # every item C1-C4 use has a parallel form


def test_validity_config_is_validated(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text("survey:\n  validity:\n    orders: 0\n")
    with pytest.raises(ConfigError, match="survey.validity.orders"):
        load_config(params)


def test_report_shows_the_card_above_the_scores_and_greys_unsupported_contrasts():
    from hivelm.report_page import survey_section
    from hivelm.stages.summarize import validity_section
    from hivelm.survey.scoring import contrasts, summarise

    surveys = {}
    for community, name in (("keto", "content"), ("running", "uniform")):
        administered = administer_planted(RESPONDERS[name])
        summary = summarise(SWED, administered, STATS, draws_per_persona=20)
        summary["validity"] = model_card(SWED, administered, VCFG, STATS, draws=20)
        surveys[community] = {"community": community, "corpora": {"finetuned": summary}}
    pairs = {"finetuned": contrasts({c: r["corpora"]["finetuned"] for c, r in surveys.items()}, STATS)}
    section = validity_section(surveys, pairs)
    call = section["contrasts"]["finetuned"]["keto vs running"]
    assert not call["supported"] and call["reasons"][0].startswith("second model uninformative (distinct_from_uniform")
    page = survey_section(surveys, pairs, section)
    assert page.index("Validity card") < page.index("Scores (order-averaged)") < page.index("keto vs running")
    assert "color:#999" in page and "second model uninformative" in page and page.count("<svg") == 2


def test_mlflow_names_carry_the_verdict_each_check_and_the_dose_slope():
    from hivelm.stages.survey import validity_names

    administered = administer_planted(RESPONDERS["uniform"])
    card = model_card(SWED, administered, VCFG, STATS, draws=20, retest_distributions=administered["distributions"])
    names = validity_names({"finetuned": {"validity": card}}, {"dose": {"slope": {"value": 2.0, "low": 1.0,
                                                                                  "high": 3.0}}})
    assert names["survey/validity/finetuned/informative"] == 0.0
    valued = {check for check in CHECKS if card["checks"][check]["value"] is not None}
    assert valued == set(CHECKS) - {"retest"} and "retest" in card["failed"]  # constant scores: ICC undefined
    assert {f"survey/validity/finetuned/{check}" for check in valued} <= set(names)
    assert names["survey/validity/dose_slope/low"] == 1.0


def test_order_checks_compare_only_items_a_persona_answered_in_every_order():
    """The dose and retest reruns re-ask only the primary score's items of a few personas, in other orders:
    such a persona is in every order's answers without every item (KeyError: 'Q1' on the preset before)."""
    from hivelm.survey.validity import order_checks

    keys = {iid: [o.letter for o in item.options] for iid, item in SWED.items.items()}
    orders = {iid: [tuple(k), tuple(reversed(k))] for iid, k in keys.items()}
    uniform = {iid: {key: 1 / len(k) for key in k} for iid, k in keys.items()}
    first, rest = DEMO_ITEMS[0], DEMO_ITEMS[1:]
    by_order = [{"probe": dict(uniform), "rerun": {first: uniform[first]}},
                {"probe": dict(uniform), "rerun": {iid: uniform[iid] for iid in rest}}]  # never `first` twice
    card = order_checks(SWED, by_order, orders, STATS)
    assert card["probes"] == 2 and card["order_sensitivity"]["value"] == 0.0
    assert card["majority_survives"] == {"value": 1.0, "items": len(DEMO_ITEMS)}
