"""Emotion vectors per text, and a corpus's emotion profile (paper section 5.2: 1 - Jensen-Shannon distance
between summed, normalised emotion vectors).

Backends (`evaluate.scorers.emotion_backend`):
  nrc           offline default: counts of NRC Emotion Lexicon (Mohammad & Turney 2013) associations of the
                text's words, via `nrclex` in token-list mode (its raw-text mode needs NLTK data) on words
                lemmatised by `simplemma` (else "cried" or "tears" miss). A text with no lexicon word has no
                signal: its row is NaN, not zeros.
  transformers  a text-classification model at `emotion_model` (e.g. an 11-label SemEval 2018 E-c model, the
                paper's labels; theirs was not released): per-label probabilities, labels from the model config.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence

import numpy as np

from hivelm.scorers import ScorerError, as_texts, by_length, version

log = logging.getLogger(__name__)

EMOTIONS = ("anger", "anticipation", "disgust", "fear", "joy", "sadness", "surprise", "trust", "positive", "negative")
"""The NRC Emotion Lexicon's eight basic emotions (Plutchik) and two sentiments."""
SEMEVAL_EMOTIONS = ("anger", "anticipation", "disgust", "fear", "joy", "love", "optimism", "pessimism", "sadness",
                    "surprise", "trust")
"""SemEval 2018 Task 1 E-c labels (Mohammad et al. 2018), the paper's 11; a transformers model supplies its own."""
WORD = re.compile(r"[^\W\d_]+")  # runs of letters: the lexicon's entries are single lowercase words


class NRCEmotion:
    """Per text, how many of its words the NRC lexicon links to each of EMOTIONS (NaN row: no lexicon word)."""

    labels = EMOTIONS

    def __init__(self, language: str = "en"):
        from nrclex import NRCLex

        self.nrc, self.language, self.no_signal = NRCLex(), language, 0
        self.lexicon = self.nrc.__lexicon__  # nrclex's word -> [emotions] table (a dunder name, not mangled)

    @property
    def info(self) -> dict:
        return {"backend": "nrc", "model": f"nrclex=={version('nrclex')} + simplemma=={version('simplemma')} "
                f"({self.language})", "version": version("nrclex")}

    def tokens(self, text: str) -> list[str]:
        """Lowercase words, each as written if the lexicon has it (its entry is the most specific: it has
        "abandoned" apart from "abandon"), else as its simplemma lemma ("cried" -> "cry")."""
        import simplemma

        words = WORD.findall(text.lower())
        return [w if w in self.lexicon else simplemma.lemmatize(w, lang=self.language) for w in words]

    def counts(self, text: str) -> np.ndarray:
        self.nrc.load_token_list(self.tokens(text))
        if not self.nrc.affect_dict:  # no word of the text is in the lexicon
            return np.full(len(EMOTIONS), np.nan)
        return np.array([self.nrc.raw_emotion_scores.get(e, 0) for e in EMOTIONS], dtype=np.float64)

    def score(self, texts: Sequence[str]) -> np.ndarray:
        """(n, 10) counts in EMOTIONS order. A lexicon lookup pads nothing, so texts go one at a time and
        there is no length sorting to gain from; `no_signal` counts the NaN rows of the last call."""
        texts = as_texts(texts)
        matrix = np.array([self.counts(t) for t in texts]).reshape(len(texts), len(EMOTIONS))
        self.no_signal = int(np.isnan(matrix).any(axis=1).sum())
        if self.no_signal:
            log.info("nrc emotion: %d of %d texts have no lexicon word (NaN rows: no signal)",
                     self.no_signal, len(texts))
        return matrix


class TransformersEmotion:
    """Per-label probabilities from a local text-classification model (softmax or, for a multi-label model,
    sigmoid: the pipeline picks from the config's problem_type)."""

    def __init__(self, model: str, device: str = "cpu", batch_size: int = 32):
        from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

        self.model, self.batch_size, self.no_signal = model, batch_size, 0
        try:  # local files only: a hub id must already be in the Hugging Face cache
            classifier = AutoModelForSequenceClassification.from_pretrained(
                model, local_files_only=True, trust_remote_code=False)
            tokenizer = AutoTokenizer.from_pretrained(model, local_files_only=True, trust_remote_code=False)
        except OSError as err:
            raise ScorerError(f"evaluate.scorers.emotion_model: cannot load {model!r} as a local folder or "
                              f"cached hub id: {err}") from None
        config = classifier.config
        self.labels = tuple(config.id2label[i] for i in range(config.num_labels))
        self.pipe = pipeline("text-classification", model=classifier, tokenizer=tokenizer, top_k=None,
                             device=device)

    @property
    def info(self) -> dict:
        return {"backend": "transformers", "model": self.model, "version": version("transformers"),
                "labels": list(self.labels)}

    def _batch(self, texts: list[str]) -> np.ndarray:
        rows = self.pipe(texts, batch_size=len(texts), truncation=True)  # per text: [{label, score}, ...]
        return np.array([[{d["label"]: d["score"] for d in row}[label] for label in self.labels] for row in rows])

    def score(self, texts: Sequence[str]) -> np.ndarray:
        """(n, k) probabilities in `labels` order (the model config's id order)."""
        return by_length(as_texts(texts), self.batch_size, self._batch, len(self.labels))


def make_emotion_scorer(cfg):
    """The emotion scorer `evaluate.scorers` (a ScorersConfig) describes."""
    if cfg.emotion_backend == "nrc":
        return NRCEmotion()
    if cfg.emotion_backend == "transformers":
        if not cfg.emotion_model:
            raise ScorerError("evaluate.scorers.emotion_model: name a model when emotion_backend is transformers")
        return TransformersEmotion(cfg.emotion_model, cfg.device, cfg.batch_size)
    raise ScorerError(f"evaluate.scorers.emotion_backend: unknown backend {cfg.emotion_backend!r}")


def emotion_profile(matrix: np.ndarray) -> np.ndarray:
    """A corpus's emotion distribution: rows summed over texts, skipping NaN rows (no signal), normalised to
    sum to 1 (paper section 5.2). All NaN or all zero: a NaN vector (no profile, not a uniform one)."""
    matrix = np.asarray(matrix, dtype=np.float64)
    total = matrix[~np.isnan(matrix).any(axis=1)].sum(axis=0)
    mass = total.sum()
    return total / mass if mass > 0 else np.full(matrix.shape[1], np.nan)
