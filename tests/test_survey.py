"""Survey module: instrument format, parser, scoring on hand-scored fixtures (the paper's Table 9 / Table 2),
and option log-likelihoods on a tiny random Llama with and without a LoRA adapter."""

import json
import math
from dataclasses import replace
from pathlib import Path

import pytest

from hivelm.config import DecodingConfig, InContextConfig, StatisticsConfig, SurveyConfig, ValidityConfig
from hivelm.errors import HiveError
from hivelm.survey.answers import build_item_prompts
from hivelm.survey.instrument import InstrumentError, load_instrument, select_items
from hivelm.survey.parse import UNPARSEABLE, parse_answer
from hivelm.survey.scoring import (
    contrasts,
    distribution_majority,
    draw_answer_sets,
    evaluate,
    item_value,
    majority_answers,
    score_answers,
    summarise,
)
from hivelm.templates import load_templates

REPO = Path(__file__).resolve().parents[1]
SWED = load_instrument(REPO / "configs/instruments/swed.yaml")
EDEQ = load_instrument(REPO / "configs/instruments/edeq.yaml")
PERSONAS = load_templates(REPO / "configs/templates/survey_personas.yaml", slots=("community",))
WCS_ITEMS = ["Q5", "Q6", "Q7", "Q8", "Q9"]

# Paper Table 9: majority answers of the finetuned models to Q5-Q9; Table 2: their C1 (WCS), 1 decimal.
TABLE9 = {
    "Pro-ED": "bcccc", "Keto & Diet": "ccaca", "Body Image": "babba",
    "Anti-ED": "acbaa", "Healthy Lifestyle & WL": "aaaca", "Weight Loss Drugs": "bbaba",
}
TABLE2_C1 = {"Pro-ED": 45.0, "Keto & Diet": 33.3, "Body Image": 15.0, "Anti-ED": 13.3,
             "Healthy Lifestyle & WL": 13.3, "Weight Loss Drugs": 16.7}


def table9(community: str) -> dict:
    return dict(zip(WCS_ITEMS, TABLE9[community]))


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# ---------------------------------------------------------------------------------------------- parser

@pytest.mark.parametrize(("item", "text", "expected"), [
    ("Q6", "b", "b"), ("Q6", "B", "b"), ("Q6", "(b)", "b"), ("Q6", "B)", "b"), ("Q6", "b.", "b"),
    ("Q6", "**C**", "c"), ("Q6", "b. Slightly afraid", "b"), ("Q6", "option b", "b"), ("Q6", "Answer: b", "b"),
    ("Q6", "answer: D", "d"), ("Q6", "My answer is d.", "d"), ("Q6", "I'd say C because it fits", "c"),
    ("Q6", "Option A is closest", "a"), ("Q6", "Slightly afraid", "b"), ("Q6", "slightly afraid, I guess", "b"),
    ("Q6", "I am very afraid", "d"), ("Q6", "TERRIFIED", "e"),
    # text of the wrong option, two letters, out of range, refusals, empty
    ("Q6", "b. Very afraid", UNPARSEABLE), ("Q6", "b and c", UNPARSEABLE), ("Q6", "B or C", UNPARSEABLE),
    ("Q6", "a or e", UNPARSEABLE), ("Q6", "f", UNPARSEABLE), ("Q6", "option g", UNPARSEABLE),
    ("Q6", "", UNPARSEABLE), ("Q6", "   ", UNPARSEABLE), ("Q6", "I'm sorry, but I can't answer that.", UNPARSEABLE),
    ("Q6", "As an AI, I do not have a body. b", UNPARSEABLE), ("Q6", "not very afraid", UNPARSEABLE),
    # a letter inside a word, or the English words "a" / "I", is not an answer
    ("Q6", "about", UNPARSEABLE), ("Q6", "a lot", UNPARSEABLE), ("Q6", "I think so", UNPARSEABLE),
    ("Q6", "a", "a"), ("Q6", "A", "a"), ("Q6", "e.g. somewhat", UNPARSEABLE),
    # ...unless "a lot ..." is the option's own text
    ("Q5", "A lot more than others", "e"), ("Q5", "I worry a lot more than others", "e"),
    ("Q5", "Answer: a lot less than others", "a"), ("Q5", "A. A lot less than others", "a"),
    ("Q5", "B) A little less than others", "b"), ("Q5", "c. A lot more than others", UNPARSEABLE),
    # what SmolLM2 writes: a second option line, text cut short by max_new_tokens, two texts
    ("Q9", "A. Never\nd. Often\n\nYou've got", UNPARSEABLE), ("Q9", "d. Often\n\nThat is my answer", "d"),
    ("Q6", "c. Moderately afraid\n\nThe answer is c.", "c"), ("Q6", "The correct answer is c. Moderately afraid.", "c"),
    ("Q8", "A: C: More than anything else in my life", UNPARSEABLE), ("Q8", "More than anything else in my", "d"),
    ("Q5", "A lot", UNPARSEABLE), ("Q6", "Slightly afraid, not very afraid", UNPARSEABLE),
    ("Q10", "d. 12 to 24 times", UNPARSEABLE),
    # yes / no
    ("Q13", "Yes", "a"), ("Q13", "yes.", "a"), ("Q13", "No, never", "b"), ("Q13", "b. No", "b"),
    ("Q13", "a. No", UNPARSEABLE), ("Q13", "Yes and no", UNPARSEABLE), ("Q13", "I have no idea", UNPARSEABLE),
    ("Q17", "Yes", "b"), ("Q17", "a", "a"),
    # numbers, with units and words; bins by letter
    ("Q10", "3 times", 3.0), ("Q10", "three", 3.0), ("Q10", "Twice.", 2.0), ("Q10", "never", 0.0),
    ("Q10", "0", 0.0), ("Q10", "about 4 times", 4.0), ("Q10", "c", "c"), ("Q10", "b. 1 or 2 times", "b"),
    ("Q10", "2-3 times", UNPARSEABLE), ("Q10", "a few times", UNPARSEABLE), ("Q10", "b. 10 times", UNPARSEABLE),
    ("Q10", "1000000", UNPARSEABLE), ("Q10", "I can't say", UNPARSEABLE),
    ("Q3", "150 lbs", 150.0), ("Q3", "about 1,20 pounds", UNPARSEABLE), ("Q3", "5 ft 6 in", UNPARSEABLE),
    # multi-select
    ("Q11", "a, c and e", ["a", "c", "e"]), ("Q11", "A, C", ["a", "c"]), ("Q11", "none", []),
    ("Q11", "None of the above", []), ("Q11", "all of the above", ["a", "b", "c", "d", "e"]),
    ("Q11", "a. I ate much faster than usual\nc. I ate large amounts", ["a", "c"]),
    ("Q11", "a. I ate much faster than usual", ["a"]), ("Q11", "d. I ate alone because I was embarrassed by", ["d"]),
    ("Q11", "c. I ate alone because I was embarrassed", UNPARSEABLE), ("Q11", "1. I ate much faster", UNPARSEABLE),
    ("Q11", "a, f", UNPARSEABLE), ("Q11", "maybe a", UNPARSEABLE), ("Q11", "", UNPARSEABLE),
])
def test_parser_on_adversarial_answers(item, text, expected):
    assert parse_answer(SWED.items[item], text) == expected


def test_unparseable_is_never_an_option_letter():
    for item in SWED.items.values():
        assert UNPARSEABLE not in item.letters and item_value(item, UNPARSEABLE) is None


# ---------------------------------------------------------------------------------------------- scoring

@pytest.mark.parametrize("community", list(TABLE9))
def test_table9_majority_answers_give_table2_wcs(community):
    assert round(score_answers(SWED, table9(community))["criteria"]["C1"], 1) == TABLE2_C1[community]


def test_c2_c3_under_the_stated_rule_and_the_code_rule():
    stated = {c: evaluate(SWED, table9(c)) for c in TABLE9}
    assert [stated[c]["C2"] for c in TABLE9] == [True, True, False, False, True, False]  # as Table 2
    assert stated["Anti-ED"]["C3"] is True  # Q6 = c: the stated rule {c, d, e}; Table 2 prints False
    assert stated["Pro-ED"]["C3"] is True and stated["Keto & Diet"]["C3"] is True
    code_rule = load_instrument(REPO / "configs/instruments/swed.yaml", criterion_params={"C3": {"options": ["d", "e"]}})
    assert evaluate(code_rule, table9("Anti-ED"))["C3"] is False
    assert evaluate(code_rule, table9("Pro-ED"))["C3"] is False  # Table 2 prints True: neither rule reproduces it


def test_c4_counts_q13_to_q16_and_decides_despite_missing_answers():
    keto = {"Q13": "b", "Q14": "b", "Q15": "a", "Q16": "a"}  # the code's output: 2 yeses under the stated rule
    assert evaluate(SWED, keto)["C4"] is False
    # the printed B5 summed Q15-Q18 with Q17 "a" (= No) counted as yes: our Q17/Q18 answers never matter
    assert evaluate(SWED, keto | {"Q17": "a", "Q18": "a"})["C4"] is False
    assert evaluate(SWED, {"Q13": "a", "Q14": "a", "Q15": "a", "Q16": "b"})["C4"] is True
    assert evaluate(SWED, {"Q13": "a", "Q14": "a", "Q15": "a"})["C4"] is True          # 3 yes, 1 missing
    assert evaluate(SWED, {"Q13": "a", "Q14": "a", "Q15": UNPARSEABLE})["C4"] is None  # could go either way
    assert evaluate(SWED, {"Q13": "b", "Q14": "b", "Q15": "a"})["C4"] is False         # cannot reach 3


def test_threshold_flags_and_all_of():
    high = dict(zip(WCS_ITEMS, "ddedc"))
    scores = evaluate(SWED, high | {"Q13": "a", "Q14": "a", "Q15": "a", "Q16": "a", "Q10": 3})
    assert scores["C1"] >= 47 and scores["WCS_high"] is True and scores["B4"] is True
    assert scores["C2_C3_C4"] is True
    assert evaluate(SWED, {"Q8": "a"})["C2_C3_C4"] is False  # one false part decides the conjunction
    assert evaluate(SWED, {"Q10": "b"})["B4"] is False        # a bin letter stands for its value (1.5)
    assert evaluate(SWED, {})["WCS_high"] is None


def test_missing_or_unparseable_items_make_dependent_criteria_none():
    answers = table9("Pro-ED") | {"Q7": UNPARSEABLE}
    scores = evaluate(SWED, answers)
    assert scores["C1"] is None and scores["WCS_high"] is None
    assert scores["C2"] is True and scores["C3"] is True  # they do not need Q7
    assert evaluate(SWED, {k: v for k, v in table9("Pro-ED").items() if k != "Q9"})["C1"] is None


def test_reverse_keying():
    q17 = SWED.items["Q17"]
    assert q17.reverse and item_value(q17, "b") == 1.0 and item_value(q17, "a") == 0.0
    for item in SWED.items.values():
        if item.type == "yes_no":  # after keying, 1 must mean "Yes" on every yes/no item
            assert next(o.text for o in item.options if item.keyed(o.code) == 1) == "Yes", item.id
    likert = replace(SWED.items["Q6"], reverse=True)
    assert [item_value(likert, x) for x in "abcde"] == [5.0, 4.0, 3.0, 2.0, 1.0]


def test_score_answers_rejects_unknown_items_and_bad_letters():
    with pytest.raises(InstrumentError, match=r"resp 'x': item Q6: 'f' is not one of the options"):
        score_answers(SWED, {"Q6": "f"}, where="resp 'x'")
    with pytest.raises(InstrumentError, match="item Q99: not an item of swed"):
        score_answers(SWED, {"Q99": "a"})
    with pytest.raises(InstrumentError, match="item Q10: 5000 is outside"):
        score_answers(SWED, {"Q10": 5000})
    with pytest.raises(InstrumentError, match="item Q11: a multi_select answer is a list"):
        score_answers(SWED, {"Q11": "a"})
    assert score_answers(SWED, {"Q6": "C", "Q7": None})["missing"][:3] == ["Q1", "Q2", "Q3"]


def test_majority_vote_ties_go_to_the_lowest_keyed_answer_and_are_counted():
    sets = [{"Q6": "d", "Q17": "a", "Q10": 2, "Q11": ["a"]}, {"Q6": "b", "Q17": "b", "Q10": "c", "Q11": ["a", "b"]},
            {"Q6": UNPARSEABLE, "Q17": UNPARSEABLE, "Q11": UNPARSEABLE}]
    majority, ties = majority_answers(SWED, sets)
    assert majority["Q6"] == "b"              # b and d tied: the less-concerning answer
    assert majority["Q17"] == "a"             # reverse-keyed: a (No) keys to 0, lower than b (Yes)
    assert majority["Q10"] == pytest.approx(3.0)  # numeric: the mean (2 and bin c = 4)
    assert majority["Q11"] == ["a"]           # b chosen by exactly half: not chosen
    assert sorted(ties) == ["Q11", "Q17", "Q6"]
    assert "Q5" not in majority               # nobody answered it: missing, not "a"
    clear, none = majority_answers(SWED, [{"Q6": "c"}, {"Q6": "c"}, {"Q6": "a"}])
    assert clear["Q6"] == "c" and none == []


def test_edeq_subscales_need_more_than_half_rated_and_global_needs_all_four():
    restraint = {"E1": "c", "E2": "e"}  # 2 of 5 rated
    assert evaluate(EDEQ, restraint)["restraint"] is None
    assert evaluate(EDEQ, restraint | {"E3": "a"})["restraint"] == pytest.approx(2.0)  # (2 + 4 + 0) / 3
    weight = {"E8": "g", "E12": "g", "E22": "a"}  # 3 of 5 rated
    assert evaluate(EDEQ, weight)["weight_concern"] == pytest.approx(4.0)
    full = {iid: "d" for iid, item in EDEQ.items.items() if item.type == "single_choice"}
    scores = evaluate(EDEQ, full)
    assert scores["global"] == pytest.approx(3.0) and scores["shape_concern"] == pytest.approx(3.0)
    assert evaluate(EDEQ, full | {"E7": None, "E9": None, "E19": None})["global"] is None
    assert [len(EDEQ.subscale(s)) for s in ("restraint", "eating", "shape", "weight")] == [5, 5, 8, 5]


# ---------------------------------------------------------------------------------------------- format

SMALL = """
id: tiny
name: A tiny instrument
source: tests
items:
  - {id: A1, type: single_choice, stem: "How?", options: [{text: "low"}, {text: "mid"}, {text: "high"}]}
  - {id: A2, type: yes_no, stem: "Ever?", options: [{text: "Yes"}, {text: "No"}]}
criteria:
  K1: {kind: answer_in, item: A1, options: [b, c], source: "test"}
"""


@pytest.mark.parametrize(("patch", "message"), [
    (("options: [b, c]", "options: [b, x]"), r"criterion K1: option\(s\) \['x'\] are not letters of item A1"),
    (("item: A1, options", "item: A9, options"), "criterion K1: unknown item 'A9'"),
    (("kind: answer_in", "kind: median"), "criterion K1: kind must be one of"),
    ((', source: "test"', ""), "criterion K1: needs a 'source'"),
    (("type: yes_no", "type: likert"), "item A2: type must be one of"),
    (('[{text: "Yes"}, {text: "No"}]', '[{text: "Yes"}, {text: "No"}, {text: "Maybe"}]'),
     "item A2: a yes_no item needs exactly two options"),
    (('{text: "low"}', '{letter: z, text: "low"}'), "item A1: option letters must be"),
    (("source: tests", "source: tests\ncolour: red"), "unknown top-level key"),
])
def test_instrument_errors_name_the_file_and_the_item_or_criterion(tmp_path, patch, message):
    path = write(tmp_path / "tiny.yaml", SMALL.replace(*patch))
    with pytest.raises(InstrumentError, match=message) as info:
        load_instrument(path)
    assert str(path) in str(info.value) and isinstance(info.value, HiveError)


def test_formulas_cycles_and_overrides_are_validated(tmp_path):
    bad = SMALL + '  K2: {kind: scale_mean, items: {A1: "__import__(1)"}, source: "t"}\n'
    with pytest.raises(InstrumentError, match="criterion K2: item A1: bad formula"):
        load_instrument(write(tmp_path / "a.yaml", bad))
    cycle = SMALL + '  K3: {kind: all_of, of: [K4], source: "t"}\n  K4: {kind: any_of, of: [K3], source: "t"}\n'
    with pytest.raises(InstrumentError, match="refers to itself"):
        load_instrument(write(tmp_path / "b.yaml", cycle))
    path = write(tmp_path / "c.yaml", SMALL)
    with pytest.raises(InstrumentError, match="unknown criterion 'K9'"):
        load_instrument(path, criterion_params={"K9": {"options": ["a"]}})
    with pytest.raises(InstrumentError, match="criterion K1: unknown parameter"):
        load_instrument(path, criterion_params={"K1": {"at_least": 2}})
    with pytest.raises(InstrumentError, match=r"criterion K1: option\(s\) \['q'\]"):
        load_instrument(path, criterion_params={"K1": {"options": ["q"]}})
    assert evaluate(load_instrument(path, criterion_params={"K1": {"options": ["a"]}}), {"A1": "a"})["K1"] is True


def test_instrument_text_replaces_wording_item_by_item(tmp_path):
    official = write(tmp_path / "official.yaml", 'Q6: "OFFICIAL STEM"\nQ9: {options: {a: "Not ever"}}\n')
    swed = load_instrument(REPO / "configs/instruments/swed.yaml", text=official)
    assert swed.items["Q6"].stem == "OFFICIAL STEM" and swed.items["Q6"].options == SWED.items["Q6"].options
    assert swed.items["Q9"].options[0].text == "Not ever" and swed.items["Q9"].stem == SWED.items["Q9"].stem
    assert swed.items["Q5"] == SWED.items["Q5"]
    with pytest.raises(InstrumentError, match="official.json: item Q99: not an item"):
        load_instrument(REPO / "configs/instruments/swed.yaml", text=write(tmp_path / "official.json", '{"Q99": "x"}'))
    with pytest.raises(InstrumentError, match=r"item Q9: option letter\(s\) \['h'\]"):
        load_instrument(REPO / "configs/instruments/swed.yaml",
                        text=write(tmp_path / "o.yaml", "Q9: {options: {h: x}}\n"))


@pytest.mark.parametrize("path", sorted((REPO / "configs/instruments").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_instruments_load(path):
    instrument = load_instrument(path)
    assert instrument.items and instrument.criteria and instrument.primary in instrument.criteria
    assert all(c.source for c in instrument.criteria.values())


def test_swed_has_the_papers_21_items_and_edeq_its_28():
    assert list(SWED.items) == [f"Q{i}" for i in range(1, 22)]
    types = {iid: item.type for iid, item in SWED.items.items()}
    assert [types[f"Q{i}"] for i in (2, 3, 4, 10)] == ["numeric"] * 4 and types["Q11"] == "multi_select"
    assert [len(SWED.items[q].options) for q in WCS_ITEMS] == [5, 5, 7, 4, 5]
    assert all(types[f"Q{i}"] == "yes_no" for i in range(13, 22))
    assert len(EDEQ.items) == 28 and {o.code for o in EDEQ.items["E1"].options} == set(range(7))


def test_persona_file_loads_with_one_community_slot():
    assert len(PERSONAS) >= 10 and len({p.id for p in PERSONAS}) == len(PERSONAS)
    assert all(p.text.count("{community}") == 1 for p in PERSONAS)


# ---------------------------------------------------------------------------------------------- prompts

def test_item_prompts_hold_persona_stem_options_and_answer_line():
    records = build_item_prompts(SWED, PERSONAS[:2], "keto cooking", samples_per_item=3)
    assert len(records) == 2 * 3 * 21 and records[0]["item_id"] == "Q1" and records[20]["item_id"] == "Q21"
    q6 = next(r for r in records if r["item_id"] == "Q6")
    assert "keto cooking" in q6["prompt"] and SWED.items["Q6"].stem in q6["prompt"]
    assert "\nc. Moderately afraid\n" in q6["prompt"] and q6["prompt"].endswith("letter of one option only.")
    assert q6["choices"][1] == ["b", "b. Slightly afraid"] and q6["system"] == "You are a helpful assistant."
    loglik = build_item_prompts(SWED, PERSONAS[:1], "keto cooking", mode="loglik")
    q11 = [r for r in loglik if r["item_id"] == "Q11"]
    assert len(loglik) == 20 + 5 and [r["option"] for r in q11] == list("abcde")
    assert q11[0]["choices"] == [["yes", "a. Yes"], ["no", "b. No"]]


def test_in_context_prompts_need_the_community_key_that_keys_their_draw():
    pool = [f"post number {i}" for i in range(30)]
    with pytest.raises(ValueError, match="community"):
        build_item_prompts(SWED, PERSONAS[:1], "keto cooking", context=pool)  # else all communities: one draw


def test_in_context_prompts_draw_k_posts_per_respondent():
    pool = [f"post number {i} about almond flour and butter" for i in range(30)]
    records = build_item_prompts(SWED, PERSONAS[:2], "keto cooking", samples_per_item=2, context=pool,
                                 in_context=InContextConfig(k=4, words=3), community="keto")
    first = records[0]
    assert first["prompt"].startswith("Here are posts written by members of the keto cooking community:")
    lines = [x for x in first["prompt"].splitlines() if x.startswith("- ")]
    assert len(lines) == 4 and all(len(x[2:].split()) == 3 for x in lines)
    by_respondent = {(r["persona_id"], r["sample"]): tuple(r["context_posts"]) for r in records}
    assert len(set(by_respondent.values())) > 1
    assert all(tuple(r["context_posts"]) == by_respondent[(r["persona_id"], r["sample"])] for r in records)


# ---------------------------------------------------------------------------------------------- summaries

def generated(answer_sets_by_persona: dict) -> dict:
    return {"mode": "generate", "answers": answer_sets_by_persona}


def config(mode: str = "loglik", samples_per_item: int = 5, **decoding) -> SurveyConfig:
    return SurveyConfig(mode=mode, samples_per_item=samples_per_item,
                        decoding=DecodingConfig(**({"repetition_penalty": 1.0, "max_new_tokens": 16} | decoding)),
                        statistics=StatisticsConfig(bootstrap_resamples=50, permutations=50),
                        validity=ValidityConfig(enabled=False))  # the card: tests/test_validity.py, test_pipeline


def test_summary_of_generated_answers_counts_unparseable_and_is_json():
    answers = {"p1": [table9("Pro-ED"), table9("Pro-ED") | {"Q6": UNPARSEABLE}],
               "p2": [table9("Keto & Diet"), table9("Keto & Diet") | {"Q9": UNPARSEABLE}]}
    summary = summarise(SWED, generated(answers), config().statistics)
    json.dumps(summary, allow_nan=False)
    c1 = summary["criteria"]["C1"]
    assert summary["respondents"] == 4 and summary["personas"] == 2
    assert c1["per_persona"] == {"p1": pytest.approx(45.0), "p2": pytest.approx(100 / 3)}
    assert c1["mean"]["value"] == pytest.approx((45 + 100 / 3) / 2) and c1["missing_rate"] == 0.5
    assert c1["mean"]["low"] <= c1["mean"]["value"] <= c1["mean"]["high"]
    assert summary["items"]["Q6"]["unparseable_rate"] == 0.25 and summary["items"]["Q6"]["shares"]["c"] == 1.0
    assert summary["items"]["Q1"]["n"] == 4 and summary["items"]["Q1"]["unparseable_rate"] == 0.0
    assert summary["criteria"]["C3"]["rate"]["value"] == 1.0 and summary["criteria"]["C3"]["majority"] is True
    assert summary["items"]["Q5"]["majority"] == "b"  # b, b, c, c: tied, the lower answer
    assert "Q5" in summary["tied_items"]


def persona_distribution(letters: dict) -> dict:
    """A degenerate distribution: probability 1 on the given letter of each item."""
    return {iid: {x: float(x == letters[iid]) for x in SWED.items[iid].letters} for iid in letters}


def test_loglik_draws_follow_the_distributions():
    sure = persona_distribution(table9("Pro-ED"))
    draws = draw_answer_sets(SWED, sure, 20, seed=1, key="p1")
    assert all(d == table9("Pro-ED") for d in draws)
    split = {"Q6": {"a": 0.7, "b": 0.0, "c": 0.1, "d": 0.1, "e": 0.1}}
    rate = sum(evaluate(SWED, d)["C3"] for d in draw_answer_sets(SWED, split, 4000, seed=0)) / 4000
    assert rate == pytest.approx(0.3, abs=0.03)
    administered = {"mode": "loglik", "distributions": {"p1": sure, "p2": persona_distribution(table9("Anti-ED"))}}
    summary = summarise(SWED, administered, config().statistics, draws_per_persona=10)
    assert summary["respondents"] == 2 and summary["items"]["Q6"]["shares"]["c"] == 1.0  # loglik: personas
    assert summary["criteria"]["C1"]["per_persona"]["p1"] == pytest.approx(45.0)
    assert {c["scoring"] for c in summary["criteria"].values()} == {"exact"}
    majority, ties = distribution_majority(SWED, administered["distributions"])
    assert majority["Q5"] == "a" and "Q5" in ties  # a (Anti-ED) and b (Pro-ED) at 0.5 each


def test_loglik_scores_are_exact_expectations_that_rounding_noise_cannot_flip():
    """A persona's score is its expected score under its distributions (items independently), computed by
    enumeration: WCS is the mean of the items' expected rescaled values, C3 the probability of its options,
    C4 a Poisson-binomial tail; the draws agree in the limit. Noise in the last bits of the probabilities
    (another CPU kind) moves a score by about as much, where a drawn answer set can flip to another option."""
    import numpy as np

    from hivelm.survey import scoring

    rng = np.random.default_rng(0)
    dist = {iid: dict(zip(item.letters, rng.dirichlet(np.ones(len(item.letters)))))
            for iid, item in SWED.items.items() if iid in ("Q5", "Q6", "Q7", "Q8", "Q9", "Q13", "Q14", "Q15", "Q16")}
    exact = {cid: scoring._persona_value(*s) for cid, s in scoring.persona_distribution(SWED, dist).items()}

    def expected(iid, formula):
        item = SWED.items[iid]
        return sum(p * formula(item.keyed(item.option(x).code)) for x, p in dist[iid].items())
    wcs = SWED.criteria["C1"].params["items"]
    assert exact["C1"] == pytest.approx(np.mean([expected(i, scoring._formula(f)) for i, f in wcs.items()]), rel=1e-12)
    assert exact["C3"] == pytest.approx(dist["Q6"]["c"] + dist["Q6"]["d"] + dist["Q6"]["e"], rel=1e-12)
    yes = [expected(i, lambda x: float(x == 1)) for i in ("Q13", "Q14", "Q15", "Q16")]
    tail = sum(math.prod(y if i in chosen else 1 - y for i, y in enumerate(yes))
               for chosen in [set(range(4))] + [set(range(4)) - {j} for j in range(4)])
    assert exact["C4"] == pytest.approx(tail, rel=1e-12)
    assert exact["B4"] is None  # Q10 not asked: undecided, as with drawn answer sets
    drawn = scoring.draw_answer_sets(SWED, dist, 20000, seed=0, key="p")
    for cid in ("C1", "WCS_high", "C2", "C3", "C4", "C2_C3_C4"):
        mc = scoring._persona_value([scoring.evaluate(SWED, a)[cid] for a in drawn])
        assert mc == pytest.approx(exact[cid], abs=0.35 if cid == "C1" else 0.015), cid
    noisy = {iid: {x: p * (1 + 1e-7 * (-1) ** k) for k, (x, p) in enumerate(d.items())} for iid, d in dist.items()}
    moved = {cid: scoring._persona_value(*s) for cid, s in scoring.persona_distribution(SWED, noisy).items()}
    assert all(moved[c] == pytest.approx(exact[c], rel=1e-6) for c in exact if exact[c] is not None)


def test_criteria_too_large_to_enumerate_are_drawn_and_say_so(monkeypatch):
    from hivelm.survey import scoring

    monkeypatch.setattr(scoring, "EXACT_LIMIT", 100)  # WCS has 3,500 joint answers; C2_C3_C4 320
    flat = {iid: {x: 1 / len(item.letters) for x in item.letters} for iid, item in SWED.items.items()}
    summary = summarise(SWED, {"mode": "loglik", "distributions": {"p1": flat, "p2": flat}}, config().statistics,
                        draws_per_persona=50)
    scored = {cid: c["scoring"] for cid, c in summary["criteria"].items()}
    assert scored["C3"] == scored["C4"] == "exact"
    assert scored["C1"] == scored["C2_C3_C4"] == "monte_carlo (50 answer sets per persona)"
    assert summary["criteria"]["C3"]["per_persona"]["p1"] == pytest.approx(0.6)  # exact: 3 of 5 options
    assert summary["criteria"]["C1"]["per_persona"]["p1"] != pytest.approx(50.0, abs=1e-9)  # drawn: noisy


def test_contrasts_between_communities():
    summaries = {
        "pro": summarise(SWED, generated({f"p{i}": [table9("Pro-ED")] for i in range(6)}), config().statistics),
        "anti": summarise(SWED, generated({f"p{i}": [table9("Anti-ED")] for i in range(6)}), config().statistics),
    }
    result = contrasts(summaries, config().statistics)["anti vs pro"]
    assert result["criterion"] == "C1" and result["difference"] == pytest.approx(40 / 3 - 45)
    assert result["p_value"] < 0.05 and result["low"] <= result["difference"] <= result["high"]
    no_primary = {k: v | {"primary": None} for k, v in summaries.items()}
    assert contrasts(no_primary, config().statistics)["anti vs pro"]["difference"] is None


def test_survey_score_cli_prints_table_and_json(tmp_path, capsys, monkeypatch):
    from hivelm.survey.collected import survey_score_main

    answers = {c: table9(c) | {"Q13": "a", "Q14": "b", "Q15": "b"} for c in TABLE9}
    path = write(tmp_path / "answers.json", json.dumps(answers))
    monkeypatch.chdir(REPO)
    assert survey_score_main("swed", path, as_json=True) == 0
    printed = json.loads(capsys.readouterr().out)
    assert round(printed["Weight Loss Drugs"]["criteria"]["C1"], 1) == 16.7
    assert printed["Anti-ED"]["criteria"]["C3"] is True and printed["Anti-ED"]["criteria"]["C4"] is False
    assert survey_score_main("configs/instruments/swed.yaml", path) == 0
    table = capsys.readouterr().out
    assert "Pro-ED" in table and "45.0" in table and "C1" in table
    bad = write(tmp_path / "bad.json", json.dumps({"Pro-ED": {"Q6": "b"}, "Keto": {"Q8": "z"}}))
    with pytest.raises(HiveError, match=r"bad.json: respondent 'Keto': item Q8: 'z' is not one of the options"):
        survey_score_main("swed", bad)
    with pytest.raises(HiveError, match="not a valid answers file"):
        survey_score_main("swed", write(tmp_path / "broken.json", "{nope"))


# ---------------------------------------------------------------------------------------------- models

FEW = select_items(SWED, ["Q5", "Q6", "Q10", "Q11", "Q17"])


def test_select_items_keeps_only_computable_criteria():
    assert list(FEW.items) == ["Q5", "Q6", "Q10", "Q11", "Q17"]
    assert set(FEW.criteria) == {"C3", "B4"} and FEW.primary is None
    assert set(select_items(SWED, WCS_ITEMS).criteria) == {"C1", "WCS_high", "C2", "C3"}


def naive_logprob(model, tokenizer, record, reply):
    import torch

    prefix = tokenizer.apply_chat_template([{"role": "system", "content": record["system"]},
                                            {"role": "user", "content": record["prompt"]}],
                                           add_generation_prompt=True, tokenize=False)
    p = tokenizer(prefix, add_special_tokens=False)["input_ids"]
    r = tokenizer(reply, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        logp = model(torch.tensor([p + r])).logits[0].float().log_softmax(-1)
    return sum(logp[len(p) - 1 + j, r[j]].item() for j in range(len(r))) / len(r)


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_loglik_matches_one_option_at_a_time_scoring(tiny_model_dir, attention):
    """The shared-prefix scoring (a respondent's common prompt once, each item's rest once, each choice
    after it) gives what one full forward pass per choice gives: for plain and in-context respondents,
    several samples each, with respondents packed into a batch (16), split across batches (4) or alone (1)."""
    from hivelm.models import load_causal_lm
    from hivelm.survey.answers import option_logprobs

    model, tokenizer = load_causal_lm(tiny_model_dir, attn_implementation=attention)
    posts = [f"post {i} about almond flour and long runs, meal prep and rest days" for i in range(12)]
    records = build_item_prompts(FEW, PERSONAS[:2], "keto cooking", mode="loglik") + build_item_prompts(
        FEW, PERSONAS[2:4], "keto cooking", 2, posts, mode="loglik", in_context=InContextConfig(k=3, words=8),
        community="keto")
    expected = [[naive_logprob(model, tokenizer, record, reply) for _, reply in record["choices"]]
                for record in records]
    for batch_size in (16, 4, 1):
        scores = option_logprobs(model, tokenizer, records, batch_size=batch_size)
        for got, want in zip(scores, expected):
            assert got == pytest.approx(want, abs=1e-4)


def test_loglik_distributions_sum_to_one_and_move_with_a_lora_adapter(tiny_model_dir):
    from peft import LoraConfig, get_peft_model

    from hivelm.models import load_causal_lm
    from hivelm.survey.answers import administer

    model, tokenizer = load_causal_lm(tiny_model_dir)
    cfg = config(batch_size=8)
    plain = administer(model, tokenizer, FEW, PERSONAS[:2], "keto cooking", cfg)["distributions"]
    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=16, target_modules=["q_proj", "v_proj"],
                                                  init_lora_weights=False)).eval()
    tuned = administer(peft_model, tokenizer, FEW, PERSONAS[:2], "keto cooking", cfg)["distributions"]
    with peft_model.disable_adapter():
        switched_off = administer(peft_model, tokenizer, FEW, PERSONAS[:2], "keto cooking", cfg)["distributions"]
    for persona in ("p01", "p02"):
        for iid in ("Q5", "Q6", "Q10", "Q17"):
            assert math.fsum(plain[persona][iid].values()) == pytest.approx(1.0)
            assert all(0 < p < 1 for p in tuned[persona][iid].values())
        assert set(plain[persona]["Q11"]) == set("abcde")  # P(chosen) per option, each its own yes/no
    delta = max(abs(tuned[p][i][x] - plain[p][i][x]) for p in plain for i in plain[p] for x in plain[p][i])
    assert delta > 1e-3
    back = max(abs(switched_off[p][i][x] - plain[p][i][x]) for p in plain for i in plain[p] for x in plain[p][i])
    assert back < 1e-5


def test_adapter_scale_zero_reproduces_the_untuned_model_and_the_scale_is_restored(tiny_model_dir):
    """The dose-response's s = 0 (peft LoRA scaling) gives the untuned model's logliks; s = 0.5 lies between."""
    from peft import LoraConfig, get_peft_model

    from hivelm.models import adapter_scale, load_causal_lm
    from hivelm.survey.answers import option_logprobs

    model, tokenizer = load_causal_lm(tiny_model_dir)
    records = build_item_prompts(select_items(SWED, ["Q6", "Q13"]), PERSONAS[:2], "keto cooking", mode="loglik")
    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=16, target_modules=["q_proj", "v_proj"],
                                                  init_lora_weights=False)).eval()

    def flat(scores):
        return [x for row in scores for x in row]

    tuned = flat(option_logprobs(peft_model, tokenizer, records))
    with peft_model.disable_adapter():
        untuned = flat(option_logprobs(peft_model, tokenizer, records))
    with adapter_scale(peft_model, 0.0):
        zero = flat(option_logprobs(peft_model, tokenizer, records))
    with adapter_scale(peft_model, 0.5):
        half = flat(option_logprobs(peft_model, tokenizer, records))
    assert zero == pytest.approx(untuned, abs=1e-5) and max(abs(a - b) for a, b in zip(tuned, untuned)) > 1e-3
    assert max(abs(a - b) for a, b in zip(half, tuned)) > 1e-4 and max(abs(a - b) for a, b in zip(half, zero)) > 1e-4
    assert flat(option_logprobs(peft_model, tokenizer, records)) == pytest.approx(tuned, abs=1e-6)  # restored


def test_generate_mode_records_parsed_answers_or_unparseable(tiny_model_dir):
    from hivelm.models import load_causal_lm
    from hivelm.survey.answers import administer

    model, tokenizer = load_causal_lm(tiny_model_dir)
    cfg = config(mode="generate", samples_per_item=2, max_new_tokens=4, batch_size=8)
    result = administer(model, tokenizer, FEW, PERSONAS[:2], "keto cooking", cfg)
    assert len(result["responses"]) == 2 * 2 * 5 and set(result["answers"]) == {"p01", "p02"}
    for response in result["responses"]:
        item = FEW.items[response["item_id"]]
        assert response["answer"] == parse_answer(item, response["text"])
    summary = summarise(FEW, result, cfg.statistics)
    json.dumps(summary, allow_nan=False)
    assert summary["respondents"] == 4 and 0.0 <= summary["unparseable_rate"] <= 1.0


def test_survey_plot_rows_plot_the_instruments_primary_score_not_the_first_criterion():
    """EDE-Q lists its subscales before `global`, its primary score; the dvc plot must show `global`."""
    from hivelm.stages.summarize import survey_plot_rows

    def model(primary_value):
        return {"primary": "global", "criteria": {
            "restraint": {"mean": {"value": 1.0, "low": 0.5, "high": 1.5}},
            "global": {"mean": {"value": primary_value, "low": primary_value - 0.2, "high": primary_value + 0.2}},
            "probable": {"rate": {"value": 0.25, "low": 0.0, "high": 0.5}}}}

    surveys = {"keto": {"corpora": {"finetuned": model(2.0), "untuned": model(3.0)}},
               "running": {"corpora": {"finetuned": {"primary": "global", "criteria": {
                   "global": {"mean": {"value": None, "low": None, "high": None}}}}}}}
    assert survey_plot_rows(surveys) == [
        {"model": "keto/finetuned", "criterion": "global", "value": 2.0, "low": 1.8, "high": 2.2},
        {"model": "keto/untuned", "criterion": "global", "value": 3.0, "low": 2.8, "high": 3.2}]
