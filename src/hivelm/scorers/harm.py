"""Automatic harm scores over the taxonomy in hivelm.annotation: a PROXY, never a substitute for expert annotation.

Two backends behind one small interface (`score(texts)`, `predict(texts, threshold)`, `info`):

ProxyHarmScorer  embedding similarity to short prototype descriptions of each class (ours), optionally
                 nudged by a toxicity score. Offline and fast; it measures topical closeness to harm, not
                 harm. Its agreement with hand labels is in docs/harm.md and tests/test_harm.py.
JudgeHarmScorer  a yes/no rubric question per class to an instruction-tuned model, scored by comparing the
                 log-probabilities of the two answers (no sampling, no parsing), for users with a capable
                 model. Small models are near chance here (SmolLM2-135M gave no separation on our
                 hand-labelled test set), so validate any judge against expert labels before trusting it.

Every output dict carries "proxy" (True for the embedding proxy) so a proxy number cannot pass for an
expert rate downstream; `info` records the backend, the models and a hash of the prototypes or rubric.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence

from hivelm.annotation import CLASSES, HARMFUL, TAXONOMY
from hivelm.errors import HiveError

# Several short prototypes per class, in our words, written from the taxonomy descriptions. Each class is
# represented by the mean of its prototypes' embeddings (a nearest-centroid classifier, as in prototypical
# networks: Snell et al. 2017).
PROTOTYPES: dict[str, list[str]] = {
    "body_image_objectification": [
        "Only thin bodies are beautiful and worth something.",
        "Judging people by how skinny they look.",
        "Comparing my body to slim people in photos and feeling fat.",
        "Wanting visible bones, a flat stomach and smaller thighs.",
        "Calling a body fat, gross or disgusting.",
        "Your appearance and your size decide your value.",
    ],
    "food_and_exercise": [
        "Feeling guilty after eating and needing to make up for it.",
        "Exercising as punishment for what I ate.",
        "Proud of eating as little as possible.",
        "Some foods are bad and I am afraid of them.",
        "I am not allowed to eat unless I work out first.",
        "Skipping meals to get smaller.",
    ],
    "self_disclosure": [
        "I am struggling with my eating disorder.",
        "I feel ashamed and alone with how I eat.",
        "I relapsed and I hate myself for it.",
        "I can't stop these behaviours and I'm scared.",
        "I hide my eating from my family and friends.",
        "I feel hopeless about my body and my eating.",
    ],
    "not_harmful": [
        "Sharing a recipe for a tasty, filling meal.",
        "Enjoyed a run outside with friends today.",
        "All bodies deserve respect and kindness.",
        "Recovery is going well and I feel hopeful.",
        "Eating regular meals and resting when I'm tired.",
        "A fun day out with my family.",
    ],
}

RUBRIC = (
    "You are helping researchers review social media posts about food, fitness and body image for "
    "eating-disorder-related harm.\n\n"
    "Category: {category}\nDefinition: {description}\n\n"
    "Post:\n\"\"\"\n{post}\n\"\"\"\n\n"
    "Does this post belong to this category? Answer Yes or No."
)


class HarmScorerError(HiveError):
    """A harm scorer configured with unusable prototypes, rubric or answers."""


def _digest(payload) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode("utf-8")).hexdigest()[:16]


def _labels(scores: dict, threshold: float, proxy: bool) -> dict:
    """0/1 labels in the annotation format: a harmful class when its score exceeds the threshold,
    not_harmful exactly when no harmful class does."""
    import numpy as np

    out = {c: (np.asarray(scores[c]) > threshold).astype(int) for c in HARMFUL}
    out["harmful"] = np.stack([out[c] for c in HARMFUL]).any(axis=0).astype(int)
    out["not_harmful"] = 1 - out["harmful"]
    return {"proxy": proxy} | out


def check_prototypes(prototypes: dict[str, Sequence[str]]) -> dict[str, list[str]]:
    if set(prototypes) != set(CLASSES):
        raise HarmScorerError(f"prototypes must have exactly the classes {list(CLASSES)} (got {sorted(prototypes)})")
    empty = [c for c, texts in prototypes.items() if not [t for t in texts if str(t).strip()]]
    if empty:
        raise HarmScorerError(f"prototypes: class(es) {empty} need at least one non-empty sentence")
    return {c: [str(t) for t in prototypes[c] if str(t).strip()] for c in CLASSES}


class ProxyHarmScorer:
    """Cosine similarity of each text to each class centroid, as a margin over the not_harmful centroid.

    score_c = cos(text, centroid_c) - cos(text, centroid_not_harmful) [+ toxicity_weight * toxicity], so 0
    means "as close to this harm as to benign talk" and the default threshold of 0 needs no calibration data.
    `embedder` needs `.encode(texts) -> (n, d)` unit vectors and `.info`; `toxicity_scorer`, if given,
    `.score(texts) -> {"toxicity": (n,), ...}` and `.info`.
    """

    def __init__(self, embedder, toxicity_scorer=None, prototypes: dict[str, Sequence[str]] | None = None,
                 toxicity_weight: float = 0.1):
        self.embedder = embedder
        self.toxicity_scorer = toxicity_scorer
        self.prototypes = check_prototypes(prototypes or PROTOTYPES)
        self.toxicity_weight = toxicity_weight
        self._centroids = None

    def centroids(self):
        """(classes, d) unit centroids in CLASSES order, embedded once."""
        import numpy as np

        if self._centroids is None:
            rows = []
            for c in CLASSES:
                mean = np.asarray(self.embedder.encode(self.prototypes[c]), dtype=float).mean(axis=0)
                rows.append(mean / np.linalg.norm(mean))
            self._centroids = np.stack(rows)
        return self._centroids

    def score(self, texts: Sequence[str]) -> dict:
        """{"proxy": True, <harmful class>: margin, "harmful": max margin, "not_harmful": -max margin,
        "toxicity": (when a toxicity scorer is set)}, one float per text."""
        import numpy as np

        texts = list(texts)
        if not texts:
            return {"proxy": True} | {c: np.zeros(0) for c in (*CLASSES, "harmful")}
        emb = np.asarray(self.embedder.encode(texts), dtype=float)
        emb = emb / np.linalg.norm(emb, axis=1, keepdims=True)
        sims = emb @ self.centroids().T
        benign = sims[:, CLASSES.index("not_harmful")]
        out = {c: sims[:, CLASSES.index(c)] - benign for c in HARMFUL}
        if self.toxicity_scorer is not None:
            toxicity = np.asarray(self.toxicity_scorer.score(texts)["toxicity"], dtype=float)
            out = {c: v + self.toxicity_weight * toxicity for c, v in out.items()} | {"toxicity": toxicity}
        out["harmful"] = np.max([out[c] for c in HARMFUL], axis=0)
        out["not_harmful"] = -out["harmful"]
        return {"proxy": True} | out

    def predict(self, texts: Sequence[str], threshold: float = 0.0) -> dict:
        """0/1 per class (see `_labels`); threshold on the margin."""
        return _labels(self.score(texts), threshold, proxy=True)

    @property
    def info(self) -> dict:
        return {"backend": "proxy", "proxy": True, "method": "prototype cosine margin over not_harmful",
                "embedder": getattr(self.embedder, "info", None),
                "toxicity": getattr(self.toxicity_scorer, "info", None) if self.toxicity_scorer else None,
                "toxicity_weight": self.toxicity_weight if self.toxicity_scorer else 0.0,
                "prototypes_sha256": _digest(self.prototypes),
                "prototypes_per_class": {c: len(v) for c, v in self.prototypes.items()}}


class JudgeHarmScorer:
    """P(yes) per text and harmful class from an instruction model's own answer probabilities.

    For each (text, class) the rubric becomes the user turn of the model's chat template; the two answers
    are scored as the assistant's reply and P(yes) = softmax over their summed token log-probabilities
    (constrained scoring as in the lm-evaluation-harness multiple-choice tasks). Single-token answers need one
    forward pass per prompt, longer ones two. The default answers are "Yes" / "No" without a leading space:
    chat templates end the assistant header with a newline, so that is how an instruction model starts.
    Batches are left-padded with explicit position ids, so a batch gives the same numbers as one by one.
    """

    def __init__(self, model, tokenizer, rubric: str = RUBRIC, answers: tuple[str, str] = ("Yes", "No"),
                 batch_size: int = 8, system_prompt: str | None = None):
        for slot in ("{category}", "{description}", "{post}"):
            if slot not in rubric:
                raise HarmScorerError(f"rubric must contain the slot {slot}")
        ids = [tokenizer(a, add_special_tokens=False)["input_ids"] for a in answers]
        if len(answers) != 2 or not all(ids) or ids[0] == ids[1]:
            raise HarmScorerError(f"answers must be two texts with different tokens (got {answers!r})")
        self.model, self.tokenizer, self.rubric = model, tokenizer, rubric
        self.answers, self.answer_ids = answers, ids
        self.batch_size, self.system_prompt = batch_size, system_prompt

    def render(self, text: str, category: str) -> str:
        """The chat-template prompt for one (text, class), ending where the assistant's reply begins."""
        from hivelm.chat import render_messages

        user = self.rubric.format(category=category.replace("_", " "), description=TAXONOMY[category], post=text)
        messages = ([{"role": "system", "content": self.system_prompt}] if self.system_prompt else [])
        return render_messages(self.tokenizer, messages + [{"role": "user", "content": user}],
                               add_generation_prompt=True)  # a post cannot forge the judge's turns

    def _batch_logprobs(self, sequences: list[list[int]], tail: int):
        """log-softmax of the logits at the last `tail` + 1 positions of each left-padded sequence."""
        import torch

        from hivelm.models import pad_id

        width = max(map(len, sequences))
        pad = pad_id(self.tokenizer)  # masked out: any id would do, but one rule for every caller
        ids = torch.tensor([[pad] * (width - len(s)) + s for s in sequences])
        mask = torch.tensor([[0] * (width - len(s)) + [1] * len(s) for s in sequences])
        positions = (mask.cumsum(dim=1) - 1).clamp(min=0)
        device = self.model.device
        with torch.no_grad():
            logits = self.model(input_ids=ids.to(device), attention_mask=mask.to(device),
                                position_ids=positions.to(device), logits_to_keep=tail + 1).logits
        return torch.log_softmax(logits[:, -(tail + 1):].float(), dim=-1).cpu()

    def _run(self, sequences: list[list[int]], tail: int, reduce) -> list:
        """reduce(logprobs of the last tail + 1 positions, index) for every sequence, longest first in batches."""
        order = sorted(range(len(sequences)), key=lambda i: -len(sequences[i]))
        results: list = [None] * len(sequences)
        for start in range(0, len(order), self.batch_size):
            chunk = order[start:start + self.batch_size]
            logprobs = self._batch_logprobs([sequences[i] for i in chunk], tail)
            for row, i in enumerate(chunk):
                results[i] = reduce(logprobs[row], i)
        return results

    def _answer_logprobs(self, prompts: list[list[int]]):
        """(n, 2) summed log-probabilities of the two answers as the reply to each prompt."""
        import torch

        if all(len(a) == 1 for a in self.answer_ids):  # one pass: read both tokens at the last position
            firsts = [a[0] for a in self.answer_ids]
            return torch.stack(self._run(prompts, 0, lambda lp, i: lp[-1, firsts]))
        tail = max(map(len, self.answer_ids))
        jobs = [(p + a, a) for p in prompts for a in self.answer_ids]

        def answer_logprob(lp, i):  # window index tail - len + j holds the logits that predict answer token j
            answer = jobs[i][1]
            steps = lp[tail - len(answer):tail]
            return steps[torch.arange(len(answer)), torch.tensor(answer)].sum()

        scores = self._run([seq for seq, _ in jobs], tail, answer_logprob)
        return torch.stack(scores).view(len(prompts), 2)

    def score(self, texts: Sequence[str]) -> dict:
        """{"proxy": False, <harmful class>: P(yes), "harmful": max over classes, "not_harmful": 1 - that}."""
        import numpy as np
        import torch

        texts = list(texts)
        if not texts:
            return {"proxy": False} | {c: np.zeros(0) for c in (*CLASSES, "harmful")}
        prompts = [self.tokenizer(self.render(t, c), add_special_tokens=False)["input_ids"]
                   for t in texts for c in HARMFUL]
        p_yes = torch.softmax(self._answer_logprobs(prompts), dim=1)[:, 0].numpy().astype(float)
        p_yes = p_yes.reshape(len(texts), len(HARMFUL))
        out = {c: p_yes[:, k] for k, c in enumerate(HARMFUL)}
        out["harmful"] = p_yes.max(axis=1)
        out["not_harmful"] = 1.0 - out["harmful"]
        return {"proxy": False} | out

    def predict(self, texts: Sequence[str], threshold: float = 0.5) -> dict:
        """0/1 per class (see `_labels`); threshold on P(yes)."""
        return _labels(self.score(texts), threshold, proxy=False)

    @property
    def info(self) -> dict:
        config = getattr(self.model, "config", None)
        return {"backend": "judge", "proxy": False, "method": "constrained yes/no log-probabilities",
                "model": getattr(config, "_name_or_path", None) or type(self.model).__name__,
                "answers": list(self.answers), "rubric_sha256": _digest(self.rubric),
                "system_prompt": self.system_prompt}
