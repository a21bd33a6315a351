"""prepare: raw corpus -> cleaned, anonymised, deduplicated train / held-out posts per community.

    hivelm prepare                          # as DVC runs it
    hivelm prepare prepare.min_chars=40     # one-off override

Steps (paper section 3.2), each counted per community in the prepare stats file:
retweets -> normalise (+ scrub: bidi controls, lone surrogates, chat control tokens) + anonymise + hashtags/emoji -> length range -> exact duplicates -> near duplicates
(MinHash LSH) -> cap (random or lowest perplexity) -> seeded train / held-out split.
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

from hivelm import filters, paths, text
from hivelm.artifacts import staged_outputs, write_json, write_jsonl
from hivelm.config import DataConfig, HiveConfig, PrepareConfig
from hivelm.rng import keyed_rng
from hivelm.tables import CorpusError, read_corpus
from hivelm.text import clip

log = logging.getLogger(__name__)

RECORD_FIELDS = ("post_id", "community", "text", "author_id", "timestamp", "source_row")


def clean_post(raw: str, cfg: PrepareConfig) -> tuple[str, Counter]:
    """One post through normalisation (and scrubbing: text.SCRUBBED), anonymisation and hashtag / emoji
    stripping; returns the post and what was found, per kind."""
    cleaned, scrubbed = text.scrub(raw, cfg.unicode_form)
    cleaned, found = text.anonymize(cleaned, cfg.anonymize)
    found.update(scrubbed)
    cleaned = text.strip_hashtags(cleaned, cfg.hashtags)
    if cfg.strip_emoji:
        cleaned = text.strip_emoji(cleaned)
    if cfg.lowercase:
        cleaned = cleaned.lower()
    return cleaned, found


def clean_community(posts: list[dict], cfg: PrepareConfig, perplexity=None) -> tuple[list[dict], dict]:
    """Clean, filter and deduplicate one community's posts; return the kept posts and step counts.

    `perplexity(texts) -> list[float]` is needed only for cap_strategy lowest_perplexity.
    """
    import numpy as np

    counts: dict[str, int] = {"input": len(posts)}
    if cfg.drop_retweets:
        posts = [p for p in posts if not text.is_retweet(p["text"] or "")]
    counts["after_retweets"] = len(posts)

    found: Counter = Counter()
    for post in posts:
        post["text"], hits = clean_post(post["text"] or "", cfg)
        found.update(hits)
    counts.update({f"anonymized_{kind}": found[kind] for kind in text.PLACEHOLDERS})
    counts.update({f"scrubbed_{kind}": found[kind] for kind in text.SCRUBBED})

    posts = [p for p in posts if cfg.min_chars <= len(p["text"]) <= cfg.max_chars]
    counts["after_length"] = len(posts)

    posts = [p for p, dup in zip(posts, filters.exact_duplicates([p["text"] for p in posts])) if not dup]
    counts["after_exact_dedupe"] = len(posts)

    near = filters.near_duplicates([p["text"] for p in posts], cfg.near_duplicate_threshold,
                                   cfg.shingle_chars, cfg.minhash_permutations, cfg.seed)
    posts = [p for p, dup in zip(posts, near) if not dup]
    counts["after_near_dedupe"] = len(posts)

    if len(posts) > cfg.max_posts_per_community:
        if cfg.cap_strategy == "lowest_perplexity":
            order = np.argsort(perplexity([p["text"] for p in posts]), kind="stable")
        else:
            order = keyed_rng(cfg.seed, posts[0]["community"]).permutation(len(posts))
        keep = sorted(order[: cfg.max_posts_per_community])
        posts = [posts[i] for i in keep]
    counts["after_cap"] = len(posts)
    return posts, counts


def split(posts: list[dict], fraction: float, seed: int, community: str) -> tuple[list[dict], list[dict]]:
    """Seeded split into (train, held-out); at least one post on each side."""
    order = keyed_rng(seed, community).permutation(len(posts))
    n_heldout = min(max(1, round(len(posts) * fraction)), len(posts) - 1)
    heldout = sorted(order[:n_heldout])
    train = sorted(order[n_heldout:])
    return [posts[i] for i in train], [posts[i] for i in heldout]


def read_sources(data: DataConfig, labels: set[str]):
    """data.path plus every data.extra_sources file as one canonical frame, main corpus first (so exact
    deduplication keeps its copy). Extra posts get post_id '<file stem>:row<n>'."""
    import pandas as pd

    frames = [read_corpus(data.path, vars(data.columns), data.format, data.encoding)]
    for index, source in enumerate(data.extra_sources):
        if source.community not in labels:
            raise CorpusError(
                f"data.extra_sources[{index}].community: {source.community!r} ({source.path}) is not the label "
                f"of a declared community; labels: {sorted(labels)}"
            )
        extra = read_corpus(source.path, {"text": source.text}, source.format, data.encoding)
        extra["community"] = source.community
        extra["post_id"] = Path(source.path).stem + ":" + extra["post_id"]
        frames.append(extra)
    return pd.concat(frames, ignore_index=True)


def read_from(data: DataConfig) -> str:
    """Every file read_sources reads, as errors name them: the labels come from all of them."""
    if not data.extra_sources:
        return data.path
    return ", ".join([f"{data.path} (data.path)", *(f"{source.path} (data.extra_sources[{index}].path)"
                                                    for index, source in enumerate(data.extra_sources))])


def prepare(frame, cfg: HiveConfig, source: str, perplexity=None) -> tuple[dict, dict]:
    """Pure core: canonical corpus frame -> ({community: (train, heldout)}, stats). `source` names the files
    the frame was read from (read_from).

    Raises CorpusError naming the community when a declared community is absent or too small.
    """
    # Labels match after stripping surrounding whitespace: a padded "keto " is keto, not an unknown label
    # whose rows would silently join ignored_rows.
    label_to_key = {c.label.strip(): key for key, c in cfg.communities.items()}
    padded = sum(isinstance(label, str) and label != label.strip() for label in frame["community"])
    if padded:
        log.info("%s: %d community labels had surrounding whitespace, stripped before matching",
                 source, padded)
    frame = frame.assign(community=frame["community"].map(lambda v: v.strip() if isinstance(v, str) else v))
    found_labels = set(frame["community"].dropna())
    for key, community in cfg.communities.items():
        if community.label.strip() not in found_labels:
            shown = ", ".join(clip(label) for label in sorted(found_labels)[:20])  # a mis-named column holds posts
            raise CorpusError(
                f"community {key!r} (label {community.label!r}, declared in params.yaml) has no posts in "
                f"{source}; labels in the data: {shown}" + (" ..." if len(found_labels) > 20 else "")
            )
    frame = frame.assign(community=frame["community"].map(label_to_key))
    ignored = int(frame["community"].isna().sum())
    outputs, stats = {}, {}
    for key in cfg.communities:
        posts = [
            {field: row[field] for field in RECORD_FIELDS}
            for row in frame[frame["community"] == key].to_dict("records")
        ]
        kept, counts = clean_community(posts, cfg.prepare, perplexity)
        if len(kept) < cfg.prepare.min_posts_per_community:
            steps = ", ".join(f"{k} {v}" for k, v in counts.items() if not k.startswith("anonymized"))
            raise CorpusError(
                f"{source}: community {key!r} has {len(kept)} posts after cleaning, fewer than "
                f"prepare.min_posts_per_community={cfg.prepare.min_posts_per_community} ({steps})"
            )
        train, heldout = split(kept, cfg.prepare.heldout_fraction, cfg.prepare.seed, key)
        counts.update(train=len(train), heldout=len(heldout))
        outputs[key], stats[key] = (train, heldout), counts
    totals = Counter()
    for counts in stats.values():
        totals.update(counts)
    return outputs, {"communities": stats, "total": dict(totals), "ignored_rows": ignored}


def main(cfg: HiveConfig, run) -> dict:
    """Read the corpus, prepare it, and swap in the prepared posts and the stats only if all succeeded."""
    frame = read_sources(cfg.data, {c.label for c in cfg.communities.values()})
    perplexity = _perplexity_scorer(cfg.prepare) if cfg.prepare.cap_strategy == "lowest_perplexity" else None
    outputs, stats = prepare(frame, cfg, read_from(cfg.data), perplexity)
    with staged_outputs() as out:  # posts, stats and the MLflow record change together or not at all
        out.dir(paths.PREPARED)
        for key, (train, heldout) in outputs.items():
            write_jsonl(out.path(paths.train_posts(key)), train)
            write_jsonl(out.path(paths.heldout_posts(key)), heldout)
        write_json(out.path(paths.PREPARE_STATS), stats)
        run.log_metrics(stats)
        run.log_dict(stats, paths.PREPARE_STATS.name)
    for key, counts in stats["communities"].items():
        log.info("%s: %d read -> %d train, %d held out", key, counts["input"], counts["train"], counts["heldout"])
    return stats


def _perplexity_scorer(cfg: PrepareConfig):
    from hivelm import models

    model, tokenizer = models.load_causal_lm(cfg.perplexity_model, device=cfg.perplexity_device)
    return lambda texts: models.perplexities(model, tokenizer, texts)
