"""evaluate: generated corpora + real held-out posts -> fidelity metrics with intervals (paper section 5.2).

    hivelm evaluate
    hivelm evaluate evaluate.statistics.bootstrap_resamples=1000

For every community c and corpus x (finetuned, untuned, in_context, and every corpus declared under
evaluate.external), against c's real held-out posts:
  attribution   share of x attributed to c by a TF-IDF + logistic-regression classifier trained on every
                community's real training posts (paper: origin classifier, macro-F1 0.53 ft vs 0.40 in-context)
  auc           cross-validated ROC-AUC of a real-vs-generated discriminator (0.5 = indistinguishable)
  fid           FID of sentence embeddings (PCA fitted on real held-out posts) against c's own posts, per
                community (the paper's code pooled every community, a defect), at one common sample size per
                community: the median over seeded subsamples without replacement (metrics.fid_at_size)
  emotion       1 - Jensen-Shannon distance between summed, normalised emotion vectors
  toxicity      per label: Wasserstein distance, KS statistic and mean difference of score distributions
Intervals: FID's is the central share of its subsample FIDs; every other metric's is a percentile bootstrap
interval over posts, extended to the estimate where resampling bias leaves it outside (metrics.bootstrap), so
every reported value lies inside its interval. A corpus (or held-out set) with fewer than evaluate.min_posts
posts in a community gets no numbers there, only `insufficient` with the reason. Summary: classifier accuracy
and macro-F1, and the cross-community FID matrix with the share of rows whose minimum is on the diagonal (next
to the real-vs-real matrix). Every input is read and checked before any model loads (hivelm.corpora).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from hivelm import corpora, metrics, paths
from hivelm.artifacts import staged_outputs, write_json
from hivelm.config import EvaluateConfig, HiveConfig

log = logging.getLogger(__name__)

LOWER, HIGHER = "lower", "higher"  # which way is better; the regression gate reads this
HEADLINE = ("attribution", "auc", "fid", "emotion_alignment")
FID_METHOD = ("FID at one common sample size per community (fid_subsample_fraction of its smallest compared set), "
              "median over seeded subsamples without replacement; interval: central share of those FIDs")
INTERVAL_METHOD = ("percentile bootstrap over posts, extended to the estimate when resampling bias leaves it "
                   "outside (marked `extended`)")


def undefined(reason: str) -> dict:
    return {"value": None, "low": None, "high": None, "reason": reason}


def insufficient(n: int, reason: str, toxicity_labels) -> dict:
    """A corpus too small to measure in a community: every metric null with the reason."""
    out = {"n": n, "insufficient": reason}
    out |= {key: metric(undefined(reason), direction) for key, direction in
            (("attribution", HIGHER), ("auc", LOWER), ("fid", LOWER), ("emotion_alignment", HIGHER))}
    out["toxicity"] = {label: {key: metric(undefined(reason), LOWER) for key in ("wasserstein", "ks")}
                       | {"mean_diff": metric(undefined(reason), "closer_to_zero")} for label in toxicity_labels}
    return out


def metric(estimate: dict, direction: str) -> dict:
    return estimate | {"direction": direction}


class Fitted:
    """Everything fitted once on real posts and shared by all (community, corpus) pairs."""

    def __init__(self, cfg: EvaluateConfig, train: dict[str, list[str]], heldout: dict[str, list[str]], scorers):
        from sklearn.decomposition import PCA

        self.cfg, self.communities = cfg, list(train)
        self.classifier = None  # attribution needs at least two communities to choose between
        if len(train) >= 2:
            self.classifier = metrics.origin_classifier()  # shared with the attribute stage's comparison
            self.classifier.fit([t for c in train for t in train[c]], [c for c in train for _ in train[c]])
        else:
            log.warning("one community: attribution and macro-F1 are undefined (NaN)")
        self.embedder, self.toxicity, self.emotion = scorers
        real_embeddings = {c: self.embedder.encode(heldout[c]) for c in heldout}
        stacked = np.vstack(list(real_embeddings.values()))
        dims = min(cfg.fid_dimensions, stacked.shape[0] - 1, stacked.shape[1])
        self.pca = PCA(n_components=dims, random_state=cfg.statistics.seed).fit(stacked)
        self.real = {c: self.describe(heldout[c], real_embeddings[c]) for c in heldout}
        self.real_train_projected = {c: self.pca.transform(self.embedder.encode(train[c])) for c in train}

    def predict(self, posts: list[str]) -> np.ndarray:
        """Community the classifier attributes each post to (all NaN-like '' with a single community)."""
        if self.classifier is None:
            return np.array([""] * len(posts))
        return self.classifier.predict(posts)

    def describe(self, posts: list[str], embeddings: np.ndarray | None = None) -> dict:
        """PCA-projected embeddings, emotion counts and toxicity scores of a set of posts."""
        embeddings = self.embedder.encode(posts) if embeddings is None else embeddings
        return {"texts": posts, "embedding": self.pca.transform(embeddings), "emotion": self.emotion.score(posts),
                "toxicity": self.toxicity.score(posts)}


def corpus_metrics(fitted: Fitted, community: str, generated: dict, fid_size: int) -> dict:
    """All metrics of one generated corpus against one community's real held-out posts."""
    cfg, real = fitted.cfg, fitted.real[community]
    stats = cfg.statistics
    boot = {"resamples": stats.bootstrap_resamples, "confidence": stats.confidence, "seed": stats.seed}
    predicted = fitted.predict(generated["texts"])
    out = {"n": len(generated["texts"]),
           "attribution": metric(metrics.bootstrap(lambda p: float(np.mean(p == community)), [predicted], **boot),
                                 HIGHER) if fitted.classifier
           else metric(undefined("one community: nothing to attribute between"), HIGHER)}
    labels, scores = metrics.discriminator_scores(real["texts"], generated["texts"], cfg.discriminator_folds,
                                                  cfg.statistics.seed)
    pairs = np.column_stack([labels, scores])
    out["auc"] = metric(metrics.bootstrap(lambda s: metrics.auc(s[:, 0], s[:, 1]), [pairs], **boot), LOWER)
    out["fid"] = metric(metrics.fid_at_size(generated["embedding"], real["embedding"], fid_size,
                                            stats.bootstrap_resamples, stats.confidence, stats.seed), LOWER)

    def alignment(gen_emotion, real_emotion):
        from hivelm.scorers.emotion import emotion_profile

        return metrics.js_alignment(emotion_profile(gen_emotion), emotion_profile(real_emotion))

    out["emotion_alignment"] = metric(metrics.bootstrap(alignment, [generated["emotion"], real["emotion"]],
                                                        **boot), HIGHER)
    out["toxicity"] = {}
    for label, real_scores in real["toxicity"].items():
        gen_scores = generated["toxicity"][label]
        shift = {key: (lambda g, r, key=key: metrics.toxicity_shift(g, r)[key]) for key in ("wasserstein", "ks")}
        out["toxicity"][label] = {
            key: metric(metrics.bootstrap(fn, [gen_scores, real_scores], **boot), LOWER) for key, fn in shift.items()
        } | {"mean_diff": metric(metrics.bootstrap(lambda g, r: float(np.mean(g) - np.mean(r)),
                                                   [gen_scores, real_scores], **boot), "closer_to_zero")}
    return out


TOXICITY_BINS = np.linspace(0.0, 1.0, 11)


def profiles(described: dict, emotion_labels) -> dict:
    """What the report plots, numbers only: the normalised emotion profile and a histogram per toxicity label."""
    from hivelm.scorers.emotion import emotion_profile

    emotion = emotion_profile(described["emotion"])
    return {"emotion": dict(zip(emotion_labels, emotion.tolist())) if np.isfinite(emotion).all() else {},
            **({} if np.isfinite(emotion).all() else {"emotion_reason": "no emotion signal in these posts"}),
            "toxicity_histogram": {label: np.histogram(np.clip(scores, 0, 1), TOXICITY_BINS)[0].tolist()
                                   for label, scores in described["toxicity"].items()}}


def common_size(sizes, fraction: float) -> int:
    """The sample size FID is computed at for sets of these sizes: `fraction` of the smallest, at least 2."""
    return max(2, int(fraction * min(sizes)))


def cross_community(fitted: Fitted, generated: dict[str, np.ndarray]) -> dict:
    """FID of every community's corpus against every community's real posts, all cells at one common size
    (fewer draws than a headline FID: only the row minimum matters); row minimum on the diagonal?"""
    rows, columns = list(generated), fitted.communities
    if not rows:
        return {"rows": [], "columns": columns, "fid": [], "size": None,
                "diagonal_share": None, "reason": "no community has enough posts of this corpus"}
    ev = fitted.cfg
    size = common_size([len(generated[c]) for c in rows] + [len(fitted.real[d]["embedding"]) for d in columns],
                       ev.fid_subsample_fraction)
    draws = min(ev.statistics.bootstrap_resamples, 50)
    matrix = [[metrics.fid_at_size(generated[c], fitted.real[d]["embedding"], size, draws,
                                   ev.statistics.confidence, ev.statistics.seed)["value"] for d in columns]
              for c in rows]
    diagonal = [int(np.argmin(row)) == columns.index(c) for c, row in zip(rows, matrix)]
    return {"rows": rows, "columns": columns, "fid": matrix, "size": size, "diagonal_share": float(np.mean(diagonal))}


def evaluate(cfg: HiveConfig, scorers, root: Path = Path("."), inputs: corpora.Inputs | None = None) -> tuple[dict, dict]:
    """Pure-ish core over files under `root` (or already loaded `inputs`): ({community: metrics}, summary)."""
    ev = cfg.evaluate
    inputs = inputs or corpora.load(cfg, root)
    communities = list(cfg.communities)
    train, heldout = inputs.train, inputs.heldout
    small_real = {c: f"insufficient: {len(heldout[c])} real held-out posts < min_posts {ev.min_posts}"
                  for c in communities if len(heldout[c]) < ev.min_posts}
    fitted = Fitted(ev, train, heldout, scorers)
    toxicity_labels = list(next(iter(fitted.real.values()))["toxicity"])
    per_community = {c: {"community": c, "n_real_heldout": len(heldout[c]), "corpora": {},
                         "profiles": {"real": profiles(fitted.real[c], fitted.emotion.labels)}} for c in communities}
    summary = {"communities": {}, "corpora": {}, "sources": inputs.sources, "min_posts": ev.min_posts,
               "methods": {"fid": FID_METHOD, "intervals": INTERVAL_METHOD},
               "scorers": {"embedder": scorers[0].info, "toxicity": scorers[1].info, "emotion": scorers[2].info}}
    held_pred = fitted.predict([t for c in communities for t in heldout[c]])
    held_true = np.array([c for c in communities for _ in heldout[c]])
    accuracy = metrics.bootstrap(lambda p: float(np.mean(p[:, 0] == p[:, 1])),
                                 [np.column_stack([held_true, held_pred])], ev.statistics.bootstrap_resamples,
                                 ev.statistics.confidence, ev.statistics.seed) if fitted.classifier \
        else undefined("one community: nothing to attribute between")
    summary["classifier"] = {"heldout_accuracy": metric(accuracy, HIGHER),
                             "heldout_macro_f1": metric(_macro_f1(held_true, held_pred, ev), HIGHER)}
    real_rows = {c: fitted.real_train_projected[c] for c in communities
                 if c not in small_real and len(train[c]) >= ev.min_posts}
    summary["cross_community"] = {"real": cross_community(fitted, real_rows)}
    names = list(inputs.corpora)
    enough = {c: {name: len(inputs.corpora[name].get(c, [])) >= ev.min_posts for name in names} for c in communities}
    for c in communities:  # one FID size per community: its held-out posts and every corpus measured there
        sizes = [len(heldout[c])] + [len(inputs.corpora[name][c]) for name in names if enough[c][name]]
        per_community[c]["fid_size"] = None if c in small_real else common_size(sizes, ev.fid_subsample_fraction)
    for name in names:
        described, truth, predicted = {}, [], []
        for c in communities:
            posts = inputs.corpora[name].get(c, [])
            if c in small_real or not enough[c][name]:
                reason = small_real.get(c) or f"insufficient: {len(posts)} posts < min_posts {ev.min_posts}"
                log.warning("%s/%s: %s", c, name, reason)
                per_community[c]["corpora"][name] = insufficient(len(posts), reason, toxicity_labels)
                continue
            described[c] = fitted.describe(posts)
            per_community[c]["corpora"][name] = corpus_metrics(fitted, c, described[c], per_community[c]["fid_size"])
            per_community[c]["profiles"][name] = profiles(described[c], fitted.emotion.labels)
            truth += [c] * len(posts)
            predicted += list(fitted.predict(posts))
        summary["corpora"][name] = {"macro_f1": metric(_macro_f1(np.array(truth), np.array(predicted), ev), HIGHER)}
        summary["cross_community"][name] = cross_community(fitted, {c: d["embedding"] for c, d in described.items()})
    for c in communities:
        summary["communities"][c] = {name: headline(m) for name, m in per_community[c]["corpora"].items()}
    return per_community, summary


def _macro_f1(truth: np.ndarray, predicted: np.ndarray, ev: EvaluateConfig) -> dict:
    from sklearn.metrics import f1_score

    if len(truth) == 0 or len(set(truth.tolist())) < 2:
        return undefined("fewer than two communities with enough posts")
    pairs = np.column_stack([truth, predicted])
    return metrics.bootstrap(lambda p: float(f1_score(p[:, 0], p[:, 1], average="macro", zero_division=0)),
                             [pairs], ev.statistics.bootstrap_resamples, ev.statistics.confidence, ev.statistics.seed)


def headline(corpus_metrics: dict) -> dict:
    """The point values the summary and the regression gate read: {metric: value} (null, with the reason,
    when the corpus was too small to measure)."""
    values = {key: corpus_metrics[key]["value"] for key in HEADLINE}
    if "insufficient" in corpus_metrics:
        return values | {"toxicity_wasserstein": None, "n": corpus_metrics["n"],
                         "reason": corpus_metrics["insufficient"]}
    values["toxicity_wasserstein"] = float(np.mean([m["wasserstein"]["value"]
                                                    for m in corpus_metrics["toxicity"].values()]))
    return values | {"n": corpus_metrics["n"]}


PLOTTED = HEADLINE


def plot_rows(per_community: dict, key: str) -> list[dict]:
    """Rows for `dvc plots` of one metric: one per (community, corpus), with its interval."""
    return [{"model": f"{c}/{corpus}", "community": c, "corpus": corpus, key: m[key]["value"],
             "low": m[key]["low"], "high": m[key]["high"]}
            for c, result in per_community.items() for corpus, m in result["corpora"].items()
            if "insufficient" not in m]


def make_scorers(cfg: HiveConfig):
    from hivelm.scorers.embed import make_embedder
    from hivelm.scorers.emotion import make_emotion_scorer
    from hivelm.scorers.toxicity import make_toxicity_scorer

    s = cfg.evaluate.scorers
    return make_embedder(s), make_toxicity_scorer(s), make_emotion_scorer(s)


def main(cfg: HiveConfig, run) -> dict:
    inputs = corpora.load(cfg)  # every input checked before a model loads: bad records fail in seconds
    scorers = make_scorers(cfg)
    per_community, summary = evaluate(cfg, scorers, inputs=inputs)
    with staged_outputs() as out:  # metrics, plots and the MLflow records change together or not at all
        out.dir(paths.METRICS_DIR)
        out.dir(paths.PLOTS_DIR)
        for c, result in per_community.items():
            write_json(out.path(paths.community_metrics(c)), result | {"scorers": summary["scorers"]})
        write_json(out.path(paths.cross_community()), summary["cross_community"])
        for key in PLOTTED:
            write_json(out.path(paths.plot(key)), plot_rows(per_community, key))
        write_json(out.path(paths.plot("cross_community")), [
            {"corpus": corpus, "generated": row, "real": col, "fid": value}
            for corpus, m in summary["cross_community"].items()
            for row, values in zip(m["rows"], m["fid"]) for col, value in zip(m["columns"], values)])
        headline_summary = {k: v for k, v in summary.items() if k != "cross_community"} | {
            "cross_community": {corpus: {key: m[key] for key in ("diagonal_share", "size", "reason") if key in m}
                                for corpus, m in summary["cross_community"].items()}}
        write_json(out.path(paths.fidelity_summary()), headline_summary)
        run.log_metrics({"classifier": {k: v["value"] for k, v in summary["classifier"].items()},
                         "diagonal_share": {k: m["diagonal_share"] for k, m in summary["cross_community"].items()},
                         "macro_f1": {k: v["macro_f1"]["value"] for k, v in summary["corpora"].items()}})
        run.set_tags({f"scorer_{k}": f"{v.get('backend')}:{v.get('model')}" for k, v in summary["scorers"].items()})
        for c, result in per_community.items():
            with run.child(c) as child:
                child.log_metrics(mlflow_names(result))
    return summary


def mlflow_names(result: dict) -> dict[str, float]:
    """Stable MLflow names: `fid/finetuned`, `fid/finetuned/low`, `toxicity/insult/ks/untuned`, ..."""
    import math

    names = {}
    for corpus, m in result["corpora"].items():
        names[f"n/{corpus}"] = m["n"]
        for key in HEADLINE:
            for part in ("value", "low", "high"):
                names[f"{key}/{corpus}" + ("" if part == "value" else f"/{part}")] = m[key][part]
        for label, shifts in m["toxicity"].items():
            for key, estimate in shifts.items():
                names[f"toxicity/{label}/{key}/{corpus}"] = estimate["value"]
    # insufficient (null) and undefined (NaN) values are left out: MLflow rejects NaN in some stores
    return {k: v for k, v in names.items() if isinstance(v, (int, float)) and math.isfinite(v)}

