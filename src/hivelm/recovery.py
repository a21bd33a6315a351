"""`hivelm recover`: does a finished pipeline find the truth planted in its corpus? (issue 26, point 3)

    hivelm plant && hivelm run                      # in a planted project (docs/how-to/planted.md)
    hivelm recover                                  # measure from what the pipeline wrote (no model)
    hivelm recover --labels data/planted/calm-tense.labels.csv

A planted corpus (`hivelm plant`) says which posts express the attitude and at which rate each community was
planted. Each measure here compares what the pipeline reports with those rates, and says beside its number
whether the planted order was recovered:

- survey: Spearman's rho between the planted rate and each model's C1 (the WCS mean, 0-100) and WCS_high
  (the share of answers at or above the WCS cut-off), per corpus (finetuned, in_context, untuned), with the
  top-minus-bottom contrast (highest planted rate minus lowest);
- generation: a stance detector trained on the generator's own labelled posts reads each community's
  generated posts; the share it reads as `attitude` against the planted rate (its held-out accuracy beside it);
- likelihood: attribute's diagonal share, and per adapter the mean log-likelihood gain on held-out posts
  labelled attitude minus those labelled opposite (from the attribute stage's per-post gains);
- dose: the validity card's dose-response slope of each community's adapter against its planted rate.

The untuned corpus is a null check: the base model never saw the posts and the persona names carry no rate,
so it should recover nothing. A measure whose input is missing is `null` with a `reason`, never a guess.
It is pure reading and arithmetic (numpy, scipy, scikit-learn): no model, no torch.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping
from pathlib import Path

from hivelm import paths
from hivelm.artifacts import read_json, write_json
from hivelm.errors import HiveError

RECOVERY = Path("reports/recovery.json")
"""Where `hivelm recover` writes. Declared here, not in hivelm/paths.py: no stage reads or writes it and dvc.yaml
does not name it (recovery runs after the pipeline, outside it), and every stage depends on paths.py, so a new
constant there would make every stage's dvc.lock entry stale."""

POWER_RESULTS = Path("reports/planted/power.json")
"""The power curve's last run (bench/planted.py's OUT/results.json, committed: numbers and verdicts, no text):
docs/planted.md's tables are generated from it (`python -m hivelm.reference`)."""
STRONG_RESULTS = Path("reports/planted/strong-signal.json")
"""`bench/planted.py --strong-signal`'s results, committed: the measures they show reliable (`reliable`) are
the ones a test of that case may assert, and nothing else (docs/planted.md)."""
STRONG_500_RESULTS = Path("reports/planted/strong-signal-500.json")
"""The same case at 500 posts per community over 5 seeds (`bench/planted.py --sizes 500 --gaps 1 --seeds
0,1,2,3,4 --grid-cuts`): the generated posts and both likelihood measures recovered in 5 of 5 seeds."""
STRONG_200_RESULTS = Path("reports/planted/strong-signal-200.json")
"""The same case at 200 posts per community over 5 seeds, generation and likelihood stages only (bench/planted.py's
STRONG_200): the case tests/test_strong_signal.py runs, asserting the measures these results show reliable."""
POWER = 0.8
"""The share of seeds in which a measure must recover the planted order to count as recovering it at a size
(the power curve's rule, issue 26; 80% is the conventional power target of a study design)."""

SURVEY_CORPORA = ("finetuned", "in_context", "untuned")
NULL_CHECKS = ("untuned",)  # corpora that should recover nothing: the base model never saw the posts
SURVEY_CRITERIA = ("C1", "WCS_high")  # SWED (configs/instruments/swed.yaml): the WCS mean and its high-risk share
MIN_SPEARMAN = 0.8
"""Spearman's rho between planted rates and a measure at or above which the order counts as recovered (with 3
communities only rho = 1 qualifies; with 2, rho is +1 or -1)."""
MIN_DETECTOR_ACCURACY = 0.8
"""Held-out accuracy below which the stance detector's reading of generated posts is not reported."""
DETECTOR_TEST_SHARE = 0.25  # planted posts held out to measure the detector's accuracy
DETECTOR_POSTS = 2000
"""Planted posts the stance detector learns from, drawn fresh from the generator rather than taken from the
project's corpus, so it reads as well beside 50 posts per community as beside 500 (fitted on a 2-community,
50-post corpus it read 0.5 to 0.8 of held-out posts right; on 2,000 fresh posts, all of them)."""
DETECTOR_STREAM = "stance-detector"  # the community name its posts are drawn under: no project shares its draws
ORDER_RULE = (f"Spearman rho(planted rate, value) >= {MIN_SPEARMAN} and the top-minus-bottom contrast "
              "supported with a positive sign")


def reliable(results: Mapping, seed: int) -> list[str]:
    """The measures of a benchmark's results (bench/planted.py's results.json, one case over seeds) that
    recovered the planted order in at least POWER of its seeds, seed `seed` among them: what a test running
    that seed may assert. A failed cell counts as not recovered."""
    cells = results["records"]
    if len(cells) != len(results["seeds"]):
        raise ValueError(f"{len(cells)} cells for {len(results['seeds'])} seeds")
    ran = {cell["seed"]: cell for cell in cells}
    names = dict.fromkeys(name for cell in cells for name in cell["measures"])
    return [name for name in names
            if sum(cell["measures"].get(name) is True for cell in cells) >= POWER * len(cells) - 1e-9
            and ran[seed]["measures"].get(name) is True]


# ------------------------------------------------------------------------------------------------ the truth

def read_labels(path: str | Path) -> list[dict]:
    """The planted labels file (`hivelm plant`'s <stem>.labels.csv): one row per post with post_id, community,
    label (attitude, opposite, neutral), dimension and planted_rate (a float here)."""
    path = Path(path)
    if not path.is_file():
        raise HiveError(f"{path}: no planted labels file (write a planted corpus with `hivelm plant`, or pass "
                        "--labels)")
    with open(path, encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    missing = {"post_id", "community", "label", "planted_rate"} - set(rows[0] if rows else {})
    if not rows or missing:
        raise HiveError(f"{path}: not a planted labels file (no rows, or no column {', '.join(sorted(missing))})")
    return [row | {"planted_rate": float(row["planted_rate"])} for row in rows]


def planted_rates(labels: list[dict]) -> dict[str, float]:
    """{community: planted rate}, by community name (the labels file's rows are shuffled); one rate each."""
    rates: dict[str, float] = {}
    for row in labels:
        rate = rates.setdefault(row["community"], row["planted_rate"])
        if rate != row["planted_rate"]:
            raise HiveError(f"community {row['community']!r} has two planted rates ({rate}, {row['planted_rate']})")
    return dict(sorted(rates.items()))


def corpus_path(labels: str | Path) -> Path:
    """The corpus beside a labels file: posts.labels.csv -> posts.csv (hivelm.plant.labels_path, inverted)."""
    labels = Path(labels)
    if not labels.name.endswith(".labels.csv"):
        raise HiveError(f"{labels}: a planted labels file is named <stem>.labels.csv")
    return labels.with_name(labels.name.removesuffix(".labels.csv") + ".csv")


def read_texts(path: str | Path) -> dict[str, str]:
    """{post_id: text} of a planted corpus (CSV, `hivelm plant`'s columns)."""
    with open(path, encoding="utf-8", newline="") as handle:
        return {row["post_id"]: row["text"] for row in csv.DictReader(handle)}


def read_jsonl(path: str | Path) -> list[dict]:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


# --------------------------------------------------------------------------------------------- the verdict

def null(reason: str) -> dict:
    """A measure that could not be computed: no value, no verdict, and why."""
    return {"value": None, "recovered": None, "reason": reason}


def spearman(x: list[float], y: list[float]) -> float | None:
    """Spearman's rank correlation (scipy.stats.spearmanr: Pearson's r of the average ranks, so ties share a
    rank; https://docs.scipy.org/doc/scipy/reference/generated/scipy.stats.spearmanr.html). None when either
    side is constant, where it is undefined (scipy warns and returns nan)."""
    from scipy.stats import spearmanr

    if len(set(x)) < 2 or len(set(y)) < 2:
        return None
    return float(spearmanr(x, y).statistic)


def top_and_bottom(rates: Mapping[str, float]) -> tuple[str, str]:
    """The communities with the highest and the lowest planted rate (ties: the first by name)."""
    high, low = max(rates.values()), min(rates.values())
    return min(c for c in rates if rates[c] == high), min(c for c in rates if rates[c] == low)


def interval_contrast(top: str, bottom: str, estimate: Mapping | None) -> dict | None:
    """A top-minus-bottom difference {value, low, high} as a contrast: supported when its interval lies above 0
    (the percentile interval excludes 0 on the expected side)."""
    if estimate is None or estimate.get("value") is None:
        return None
    low, high = estimate.get("low"), estimate.get("high")
    supported = low is not None and _finite(low) and low > 0
    return {"top": top, "bottom": bottom, "difference": estimate["value"], "low": low, "high": high,
            "supported": bool(supported), "source": "interval"}


def order_verdict(rates: Mapping[str, float], values: Mapping[str, float | None], contrast: dict | None) -> dict:
    """Whether `values` (one per community) follow the planted `rates`.

    Rule: recovered when Spearman's rho between the planted rates and the values is at least MIN_SPEARMAN
    (the expected sign: more planted attitude, a higher value) and the top-minus-bottom contrast (`contrast`,
    highest planted rate minus lowest) is supported with a positive difference. With two communities rho is
    +1 or -1, so the rule reads: the order is right and the contrast supported. Not recovered when rho falls
    short (or the values are all equal); null, with a reason, when fewer than two planted rates differ, a
    community has no value, or rho passes but there is no contrast to judge."""
    if len(set(rates.values())) < 2:
        return null("needs at least two communities with different planted rates")
    missing = [c for c in rates if values.get(c) is None or not _finite(values[c])]
    if missing:
        return null(f"no value for {', '.join(missing)}")
    rho = spearman([rates[c] for c in rates], [values[c] for c in rates])
    out = {"value": rho, "recovered": None, "rule": ORDER_RULE,
           "communities": {c: {"planted_rate": rates[c], "value": values[c]} for c in rates}, "contrast": contrast}
    if rho is None:
        return out | {"recovered": False, "reason": "every community has the same value: no order"}
    if rho < MIN_SPEARMAN - 1e-9:  # spearmanr of two points can read 0.9999999999999999
        return out | {"recovered": False}
    if contrast is None:
        return out | {"reason": "no top-minus-bottom contrast to judge"}
    return out | {"recovered": bool(contrast["supported"] and contrast["difference"] > 0)}


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


# ------------------------------------------------------------------------------------------------- survey

def survey_measures(rates: Mapping[str, float], metrics: Mapping | None, surveys: Mapping[str, Mapping],
                    statistics) -> dict:
    """{corpus: {criterion: verdict}} for SURVEY_CORPORA x SURVEY_CRITERIA (`order_verdict`): each community's
    estimate from the metrics file's survey section; the top-minus-bottom contrast from its `contrasts` when
    they are of this criterion (the primary, C1), else recomputed from the survey reports' per-persona scores
    with summarize's own statistic (hivelm.survey.scoring.contrasts: bootstrap over personas). Where the
    validity card judged the contrast (survey.validity.contrasts), its `supported` call stands (and carries its
    reasons); otherwise the interval must exclude 0 (`interval_contrast`)."""
    survey = (metrics or {}).get("survey")
    if not survey or not survey.get("communities"):
        reason = "no metrics file" if metrics is None else "the metrics file has no survey results"
        return {corpus: {cid: null(reason) for cid in SURVEY_CRITERIA} for corpus in SURVEY_CORPORA}
    out = {}
    for corpus in SURVEY_CORPORA:
        out[corpus] = {}
        for cid in SURVEY_CRITERIA:
            values = {c: (((survey["communities"].get(c) or {}).get(corpus) or {}).get(cid) or {}).get("value")
                      for c in rates}
            contrast = survey_contrast(rates, survey, surveys, corpus, cid, statistics)
            out[corpus][cid] = order_verdict(rates, values, contrast)
            if corpus in NULL_CHECKS:
                out[corpus][cid]["null_check"] = True
    return out


def survey_contrast(rates: Mapping[str, float], survey: Mapping, surveys: Mapping[str, Mapping], corpus: str,
                    cid: str, statistics) -> dict | None:
    """The top-minus-bottom contrast of criterion `cid` in `corpus` (see `survey_measures`), or None."""
    top, bottom = top_and_bottom(rates)
    first, second = sorted((top, bottom))  # summarize's pairs: "a vs b" for a < b, difference = a - b
    pair, sign = f"{first} vs {second}", (1 if first == top else -1)
    stored = (survey.get("contrasts") or {}).get(corpus, {}).get(pair)
    judged = stored is not None and stored.get("criterion") == cid  # the card judges the metrics' contrasts
    if not judged:
        stored = _recomputed(surveys, corpus, cid, first, second, statistics)
    if stored is None or stored.get("difference") is None:
        return None
    low, high = stored.get("low"), stored.get("high")
    if sign < 0:  # the pair's difference is bottom - top: negate it, and swap its bounds
        low, high = (None if high is None else -high), (None if low is None else -low)
    contrast = interval_contrast(top, bottom, {"value": sign * stored["difference"], "low": low, "high": high})
    card = ((survey.get("validity") or {}).get("contrasts") or {}).get(corpus, {}).get(pair)
    if judged and card is not None:
        contrast |= {"supported": bool(card.get("supported")), "source": "validity",
                     "reasons": list(card.get("reasons") or [])}
    return contrast


def _recomputed(surveys: Mapping[str, Mapping], corpus: str, cid: str, a: str, b: str, statistics) -> dict | None:
    summaries = {c: surveys[c]["corpora"][corpus] for c in (a, b)
                 if c in surveys and corpus in (surveys[c].get("corpora") or {})}
    if len(summaries) < 2 or statistics is None:
        return None
    from hivelm.survey.scoring import contrasts

    return contrasts(summaries, statistics, criterion=cid)[f"{a} vs {b}"]


# --------------------------------------------------------------------------------------------- generation

def stance_detector(texts: list[str], labels: list[str], seed: int = 0, test_share: float = DETECTOR_TEST_SHARE):
    """A stance detector fitted on planted posts and their labels: TF-IDF of word 1-2-grams and logistic
    regression (scikit-learn; the same family as evaluate's origin classifier, hivelm.metrics.origin_classifier,
    unweighted here since the label shares are what it should learn). Fitted on a seeded split stratified by
    label (sklearn.model_selection.train_test_split) and scored on the rest. Returns (fitted model, {accuracy,
    chance, train_posts, test_posts}); `chance` is the held-out accuracy of always naming the training split's
    most common label, the floor a detector must clear."""
    from collections import Counter

    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline

    counts = Counter(labels)
    stratify = labels if min(counts.values()) >= 2 and len(counts) >= 2 else None
    x_train, x_test, y_train, y_test = train_test_split(texts, labels, test_size=test_share, random_state=seed,
                                                        stratify=stratify)
    model = make_pipeline(TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True),
                          LogisticRegression(max_iter=2000, C=10.0))
    model.fit(x_train, y_train)
    accuracy = sum(p == t for p, t in zip(model.predict(x_test), y_test)) / len(y_test)
    majority = Counter(y_train).most_common(1)[0][0]
    chance = sum(t == majority for t in y_test) / len(y_test)
    return model, {"accuracy": accuracy, "chance": chance, "train_posts": len(x_train), "test_posts": len(x_test)}


def train_detector(vocabulary: dict, seed: int = 0):
    """`stance_detector` fitted on DETECTOR_POSTS posts drawn fresh from the generator (hivelm.plant's pure
    core, `vocabulary`, planted rate 0.5, under its own stream DETECTOR_STREAM): (model, scores)."""
    from hivelm.plant import plant

    rows = plant({DETECTOR_STREAM: 0.5}, DETECTOR_POSTS, seed, vocabulary)
    return stance_detector([r["text"] for r in rows], [r["label"] for r in rows], seed)


def generation_measures(rates: Mapping[str, float], detector, truth: list[dict], texts: Mapping[str, str] | None,
                        generated: Mapping[str, Mapping[str, list[str]]], statistics) -> dict:
    """{"detector": its accuracy, corpus: verdict} (`order_verdict`): the share of each community's generated
    posts in `corpus` that the stance detector (`detector`: `train_detector`'s (model, scores), or None) reads
    as `attitude`, against the planted rates; the contrast is the top-minus-bottom share difference with a
    percentile bootstrap interval over posts (hivelm.metrics.bootstrap, Efron & Tibshirani 1993, ch. 13).
    `texts`, the project's planted corpus ({post_id: text}), adds the detector's accuracy on it
    (`project_accuracy`). `generated`: {corpus: {community: posts}}. Null when the detector's held-out
    accuracy is under MIN_DETECTOR_ACCURACY or at chance: its reading would be noise. A detector that reads
    the planted sentences perfectly can still misread a model's freer text: the share is what this detector
    reads, a lower bound on how far the adapters moved only if its errors do not depend on the community."""
    if detector is None:
        return {"detector": null("no vocabulary to train the stance detector on")} | {
            corpus: null("no stance detector") for corpus in SURVEY_CORPORA}
    model, scores = detector
    trusted = scores["accuracy"] >= MIN_DETECTOR_ACCURACY and scores["accuracy"] > scores["chance"]
    out: dict = {"detector": {"value": scores["accuracy"], **scores, "recovered": None, "trusted": trusted,
                              "rule": f"trusted when held-out accuracy >= {MIN_DETECTOR_ACCURACY} and above chance"}}
    rows = [row for row in truth if row["post_id"] in (texts or {})]
    if rows:
        read = model.predict([texts[r["post_id"]] for r in rows])
        out["detector"] |= {"project_accuracy": sum(p == r["label"] for p, r in zip(read, rows)) / len(rows),
                            "project_posts": len(rows)}
    for corpus in SURVEY_CORPORA:
        posts = generated.get(corpus) or {}
        missing = [c for c in rates if not posts.get(c)]
        if not trusted:
            out[corpus] = null(f"stance detector accuracy {scores['accuracy']:.3f} (chance {scores['chance']:.3f}) "
                               f"is under {MIN_DETECTOR_ACCURACY} or at chance")
        elif missing:
            out[corpus] = null(f"no generated {corpus} posts for {', '.join(missing)}")
        else:
            read = {c: [float(p == "attitude") for p in model.predict(posts[c])] for c in rates}
            out[corpus] = order_verdict(rates, {c: sum(v) / len(v) for c, v in read.items()},
                                        _share_contrast(rates, read, statistics))
            for c in out[corpus].get("communities", {}):
                out[corpus]["communities"][c]["posts"] = len(read[c])
        if corpus in NULL_CHECKS:
            out[corpus]["null_check"] = True
    return out


def _share_contrast(rates, read: Mapping[str, list[float]], statistics) -> dict | None:
    import numpy as np

    from hivelm.metrics import bootstrap
    from hivelm.rng import keyed_rng

    top, bottom = top_and_bottom(rates)
    resamples, confidence, seed = _settings(statistics)
    estimate = bootstrap(lambda a, b: float(np.mean(a) - np.mean(b)), [np.asarray(read[top]), np.asarray(read[bottom])],
                         resamples, confidence, keyed_rng(seed, "recovery", "generation"))
    return interval_contrast(top, bottom, estimate)


def _settings(statistics) -> tuple[int, float, int]:
    if statistics is None:
        return 1000, 0.95, 0
    return statistics.bootstrap_resamples, statistics.confidence, statistics.seed


# --------------------------------------------------------------------------------------------- likelihood

def diagonal_share(summary: Mapping | None) -> dict:
    """attribute's diagonal share (the share of communities whose own adapter gains most on their held-out
    posts) with its bootstrap interval. Rule: recovered when the interval's lower bound is above chance, 1 /
    communities (each community's own adapter wins beyond what a coin would give)."""
    if not summary or (summary.get("diagonal_share") or {}).get("value") is None:
        return null(f"no attribute summary ({paths.attribute_summary()})")
    share, k = summary["diagonal_share"], summary.get("communities") or 0
    if k < 2:
        return null("needs at least two communities")
    low = share.get("low")
    return {"value": share["value"], "low": low, "high": share.get("high"), "chance": 1 / k,
            "recovered": bool(low is not None and low > 1 / k),
            "rule": "the bootstrap interval's lower bound above chance (1 / communities)"}


def label_gain(rates: Mapping[str, float], labels: list[dict], gains: list[dict] | None, statistics) -> dict:
    """Per adapter, the mean log-likelihood gain (adapter minus base, per token: the attribute stage's gain) on
    held-out posts labelled `attitude` minus the mean on those labelled `opposite`, over every community's
    held-out posts (`gains`: the attribute stage's per-post records, joined to the labels by post_id; neutral
    posts left out). A higher planted rate should make an adapter prefer attitude posts more: `order_verdict`
    over adapters, the contrast the top adapter's difference minus the bottom's with a percentile bootstrap
    interval (attitude and opposite posts resampled separately, each post's gains under both adapters together:
    hivelm.metrics.bootstrap)."""
    if gains is None:
        return null(f"no per-post gains ({paths.attribute_gains()}): run the attribute stage")
    import numpy as np

    label_of = {row["post_id"]: row["label"] for row in labels}
    adapters = list(rates)
    rows = {"attitude": [], "opposite": []}
    for record in gains:
        label, gain = label_of.get(str(record.get("post_id"))), record.get("gain") or {}
        if label in rows and all(a in gain for a in adapters):
            rows[label].append([gain[a] for a in adapters])
    empty = [label for label, found in rows.items() if not found]
    if empty:
        return null(f"no held-out post labelled {' or '.join(empty)} with a gain under every adapter")
    attitude, opposite = (np.asarray(rows[k], dtype=float) for k in ("attitude", "opposite"))
    difference = attitude.mean(axis=0) - opposite.mean(axis=0)
    top, bottom = (adapters.index(c) for c in top_and_bottom(rates))
    resamples, confidence, seed = _settings(statistics)
    from hivelm.metrics import bootstrap
    from hivelm.rng import keyed_rng

    def top_minus_bottom(a, o):  # the top adapter's attitude-minus-opposite difference minus the bottom's
        d = a.mean(axis=0) - o.mean(axis=0)
        return float(d[top] - d[bottom])

    estimate = bootstrap(top_minus_bottom, [attitude, opposite], resamples, confidence,
                         keyed_rng(seed, "recovery", "label_gain"))
    verdict = order_verdict(rates, dict(zip(adapters, difference.tolist())),
                            interval_contrast(adapters[top], adapters[bottom], estimate))
    return verdict | {"attitude_posts": len(attitude), "opposite_posts": len(opposite)}


# ------------------------------------------------------------------------------------------------- dose

def dose_slope(rates: Mapping[str, float], metrics: Mapping | None) -> dict:
    """The validity card's dose-response slope (the primary score against the adapter's scale, 0 = the base
    model) per community, against the planted rates (`order_verdict`): an adapter tuned on more planted
    attitude should push the score up harder. The contrast: the top community's slope interval lies wholly
    above the bottom's (non-overlapping intervals, a conservative test of a difference: Schenker & Gentleman
    2001, The American Statistician 55(3), 182-186)."""
    cards = (((metrics or {}).get("survey") or {}).get("validity") or {}).get("communities")
    if not cards:
        return null("no validity card in the metrics file (survey.validity.enabled: false?)")
    slopes = {c: ((cards.get(c) or {}).get("dose") or {}).get("slope") for c in rates}
    missing = [c for c, s in slopes.items() if not s or s.get("value") is None]
    if missing:
        return null(f"no dose-response slope for {', '.join(missing)}")
    top, bottom = top_and_bottom(rates)
    t, b = slopes[top], slopes[bottom]
    apart = None not in (t.get("low"), b.get("high")) and t["low"] > b["high"]
    contrast = {"top": top, "bottom": bottom, "difference": t["value"] - b["value"], "low": None, "high": None,
                "supported": bool(apart), "source": "non-overlapping intervals"}
    verdict = order_verdict(rates, {c: s["value"] for c, s in slopes.items()}, contrast)
    for c in rates if "communities" in verdict else ():
        verdict["communities"][c] |= {"low": slopes[c].get("low"), "high": slopes[c].get("high")}
    return verdict


# ----------------------------------------------------------------------------------------------- together

def recover(root: str | Path, labels: str | Path, corpus: str | Path | None = None, statistics=None,
            vocabulary: str | Path | None = None) -> dict:
    """Every recovery measure of the planted project at `root` (a finished pipeline), against the labels file
    `labels` (and the planted corpus `corpus`, default: beside the labels). `statistics`: bootstrap settings
    (hivelm.config.StatisticsConfig; the survey's, in `hivelm recover`). `vocabulary`: the planted corpus's
    vocabulary, which the stance detector learns from (default: the project's configs/planted/templates.yaml)."""
    from hivelm.plant import VOCABULARY, load_vocabulary

    root = Path(root)
    truth = read_labels(labels)
    rates = planted_rates(truth)
    corpus = Path(corpus) if corpus is not None else corpus_path(labels)
    metrics = read_json(root / paths.METRICS)
    surveys = {c: report for c in rates if (report := read_json(root / paths.survey_report(c))) is not None}
    generated = {name: {c: [r["text"] for r in read_jsonl(p)] for c in rates
                        if (p := root / paths.corpus(c, name)).is_file()} for name in SURVEY_CORPORA}
    gains = read_jsonl(found) if (found := root / paths.attribute_gains()).is_file() else None
    vocabulary = Path(vocabulary) if vocabulary is not None else root / VOCABULARY
    detector = (train_detector(load_vocabulary(vocabulary), statistics.seed if statistics is not None else 0)
                if vocabulary.is_file() else None)
    communities = {c: {"planted_rate": rate, "posts": sum(r["community"] == c for r in truth),
                       "attitude_share": _share(truth, c)} for c, rate in rates.items()}
    return {"labels": str(labels), "communities": communities,
            "survey": survey_measures(rates, metrics, surveys, statistics),
            "generation": generation_measures(rates, detector, truth,
                                              read_texts(corpus) if corpus.is_file() else None, generated, statistics),
            "likelihood": {"diagonal_share": diagonal_share(read_json(root / paths.attribute_summary())),
                           "label_gain": label_gain(rates, truth, gains, statistics)},
            "dose": {"slope": dose_slope(rates, metrics)}}


def _share(truth: list[dict], community: str) -> float:
    rows = [r for r in truth if r["community"] == community]
    return sum(r["label"] == "attitude" for r in rows) / len(rows)


def flatten(result: Mapping, prefix: str = "") -> dict[str, dict]:
    """{dotted name: measure} for every measure (a mapping with a `recovered` key) in `result`, in order:
    survey.finetuned.C1, ..., likelihood.label_gain, dose.slope."""
    out = {}
    for key, value in result.items():
        name = f"{prefix}.{key}" if prefix else key
        if isinstance(value, Mapping) and "recovered" in value:
            out[name] = value
        elif isinstance(value, Mapping) and key not in ("communities", "contrast"):
            out |= flatten(value, name)
    return out


def verdict_word(measure: Mapping) -> str:
    """The verdict printed beside a measure's number."""
    if "trusted" in measure:
        return "trusted" if measure["trusted"] else "not trusted"
    if measure["recovered"] is None:
        return f"n/a: {measure.get('reason', 'no verdict')}"
    if measure.get("null_check"):
        word = "order found (a null check should not)" if measure["recovered"] else "no order, as expected"
    else:
        word = "recovered" if measure["recovered"] else "not recovered"
    by_card = (measure.get("contrast") or {}).get("source") == "validity"
    return word + (" (contrast: the validity card's call)" if by_card else "")


def shown(measure: Mapping) -> tuple[str, str]:
    """A measure's number and its top-minus-bottom contrast with interval (or its own interval), as text: what
    the printed table and the page show beside the verdict."""
    value, contrast = measure.get("value"), measure.get("contrast") or {}
    interval = ""
    if _finite(contrast.get("difference")):
        interval = f"{contrast['difference']:+.3g}"
        if _finite(contrast.get("low")) and _finite(contrast.get("high")):
            interval += f" [{contrast['low']:+.3g}, {contrast['high']:+.3g}]"
    elif _finite(measure.get("low")) and _finite(measure.get("high")):
        interval = f"[{measure['low']:.3g}, {measure['high']:.3g}]"
    return (f"{value:.3f}" if _finite(value) else "-"), interval


def table(result: Mapping) -> str:
    """One row per measure: its name, its number (and the contrast's, with interval) and the verdict."""
    lines = [f"{'measure':<28}{'value':>8}  {'top - bottom [interval]':<30}verdict"]
    for name, measure in flatten(result).items():
        number, interval = shown(measure)
        lines.append(f"{name:<28}{number:>8}  {interval:<30}{verdict_word(measure)}")
    return "\n".join(lines)


def page(result: Mapping, title: str = "HiveLM: does the pipeline recover the planted truth?") -> str:
    """The recovery measures as an HTML page in the report's own style (hivelm.report_page): the planted
    communities, then one row per measure with its number, the top-minus-bottom contrast and the verdict
    beside it, and its rule. Pure: numbers in, a self-contained page out."""
    import html

    from hivelm.report_page import PAGE, table

    def cell(value) -> str:
        return f"{value:.3f}" if _finite(value) else "-"

    communities = [[html.escape(c), cell(v["planted_rate"]), v["posts"], cell(v["attitude_share"])]
                   for c, v in result["communities"].items()]
    rows = [[html.escape(name), *(html.escape(text) or "-" for text in shown(measure)),
             html.escape(verdict_word(measure)), html.escape(str(measure.get("rule") or ""))]
            for name, measure in flatten(result).items()]
    body = [f"<h1>{html.escape(title)}</h1>",
            f"<p>Planted labels: {html.escape(str(result['labels']))}. Each measure compares what the pipeline "
            "reported with the planted rates (hivelm.recovery; docs/planted.md has the power curve). The untuned "
            "corpus is a null check: it should recover nothing.</p>",
            "<h2>Planted communities</h2>",
            table(["community", "planted rate", "posts", "share expressing the attitude"], communities),
            "<h2>Measures</h2>",
            table(["measure", "value", "top - bottom [interval]", "verdict", "rule"], rows, text=True)]
    return PAGE.format(title=html.escape(title), body="\n".join(body))


# -------------------------------------------------------------------------------------------- the command

def main(cfg, labels: str | None, out: str | None, templates: str | None = None) -> int:
    """`hivelm recover`: the measures of the project in the working directory against its planted labels
    (default: beside data.path), written to `out` (default RECOVERY) as strict JSON and beside it as an HTML
    page (`page`), and the table."""
    from hivelm.plant import labels_path

    corpus = None if labels else cfg.data.path  # --labels: the corpus beside it
    labels = Path(labels) if labels else labels_path(cfg.data.path)
    result = recover(".", labels, corpus, cfg.survey.statistics, templates)
    out = Path(out) if out else RECOVERY
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json(out, result)
    shown = out.with_suffix(".html")  # the same numbers as a page beside the report (reports/recovery.html)
    shown.write_text(page(result), encoding="utf-8")
    print(table(result))
    print(f"wrote {out} and {shown}")
    return 0
