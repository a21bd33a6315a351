"""Text scorers behind small interfaces: sentence embeddings, toxicity, emotion.

    from hivelm.scorers.embed import Embedder                     # encode(texts) -> (n, d), unit length
    from hivelm.scorers.toxicity import make_toxicity_scorer      # score(texts) -> {label: (n,)}
    from hivelm.scorers.emotion import make_emotion_scorer        # score(texts) -> (n, k), NaN = no signal

Every scorer has an `info` dict ({"backend", "model", "version", ...}) that callers record with each result,
so a number never loses the model that produced it. Models only ever come from installed packages or local
files: nothing here downloads at run time. The device always comes from config (`evaluate.scorers.device`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from importlib import metadata

import numpy as np

from hivelm.errors import HiveError


class ScorerError(HiveError):
    """A scorer that cannot be built or run as configured; the message names the config key."""


def as_texts(texts: Sequence[str]) -> list[str]:
    """The texts as a list, rejecting non-strings (a pandas NaN would otherwise score as the text 'nan')."""
    texts = list(texts)
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise ScorerError(f"scorers take strings; item {i} is {type(text).__name__} ({text!r})")
    return texts


def by_length(texts: list[str], batch_size: int, score_batch: Callable[[list[str]], np.ndarray],
              width: int) -> np.ndarray:
    """(n, width) rows of `score_batch` over batches of length-sorted texts, returned in input order.

    Texts of similar length share a batch, so padding each batch to its longest text wastes little: the
    trick of sentence-transformers' `encode` (sentence_transformer/model.py, `length_sorted_idx`).
    """
    out = np.empty((len(texts), width), dtype=np.float64)
    order = np.argsort([len(t) for t in texts], kind="stable")
    for start in range(0, len(texts), batch_size):
        idx = order[start:start + batch_size]
        out[idx] = score_batch([texts[i] for i in idx])
    return out


def version(distribution: str) -> str:
    """Installed version of a distribution, without importing it ('not installed' if absent)."""
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "not installed"
