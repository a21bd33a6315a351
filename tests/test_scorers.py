"""Scorers on fixtures: the embedded MiniLM, the jigsaw BiLSTM port against outputs recorded from the package's
own TensorFlow model, detoxify's real loader and transformers' pipeline on tiny models built here, NRC."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from hivelm.config import ScorersConfig
from hivelm.errors import HiveError

pytestmark = pytest.mark.heavy  # real scorer models (MiniLM, BiLSTM, tiny BERTs)
FIXTURE = Path(__file__).parent / "fixtures" / "jigsaw_reference.json"
BENIGN = ["Thank you for sharing this recipe, it looks delicious.", "Lovely weather for a run this morning.",
          "Good luck with your first race this weekend!"]
INSULTS = ["You are a pathetic idiot and everyone hates you.", "Shut up you stupid moron.",
           "What a disgusting, worthless loser you are."]
TINY_WORDS = ["you", "are", "a", "idiot", "stupid", "moron", "nice", "lovely", "day", "run", "the", "great", "post",
              "hate", "kill", "love", "happy", "sad"]


def tiny_bert(path: Path, labels: list[str], seed: int = 0, **config) -> Path:
    """A 1-layer, 16-dim BERT classifier with a word-level vocabulary, saved with its tokenizer."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

    vocab = {w: i for i, w in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + TINY_WORDS)}
    tokenizer = BertTokenizer(vocab=vocab, do_lower_case=True)  # vocab_file= is ignored by transformers 5
    torch.manual_seed(seed)
    bert = BertConfig(vocab_size=len(vocab), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                      intermediate_size=32, max_position_embeddings=64, num_labels=len(labels),
                      id2label=dict(enumerate(labels)), label2id={k: i for i, k in enumerate(labels)},
                      initializer_range=0.5, **config)  # wide init: outputs differ visibly between texts
    BertForSequenceClassification(bert).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def reference_probabilities(path: Path, texts: list[str], multi_label: bool = False) -> np.ndarray:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(path).eval()
    batch = AutoTokenizer.from_pretrained(path)(texts, return_tensors="pt", padding=True)
    with torch.no_grad():
        logits = model(**batch).logits
    return (torch.sigmoid(logits) if multi_label else torch.softmax(logits, -1)).numpy()


@pytest.fixture(scope="session")
def embedder():
    from hivelm.scorers.embed import Embedder

    return Embedder()


@pytest.fixture(scope="session")
def jigsaw():
    from hivelm.scorers.toxicity import JigsawToxicity

    return JigsawToxicity()


@pytest.fixture(scope="session")
def detoxify_checkpoint(tmp_path_factory) -> tuple[Path, Path]:
    """A detoxify-format checkpoint of a tiny 6-label BERT whose config.arch.args.model_type is a local folder."""
    import torch
    from transformers import BertForSequenceClassification

    root = tmp_path_factory.mktemp("detoxify")
    folder = tiny_bert(root / "bert", ["toxic", "severe_toxic", "obscene", "threat", "insult", "identity_hate"])
    checkpoint = root / "tiny.ckpt"
    torch.save({"config": {"arch": {"args": {"model_type": str(folder), "model_name": "BertForSequenceClassification",
                                             "tokenizer_name": "BertTokenizer", "num_classes": 6}},
                           "dataset": {"args": {"classes": ["toxic", "severe_toxic", "obscene", "threat", "insult",
                                                            "identity_hate"]}}},
                "state_dict": BertForSequenceClassification.from_pretrained(folder).state_dict()}, checkpoint)
    return checkpoint, folder


# --- embeddings ---------------------------------------------------------------------------------------------


def test_embeddings_are_unit_vectors_in_input_order(embedder):
    texts = ["Keto bread with almond flour", "a", "My long run today felt easy and the weather was perfect " * 3]
    vectors = embedder.encode(texts)
    assert vectors.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(embedder.encode([texts[2]])[0], vectors[2], atol=1e-5)  # order restored
    assert embedder.encode([]).shape == (0, 384)
    assert embedder.info["backend"] == "sentence-transformers"
    assert embedder.info["model"] == "embedded:all-MiniLM-L6-v2" and embedder.info["version"]


def test_similar_texts_are_closer_than_unrelated(embedder):
    a, b, c = embedder.encode(["I baked keto bread with almond flour.", "My low-carb bread uses almond flour.",
                               "The train to the airport was delayed by an hour."])
    assert a @ b > a @ c + 0.2


def test_unknown_embedder_fails_without_downloading():
    from hivelm.scorers.embed import Embedder, resolve

    with pytest.raises(HiveError, match="evaluate.scorers.embedder"):
        resolve("embedded:no-such-model")
    with pytest.raises(HiveError, match="evaluate.scorers.embedder"):
        Embedder("nobody/no-such-model-here")


# --- toxicity -----------------------------------------------------------------------------------------------


def test_jigsaw_port_matches_the_packages_tensorflow_outputs(jigsaw):
    from hivelm.scorers.toxicity import JIGSAW_NAMES, LABELS

    reference = json.loads(FIXTURE.read_text())
    records = reference["records"]
    assert [jigsaw.tokenizer.ids(r["text"]) for r in records] == [r["token_ids"] for r in records]
    scores = jigsaw.score([r["text"] for r in records])
    assert tuple(scores) == LABELS
    for name in reference["labels"]:
        expected = [r["scores"][name] for r in records]
        np.testing.assert_allclose(scores[JIGSAW_NAMES.get(name, name)], expected, atol=1e-5, err_msg=name)


def test_jigsaw_truncates_at_the_front_like_keras(jigsaw):
    insult_then_benign = "you idiot " * 30 + " ".join(BENIGN * 10)
    padded = jigsaw.tokenizer.padded([insult_then_benign, ""])
    assert padded.shape == (2, 100) and not padded[1].any()
    assert padded[0, -1] == jigsaw.tokenizer.ids(insult_then_benign)[-1]  # the last tokens are kept
    assert jigsaw.score([insult_then_benign])["insult"][0] < 0.1


def test_insults_score_higher_than_benign_posts_in_input_order(jigsaw):
    texts = [t for pair in zip(BENIGN, INSULTS) for t in pair]
    scores = jigsaw.score(texts)
    assert min(scores["toxicity"][1::2]) > 0.5 > max(scores["toxicity"][0::2])
    assert min(scores["insult"][1::2]) > max(scores["insult"][0::2])
    one_by_one = [jigsaw.score([t])["toxicity"][0] for t in texts]
    np.testing.assert_allclose(scores["toxicity"], one_by_one, atol=1e-6)
    assert jigsaw.score([])["toxicity"].shape == (0,)


def test_detoxify_runs_its_real_loader_on_a_local_checkpoint(detoxify_checkpoint):
    from hivelm.scorers.toxicity import LABELS, make_toxicity_scorer

    checkpoint, folder = detoxify_checkpoint
    cfg = ScorersConfig(toxicity_backend="detoxify", detoxify_checkpoint=str(checkpoint),
                        detoxify_config_dir=str(folder), batch_size=2)
    scorer = make_toxicity_scorer(cfg)
    texts = ["you are a stupid idiot", "nice day", "the great post", "hate", "run"]  # last batch: one text
    scores = scorer.score(texts)
    assert tuple(scores) == LABELS
    expected = reference_probabilities(folder, texts, multi_label=True)  # detoxify applies a sigmoid
    np.testing.assert_allclose(np.column_stack([scores[k] for k in LABELS]), expected, atol=1e-5)
    assert scorer.info["backend"] == "detoxify" and scorer.info["version"] == "0.5.4"


def test_detoxify_without_a_checkpoint_refuses_to_download():
    from hivelm.scorers.toxicity import make_toxicity_scorer

    with pytest.raises(HiveError, match=r"evaluate\.scorers\.detoxify_checkpoint"):
        make_toxicity_scorer(ScorersConfig(toxicity_backend="detoxify"))


def test_auto_falls_back_loudly_and_records_why(caplog):
    from hivelm.scorers.toxicity import make_toxicity_scorer

    with caplog.at_level(logging.WARNING, logger="hivelm.scorers.toxicity"):
        scorer = make_toxicity_scorer(ScorersConfig(toxicity_backend="auto"))
    assert "jigsaw_bilstm" in caplog.text and "detoxify_checkpoint" in caplog.text
    assert scorer.info["backend"] == "jigsaw_bilstm" and scorer.info["requested_backend"] == "auto"
    assert "detoxify_checkpoint" in scorer.info["fallback_reason"]
    assert scorer.score(INSULTS[:1])["toxicity"][0] > 0.5


def test_auto_uses_detoxify_when_it_loads(detoxify_checkpoint, caplog):
    from hivelm.scorers.toxicity import make_toxicity_scorer

    checkpoint, folder = detoxify_checkpoint
    with caplog.at_level(logging.WARNING):
        scorer = make_toxicity_scorer(ScorersConfig(toxicity_backend="auto", detoxify_checkpoint=str(checkpoint),
                                                    detoxify_config_dir=str(folder)))
    assert scorer.info["backend"] == "detoxify" and "fallback_reason" not in scorer.info
    assert not caplog.records


def test_scorers_reject_non_strings(jigsaw):
    with pytest.raises(HiveError, match="item 1 is float"):
        jigsaw.score(["fine", float("nan")])


# --- emotion ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def nrc():
    from hivelm.scorers.emotion import make_emotion_scorer

    return make_emotion_scorer(ScorersConfig())


def test_nrc_counts_known_words_and_marks_no_signal_as_nan(nrc, caplog):
    from hivelm.scorers.emotion import EMOTIONS

    with caplog.at_level(logging.INFO, logger="hivelm.scorers.emotion"):
        matrix = nrc.score(["I love this happy day", "the of and 123 :)", "I hate this, it makes me angry"])
    row = dict(zip(EMOTIONS, matrix[0]))
    assert matrix.shape == (3, 10) and nrc.labels == EMOTIONS
    assert row["joy"] == 2 and row["positive"] == 2 and row["anger"] == 0  # love, happy
    assert np.isnan(matrix[1]).all() and nrc.no_signal == 1 and "1 of 3" in caplog.text
    assert dict(zip(EMOTIONS, matrix[2]))["anger"] >= 2  # hate, angry
    assert nrc.info["backend"] == "nrc" and nrc.info["version"] == "4.1.0"


def test_nrc_lemmatises_so_inflected_words_hit(nrc):
    from hivelm.scorers.emotion import EMOTIONS

    assert "cried" not in nrc.lexicon  # only its lemma is
    crying, cried = (dict(zip(EMOTIONS, row)) for row in nrc.score(["She was crying", "He cried"]))
    assert crying["sadness"] == cried["sadness"] == 1


def test_emotion_profile_skips_no_signal_rows_and_sums_to_one():
    from hivelm.scorers.emotion import emotion_profile

    matrix = np.array([[2.0, 0.0, 1.0], [np.nan] * 3, [1.0, 0.0, 0.0]])
    np.testing.assert_allclose(emotion_profile(matrix), [0.75, 0.0, 0.25])
    assert np.isnan(emotion_profile(np.full((2, 3), np.nan))).all()


@pytest.mark.parametrize("multi_label", [False, True])
def test_transformers_emotion_gives_per_label_probabilities(tmp_path, multi_label):
    from hivelm.scorers.emotion import SEMEVAL_EMOTIONS, make_emotion_scorer

    extra = {"problem_type": "multi_label_classification"} if multi_label else {}
    folder = tiny_bert(tmp_path / "emotion", list(SEMEVAL_EMOTIONS), **extra)
    scorer = make_emotion_scorer(ScorersConfig(emotion_backend="transformers", emotion_model=str(folder),
                                               batch_size=2))
    texts = ["i love this happy day", "hate", "you are a stupid idiot and i hate you", "sad", ""]
    probabilities = scorer.score(texts)
    assert scorer.labels == SEMEVAL_EMOTIONS and probabilities.shape == (5, 11)
    assert ((probabilities >= 0) & (probabilities <= 1)).all()
    if not multi_label:
        np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(probabilities, reference_probabilities(folder, texts, multi_label), atol=1e-5)
    assert scorer.info["backend"] == "transformers" and scorer.info["model"] == str(folder)
