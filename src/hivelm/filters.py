"""Duplicate filters shared by `prepare` (real posts) and `generate` (synthetic posts)."""

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
    decides which pairs to check.
    """
    from datasketch import MinHash, MinHashLSH

    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
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


# --- Refusals: generated "posts" that are the model declining to write one ------------------------------

_APOSTROPHE = "['\u2019]"
_I_CANT = (rf"I(?: cannot| can ?not| can{_APOSTROPHE}t|(?: am|{_APOSTROPHE}m) (?:unable|not able) to"
           rf"| won{_APOSTROPHE}t be able to| will not be able to)")
# Verbs of writing/helping: a bare "I cannot" or "I can't help" would flag "I cannot believe this cake" and
# "I can't help but smile", so the refused act (and "help you/with") is part of every pattern.
_REFUSED = (r"(?:assist|comply|provide|create|write|generate|fulfil|fulfill|produce|engage"
            r"|support (?:that|this|your)|help (?:you|with)|do (?:that|this)|answer (?:that|this)"
            r"|continue with)")

_SORRY = rf"I(?: am|{_APOSTROPHE}m) sorry,? but"
_NOT_APPROPRIATE = (rf"(?:is not|isn{_APOSTROPHE}t|would not be|wouldn{_APOSTROPHE}t be)"
                    r" (?:appropriate|something I can)")
_WRITING = (r"(?:writing|creating|generating|providing|producing|helping|assisting|responding|engaging"
            r"|sharing)")
_MAKE = r"(?:create|write|generate|provide|produce|share)"

DEFAULT_REFUSAL_PATTERNS: tuple[str, ...] = (
    rf"\b{_I_CANT} {_REFUSED}\b",
    rf"\b{_SORRY} (?:that|this) {_NOT_APPROPRIATE}",
    rf"\bI(?: am|{_APOSTROPHE}m) (?:just |only )?an AI(?: language model| model| assistant| chatbot|[,.])",
    # "As an AI, ..." / "As an AI language model I ..." but not "as an AI researcher, I ...".
    r"\bas an (?:AI|artificial intelligence)(?: language model| model| assistant| chatbot)?(?:,|\s+I\b)",
    r"\bas a (?:large )?language model\b",
    rf"\bit(?: is|{_APOSTROPHE}s) not appropriate (?:for me )?to {_MAKE}\b",
    rf"\bI (?:do not|don{_APOSTROPHE}t) feel comfortable {_WRITING}\b",
    r"\bI must (?:respectfully )?decline\b",
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
