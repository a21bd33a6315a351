"""Duplicate filters shared by `prepare` (real posts) and `generate` (synthetic posts), and the post-filter chain
that generate and evaluate (external corpora with `filter: true`) run on generated posts."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TypeVar

from hivelm.leakage import leaked as leaked
from hivelm.text import dedupe_key


def exact_duplicates(texts: Sequence[str]) -> list[bool]:
    """True for every post whose case/whitespace-insensitive text appeared earlier."""
    seen: set[str] = set()
    flags = []
    for text in texts:
        key = dedupe_key(text)
        flags.append(key in seen)
        seen.add(key)
    return flags


def shingles(text: str, size: int) -> set[str]:
    key = dedupe_key(text)
    if len(key) <= size:
        return {key}
    return {key[i:i + size] for i in range(len(key) - size + 1)}


def near_duplicates(texts: Sequence[str], threshold: float = 0.8, shingle_chars: int = 5,
                    num_perm: int = 128, seed: int = 0) -> list[bool]:
    """True for every post whose estimated Jaccard similarity to an earlier kept post is >= threshold.

    MinHash signatures in an LSH index (datasketch) make this one index query per post instead of comparing
    all pairs; candidates are then confirmed with the exact Jaccard of their shingle sets, so the LSH only
    decides which pairs to check. At threshold 1.0 a near duplicate has the same shingles: no LSH needed.
    """
    from datasketch import MinHash

    if threshold >= 1.0:
        seen: set[frozenset[str]] = set()
        flags = []
        for text in texts:
            grams = frozenset(shingles(text, shingle_chars))
            flags.append(grams in seen)
            seen.add(grams)
        return flags
    lsh = _lsh(threshold, num_perm)
    kept: dict[str, set[str]] = {}
    flags = []
    for index, text in enumerate(texts):
        grams = shingles(text, shingle_chars)
        signature = MinHash(num_perm=num_perm, seed=seed)
        signature.update_batch([g.encode("utf-8") for g in grams])
        duplicate = any(
            len(grams & kept[key]) / len(grams | kept[key]) >= threshold for key in lsh.query(signature)
        )
        flags.append(duplicate)
        if not duplicate:
            key = str(index)
            lsh.insert(key, signature)
            kept[key] = grams
    return flags


def _lsh(threshold: float, num_perm: int):
    """datasketch's LSH index with its own optimal banding, or, where that optimum has fewer than two bands
    (datasketch refuses: e.g. threshold 0.99 with 128 permutations), the fewest bands (b = num_perm // r, most
    rows r) that still make a pair at the threshold a candidate with probability 1 - (1 - t**r)**b >= 0.99.
    Candidates are confirmed exactly, so extra bands cost only time (datasketch's docs: the `params` argument)."""
    from datasketch import MinHashLSH

    try:
        return MinHashLSH(threshold=threshold, num_perm=num_perm)
    except ValueError:  # "The number of bands are too small (b < 2)"
        for rows in range(num_perm // 2, 0, -1):
            bands = num_perm // rows
            if 1 - (1 - threshold ** rows) ** bands >= 0.99 or rows == 1:
                return MinHashLSH(num_perm=num_perm, params=(bands, rows))
        raise


# --- Refusals: generated "posts" that are the model declining to write one ------------------------------

_APOSTROPHE = "['\u2019]"
_I_CANT = (rf"I(?: cannot| can ?not| can{_APOSTROPHE}t| will not| won{_APOSTROPHE}t| am not going to"
           rf"|(?: am|{_APOSTROPHE}m) (?:unable|not able) to| won{_APOSTROPHE}t be able to| will not be able to)"
           r"(?: (?:in good conscience|ethically|responsibly|really|personally|actually))?")
# Verbs of writing/helping: a bare "I cannot" or "I can't help" would flag "I cannot believe this cake" and
# "I can't help but smile", so the refused act (and "help you/with") is part of every pattern. Instruct models
# refuse in the words of the request: "I cannot tweet about ...", "I can't draft a tweet ...".
_REFUSED = (r"(?:assist|comply|provide|create|write|generate|fulfil|fulfill|produce|engage|draft|compose|craft"
            r"|promote|encourage|endorse|condone|glorify"
            r"|tweet (?:about|that|this|on|something|content)|post (?:that|this|content|something like)"
            r"|share (?:that|this|content|information)|make (?:that|this|a post|a tweet|content)"
            r"|support (?:that|this|your)|help (?:you|with)|do (?:that|this)|answer (?:that|this)"
            r"|continue with)")

_SORRY = rf"I(?: am|{_APOSTROPHE}m) sorry,? but"
_NOT_APPROPRIATE = (rf"(?:is not|isn{_APOSTROPHE}t|would not be|wouldn{_APOSTROPHE}t be)"
                    r" (?:appropriate|something I can)")
_WRITING = (r"(?:writing|creating|generating|providing|producing|helping|assisting|responding|engaging"
            r"|sharing|drafting|composing|tweeting|posting)")
_MAKE = r"(?:create|write|generate|provide|produce|share|draft|compose|tweet|post)"
_AI = r"(?:AI|artificial intelligence|assistant|language model|large language model|chatbot)"

DEFAULT_REFUSAL_PATTERNS: tuple[str, ...] = (
    rf"\b{_I_CANT} {_REFUSED}\b",
    rf"\b{_SORRY} (?:that|this) {_NOT_APPROPRIATE}",
    rf"\bI(?: am|{_APOSTROPHE}m) (?:just |only )?an AI(?: language model| model| assistant| chatbot|[,.])",
    # "As an AI, ..." / "As an AI language model I ..." / "As an AI model designed to ..." but not "as an AI
    # researcher, I ..." nor "as an aid to recovery".
    rf"\bas an? (?:helpful |responsible |ethical )?{_AI}\b(?: language model| model| assistant| chatbot)?"
    r"(?:,|\s+(?:I|designed|developed|created|trained|built|programmed|committed)\b)",
    r"\bas a (?:large )?language model\b",
    rf"\bit(?: is|{_APOSTROPHE}s) not appropriate (?:for me )?to {_MAKE}\b",
    rf"\bI (?:do not|don{_APOSTROPHE}t) feel comfortable {_WRITING}\b",
    r"\bI must (?:respectfully )?decline\b",
    rf"\bI apologi[sz]e,? but I(?: cannot| can ?not| can{_APOSTROPHE}t| won{_APOSTROPHE}t| will not"
    rf"|(?: am|{_APOSTROPHE}m) (?:unable|not able) to)\b",
)


def refusals(texts: Sequence[str], patterns: Sequence[str] = DEFAULT_REFUSAL_PATTERNS) -> list[bool]:
    """True for every text matching any refusal pattern (case-insensitive).

    Generated posts that are the model refusing the prompt are not community speech; the patterns are
    compiled once, and a broken one raises ValueError naming it instead of a bare re.error.
    """
    compiled = []
    for pattern in patterns:
        try:
            compiled.append(re.compile(pattern, re.IGNORECASE))
        except re.error as error:
            raise ValueError(f"bad refusal pattern {pattern!r}: {error}") from error
    return [any(p.search(text) for p in compiled) for text in texts]


T = TypeVar("T")


def sample_up_to(items: Sequence[T], n: int, seed: int) -> list[T]:
    """A seeded random subset of at most n items, in their original order (so a sample of a time-ordered
    corpus stays time-ordered); everything when n >= len(items)."""
    import numpy as np

    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if n >= len(items):
        return list(items)
    chosen = np.sort(np.random.default_rng(seed).choice(len(items), size=n, replace=False))
    return [items[i] for i in chosen.tolist()]


def post_filter(records: list[dict], cfg, references: Sequence[str], seed: int,
                perplexity=None) -> tuple[list[dict], dict]:
    """The post-filters on generated posts, in order (paper section 5.1): empty, exact and near duplicates,
    refusals, perplexity (only with `perplexity`, a scorer under the base model), leakage (ROUGE-L against
    the community's real training posts `references`), then a seeded sample. `cfg` is a FilterConfig.

    Marks each record's `filter` (the step that dropped it, or 'kept') and returns (kept, counts)."""
    counts = {"generated": len(records)}
    alive = list(records)

    def apply(step: str, flags: list[bool]) -> None:
        nonlocal alive
        for record, drop in zip(alive, flags):
            if drop:
                record["filter"] = step
        alive = [r for r, drop in zip(alive, flags) if not drop]
        counts[f"after_{step}"] = len(alive)

    apply("empty", [not r["text"].strip() for r in alive])
    apply("exact_duplicate", exact_duplicates([r["text"] for r in alive]))
    apply("near_duplicate", near_duplicates([r["text"] for r in alive], cfg.near_duplicate_threshold))
    refusal_flags = refusals([r["text"] for r in alive], cfg.refusal_patterns or DEFAULT_REFUSAL_PATTERNS)
    counts["refusal_rate"] = sum(refusal_flags) / max(1, len(records))
    apply("refusal", refusal_flags)
    if cfg.max_perplexity is not None and alive and perplexity is not None:
        scores = perplexity([r["text"] for r in alive])
        for record, score in zip(alive, scores):
            record["perplexity"] = score
        apply("perplexity", [s > cfg.max_perplexity for s in scores])
    apply("leakage", leaked([r["text"] for r in alive], list(references), cfg.leakage_threshold))
    kept = sample_up_to(alive, cfg.sample_size, seed)
    kept_ids = {id(r) for r in kept}
    for record in alive:
        record["filter"] = "kept" if id(record) in kept_ids else "sample"
    counts["kept"] = len(kept)
    counts["kept_rate"] = len(kept) / max(1, len(records))
    return kept, counts
