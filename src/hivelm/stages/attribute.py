"""attribute: which community's adapter expects a post most (attribution by adapter likelihood).

    hivelm attribute                                  # the stage: every real held-out post, every adapter
    hivelm attribute posts.csv [--out FILE]           # any posts: a distribution over communities per post
    hivelm attribute posts.jsonl attribute.temperature=0.5

A post's gain under community k's adapter is its mean per-token log-likelihood under the adapter minus the same
under the base model, both after the same prompt: the instruct stage's system prompt and one persona
instruction (`attribute.template_id`) naming community k, the rule adapter k was tuned with (tokens.encode builds
the tokens, so the post is scored exactly as it was learned, end-of-turn token included). The base model is
loaded once with every adapter attached (peft named adapters, switched with `set_adapter`; the base runs with
them disabled; with `attribute.mixed_adapters` an adapter's and the base's rows share batches); nothing is
sampled. Cost: 2 x communities forward passes per post (adapter and base after
each community's prompt), batched by `attribute.batch_size`.

The stage writes numbers only (paths.ATTRIBUTE_DIR): the community x adapter matrix of mean gain with
bootstrap intervals over posts and its diagonal share (the share of communities whose own adapter gains most
on their posts: an intrinsic fidelity measure that needs no generation); attribution of each held-out post to
its argmax-gain community (accuracy, macro-F1 with intervals, confusion matrix) beside the TF-IDF origin
classifier of `evaluate` (trained on the communities' training posts) on the same posts; and each held-out
post's gains by post_id (paths.attribute_gains), which `hivelm recover` reads instead of scoring them again.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np

from hivelm import metrics, paths
from hivelm.artifacts import rounded, staged_outputs, write_json, write_jsonl
from hivelm.config import HiveConfig
from hivelm.errors import HiveError
from hivelm.rng import keyed_rng
from hivelm.tables import CorpusError, read_corpus, read_jsonl
from hivelm.templates import Template, load_templates

log = logging.getLogger(__name__)

CLASSIFIERS = ("likelihood", "tfidf")  # attribution by argmax adapter gain; by the TF-IDF origin classifier


def scoring_template(path: str | Path, template_id: str | None) -> Template:
    """The persona instruction posts are scored after: `template_id` from the instruct templates (the first
    when None). One template for every post, so a post's gains differ only by adapter and community name."""
    templates = load_templates(path, slots=("community",))
    if template_id is None:
        return templates[0]
    for template in templates:
        if template.id == template_id:
            return template
    raise HiveError(f"attribute.template_id: {template_id!r} is not a template of {path} "
                    f"(ids: {[t.id for t in templates]})")


def scoring_records(texts: list[str], system_prompt: str, template: Template, community_name: str) -> list[dict]:
    """Each post as the assistant's reply to the persona instruction for `community_name`: the chat records
    instruct writes for tuning (hivelm.stages.instruct.build_demonstrations), with one fixed template."""
    prompt = [{"role": "system", "content": system_prompt},
              {"role": "user", "content": template.render(community=community_name)}]
    return [{"messages": [*prompt, {"role": "assistant", "content": text}]} for text in texts]


def encode_posts(tokenizer, records: list[dict], max_length: int) -> list[dict]:
    from hivelm.tokens import encode

    encoded = [encode(record, tokenizer, max_length) for record in records]
    if any(e is None for e in encoded):
        raise HiveError(f"attribute.max_length={max_length}: the prompt alone fills it; raise attribute.max_length")
    return encoded


def score(model, tokenizer, texts: list[str], communities: dict[str, str], system_prompt: str, template: Template,
          max_length: int, batch_size: int, progress=None, share_prefix: bool = True,
          mixed: bool = False) -> dict[str, np.ndarray]:
    """Core: every post under every community's adapter and under the base model, after that community's
    prompt. `model` carries one peft named adapter per key of `communities` ({key: name}); returns arrays of
    shape (posts, communities): `adapter` and `base` mean per-token log-likelihoods, and `gain` = their
    difference. `share_prefix`: each community's prompt goes through each model once (models.mean_logliks).
    `mixed`: a community's adapter and the base model score its posts in the same batches (peft's mixed-adapter
    batches), else one after the other (`set_adapter`, then the adapter disabled); equal within 1e-5
    (tests/test_attribute.py)."""
    from hivelm.models import BASE, base_only, mean_logliks, pad_id

    pad = pad_id(tokenizer)
    adapter = np.zeros((len(texts), len(communities)))
    base = np.zeros_like(adapter)
    n = len(texts)
    for column, (key, name) in enumerate(communities.items()):
        sequences = encode_posts(tokenizer, scoring_records(texts, system_prompt, template, name), max_length)
        if mixed:
            both = mean_logliks(model, sequences * 2, batch_size, pad, share_prefix, [key] * n + [BASE] * n)
            adapter[:, column], base[:, column] = both[:n], both[n:]
        else:
            model.set_adapter(key)
            adapter[:, column] = mean_logliks(model, sequences, batch_size, pad, share_prefix)
            with base_only(model):
                base[:, column] = mean_logliks(model, sequences, batch_size, pad, share_prefix)
        if progress:
            progress(1)
    return {"adapter": adapter, "base": base, "gain": adapter - base}


def diagonal_share(*rows: np.ndarray) -> float:
    """Share of communities (rows: community i's posts x adapters) whose own adapter has the largest mean gain."""
    return float(np.mean([int(np.argmax(r.mean(axis=0))) == i for i, r in enumerate(rows)]))


def likelihood_matrix(gains: dict[str, np.ndarray], statistics) -> dict:
    """Community x adapter matrix of mean gain over the community's posts, each cell with a percentile
    bootstrap interval over posts, and its diagonal share with an interval (posts resampled within each
    community). Seeds: `rng.keyed_rng(statistics.seed, ...)` per row and for the share."""
    communities = list(gains)
    boot = {"resamples": statistics.bootstrap_resamples, "confidence": statistics.confidence}
    cells = {c: metrics.bootstrap_column_means(gains[c], **boot, seed=keyed_rng(statistics.seed, "gain", c))
             for c in communities}
    share = metrics.bootstrap(diagonal_share, [gains[c] for c in communities], **boot,
                              seed=keyed_rng(statistics.seed, "diagonal_share"))
    return {"rows": communities, "columns": communities, "n": [len(gains[c]) for c in communities],
            "gain": [cells[c]["value"] for c in communities], "low": [cells[c]["low"] for c in communities],
            "high": [cells[c]["high"] for c in communities],
            "argmax": [communities[int(np.argmax(cells[c]["value"]))] for c in communities],
            "diagonal_share": metrics.enclosing(share)}


def attribution(truth: list[str], predicted: dict[str, list[str]], labels: list[str], statistics) -> dict:
    """Accuracy, macro-F1 (intervals over posts) and confusion matrix per classifier ({name: predictions})."""
    return {name: metrics.classification_scores(truth, guesses, labels, statistics.bootstrap_resamples,
                                                statistics.confidence, keyed_rng(statistics.seed, "attribution", name))
            for name, guesses in predicted.items()}


def analyse(gains: dict[str, np.ndarray], tfidf: dict[str, list[str]] | None, statistics) -> dict:
    """Pure core over scored posts: {community: gains (posts x adapters)} and the TF-IDF classifier's
    predictions for the same posts (None with one community) -> matrix, attribution and their summary."""
    communities = list(gains)
    matrix = likelihood_matrix(gains, statistics)
    truth = [c for c in communities for _ in range(len(gains[c]))]
    predicted = {"likelihood": [communities[int(i)] for c in communities for i in np.argmax(gains[c], axis=1)]}
    if tfidf is not None:
        predicted["tfidf"] = [p for c in communities for p in tfidf[c]]
    scores = attribution(truth, predicted, communities, statistics) if len(communities) >= 2 else {}
    summary = {"communities": len(communities), "posts": len(truth),
               "diagonal_share": matrix["diagonal_share"],
               "mean_gain_own": float(np.mean([gains[c][:, i].mean() for i, c in enumerate(communities)])),
               "mean_gain_other": (float(np.mean([gains[c][:, j].mean() for i, c in enumerate(communities)
                                                  for j in range(len(communities)) if j != i]))
                                   if len(communities) >= 2 else None),
               "attribution": {name: {k: s[k] for k in ("accuracy", "macro_f1")} for name, s in scores.items()}}
    confusion_rows = {name: [{"actual": t, "predicted": p} for t, p in zip(truth, guesses)]
                      for name, guesses in predicted.items()}
    return {"matrix": matrix, "attribution": {"labels": communities} | scores, "summary": summary,
            "confusion_rows": confusion_rows}


def load_scorer(cfg: HiveConfig, communities: list[str]):
    """The base model once, with every community's adapter attached under the community's key."""
    from hivelm import models

    return models.load_with_adapters(cfg.base_model, {c: paths.adapter(c) for c in communities})


def score_texts(cfg: HiveConfig, model, tokenizer, texts: list[str], description: str) -> dict:
    """`score` with the prompt and sizes the config declares; also returns the template's id under "template_id"."""
    from hivelm.progress import progress_bar

    communities = {c: cfg.community(c).name for c in cfg.communities}
    template = scoring_template(cfg.instruct.templates, cfg.attribute.template_id)
    with progress_bar(len(communities), description, unit="adapter") as advance:
        scored = score(model, tokenizer, texts, communities, cfg.instruct.system_prompt, template,
                       cfg.attribute.max_length, cfg.attribute.batch_size, advance,
                       mixed=cfg.attribute.mixed_adapters)
    return scored | {"template_id": template.id}


def tfidf_predictions(train: dict[str, list[str]], heldout: dict[str, list[str]]) -> dict[str, list[str]] | None:
    """The evaluate stage's origin classifier, fitted on the communities' training posts, on the held-out posts."""
    if len(train) < 2:
        return None
    classifier = metrics.origin_classifier()
    classifier.fit([t for c in train for t in train[c]], [c for c in train for _ in train[c]])
    return {c: [str(p) for p in classifier.predict(posts)] for c, posts in heldout.items()}


def sample_posts(records: list[dict], cap: int | None, seed: int, community: str) -> list[dict]:
    """At most `cap` of a community's held-out `records` (attribute.max_posts_per_community), a seeded sample in
    their file order; all of them when cap is None or they are fewer."""
    if cap is None or len(records) <= cap:
        return records
    keep = np.sort(keyed_rng(seed, "attribute", community).choice(len(records), cap, replace=False))
    return [records[i] for i in keep]


def main(cfg: HiveConfig, run) -> dict:
    communities = list(cfg.communities)
    cap, seed = cfg.attribute.max_posts_per_community, cfg.attribute.statistics.seed
    records = {}
    for c in communities:
        every = read_jsonl(paths.heldout_posts(c))
        records[c] = sample_posts(every, cap, seed, c)
        if len(records[c]) < len(every):
            log.info("%s: scoring a seeded sample of %d of its %d held-out posts (attribute.max_posts_per_community)",
                     c, len(records[c]), len(every))
    heldout = {c: [r["text"] for r in records[c]] for c in communities}
    train = {c: [r["text"] for r in read_jsonl(paths.train_posts(c))] for c in communities}
    model, tokenizer = load_scorer(cfg, communities)
    texts = [t for c in communities for t in heldout[c]]
    scored = score_texts(cfg, model, tokenizer, texts, "attribute held-out posts")
    bounds = np.cumsum([0] + [len(heldout[c]) for c in communities])
    gains = {c: scored["gain"][bounds[i]:bounds[i + 1]] for i, c in enumerate(communities)}
    result = analyse(gains, tfidf_predictions(train, heldout), cfg.attribute.statistics)
    result["matrix"] |= {"adapter_loglik": [scored["adapter"][bounds[i]:bounds[i + 1]].mean(0).tolist()
                                            for i in range(len(communities))],
                         "base_loglik": [scored["base"][bounds[i]:bounds[i + 1]].mean(0).tolist()
                                         for i in range(len(communities))],
                         "template_id": scored["template_id"]}
    ids, truth = [r.get("post_id") for c in communities for r in records[c]], [c for c in communities for _ in records[c]]
    with staged_outputs() as out:  # every output and the MLflow record change together or not at all
        out.dir(paths.ATTRIBUTE_DIR)
        write_jsonl(out.path(paths.attribute_gains()), per_post_gains(ids, truth, scored["gain"], communities))
        write_json(out.path(paths.attribute_matrix()), result["matrix"])
        write_json(out.path(paths.attribute_attribution()), result["attribution"])
        write_json(out.path(paths.attribute_summary()), result["summary"])
        for name, rows in result["confusion_rows"].items():
            write_json(out.path(paths.attribute_confusion(name)), rows)
        run.log_metrics(mlflow_metrics(result["summary"]))
        run.set_tags({"template_id": scored["template_id"]})
    share = result["summary"]["diagonal_share"]["value"]
    log.info("likelihood matrix: own adapter gains most for %.0f%% of communities", 100 * share)
    return result["summary"]


def per_post_gains(ids: list, truth: list[str], gains: np.ndarray, communities: list[str]) -> list[dict]:
    """One record per held-out post: its post_id, its community, its gain under each adapter (at the committed
    precision, artifacts.rounded)."""
    return [{"post_id": pid, "community": c, "gain": rounded(dict(zip(communities, g.tolist())))}
            for pid, c, g in zip(ids, truth, gains)]


def mlflow_metrics(summary: dict) -> dict[str, float]:
    """Stable names: diagonal_share, diagonal_share/low, likelihood/macro_f1, tfidf/accuracy/high, ..."""
    names = {"posts": summary["posts"], "mean_gain_own": summary["mean_gain_own"]}
    if summary["mean_gain_other"] is not None:
        names["mean_gain_other"] = summary["mean_gain_other"]
    estimates = {"diagonal_share": summary["diagonal_share"]} | {
        f"{name}/{key}": estimate for name, scores in summary["attribution"].items() for key, estimate in scores.items()}
    for name, estimate in estimates.items():
        for part in ("value", "low", "high"):
            names[name + ("" if part == "value" else f"/{part}")] = estimate[part]
    return {k: v for k, v in names.items() if v is not None and math.isfinite(v)}


# ------------------------------------------------------------------------------------ hivelm attribute FILE

def read_posts(cfg: HiveConfig, path: str | Path):
    """FILE's posts with prepare's reader and the data.columns mapping (text, and post_id when mapped); a
    missing or blank text names the file and rows."""
    columns = {"text": cfg.data.columns.text, "post_id": cfg.data.columns.post_id}
    frame = read_corpus(path, columns, encoding=cfg.data.encoding)
    blank = [int(row) for row, text in zip(frame["source_row"], frame["text"]) if not text.strip()]
    if blank:
        shown = ", ".join(map(str, blank[:10])) + (f", ... ({len(blank)} rows)" if len(blank) > 10 else "")
        raise CorpusError(f"{path}: column {columns['text']!r} (data.columns.text) is blank in "
                          f"row{'s' if len(blank) > 1 else ''} {shown}")
    return frame


def distributions(gains: np.ndarray, communities: list[str], temperature: float) -> list[dict]:
    """Per post: softmax(gain / temperature) over communities, the argmax, and the gains themselves."""
    probabilities = metrics.softmax(gains, temperature)
    return [{"attributed": communities[int(np.argmax(p))],
             "probability": dict(zip(communities, p.tolist())), "gain": dict(zip(communities, g.tolist()))}
            for p, g in zip(probabilities, gains)]


def attribute_file(cfg: HiveConfig, posts: str | Path, out: str | Path | None = None) -> Path:
    """`hivelm attribute FILE`: one JSON line per post (post_id, source_row, distribution over communities,
    gains, argmax) written to `out` (default: beside FILE), and nothing written when anything fails."""
    posts = Path(posts)
    out = Path(out) if out else paths.attribution_out(posts)
    if out.resolve() == posts.resolve():
        raise HiveError(f"{out}: the output would overwrite the input; pass another --out")
    frame = read_posts(cfg, posts)
    communities = list(cfg.communities)
    model, tokenizer = load_scorer(cfg, communities)
    scored = score_texts(cfg, model, tokenizer, list(frame["text"]), f"attribute {posts.name}")
    records = [{"post_id": pid, "source_row": int(row)} | d for pid, row, d in
               zip(frame["post_id"], frame["source_row"], distributions(scored["gain"], communities,
                                                                        cfg.attribute.temperature))]
    write_jsonl(out, records)  # atomic: the file appears complete or not at all
    return out


def cli_main(params: str, files: list[str], overrides: list[str], out: str | None) -> int:
    """`hivelm attribute FILE [--out PATH] [key=value ...]`: `files` and `overrides` are the command line's
    positionals, told apart by cli._post_files. No MLflow run: nothing of the pipeline changes. Without FILE,
    cli.run_stage runs the stage instead."""
    from hivelm.config import load_config

    if len(files) > 1:
        raise HiveError(f"attribute takes one FILE, got {files}")
    cfg = load_config(params, overrides)
    written = attribute_file(cfg, files[0], out)
    print(f"wrote {written}: a distribution over {len(cfg.communities)} communities per post")
    return 0
