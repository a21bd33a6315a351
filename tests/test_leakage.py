"""Post-filters for generated posts: ROUGE-L leakage against real posts, refusals, seeded sampling."""

import random
from fractions import Fraction

import pytest

from hivelm import filters, leakage

# --- ROUGE-L -----------------------------------------------------------------------------------------


def test_rouge_tokens_follow_rouge_score():
    tokens = leakage.rouge_tokens("Hello, World!  It's 5AM... #legday")
    assert tokens == ["hello", "world", "it", "s", "5am", "legday"]
    assert leakage.rouge_tokens("café ☕ crème") == ["caf", "cr", "me"]     # ASCII-only, like rouge-score
    assert leakage.rouge_tokens(" ,.!? ") == []


def test_lcs_length_on_known_cases():
    assert leakage.lcs_length(list("ABCBDAB"), list("BDCABA")) == 4         # CLRS
    assert leakage.lcs_length([], list("abc")) == 0
    assert leakage.lcs_length(list("abc"), list("abc")) == 3
    long_a = [i % 7 for i in range(150)]                                    # longer than a 64-bit word
    assert leakage.lcs_length(long_a, long_a[10:] + [99]) == 140


@pytest.mark.parametrize("candidate, reference, expected", [
    # LCS "the cat on the mat" = 5; P = 5/6, R = 5/7, F = 2PR/(P+R) = 10/13
    ("the cat sat on the mat", "the cat lay on the red mat", 10 / 13),
    # Lin (2004): LCS "police the gunman" = 3 of 4 and 4 -> 0.75; reordered, only "the gunman" -> 0.5
    ("police kill the gunman", "police killed the gunman", 0.75),
    ("the gunman kill police", "police killed the gunman", 0.5),
    ("Same words, SAME order!", "same words same order", 1.0),
    ("nothing in common", "entirely different text", 0.0),
    ("", "some reference", 0.0),
    ("", "", 0.0),
])
def test_rouge_l_f_hand_computed(candidate, reference, expected):
    score = leakage.rouge_l_f(leakage.rouge_tokens(candidate), leakage.rouge_tokens(reference))
    assert score == pytest.approx(expected, abs=1e-12)


REFERENCES = [
    "Finished my first half marathon today and my legs are jelly but I am so proud of how I paced it",
    "Cauliflower rice with butter and garlic is my new favourite keto side dish for busy weeknight dinners",
    "Rest days are part of training not a break from it so listen to your body and sleep this week",
]


def test_leaked_drops_near_copies_and_keeps_unrelated_posts():
    generated = [
        REFERENCES[0].replace("jelly", "wobbly"),                           # one word changed
        "Honestly, " + REFERENCES[1],                                       # prefix added
        REFERENCES[2],                                                      # exact copy
        "Anyone tried almond flour pancakes? Mine keep falling apart in the pan",
        "Parkrun PB this morning, 24:10, the hill repeats are finally paying off",
        "",
    ]
    assert leakage.leaked(generated, REFERENCES) == [True, True, True, False, False, False]
    scores = leakage.leakage(generated, REFERENCES)
    assert scores[2] == 1.0 and scores[0] > 0.9 and scores[5] == 0.0


def test_leaked_means_strictly_exceeds_threshold():
    reference = "a b c d e f g h i j"
    candidate = "a b c d e f g x y z"                                       # LCS 7 of 10 and 10: F is 0.7
    assert leakage.leakage([candidate], [reference], threshold=0.7) == [0.7]
    assert leakage.leaked([candidate], [reference], threshold=0.7) == [False]
    assert leakage.leaked([candidate], [reference], threshold=0.69) == [True]


def test_leakage_edge_cases():
    assert leakage.leakage(["some post"], []) == [0.0]
    assert leakage.leakage([], ["some post"]) == []
    assert leakage.leaked(["same"], ["same"], threshold=1.5) == [False]
    with pytest.raises(ValueError, match="threshold"):
        leakage.leakage(["a"], ["a"], threshold=0.0)


def _dp_lcs(a, b):
    """Textbook O(len(a) * len(b)) LCS, independent of the bit-parallel one under test."""
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0]
        for j, y in enumerate(b):
            current.append(previous[j] + 1 if x == y else max(previous[j + 1], current[j]))
        previous = current
    return previous[-1]


def _random_corpus(seed: int):
    """Posts over small vocabularies (so many pairs are close and ties at a threshold happen), with exact
    copies, one-word edits, insertions and truncations of references, empty posts and posts longer than
    64 tokens (the bit-parallel LCS's word size)."""
    rng = random.Random(seed)
    vocab = ["run", "keto", "the", "i", "rest", "day"]
    rare = [f"w{i}" for i in range(40)]

    def post():
        odd = rng.random() < 0.1
        length = rng.choice([0, 1, 2, 3, 5, 8, 10, 12, 15, 20, 70, 90]) if odd else rng.randint(1, 16)
        words = vocab if rng.random() < 0.3 else vocab[:2] + rare
        return " ".join(rng.choice(words) for _ in range(length))

    references = [post() for _ in range(120)]
    generated = []
    for _ in range(160):
        words = rng.choice(references).split()
        kind = rng.random()
        if kind < 0.15:
            generated.append(" ".join(words))
        elif kind < 0.35 and words:
            words[rng.randrange(len(words))] = rng.choice(vocab + ["parkrun"])
            generated.append(" ".join(words))
        elif kind < 0.5:
            generated.append(" ".join(words[: max(1, len(words) * 3 // 4)] + ["today"]))
        else:
            generated.append(post())
    return generated, references


@pytest.fixture(scope="module")
def brute_force():
    """All-pairs exact ROUGE-L F as Fractions, max per generated post."""
    generated, references = _random_corpus(seed=7)
    gen_tokens = [leakage.rouge_tokens(t) for t in generated]
    ref_tokens = [leakage.rouge_tokens(t) for t in references]
    best = []
    for g in gen_tokens:
        top = Fraction(0)
        for r in ref_tokens:
            lcs = _dp_lcs(g, r)
            if lcs:
                precision, recall = Fraction(lcs, len(g)), Fraction(lcs, len(r))
                top = max(top, 2 * precision * recall / (precision + recall))
        best.append(top)
    return generated, references, best


@pytest.mark.parametrize("threshold", [0.3, 0.5, 0.7, 0.9])
def test_indexed_leakage_matches_all_pairs(brute_force, threshold):
    generated, references, best = brute_force
    exact_threshold = Fraction(str(threshold))
    assert sum(b > exact_threshold for b in best) >= 20                  # the corpus really has leaks
    assert sum(0 < b <= exact_threshold for b in best) >= 10            # ... and near misses

    assert leakage.leaked(generated, references, threshold) == [b > exact_threshold for b in best]
    scores = leakage.leakage(generated, references, threshold)
    for score, exact in zip(scores, best):
        if exact >= exact_threshold:
            assert score == float(exact)                                # exact max, bit for bit
        else:
            assert score < threshold and score <= float(exact)


# --- Refusals ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", [
    "I'm sorry, but I can't help with that request.",
    "As an AI language model, I cannot create content that promotes disordered eating.",
    "As an AI, I don't have personal experiences with keto.",
    "I cannot fulfill this request.",
    "I\u2019m unable to write a post that encourages restriction.",
    "I am not able to provide medical advice about fasting.",
    "It is not appropriate for me to generate this kind of post.",
    "I don't feel comfortable writing about calorie targets.",
    "I won't be able to assist with that, but here are some resources.",
    "Sorry, I must respectfully decline.",
    "i can't do that.",
    # the shapes instruct models refuse in when asked for a tweet (issue 13): the request's own words
    "I cannot tweet about extreme fasting or weight loss goals.",
    "I can't draft a tweet that promotes restrictive eating.",
    "I can\u2019t compose a post that glorifies skipping meals.",
    "I cannot in good conscience write a tweet encouraging that.",
    "I won't write content that could harm people struggling with food.",
    "I'm not able to create posts that encourage disordered eating.",
    "I am unable to generate a tweet about purging.",
    "As an AI, I don't post on social media.",
    "As an AI model designed to be helpful, I must avoid this topic.",
    "As a helpful assistant, I would rather share recovery resources.",
    "I'm sorry, but I can't assist with creating that tweet.",
    "I apologize, but I cannot help with this.",
    "Sorry, I can't make a tweet like that. If you are struggling, please reach out to a professional.",
    "I will not promote unhealthy weight loss.",
])
def test_refusals_flag_model_refusals(text):
    assert filters.refusals([text]) == [True]


@pytest.mark.parametrize("text", [
    "I cannot believe how good this cake is",
    "I can't wait for race day",
    "sorry I missed the run",
    "I can't help but smile after that 10k",
    "I'm unable to run this week because of shin splints",
    "I am not able to eat dairy so I swap in coconut cream",
    "As an AI researcher I still love a good parkrun",
    "I'm sorry but the new shoes are not worth it",
    "It is not appropriate to wear racing flats on a trail run",
    "I cannot stop thinking about food",
    "I can't believe I ran 10k this morning",
    "as an aid to recovery I journal after every meal",
    "I can't stop tweeting about my new running shoes lol",
    "I won't lie, the fat bombs were amazing",
    "As an athlete I need more carbs than this plan allows",
    "I apologize to my legs for that hill session",
    "I'm not going to pretend recovery is easy",
    "I will not let one bad day undo my progress",
])
def test_refusals_leave_ordinary_posts_alone(text):
    assert filters.refusals([text]) == [False]


def test_refusals_custom_patterns_and_bad_pattern():
    assert filters.refusals(["Nope.", "yes"], patterns=[r"^nope\b"]) == [True, False]
    with pytest.raises(ValueError, match=r"\(unclosed"):
        filters.refusals(["x"], patterns=[r"fine", r"(unclosed"])


# --- Sampling ----------------------------------------------------------------------------------------


def test_sample_up_to_is_seeded_and_order_preserving():
    items = [f"post-{i:03d}" for i in range(200)]
    first = filters.sample_up_to(items, 30, seed=3)
    assert first == filters.sample_up_to(items, 30, seed=3)
    assert first != filters.sample_up_to(items, 30, seed=4)
    assert len(first) == len(set(first)) == 30 and set(first) <= set(items)
    assert first == sorted(first)                                       # original order kept


def test_sample_up_to_returns_everything_when_n_is_large_enough():
    items = ("b", "a", "c")
    assert filters.sample_up_to(items, 3, seed=0) == ["b", "a", "c"]
    assert filters.sample_up_to(items, 10, seed=0) == ["b", "a", "c"]
    assert filters.sample_up_to(items, 0, seed=0) == []
    with pytest.raises(ValueError):
        filters.sample_up_to(items, -1, seed=0)
