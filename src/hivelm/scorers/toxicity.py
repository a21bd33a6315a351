"""Toxicity scores for the six Jigsaw labels (paper section 5.2 used detoxify `original`).

Backends (`evaluate.scorers.toxicity_backend`):
  jigsaw_bilstm  offline default: the Keras BiLSTM whose Jigsaw-trained weights ship in the
                 `toxic-comment-classifier==0.3.0` package, re-implemented in plain PyTorch (the package's own
                 code needs TensorFlow); matches the package's TensorFlow outputs to 1.5e-7
                 (tests/fixtures/jigsaw_reference.json). Weak on threats and identity hate.
  detoxify       the design's scorer (Hanu & Unitary 2020), from a local checkpoint only.
  auto           detoxify if its checkpoint loads, else jigsaw_bilstm, with a warning and the reason in `info`.
"""

from __future__ import annotations

import logging
import pickle
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from hivelm.scorers import ScorerError, as_texts, by_length, version

log = logging.getLogger(__name__)

LABELS = ("toxicity", "severe_toxicity", "obscene", "threat", "insult", "identity_attack")
"""detoxify `original`'s names for the Jigsaw Toxic Comment Classification Challenge (2018) labels."""
JIGSAW_NAMES = {"toxic": "toxicity", "severe_toxic": "severe_toxicity", "identity_hate": "identity_attack"}
"""Jigsaw column names -> LABELS (as detoxify's `load_checkpoint` renames them); the others are the same."""

PACKAGE, MODULE = "toxic-comment-classifier", "toxic_classifier"
JIGSAW_CLASSES = ("toxic", "severe_toxic", "obscene", "threat", "insult", "identity_hate")  # package output order
MAXLEN, VOCAB_SIZE, EMBEDDING_DIM, LSTM_UNITS, DENSE_UNITS = 100, 20000, 50, 50, 50  # toxic_classifier/model.py


def to_labels(scores: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Scores keyed by LABELS, whichever naming (Jigsaw or detoxify) the backend used."""
    renamed = {JIGSAW_NAMES.get(name, name): np.asarray(value, dtype=np.float64) for name, value in scores.items()}
    missing = [label for label in LABELS if label not in renamed]
    if missing:
        raise ScorerError(f"toxicity model gives labels {sorted(scores)}, missing {missing}")
    return {label: renamed[label] for label in LABELS}


# --- jigsaw_bilstm ------------------------------------------------------------------------------------------


def package_dir() -> Path:
    """The installed toxic_classifier folder, found without importing it (its __init__ imports TensorFlow)."""
    import importlib.util

    spec = importlib.util.find_spec(MODULE)
    if spec is None or not spec.submodule_search_locations:
        raise ScorerError(f"evaluate.scorers.toxicity_backend=jigsaw_bilstm: package {PACKAGE!r} is not installed "
                          "(`make setup` installs it with --no-deps)")
    return Path(list(spec.submodule_search_locations)[0])


class _Pickled:
    """Stand-in for keras' Tokenizer class: unpickling only restores its attributes (__dict__)."""


class _TokenizerUnpickler(pickle.Unpickler):
    """Loads the package's pickled Keras Tokenizer without Keras, and refuses any other class (so the pickle
    cannot run code): the Tokenizer becomes a plain attribute holder."""

    ALLOWED = {("collections", "OrderedDict"), ("collections", "defaultdict"), ("builtins", "int"),
               ("builtins", "list"), ("builtins", "dict")}

    def find_class(self, module: str, name: str):
        if name == "Tokenizer" and module.startswith("keras"):
            return _Pickled
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"tokenizer.pickle: refusing to load {module}.{name}")


class KerasTokenizer:
    """`keras.preprocessing.text.Tokenizer.texts_to_sequences` plus `pad_sequences(maxlen=100)`, reproduced
    from keras 3.15 (keras/src/legacy/preprocessing/text.py, `text_to_word_sequence` and
    `texts_to_sequences_generator`) with the settings pickled in the package: the same filters, lowercasing,
    split character and `num_words` cutoff (a word's index must be < num_words). The package's
    `utils.clean_text` is not on its `classify` path, so it is not applied here either."""

    def __init__(self, path: Path):
        with open(path, "rb") as f:
            state = vars(_TokenizerUnpickler(f).load())
        self.word_index: dict[str, int] = state["word_index"]
        self.filters, self.lower, self.split = state["filters"], state["lower"], state["split"]
        self.num_words, self.oov_token = state["num_words"], state["oov_token"]
        if state.get("char_level") or state.get("analyzer") is not None:
            raise ScorerError(f"{path}: char-level or custom-analyzer tokenizers are not supported")
        self.table = str.maketrans({c: self.split for c in self.filters})

    def words(self, text: str) -> list[str]:
        text = text.lower() if self.lower else text
        return [w for w in text.translate(self.table).split(self.split) if w]

    def ids(self, text: str) -> list[int]:
        oov = self.word_index.get(self.oov_token)
        ids = []
        for word in self.words(text):
            i = self.word_index.get(word)
            if i is not None and self.num_words and i >= self.num_words:
                i = oov  # Keras keeps a rare word only as the OOV token, if there is one
            elif i is None and self.oov_token is not None:
                i = oov
            if i is not None:
                ids.append(i)
        return ids

    def padded(self, texts: list[str], maxlen: int = MAXLEN) -> np.ndarray:
        """(n, maxlen) ids; pad_sequences' defaults: pad and truncate at the FRONT ('pre'), pad value 0."""
        out = np.zeros((len(texts), maxlen), dtype=np.int64)
        for row, text in enumerate(texts):
            ids = self.ids(text)[-maxlen:]
            if ids:
                out[row, maxlen - len(ids):] = ids
        return out


def build_bilstm():
    """The package's network: Embedding(20000, 50) -> Bidirectional(LSTM(50), concat) -> GlobalMaxPool1D ->
    Dense(50, relu) -> Dense(6, sigmoid). Dropout layers are identity at inference."""
    import torch
    from torch import nn

    class BiLSTM(nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = nn.Embedding(VOCAB_SIZE, EMBEDDING_DIM)
            self.lstm = nn.LSTM(EMBEDDING_DIM, LSTM_UNITS, batch_first=True, bidirectional=True)
            self.dense = nn.Linear(2 * LSTM_UNITS, DENSE_UNITS)
            self.out = nn.Linear(DENSE_UNITS, len(JIGSAW_CLASSES))

        def forward(self, ids):                   # (batch, 100) int64, pad id 0 embedded like any word (no mask)
            states, _ = self.lstm(self.embedding(ids))   # (batch, 100, 2 * 50): [forward, backward] per step
            pooled = states.max(dim=1).values              # (batch, 100)
            return torch.sigmoid(self.out(torch.relu(self.dense(pooled))))

    return BiLSTM()


def load_keras_weights(model, path: Path) -> None:
    """Copy the Keras 3 `model.weights.h5` into the PyTorch modules.

    Keras stores Dense kernels as (in, out) and LSTM kernels as (in, 4 * units) with gates in the order
    i, f, c, o, which is PyTorch's i, f, g, o: each kernel is transposed. Keras has one LSTM bias per gate,
    PyTorch two (input and hidden), so the hidden bias is zero.
    """
    import h5py
    import torch

    def tensor(f, name):
        return torch.from_numpy(np.asarray(f[f"layers/{name}"], dtype=np.float32))

    with h5py.File(path, "r") as f, torch.no_grad():
        model.embedding.weight.copy_(tensor(f, "embedding/vars/0"))
        for keras_name, suffix in (("forward_layer", ""), ("backward_layer", "_reverse")):
            cell = f"bidirectional/{keras_name}/cell/vars"
            getattr(model.lstm, f"weight_ih_l0{suffix}").copy_(tensor(f, f"{cell}/0").T)
            getattr(model.lstm, f"weight_hh_l0{suffix}").copy_(tensor(f, f"{cell}/1").T)
            getattr(model.lstm, f"bias_ih_l0{suffix}").copy_(tensor(f, f"{cell}/2"))
            getattr(model.lstm, f"bias_hh_l0{suffix}").zero_()
        for module, name in ((model.dense, "dense"), (model.out, "dense_1")):
            module.weight.copy_(tensor(f, f"{name}/vars/0").T)
            module.bias.copy_(tensor(f, f"{name}/vars/1"))


class JigsawToxicity:
    """toxic-comment-classifier 0.3.0's BiLSTM in PyTorch, batched; same tokens and scores as its
    `ToxicCommentClassifier.classify`."""

    def __init__(self, device: str = "cpu", batch_size: int = 32):
        folder = package_dir() / "model"
        self.weights, self.device, self.batch_size = folder / "model.weights.h5", device, batch_size
        self.tokenizer = KerasTokenizer(folder / "tokenizer.pickle")
        self.model = build_bilstm()
        load_keras_weights(self.model, self.weights)
        self.model.to(device).eval()
        self.notes: dict = {}

    @property
    def info(self) -> dict:
        return {"backend": "jigsaw_bilstm", "model": f"{PACKAGE}=={version(PACKAGE)} (model/model.weights.h5)",
                "version": version(PACKAGE), "runtime": f"torch {version('torch')}"} | self.notes

    def _batch(self, texts: list[str]) -> np.ndarray:
        import torch

        # Every input is padded to exactly 100 tokens, as Keras did, so sorting saves no padding here.
        ids = torch.from_numpy(self.tokenizer.padded(texts)).to(self.device)
        with torch.no_grad():
            return self.model(ids).float().cpu().numpy()

    def score(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        """{label: (n,) probabilities} for LABELS."""
        scores = by_length(as_texts(texts), self.batch_size, self._batch, len(JIGSAW_CLASSES))
        return to_labels(dict(zip(JIGSAW_CLASSES, scores.T)))


# --- detoxify ------------------------------------------------------------------------------------------------


class DetoxifyToxicity:
    """detoxify (Hanu & Unitary 2020) from a local checkpoint; detoxify's own loader, its sigmoid outputs."""

    def __init__(self, model_type: str = "original", checkpoint: str | None = None, config_dir: str | None = None,
                 device: str = "cpu", batch_size: int = 32):
        if not checkpoint:
            raise ScorerError(
                "evaluate.scorers.detoxify_checkpoint is not set: detoxify would download its "
                f"{model_type!r} checkpoint from GitHub, and HiveLM never downloads at run time. Download the "
                ".ckpt once, set evaluate.scorers.detoxify_checkpoint to it and evaluate.scorers.detoxify_config_dir "
                "to a folder with the matching transformers config and tokenizer")
        if not Path(checkpoint).is_file():
            raise ScorerError(f"evaluate.scorers.detoxify_checkpoint: {checkpoint} is not a file")
        self.model_type, self.checkpoint, self.config_dir = model_type, checkpoint, config_dir
        self.batch_size, self.notes = batch_size, {}
        try:
            from detoxify import Detoxify

            self.detoxify = Detoxify(model_type, checkpoint=checkpoint, huggingface_config_path=config_dir,
                                     device=device)
        except Exception as err:  # loading fails in many types: import, torch, transformers, hub, dict keys
            raise ScorerError(
                f"evaluate.scorers.detoxify_checkpoint: detoxify could not load {checkpoint} (with "
                f"detoxify_config_dir={config_dir}): {type(err).__name__}: {err}. The checkpoint's "
                "config.arch.args.model_type must name a local folder or a cached hub id") from err
        self.labels = [JIGSAW_NAMES.get(name, name) for name in self.detoxify.class_names]
        to_labels({name: [] for name in self.labels})  # fail now, not at the first batch, if labels are missing

    @property
    def info(self) -> dict:
        return {"backend": "detoxify", "model": f"{self.model_type}:{self.checkpoint}",
                "version": version("detoxify"), "config_dir": self.config_dir} | self.notes

    def _batch(self, texts: list[str]) -> np.ndarray:
        scores = self.detoxify.predict(texts)  # {class: list}, or {class: float} for a single text
        return np.column_stack([np.atleast_1d(np.asarray(scores[name], dtype=np.float64))
                                for name in self.detoxify.class_names])

    def score(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        """{label: (n,) probabilities} for LABELS (extra detoxify labels such as `sexual_explicit` dropped)."""
        scores = by_length(as_texts(texts), self.batch_size, self._batch, len(self.labels))
        return to_labels(dict(zip(self.labels, scores.T)))


# --- choosing -----------------------------------------------------------------------------------------------


def make_toxicity_scorer(cfg):
    """The toxicity scorer `evaluate.scorers` (a ScorersConfig) describes. `auto` never falls back silently:
    it logs a warning with the reason and records it in `info["fallback_reason"]`."""
    backend = cfg.toxicity_backend
    if backend == "jigsaw_bilstm":
        return JigsawToxicity(cfg.device, cfg.batch_size)
    detoxify = dict(model_type=cfg.detoxify_model_type, checkpoint=cfg.detoxify_checkpoint,
                    config_dir=cfg.detoxify_config_dir, device=cfg.device, batch_size=cfg.batch_size)
    if backend == "detoxify":
        return DetoxifyToxicity(**detoxify)
    if backend != "auto":
        raise ScorerError(f"evaluate.scorers.toxicity_backend: unknown backend {backend!r}")
    try:
        scorer = DetoxifyToxicity(**detoxify)
    except ScorerError as err:
        log.warning("evaluate.scorers.toxicity_backend=auto: detoxify unavailable, scoring toxicity with "
                    "jigsaw_bilstm instead. Reason: %s", err)
        scorer = JigsawToxicity(cfg.device, cfg.batch_size)
        scorer.notes = {"fallback_reason": str(err)}
    scorer.notes = scorer.notes | {"requested_backend": "auto"}
    return scorer
