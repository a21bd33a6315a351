"""Scoring survey answers: item values, criteria, respondents, majority votes, summaries and contrasts.

Pure: no I/O, no torch (numpy and hivelm.metrics only), so every rule is tested on hand-scored fixtures.

Answers are dicts {item id: answer}, where an answer is an option letter, a number (numeric items), a list of
letters (multi_select), or missing: absent, None or UNPARSEABLE. A criterion that needs a missing answer is
None (see instrument.py for when an answer is "needed").

Two views of one model's survey, both reported:
  - per respondent (every sample scored, not a majority vote first): in generate mode each (persona, sample) is
    one respondent with its own sampled answer set; in loglik mode each persona gives a full probability
    distribution per item, and its respondents are every joint answer to the items a criterion reads, each
    weighted by its probability (items independently): a persona's score is its *expected* score, computed
    exactly, and booleans such as C3 become probabilities. Exact rather than drawn because a drawn answer
    flips to the next option when its random number lies within rounding noise of a boundary, and rounding
    noise is what another CPU kind adds (docs/explanation/performance.md, "The same numbers on any CPU"); an
    exact expectation moves by the noise only. A criterion whose items have more than EXACT_LIMIT joint answers
    (none of the shipped SWED's; EDE-Q's larger subscales) falls back to Monte-Carlo answer sets (DEFAULT_DRAWS,
    seeded), and the summary names it. Intervals are percentile bootstraps over personas (metrics.bootstrap),
    because the personas, not the answer sets, are the independent units.
  - majority vote (the paper's view, section 6): per item the most frequent parseable answer across all
    respondents (loglik: the mode of the personas' mean distribution), then criteria once. Ties go to the
    option with the LOWEST keyed value, the less-concerning answer, so a tie never inflates risk; ties are
    counted. Numeric items use the mean (the paper's code used the mean Q10 count); multi_select options are
    chosen when more than half of the answers chose them (exactly half: not chosen, counted as a tie).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from functools import lru_cache
from itertools import combinations, product
from typing import Any

from hivelm.rng import keyed_rng
from hivelm.survey.instrument import Instrument, InstrumentError, Item, built_on, compile_formula, reads
from hivelm.survey.parse import UNPARSEABLE

QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
DEFAULT_DRAWS = 200
"""Monte-Carlo answer sets per persona in loglik mode, for a criterion too large to enumerate (EXACT_LIMIT).
With a respondent-level WCS spread of about 15 points (SmolLM2), 200 draws would add about 15 / sqrt(200) = 1
point of noise to a persona's expected WCS; intervals are over personas, so more draws only reduce this noise."""
EXACT_LIMIT = 20_000
"""Most joint answers enumerated for one criterion of one persona: SWED's WCS reads 5 items (5 x 5 x 7 x 4 x 5
= 3,500 joint answers), an EDE-Q subscale of 5 seven-point items 16,807; beyond that the enumeration costs more
than it is worth and the criterion is drawn (DEFAULT_DRAWS)."""


def is_missing(answer: Any) -> bool:
    return answer is None or (isinstance(answer, str) and answer == UNPARSEABLE)


def bin_letter(item: Item, answer: Any) -> str | None:
    """The option letter of an answer: itself for letters, the bin holding a number for numeric items."""
    if is_missing(answer):
        return None
    if isinstance(answer, str):
        return answer if item.option(answer) else None
    option = item.bin_of(float(answer)) if item.type == "numeric" else None
    return option.letter if option else None


def item_value(item: Item, answer: Any) -> float | None:
    """The keyed numeric value of an answer: the option code (reverse-keyed if so declared); a numeric
    answer's number, or a bin letter's representative value; the number of options chosen (multi_select)."""
    if is_missing(answer):
        return None
    if item.type == "multi_select":
        return float(len(answer)) if isinstance(answer, (list, tuple)) else None
    if item.type == "numeric" and not isinstance(answer, str):
        return float(answer)
    option = item.option(answer) if isinstance(answer, str) else None
    return item.keyed(option.code) if option else None


# ---------------------------------------------------------------------------------------------- criteria

def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


@lru_cache(maxsize=512)
def _formula(text: str):
    return compile_formula(text)


@lru_cache(maxsize=8192)
def _rescaled(text: str, value: float) -> float:
    """A formula at a keyed value; cached because an item has few values and enumeration asks often."""
    return _formula(text)(value)


def _scale_mean(p, instrument, answers, done):
    parts = []
    for iid, formula in p["items"].items():
        value = item_value(instrument.items[iid], answers.get(iid))
        if value is None:
            return None
        parts.append(_rescaled(str(formula), value))
    return _mean(parts)


def _subscale_mean(p, instrument, answers, done):
    members = instrument.subscale(p["subscale"])
    rated = [v for iid in members if (v := item_value(instrument.items[iid], answers.get(iid))) is not None]
    return _mean(rated) if rated and len(rated) > p["more_than"] * len(members) else None


def _mean_of(p, instrument, answers, done):
    parts = [done[c] for c in p["of"]]
    return None if any(v is None for v in parts) else _mean(parts)


def _answer_in(p, instrument, answers, done):
    item, answer = instrument.items[p["item"]], answers.get(p["item"])
    if is_missing(answer):
        return None
    if item.type == "multi_select":
        return any(letter in p["options"] for letter in answer)
    letter = bin_letter(item, answer)
    return None if letter is None else letter in p["options"]


def _count_yes(p, instrument, answers, done):
    """Decided as soon as the missing answers cannot change the outcome."""
    values = [item_value(instrument.items[iid], answers.get(iid)) for iid in p["items"]]
    yes, missing = sum(v == 1 for v in values), sum(v is None for v in values)
    if yes >= p["at_least"]:
        return True
    return False if yes + missing < p["at_least"] else None


def _threshold(p, instrument, answers, done):
    target = p["of"]
    value = done[target] if target in instrument.criteria else item_value(instrument.items[target], answers.get(target))
    return None if value is None else value >= p["at_least"] - 1e-9


def _all_of(p, instrument, answers, done):
    parts = [done[c] for c in p["of"]]
    return False if False in parts else (None if None in parts else True)


def _any_of(p, instrument, answers, done):
    parts = [done[c] for c in p["of"]]
    return True if True in parts else (None if None in parts else False)


KIND_FUNCTIONS = {"scale_mean": _scale_mean, "subscale_mean": _subscale_mean, "mean_of": _mean_of,
                  "answer_in": _answer_in, "count_yes": _count_yes, "threshold": _threshold,
                  "all_of": _all_of, "any_of": _any_of}


def evaluate(instrument: Instrument, answers: Mapping[str, Any], only: Collection[str] | None = None
             ) -> dict[str, float | bool | None]:
    """Every criterion of the instrument (or those in `only`, which must hold the criteria they build on) on
    one answer set, in dependency order."""
    done: dict[str, Any] = {}
    for cid, criterion in instrument.criteria.items():
        if only is None or cid in only:
            done[cid] = KIND_FUNCTIONS[criterion.kind](criterion.params, instrument, answers, done)
    return done


def check_answers(instrument: Instrument, answers: Any, where: str = "answers") -> dict[str, Any]:
    """Validate and normalise answers collected elsewhere: letters lowercased, null kept as missing.
    Raises InstrumentError naming `where` and the item on unknown items or impossible answers."""
    if not isinstance(answers, Mapping):
        raise InstrumentError(f"{where}: answers must map item ids to answers")
    clean: dict[str, Any] = {}
    for iid, answer in answers.items():
        item = instrument.items.get(str(iid))
        at = f"{where}: item {iid}"
        if item is None:
            raise InstrumentError(f"{at}: not an item of {instrument.id} ({', '.join(instrument.items)})")
        if is_missing(answer):
            clean[item.id] = UNPARSEABLE if answer == UNPARSEABLE else None
        elif item.type == "multi_select":
            if not isinstance(answer, list) or not all(isinstance(a, str) for a in answer):
                raise InstrumentError(f"{at}: a multi_select answer is a list of letters (got {answer!r})")
            letters = sorted({a.strip().lower() for a in answer})
            if bad := [a for a in letters if a not in item.letters]:
                raise InstrumentError(f"{at}: {bad} not among the options {list(item.letters)}")
            clean[item.id] = letters
        elif isinstance(answer, str):
            letter = answer.strip().lower()
            if letter not in item.letters:
                raise InstrumentError(f"{at}: {answer!r} is not one of the options {list(item.letters)}")
            clean[item.id] = letter
        elif item.type == "numeric" and isinstance(answer, (int, float)) and not isinstance(answer, bool):
            if item.bin_of(float(answer)) is None:
                low, high = item.options[0].low, item.options[-1].high
                raise InstrumentError(f"{at}: {answer} is outside the item's range [{low:g}, {high:g})")
            clean[item.id] = float(answer)
        else:
            wanted = "a number or a bin letter" if item.type == "numeric" else "an option letter"
            raise InstrumentError(f"{at}: expected {wanted} (got {answer!r})")
    return clean


def score_answers(instrument: Instrument, answers: Mapping[str, Any], where: str = "answers") -> dict:
    """Criteria for one respondent's answers collected elsewhere (backs `hivelm survey-score`):
    {"criteria": {id: value}, "values": {item: keyed value}, "missing": [items not answered or unreadable]}."""
    clean = check_answers(instrument, answers, where)
    return {
        "criteria": evaluate(instrument, clean),
        "values": {iid: item_value(item, clean.get(iid)) for iid, item in instrument.items.items()},
        "missing": [iid for iid in instrument.items if is_missing(clean.get(iid))],
    }


# ---------------------------------------------------------------------------------------------- majority

def _lowest_keyed(item: Item, letters: Sequence[str]) -> str:
    return min(letters, key=lambda letter: (item.keyed(item.option(letter).code), letter))


def majority_answers(instrument: Instrument, answer_sets: Sequence[Mapping[str, Any]]) -> tuple[dict, list[str]]:
    """The paper's majority-vote answer set over respondents, and the items whose vote was tied (see the
    module docstring for the tie rule). Items with no parseable answer are left out (missing)."""
    result: dict[str, Any] = {}
    ties: list[str] = []
    for iid, item in instrument.items.items():
        given = [a.get(iid) for a in answer_sets if not is_missing(a.get(iid))]
        if not given:
            continue
        if item.type == "numeric":
            result[iid] = _mean([item_value(item, a) for a in given])
        elif item.type == "multi_select":
            counts = Counter(letter for a in given for letter in a)
            result[iid] = sorted(letter for letter in item.letters if counts[letter] * 2 > len(given))
            if any(counts[letter] * 2 == len(given) for letter in item.letters):
                ties.append(iid)
        else:
            counts = Counter(given)
            top = max(counts.values())
            winners = [letter for letter in item.letters if counts[letter] == top]
            if len(winners) > 1:
                ties.append(iid)
            result[iid] = _lowest_keyed(item, winners)
    return result, ties


def mean_distributions(instrument: Instrument, distributions: Mapping[str, Mapping[str, Mapping[str, float]]]
                       ) -> dict[str, dict[str, float]]:
    """Per item, the personas' option probabilities averaged (for plots and the loglik majority)."""
    personas = list(distributions)
    return {iid: {letter: _mean([distributions[p][iid][letter] for p in personas]) for letter in item.letters}
            for iid, item in instrument.items.items() if personas and all(iid in distributions[p] for p in personas)}


def distribution_majority(instrument: Instrument, distributions) -> tuple[dict, list[str]]:
    """Majority view of loglik results: the mode of each item's mean distribution (numeric: the expected
    value over bins; multi_select: options with mean probability above one half); same tie rule."""
    result: dict[str, Any] = {}
    ties: list[str] = []
    for iid, shares in mean_distributions(instrument, distributions).items():
        item = instrument.items[iid]
        if item.type == "numeric":
            result[iid] = sum(p * item.option(letter).code for letter, p in shares.items())
        elif item.type == "multi_select":
            result[iid] = sorted(letter for letter, p in shares.items() if p > 0.5)
            ties += [iid] if any(abs(p - 0.5) < 1e-12 for p in shares.values()) else []
        else:
            top = max(shares.values())
            winners = [letter for letter, p in shares.items() if top - p < 1e-12]
            ties += [iid] if len(winners) > 1 else []
            result[iid] = _lowest_keyed(item, winners)
    return result, ties


# ---------------------------------------------------------------------------------------------- respondents

def draw_answer_sets(instrument: Instrument, distribution: Mapping[str, Mapping[str, float]], draws: int,
                     seed: int = 0, key: str = "") -> list[dict[str, Any]]:
    """`draws` answer sets sampled from one persona's per-item distributions, items independently; a
    multi_select option is chosen with its own probability. Seeded by `seed` and `key` (the persona)."""
    import numpy as np

    rng = keyed_rng(seed, key)
    sets: list[dict[str, Any]] = [{} for _ in range(draws)]
    for iid, item in instrument.items.items():
        probs = distribution.get(iid)
        if probs is None:
            continue
        if item.type == "multi_select":
            chosen = rng.random((draws, len(item.letters))) < np.array([probs[x] for x in item.letters])
            for row, answer in zip(chosen, sets):
                answer[iid] = [x for x, c in zip(item.letters, row) if c]
        else:
            p = np.array([probs[x] for x in item.letters], dtype=float)
            picks = rng.choice(len(p), size=draws, p=p / p.sum())
            for pick, answer in zip(picks, sets):
                answer[iid] = item.letters[pick]
    return sets


def _answers(item: Item, probs: Mapping[str, float]) -> list[tuple[Any, float]]:
    """Every answer to an item with its probability under a persona's distribution, as draw_answer_sets draws
    them: a letter (probabilities renormalised); for multi_select, every set of options, each option chosen
    with its own probability. Answers of probability 0 are left out."""
    if item.type == "multi_select":
        sets = []
        for chosen in product((False, True), repeat=len(item.letters)):
            weight = math.prod(probs[x] if c else 1.0 - probs[x] for x, c in zip(item.letters, chosen))
            sets += [([x for x, c in zip(item.letters, chosen) if c], weight)] if weight > 0 else []
        return sets
    total = sum(probs[x] for x in item.letters)
    return [(x, probs[x] / total) for x in item.letters if probs[x] > 0]


Scores = tuple[list, list[float]]
"""One persona's respondents for one criterion: (scores, weights), the weights summing to 1 per persona in
loglik mode (probabilities, or 1 / draws) and 1 per sampled answer set in generate mode."""


def _joint_answers(instrument: Instrument, distribution: Mapping[str, Mapping[str, float]]
                   ) -> dict[tuple[str, ...], tuple[list[str], list[list[tuple[Any, float]]]]]:
    """{items: (the criteria that read exactly these items, every answer to each item)}: criteria reading the
    same items share one enumeration. Items absent from `distribution` are unanswered, so not enumerated."""
    groups: dict[tuple[str, ...], tuple[list[str], list]] = {}
    for cid in instrument.criteria:
        items = tuple(i for i in reads(instrument, cid) if i in distribution)
        if items not in groups:
            groups[items] = ([], [_answers(instrument.items[i], distribution[i]) for i in items])
        groups[items][0].append(cid)
    return groups


def _enumerable(answers: Sequence[Sequence]) -> bool:
    return math.prod(len(a) for a in answers) <= EXACT_LIMIT


def persona_distribution(instrument: Instrument, distribution: Mapping[str, Mapping[str, float]],
                         draws: int = DEFAULT_DRAWS, seed: int = 0, key: str = "") -> dict[str, Scores]:
    """Every criterion's scores over one persona's answer sets (loglik mode): exactly, every joint answer to the
    items the criterion reads weighted by its probability (items independently), where those items have at
    most EXACT_LIMIT joint answers; else `draws` Monte-Carlo answer sets (draw_answer_sets, seeded by `seed`
    and `key`) of equal weight. Items absent from `distribution` are unanswered."""
    out: dict[str, Scores] = {}
    drawn = None
    for items, (cids, answers) in _joint_answers(instrument, distribution).items():
        if not _enumerable(answers):
            drawn = drawn or [evaluate(instrument, a) for a in draw_answer_sets(instrument, distribution, draws,
                                                                                seed, key)]
            out |= {cid: ([s[cid] for s in drawn], [1.0 / len(drawn)] * len(drawn)) for cid in cids}
            continue
        needed = built_on(instrument, cids)
        values: dict[str, list] = {cid: [] for cid in cids}
        weights = []
        for combo in product(*answers):
            scores = evaluate(instrument, {i: a for i, (a, _) in zip(items, combo)}, needed)
            weights.append(math.prod(p for _, p in combo))
            for cid in cids:
                values[cid].append(scores[cid])
        out |= {cid: (values[cid], weights) for cid in cids}
    return out


def exact_criteria(instrument: Instrument, distribution: Mapping[str, Mapping[str, float]]) -> list[str]:
    """The criteria persona_distribution computes exactly for a persona with this distribution: those whose
    items have at most EXACT_LIMIT joint answers (the others are drawn)."""
    return [cid for cids, answers in _joint_answers(instrument, distribution).values() if _enumerable(answers)
            for cid in cids]


def respondents(instrument: Instrument, administered: Mapping, draws_per_persona: int = DEFAULT_DRAWS,
                seed: int = 0) -> dict[str, dict[str, Scores]]:
    """{persona: {criterion: (scores, weights)}}: each sampled and parsed answer set scored (generate), or each
    persona's distributions scored exactly where feasible (loglik, persona_distribution)."""
    if administered["mode"] == "generate":
        out = {}
        for persona, sets in administered["answers"].items():
            rows = [evaluate(instrument, answers) for answers in sets]
            out[persona] = {cid: ([r[cid] for r in rows], [1.0] * len(rows)) for cid in instrument.criteria}
        return out
    return {p: persona_distribution(instrument, dist, draws_per_persona, seed, p)
            for p, dist in administered["distributions"].items()}


# ---------------------------------------------------------------------------------------------- summaries

def _finite(values) -> list[float]:
    return [float(v) for v in values if v is not None and math.isfinite(float(v))]


def _json_number(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _interval(values: Sequence[float], cfg) -> dict[str, float | None]:
    import numpy as np

    from hivelm.metrics import bootstrap

    values = _finite(values)
    if not values:
        return {"value": None, "low": None, "high": None}
    result = bootstrap(np.mean, [np.asarray(values)], cfg.bootstrap_resamples, cfg.confidence, cfg.seed)
    return {k: _json_number(v) for k, v in result.items()}


def _persona_value(scores: Sequence[float | bool | None], weights: Sequence[float] | None = None) -> float | None:
    """A persona's weighted mean score (numeric) or probability of True (boolean) over its respondents, among
    those for whom the criterion is decided; None if it is decided for none."""
    weights = [1.0] * len(scores) if weights is None else weights
    known = [(float(s), w) for s, w in zip(scores, weights) if s is not None and w > 0]
    total = sum(w for _, w in known)
    return sum(s * w for s, w in known) / total if known and total > 0 else None


def criterion_summary(criterion, per_persona: Mapping[str, Scores], cfg) -> dict:
    """One criterion over a model's respondents ({persona: (scores, weights)}): bootstrap interval over
    personas, per-persona values, the (weighted) share of respondents for whom it was undecidable, and
    (numeric) respondent-level quantiles (inverted CDF: each a score that some respondent has)."""
    import numpy as np

    persona_values = {p: _persona_value(*scores) for p, scores in per_persona.items()}
    everyone = [(s, w) for values, weights in per_persona.values() for s, w in zip(values, weights)]
    total = sum(w for _, w in everyone)
    summary = {"numeric": criterion.numeric,
               ("mean" if criterion.numeric else "rate"): _interval(list(persona_values.values()), cfg),
               "per_persona": persona_values,
               "missing_rate": sum(w for s, w in everyone if s is None) / total if total > 0 else 0.0}
    known = [(float(s), w) for s, w in everyone if s is not None and math.isfinite(float(s)) and w > 0]
    if criterion.numeric and known:
        x, w = np.array(known).T
        summary["quantiles"] = {f"q{int(q * 100):02d}": float(np.quantile(x, q, weights=w, method="inverted_cdf"))
                                for q in QUANTILES}
    return summary


def estimate(summary: Mapping | None) -> dict | None:
    """The {value, low, high} of a criterion_summary: its mean (numeric criteria) or its rate (boolean ones)."""
    return (summary.get("mean") or summary.get("rate")) if summary else None


def item_summary(item: Item, answers: Sequence[Any]) -> dict:
    """Per item: shares of each option among parseable answers (numeric answers by bin; multi_select: share
    choosing each option), the unparseable rate, and the mean keyed value."""
    n = len(answers)
    unparseable = sum(isinstance(a, str) and a == UNPARSEABLE for a in answers)
    parsed = [a for a in answers if not is_missing(a)]
    if item.type == "multi_select":
        shares = {x: sum(x in a for a in parsed) / max(1, len(parsed)) for x in item.letters}
    else:
        letters = Counter(bin_letter(item, a) for a in parsed)
        shares = {x: letters[x] / max(1, len(parsed)) for x in item.letters}
    values = _finite(item_value(item, a) for a in parsed)
    return {"n": n, "unparseable_rate": unparseable / max(1, n), "shares": shares,
            "mean_value": _mean(values) if values else None}


def summarise(instrument: Instrument, administered: Mapping, cfg, draws_per_persona: int | None = None) -> dict:
    """The numbers-only JSON of one model's survey (a community's survey report holds one per corpus).

    `administered` comes from answers.administer; `cfg` is a StatisticsConfig (survey.statistics:
    bootstrap_resamples, confidence, seed). In loglik mode each criterion says how it was scored ("scoring":
    exact, or Monte-Carlo with `draws_per_persona` answer sets, default DEFAULT_DRAWS, where its items have
    more than EXACT_LIMIT joint answers) and `respondents` counts personas; in generate mode it counts the
    sampled answer sets (samples_per_item per persona)."""
    draws = draws_per_persona or DEFAULT_DRAWS
    scores = respondents(instrument, administered, draws, cfg.seed)
    criteria = {cid: criterion_summary(c, {p: rows[cid] for p, rows in scores.items()}, cfg)
                for cid, c in instrument.criteria.items()}
    if administered["mode"] == "loglik":
        distributions = administered["distributions"]
        exact = set.intersection(*(set(exact_criteria(instrument, d)) for d in distributions.values())) \
            if distributions else set(instrument.criteria)
        for cid in criteria:
            criteria[cid]["scoring"] = "exact" if cid in exact else f"monte_carlo ({draws} answer sets per persona)"
        majority, ties = distribution_majority(instrument, distributions)
        means = mean_distributions(instrument, distributions)
        items = {iid: {"n": len(distributions), "unparseable_rate": 0.0, "shares": shares}
                 for iid, shares in means.items()}
        count = len(distributions)
    else:
        sets = administered["answers"]
        count = sum(len(s) for s in sets.values())
        flat = [answers for persona_sets in sets.values() for answers in persona_sets]
        majority, ties = majority_answers(instrument, flat)
        items = {iid: item_summary(item, [a.get(iid) for a in flat]) for iid, item in instrument.items.items()}
    majority_scores = evaluate(instrument, majority)
    for cid in criteria:
        criteria[cid]["majority"] = majority_scores[cid]
    for iid in items:
        items[iid]["majority"] = majority.get(iid)
    rates = [v["unparseable_rate"] for v in items.values()]
    return {
        "instrument": instrument.id, "mode": administered["mode"], "primary": instrument.primary,
        "personas": len(scores), "respondents": count,
        "unparseable_rate": _mean(rates) if rates else 0.0,
        "majority_ties": len(ties), "tied_items": ties,
        "criteria": criteria, "items": items,
    }


def contrasts(summaries: Mapping[str, Mapping], cfg, criterion: str | None = None) -> dict[str, dict]:
    """Pairwise differences between communities in a criterion's per-persona mean (default: the primary
    score, e.g. WCS): difference with a bootstrap interval and a two-sided permutation p-value, both over
    personas (metrics.bootstrap, metrics.permutation_pvalue). Unpaired, although the persona phrasings are
    shared: conservative."""
    import numpy as np

    from hivelm.metrics import bootstrap, permutation_pvalue

    out: dict[str, dict] = {}
    for a, b in combinations(sorted(summaries), 2):
        cid = criterion or summaries[a].get("primary")
        xa, xb = (np.asarray(_finite(summaries[k]["criteria"].get(cid, {}).get("per_persona", {}).values()))
                  for k in (a, b))
        if xa.size == 0 or xb.size == 0:  # no primary score (e.g. survey.items left it out) or all undecided
            out[f"{a} vs {b}"] = {"criterion": cid, "difference": None, "low": None, "high": None, "p_value": None}
            continue
        diff = bootstrap(lambda x, y: float(np.mean(x) - np.mean(y)), [xa, xb], cfg.bootstrap_resamples,
                         cfg.confidence, cfg.seed)
        out[f"{a} vs {b}"] = {"criterion": cid, "difference": diff["value"], "low": _json_number(diff["low"]),
                              "high": _json_number(diff["high"]),
                              "p_value": permutation_pvalue(xa, xb, cfg.permutations, cfg.seed)}
    return out
