"""The survey's validity card: checks that could show a model's answers follow the option layout, the wording
or chance rather than the items' content, and a verdict per model (README "Is the survey measuring anything?").

Pure: numpy and hivelm.rng only; tested with planted responders (tests/test_validity.py). The answers come
from answers.administer with survey.validity on: each item asked under K option orders (letters follow the
displayed position, answers mapped back to the keyed letters), its paraphrases, its reverse-worded twin.

Checks (each names its source; thresholds are survey.validity's, documented in config.py):
  order sensitivity  mean total-variation distance between an item's answer distributions across orders;
                     position bias: probability mass on the first / last displayed position above what the
                     order-averaged (content) distribution puts there; majority survival: share of items whose
                     majority answer is the same in every order (Dominguez-Olmedo et al., NeurIPS 2024).
  nulls              distance (mean TV) from a uniform responder and from a position-only responder (always
                     the first displayed option), scored the same way; indistinguishable = the distance's
                     interval reaches below survey.validity.min_null_distance.
  acquiescence       rate of endorsing both an item and its reverse-worded twin (Paulhus 1991; arXiv 2311.05297).
  consistency        Cronbach's alpha (Cronbach 1951) and McDonald's omega total (McDonald 1999, one factor fitted
                     by principal-axis factoring) per scale, from the exact covariance of the respondents'
                     answers (personas answering items independently), bootstrap over personas.
  retest             ICC(2,1), two-way random effects, absolute agreement, single rater (Shrout & Fleiss 1979),
                     of per-persona scores under two seeds where the second seed redraws something (in-context
                     posts); read with Koo & Li 2016 (< 0.5 poor). Skipped where nothing is redrawn.
  answer modes       majority agreement and score correlation of sampled answers vs loglik (arXiv 2402.14499).
  dose-response      the primary score with the adapter scaled by s (peft LoRA scaling), OLS slope over personas.
  variance           main-effect shares (eta squared, Cohen 1973) of order, paraphrase, persona and model in
                     per-persona primary scores: descriptive, the rest is interactions and noise.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from itertools import combinations
from typing import Any

from hivelm.rng import keyed_rng

CHECKS = ("order_sensitivity", "position_bias", "majority_survives", "distinct_from_uniform",
          "distinct_from_position", "acquiescence", "internal_consistency", "retest")
"""The checks a model's verdict rests on, in the card's order."""


# ---------------------------------------------------------------------------------------------- design

def option_orders(letters: Sequence[str], k: int, seed: int, key: str) -> list[tuple[str, ...]]:
    """K distinct orders of an item's options: the original, the reverse, then seeded permutations (fewer when
    the item has fewer distinct orders, e.g. two for a yes/no item)."""
    letters = tuple(letters)
    orders = [letters, letters[::-1]][:k]
    rng = keyed_rng(seed, key, "orders")
    wanted = min(k, math.factorial(len(letters)))
    while len(orders) < wanted:
        perm = tuple(letters[i] for i in rng.permutation(len(letters)))
        if perm not in orders:
            orders.append(perm)
    return orders


def item_variants(item, vcfg, seed: int) -> list[dict]:
    """Every way an item is asked (`vcfg`: ValidityConfig): each option order; each paraphrase in the original
    order (the variance decomposition compares forms there); the twin in every order, so that a responder who
    always takes the first option is not mistaken for a yes-sayer."""
    orders = option_orders(item.letters, vcfg.orders, seed, item.id)
    out = [{"order": k, "form": 0, "twin": False, "permutation": list(p)} for k, p in enumerate(orders)]
    if vcfg.paraphrases:
        out += [{"order": 0, "form": f, "twin": False, "permutation": list(orders[0])}
                for f in range(1, len(item.paraphrases) + 1)]
    if vcfg.twins and item.twin:
        out += [{"order": k, "form": 0, "twin": True, "permutation": list(p)} for k, p in enumerate(orders)]
    return out


class ballots:
    """Who is asked what (a split-ballot design, Schuman & Presser 1981): the first survey.validity.personas
    personas (the probes) answer every item in every option order, its paraphrases and its twin, so that the
    checks compare a persona with itself; every other persona answers in one order, the i-th persona in order
    i mod K, so that each order serves equally many personas and the headline stays order-balanced at the
    cost of a single-order survey."""

    def __init__(self, personas: Sequence[str], vcfg):
        self.index = {p: i for i, p in enumerate(personas)}
        self.probes, self.orders = vcfg.personas, vcfg.orders

    def probe(self, persona: str) -> bool:
        return self.index[persona] < self.probes

    def __call__(self, variants: list[dict], persona: str) -> list[dict]:
        if self.probe(persona):
            return variants
        ordered = [v for v in variants if v["form"] == 0 and not v["twin"]]
        return [ordered[self.index[persona] % self.orders % len(ordered)]]


def average(distributions: Sequence[Mapping]) -> dict:
    """Per persona and item, the mean of several {persona: {item: {letter: p}}} over those that hold it."""
    out: dict = {}
    for persona in dict.fromkeys(p for d in distributions for p in d):
        items = {iid for d in distributions for iid in d.get(persona, {})}
        out[persona] = {}
        for iid in sorted(items):
            held = [d[persona][iid] for d in distributions if iid in d.get(persona, {})]
            out[persona][iid] = {x: sum(h[x] for h in held) / len(held) for x in held[0]}
    return out


def split_variants(by_variant: Mapping[tuple, Mapping], variants: Mapping[str, list[dict]]) -> dict:
    """An administration's answers per variant (answers.distributions_by_variant) as the survey's headline
    `distributions` (form 0, averaged over the option orders) and its `validity` answers: `orders` (per item
    the displayed permutations), `by_order` (form 0, one distributions per order), `forms` (paraphrase f:
    distributions) and `twins` (the twin stems' distributions, averaged over the orders)."""
    count = max(v["order"] for vs in variants.values() for v in vs) + 1
    by_order = [by_variant.get((k, 0, False), {}) for k in range(count)]
    forms = sorted({key[1] for key in by_variant if key[1] > 0})
    twins = [d for key, d in sorted(by_variant.items()) if key[2]]
    return {"distributions": average(by_order),
            "validity": {"orders": {iid: [v["permutation"] for v in vs if v["form"] == 0 and not v["twin"]]
                                    for iid, vs in variants.items()},
                         "by_order": by_order,
                         "forms": {str(f): by_variant[(0, f, False)] for f in forms},
                         "twins": average(twins) if twins else {}}}


# ---------------------------------------------------------------------------------------------- helpers

LETTERED = ("single_choice", "yes_no", "numeric")
"""Item types asked under several option orders (multi_select items are asked option by option)."""


def tv(p: Mapping[str, float], q: Mapping[str, float]) -> float:
    """Total-variation distance between two answer distributions over the same options."""
    return 0.5 * sum(abs(p[x] - q.get(x, 0.0)) for x in p)


def over_personas(values: Mapping[str, float | None], stats) -> dict:
    """Mean over personas with a percentile bootstrap interval over personas (metrics.bootstrap), the unit
    every survey interval resamples; {value: None, ...} when no persona has a value."""
    import numpy as np

    from hivelm.metrics import bootstrap

    known = [float(v) for v in values.values() if v is not None and math.isfinite(float(v))]
    if not known:
        return {"value": None, "low": None, "high": None}
    result = bootstrap(np.mean, [np.asarray(known)], stats.bootstrap_resamples, stats.confidence, stats.seed)
    return {k: (v if math.isfinite(v) else None) for k, v in result.items() if k in ("value", "low", "high")}


def _mean(values) -> float | None:
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def persona_scores(instrument, distributions: Mapping, draws: int, seed: int) -> dict[str, dict[str, float | None]]:
    """{criterion: {persona: expected value}}: each persona's expected score under its distributions, scored as
    the survey scores its own respondents (scoring.persona_distribution: exact where feasible, else `draws`
    Monte-Carlo answer sets)."""
    from hivelm.survey.scoring import _persona_value, persona_distribution

    out: dict[str, dict] = {cid: {} for cid in instrument.criteria}
    for persona, dist in distributions.items():
        for cid, scores in persona_distribution(instrument, dist, draws, seed, persona).items():
            out[cid][persona] = _persona_value(*scores)
    return out


# ---------------------------------------------------------------------------------------------- order

def order_checks(instrument, by_order: Sequence[Mapping], orders: Mapping[str, list], stats) -> dict:
    """Order sensitivity (mean TV across each item's orders), position bias (excess mass on the first and
    last displayed positions over the order-averaged distribution's) and majority survival, per model."""
    items = [iid for iid, item in instrument.items.items() if item.type in LETTERED and len(orders.get(iid, [])) > 1]
    if not items:
        return {}
    avg = average(by_order)
    spread, first, last = {}, {}, {}
    probes = [p for p in avg if all(p in d for d in by_order)]  # asked in every order: compared with itself
    def everywhere(persona: str, iid: str) -> bool:  # the reruns re-ask only some items of some personas
        return all(iid in by_order[k].get(persona, {}) for k in range(len(orders[iid])))

    for persona in probes:
        tvs, top, bottom = [], [], []
        for iid in (i for i in items if everywhere(persona, i)):
            dists = [by_order[k][persona][iid] for k in range(len(orders[iid]))]
            tvs += [tv(a, b) for a, b in combinations(dists, 2)]
            for dist, perm in zip(dists, orders[iid]):
                top.append(dist[perm[0]] - avg[persona][iid][perm[0]])
                bottom.append(dist[perm[-1]] - avg[persona][iid][perm[-1]])
        spread[persona], first[persona], last[persona] = _mean(tvs), _mean(top), _mean(bottom)
    survives, compared = 0, 0
    for iid in items:
        asked = [p for p in probes if everywhere(p, iid)]
        if asked:
            majorities = {_majority([by_order[k][p][iid] for p in asked]) for k in range(len(orders[iid]))}
            survives, compared = survives + (len(majorities) == 1), compared + 1
    return {"probes": len(probes), "order_sensitivity": over_personas(spread, stats),
            "position_bias": {"first": over_personas(first, stats), "last": over_personas(last, stats)},
            "majority_survives": {"value": survives / compared if compared else None, "items": compared}}


def _majority(dists: Sequence[Mapping[str, float]]) -> str:
    mean = {x: sum(d[x] for d in dists) / len(dists) for x in dists[0]}
    return max(sorted(mean), key=lambda x: mean[x] + 0.0)


# ---------------------------------------------------------------------------------------------- nulls

def null_distributions(orders: Mapping[str, list], kind: str) -> list[dict]:
    """One null persona's answers per order: `uniform` (every displayed option alike) or `position_only`
    (always the first displayed option). [{item: {letter: p}}] per order."""
    count = max(len(o) for o in orders.values())
    out = []
    for k in range(count):
        dists = {}
        for iid, perms in orders.items():
            perm = perms[k % len(perms)]
            dists[iid] = ({x: 1 / len(perm) for x in perm} if kind == "uniform"
                          else {x: float(x == perm[0]) for x in perm})
        out.append(dists)
    return out


def null_checks(instrument, by_order: Sequence[Mapping], orders: Mapping[str, list], stats, draws: int) -> dict:
    """Each model's distance (mean TV over items and orders, per persona) from the two null responders, and
    the nulls' own scores (same scoring, order-averaged)."""
    items = [iid for iid, item in instrument.items.items() if item.type in LETTERED and iid in orders]
    out = {}
    for kind in ("uniform", "position_only"):
        null = null_distributions({iid: orders[iid] for iid in items}, kind)
        distance = {persona: _mean(tv(by_order[k][persona][iid], null[k][iid]) for iid in items
                                   for k in range(len(orders[iid])) if iid in by_order[k].get(persona, {}))
                    for persona in average(by_order)}
        mixed = average([{"null": n} for n in null])
        scores = persona_scores(instrument, mixed, draws, stats.seed)
        out[kind] = {"distance": over_personas(distance, stats),
                     "scores": {cid: v["null"] for cid, v in scores.items()}}
    return out


# ---------------------------------------------------------------------------------------------- acquiescence

def endorse(item, dist: Mapping[str, float]) -> float:
    """P(an answer above the middle of the item's keyed range): "yes" on a yes/no item, "often" or more on
    a frequency scale."""
    values = [item.keyed(o.code) for o in item.options]
    middle = (min(values) + max(values)) / 2
    return sum(p for x, p in dist.items() if item.keyed(item.option(x).code) > middle + 1e-9)


def acquiescence(instrument, plain: Mapping, twins: Mapping, stats) -> dict | None:
    """Rate at which a persona endorses both an item and its reverse-worded twin, both averaged over the option
    orders (a persona who reads both endorses both at most p (1 - p) <= 0.25 of the time)."""
    pairs = [iid for iid, item in instrument.items.items() if item.twin]
    rates = {p: _mean(endorse(instrument.items[iid], plain[p][iid]) * endorse(instrument.items[iid], twins[p][iid])
                      for iid in pairs if iid in twins.get(p, {}) and iid in plain.get(p, {}))
             for p in plain}
    if not pairs or all(v is None for v in rates.values()):
        return None
    return {"endorse_both": over_personas(rates, stats), "pairs": pairs}


# ---------------------------------------------------------------------------------------------- consistency

def cronbach_alpha(matrix) -> float:
    """Cronbach 1951: k / (k - 1) * (1 - sum of item variances / variance of the sum); rows = respondents."""
    import numpy as np

    return alpha_of(np.cov(np.asarray(matrix, dtype=float), rowvar=False))


def alpha_of(cov) -> float:
    """Cronbach's alpha from the items' covariance matrix (the variance of the sum is the sum of its cells)."""
    import numpy as np

    c = np.asarray(cov, dtype=float)
    k, total = c.shape[0], c.sum()
    return float(k / (k - 1) * (1 - np.trace(c) / total)) if total > 1e-12 else float("nan")


def mcdonald_omega(matrix, iterations: int = 30) -> float:
    """McDonald 1999 omega total on respondents' answers (rows); see omega_of."""
    import numpy as np

    return omega_of(np.cov(np.asarray(matrix, dtype=float), rowvar=False), iterations)


def omega_of(cov, iterations: int = 30) -> float:
    """McDonald 1999 omega total, (sum lambda)^2 / ((sum lambda)^2 + sum(1 - lambda^2)), with standardized
    one-factor loadings from iterated principal-axis factoring of the item correlations (communalities
    start at the squared multiple correlations; Harman 1976)."""
    import numpy as np

    c = np.asarray(cov, dtype=float)
    sd = np.sqrt(np.clip(np.diag(c), 0.0, None))
    if (sd < 1e-12).any():
        return float("nan")
    r = c / np.outer(sd, sd)
    h2 = np.clip(1 - 1 / np.diag(np.linalg.pinv(r)), 0.0, 0.999)
    for _ in range(iterations):
        reduced = r.copy()
        np.fill_diagonal(reduced, h2)
        values, vectors = np.linalg.eigh(reduced)
        loadings = vectors[:, -1] * math.sqrt(max(values[-1], 0.0))
        h2 = np.clip(loadings ** 2, 0.0, 0.999)
    loadings = loadings if loadings.sum() >= 0 else -loadings
    common = loadings.sum() ** 2
    return float(common / (common + (1 - loadings ** 2).sum()))


def scales(instrument) -> dict[str, list[str]]:
    """The scored scales: {criterion: its items} for scale_mean and subscale_mean criteria of 2+ items."""
    out = {}
    for cid, criterion in instrument.criteria.items():
        members = (list(criterion.params["items"]) if criterion.kind == "scale_mean" else
                   instrument.subscale(criterion.params["subscale"]) if criterion.kind == "subscale_mean" else [])
        members = [iid for iid in members if iid in instrument.items]
        if len(members) >= 2:
            out[cid] = members
    return out


def mixture_covariance(means, variances):
    """The covariance of the items over respondents when each persona (row) answers the items independently
    with these per-item means and variances and the personas weigh equally: the covariance of the means plus
    the mean within-persona variance on the diagonal (the limit of infinitely many answer sets per persona)."""
    import numpy as np

    m = np.asarray(means, dtype=float)
    centred = m - m.mean(0)
    return centred.T @ centred / len(m) + np.diag(np.asarray(variances, dtype=float).mean(0))


def consistency(instrument, distributions: Mapping, stats, resamples: int = 200) -> dict:
    """Alpha and omega per scale over respondents, from the exact covariance of the personas' answers
    (mixture_covariance: no answer sets drawn, so rounding noise cannot flip one), each with a percentile
    bootstrap over personas, the independent units (at most `resamples`: omega's eigen-solves)."""
    import numpy as np

    from hivelm.survey.scoring import item_value

    out = {}
    rng = np.random.default_rng(stats.seed)
    for cid, members in scales(instrument).items():
        people = [p for p, d in distributions.items() if all(i in d for i in members)]
        moments = np.zeros((len(people), len(members), 2))
        for row, persona in enumerate(people):
            for col, iid in enumerate(members):
                item, dist = instrument.items[iid], distributions[persona][iid]
                total = sum(dist.values())
                values = np.array([item_value(item, x) for x in dist], dtype=float)
                probs = np.array(list(dist.values()), dtype=float) / total
                mean = float(values @ probs)
                moments[row, col] = mean, float(((values - mean) ** 2) @ probs)
        entry: dict[str, Any] = {"items": members, "personas": len(people)}
        for name, fn in (("alpha", alpha_of), ("omega", omega_of)):
            value = fn(mixture_covariance(moments[..., 0], moments[..., 1])) if len(people) > 2 else float("nan")
            if not math.isfinite(value):
                entry[name] = {"value": None, "low": None, "high": None}
                continue
            picks = [rng.integers(len(people), size=len(people)) for _ in range(min(resamples, stats.bootstrap_resamples))]
            stats_ = np.array([fn(mixture_covariance(moments[i, :, 0], moments[i, :, 1])) for i in picks])
            stats_ = stats_[np.isfinite(stats_)]
            tail = (1 - stats.confidence) / 2
            low, high = (np.quantile(stats_, [tail, 1 - tail]) if stats_.size else (value, value))
            entry[name] = {"value": value, "low": min(float(low), value), "high": max(float(high), value)}
        out[cid] = entry
    return out


# ---------------------------------------------------------------------------------------------- retest

def icc_2_1(matrix) -> float:
    """ICC(2,1) of Shrout & Fleiss 1979 (two-way random effects, absolute agreement, single measurement):
    (MSR - MSE) / (MSR + (k - 1) MSE + k (MSC - MSE) / n); rows = subjects (personas), columns = seeds."""
    import numpy as np

    y = np.asarray(matrix, dtype=float)
    n, k = y.shape
    grand = y.mean()
    msr = k * ((y.mean(1) - grand) ** 2).sum() / (n - 1)
    msc = n * ((y.mean(0) - grand) ** 2).sum() / (k - 1)
    resid = y - y.mean(1, keepdims=True) - y.mean(0, keepdims=True) + grand
    mse = (resid ** 2).sum() / ((n - 1) * (k - 1))
    denominator = msr + (k - 1) * mse + k * (msc - mse) / n
    return float((msr - mse) / denominator) if denominator > 1e-12 else float("nan")


def retest(first: Mapping[str, Mapping], second: Mapping[str, Mapping], stats) -> dict:
    """ICC(2,1) per criterion between two seeds' per-persona scores, bootstrap over personas."""
    import numpy as np

    from hivelm.metrics import bootstrap

    out = {}
    for cid, values in first.items():
        pairs = [(float(v), float(second[cid][p])) for p, v in values.items()
                 if v is not None and second.get(cid, {}).get(p) is not None]
        value = icc_2_1(pairs) if len(pairs) >= 3 else float("nan")
        if not math.isfinite(value):
            out[cid] = {"value": None, "low": None, "high": None}
            continue
        result = bootstrap(icc_2_1, [np.asarray(pairs)], stats.bootstrap_resamples, stats.confidence, stats.seed)
        out[cid] = {k: (result[k] if math.isfinite(result[k]) else None) for k in ("value", "low", "high")}
    return out


# ---------------------------------------------------------------------------------------------- answer modes

def answer_modes(instrument, distributions: Mapping, generated: Mapping) -> dict | None:
    """Sampled answers beside loglik on the seeded items: majority agreement, Pearson correlation of the
    per-(persona, item) keyed values, and the unparseable share of the samples."""
    import numpy as np

    from hivelm.survey.scoring import is_missing, item_value, majority_answers

    items = sorted({iid for answers in generated.values() for iid in answers})
    if not items:
        return None
    agree, pairs, given, missing = 0, [], 0, 0
    for iid in items:
        item = instrument.items[iid]
        loglik = _majority([distributions[p][iid] for p in generated if p in distributions])
        flat = [{iid: a} for p in generated for a in generated[p].get(iid, [])]
        vote, _ = majority_answers(instrument, flat)
        agree += vote.get(iid) == loglik
        for p, answers in generated.items():
            values = [item_value(item, a) for a in answers.get(iid, []) if not is_missing(a)]
            given, missing = given + len(answers.get(iid, [])), missing + sum(is_missing(a) for a in answers.get(iid, []))
            if values and p in distributions:
                expected = sum(prob * item.keyed(item.option(x).code) for x, prob in distributions[p][iid].items())
                pairs.append((expected, sum(values) / len(values)))
    x = np.array(pairs, dtype=float)
    r = (float(np.corrcoef(x[:, 0], x[:, 1])[0, 1]) if len(x) >= 3 and x[:, 0].std() > 1e-12
         and x[:, 1].std() > 1e-12 else None)
    return {"items": items, "majority_agreement": agree / len(items), "score_correlation": r,
            "unparseable_rate": missing / max(1, given)}


# ---------------------------------------------------------------------------------------------- dose-response

def dose_response(instrument, by_scale: Mapping[float, Mapping], stats, draws: int) -> dict:
    """Per adapter scale s: each criterion's mean over personas with its interval; for the primary score the
    OLS slope over (s, persona score) pairs with a bootstrap over personas, and whether the means are
    monotone in s."""
    import numpy as np

    from hivelm.metrics import bootstrap

    scales_ = sorted(by_scale)
    scores = {s: persona_scores(instrument, by_scale[s], draws, stats.seed) for s in scales_}
    per_scale = {str(s): {cid: over_personas(v, stats) for cid, v in scores[s].items()} for s in scales_}
    primary = instrument.primary
    out: dict[str, Any] = {"scales": scales_, "criteria": per_scale, "primary": primary}
    if primary is None:
        return out
    personas = sorted(set.intersection(*(set(k for k, v in scores[s][primary].items() if v is not None)
                                          for s in scales_)))
    if len(personas) < 2:
        return out | {"slope": {"value": None, "low": None, "high": None}, "monotone": None}
    y = np.array([[scores[s][primary][p] for s in scales_] for p in personas], dtype=float)
    xs = np.asarray(scales_, dtype=float)

    def slope(rows):
        return float(np.polyfit(np.tile(xs, len(rows)), rows.reshape(-1), 1)[0])

    result = bootstrap(slope, [y], stats.bootstrap_resamples, stats.confidence, stats.seed)
    means = y.mean(0)
    steps = np.diff(means)
    return out | {"slope": {k: result[k] for k in ("value", "low", "high")},
                  "monotone": bool((steps >= -1e-9).all() or (steps <= 1e-9).all())}


# ---------------------------------------------------------------------------------------------- variance

def variance_rows(cards: Mapping[str, Mapping]) -> list[dict]:
    """{model: card} as rows {model, persona, order, form, score} of the primary score: each option order in
    the original wording, each paraphrase in the original order."""
    rows = []
    for model, card in cards.items():
        for k, values in enumerate(card.get("per_order", [])):
            rows += [{"model": model, "persona": p, "order": k, "form": 0, "score": v} for p, v in values.items()]
        for f, values in card.get("per_form", {}).items():
            rows += [{"model": model, "persona": p, "order": 0, "form": int(f), "score": v} for p, v in values.items()]
    return rows


def variance_shares(rows: Sequence[Mapping]) -> dict:
    """Main-effect shares (eta squared: between-level sum of squares over the total, Cohen 1973) of the
    primary score across rows {model, persona, order, form, score}. `order` is read over the original wording
    and `form` over the original order (where each varies alone); shares are descriptive and need not add up
    to 1: `rest` is interactions and noise."""
    rows = [r for r in rows if r.get("score") is not None]
    if len(rows) < 2:
        return {}

    def share(subset, factor):
        values = [r["score"] for r in subset]
        grand = sum(values) / len(values)
        total = sum((v - grand) ** 2 for v in values)
        if total <= 1e-12:
            return 0.0
        levels: dict = {}
        for r in subset:
            levels.setdefault(r[factor], []).append(r["score"])
        return sum(len(v) * (sum(v) / len(v) - grand) ** 2 for v in levels.values()) / total

    out = {"model": share(rows, "model"), "persona": share(rows, "persona"),
           "order": share([r for r in rows if r["form"] == 0], "order"),
           "paraphrase": share([r for r in rows if r["order"] == 0], "form")}
    out["rest"] = max(0.0, 1.0 - sum(out.values()))
    return out | {"rows": len(rows)}


# ---------------------------------------------------------------------------------------------- card

def model_card(instrument, administered: Mapping, vcfg, stats, draws: int, retest_distributions=None,
               scores: Mapping | None = None) -> dict:
    """The card of one model (one corpus of one community's survey): every check's numbers and the verdict.
    `retest_distributions`: the headline distributions under survey.validity.retest_seed, e.g. in-context posts
    drawn again (None: nothing to redraw, so the retest is skipped: the same prompts give the same
    probabilities, and the scores are exact). `per_order` holds each ballot's per-persona primary
    scores per order (probes in every one), `per_form` the probes' per paraphrase. `scores`: the headline's
    per-persona scores if already computed ({criterion: {persona: value}}, scoring.summarise's per_persona)."""
    answers = administered["validity"]
    by_order, orders = answers["by_order"], answers["orders"]
    few = max(20, draws // 4)  # side scores (nulls, orders, forms) of a criterion too large to enumerate
    headline = administered["distributions"]
    card: dict[str, Any] = {"orders": len(by_order)} | order_checks(instrument, by_order, orders, stats)
    card["nulls"] = null_checks(instrument, by_order, orders, stats, few)
    card["acquiescence"] = acquiescence(instrument, headline, answers.get("twins") or {}, stats)
    card["consistency"] = consistency(instrument, headline, stats)
    redrawn = sorted({i for d in (retest_distributions or {}).values() for i in d})
    if retest_distributions:
        first = scores or persona_scores(instrument, headline, draws, stats.seed)
        second = persona_scores(instrument, _filled(retest_distributions, headline), draws, vcfg.retest_seed)
        card["retest"] = {"seeds": [stats.seed, vcfg.retest_seed], "icc": retest(first, second, stats),
                          "redrawn_items": redrawn, "personas": len(retest_distributions)}
    else:  # the same prompts give the same distributions, scored exactly: a second seed could not differ
        card["retest"] = {"seeds": [stats.seed, vcfg.retest_seed], "icc": {}, "redrawn_items": [], "personas": 0,
                          "skipped": "nothing to redraw: the same prompts give the same option probabilities"}
    card["answer_modes"] = answer_modes(instrument, headline, answers.get("generated") or {})
    primary = instrument.primary
    per_order = [persona_scores(instrument, {p: headline[p] | d[p] for p in d}, few, stats.seed) for d in by_order]
    card["per_order"] = [scores.get(primary, {}) for scores in per_order] if primary else []
    card["single_order"] = {cid: over_personas(v, stats) for cid, v in per_order[0].items()}
    plain = {p: headline[p] | by_order[0][p] for p in by_order[0]}
    card["per_form"] = {f: persona_scores(instrument, _filled(d, plain), few, stats.seed).get(primary, {})
                        for f, d in answers.get("forms", {}).items()} if primary else {}
    card["forms"] = {f: over_personas(v, stats) for f, v in card["per_form"].items()}
    return card | judge(card, vcfg, primary)


def _filled(distributions: Mapping, fallback: Mapping) -> dict:
    """`distributions` with the items it lacks (asked in fewer forms) taken from `fallback`, for the personas
    it holds."""
    return {p: dict(fallback[p]) | dict(distributions[p]) for p in distributions if p in fallback}


def judge(card: Mapping, vcfg, primary: str | None) -> dict:
    """{checks: {name: {value, threshold, passed}}, verdict, failed, skipped, checks_passed}: a model is
    `informative` when it fails no check; a check without data (one order, no twins, no scale) is skipped."""
    def low(triple):
        return None if not triple else triple.get("low")

    bias = card.get("position_bias") or {}
    biggest = max((abs(bias[k]["value"]) for k in ("first", "last") if bias.get(k, {}).get("value") is not None),
                  default=None)
    alphas = [c["alpha"]["value"] for c in (card.get("consistency") or {}).values()]
    icc = (card.get("retest") or {}).get("icc", {}).get(primary) if primary else None
    table = {
        "order_sensitivity": ((card.get("order_sensitivity") or {}).get("value"), vcfg.max_order_sensitivity, "<="),
        "position_bias": (biggest, vcfg.max_position_bias, "<="),
        "majority_survives": ((card.get("majority_survives") or {}).get("value"), vcfg.min_majority_survives, ">="),
        "distinct_from_uniform": (low(card["nulls"]["uniform"]["distance"]), vcfg.min_null_distance, ">="),
        "distinct_from_position": (low(card["nulls"]["position_only"]["distance"]), vcfg.min_null_distance, ">="),
        "acquiescence": ((card.get("acquiescence") or {}).get("endorse_both", {}).get("value"),
                         vcfg.max_endorse_both, "<="),
        "internal_consistency": (min(alphas) if alphas and None not in alphas else None, vcfg.min_alpha, ">="),
        "retest": ((icc or {}).get("value"), vcfg.min_icc, ">="),
    }
    ran = {"order_sensitivity": card.get("order_sensitivity") is not None,
           "position_bias": biggest is not None, "majority_survives": card.get("majority_survives") is not None,
           "distinct_from_uniform": True, "distinct_from_position": True,
           "acquiescence": card.get("acquiescence") is not None, "internal_consistency": bool(alphas),
           "retest": icc is not None}
    checks, failed, skipped = {}, [], []
    for name in CHECKS:
        value, threshold, sense = table[name]
        if not ran[name]:
            skipped.append(name)
            continue
        passed = value is not None and (value <= threshold + 1e-12 if sense == "<=" else value >= threshold - 1e-12)
        checks[name] = {"value": value, "threshold": threshold, "sense": sense, "passed": passed}
        failed += [] if passed else [name]
    return {"checks": checks, "verdict": "uninformative" if failed else "informative", "failed": failed,
            "skipped": skipped, "checks_passed": (len(checks) - len(failed)) / max(1, len(checks))}


def contrast_support(contrast: Mapping, card_a: Mapping | None, card_b: Mapping | None) -> dict:
    """A community contrast is `supported` when both models are informative, the order-averaged difference's
    interval excludes 0, and the difference keeps its sign in most (more than half) of the option orders."""
    reasons = []
    for name, card in (("first", card_a), ("second", card_b)):
        if not card:
            reasons.append(f"no validity card for the {name} model")
        elif card.get("verdict") != "informative":
            reasons.append(f"{name} model uninformative ({', '.join(card.get('failed', []))})")
    difference, low, high = (contrast.get(k) for k in ("difference", "low", "high"))
    if difference is None or low is None or high is None or low <= 0 <= high:
        reasons.append("the order-averaged difference's interval includes 0")
    signs = []
    for a, b in zip((card_a or {}).get("per_order", []), (card_b or {}).get("per_order", [])):
        ma, mb = _mean(a.values()), _mean(b.values())
        if ma is not None and mb is not None and difference:
            signs.append((ma - mb) * difference > 0)
    share = sum(signs) / len(signs) if signs else None
    if share is None or share <= 0.5:
        reasons.append("the difference does not keep its sign in most option orders")
    return {"supported": not reasons, "sign_kept": share, "orders": len(signs), "reasons": reasons}
