"""Duplicate filters shared by `prepare` (real posts) and `generate` (synthetic posts)."""

from __future__ import annotations

from typing import Sequence

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
