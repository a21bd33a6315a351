from hivelm import filters


def test_exact_duplicates_ignore_case_and_whitespace():
    posts = ["Great run today", "great  run today", "Another post", "GREAT RUN TODAY"]
    assert filters.exact_duplicates(posts) == [False, True, False, True]


def test_near_duplicates_flag_small_edits_but_keep_distinct_posts():
    base = "Finished my first half marathon today and my legs are jelly but I am so proud of it"
    posts = [
        base,
        base + "!!",                                              # punctuation added
        base.replace("today", "this morning"),                    # one phrase changed
        "Cauliflower rice with butter and garlic is my new favourite keto side dish for dinner",
        "Rest days are part of training, not a break from it. Listen to your body this week",
    ]
    assert filters.near_duplicates(posts, threshold=0.7) == [False, True, True, False, False]


def test_near_duplicates_threshold_is_respected():
    a = "one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen"
    b = a.replace("seven", "seventy")
    grams_a, grams_b = filters.shingles(a, 5), filters.shingles(b, 5)
    jaccard = len(grams_a & grams_b) / len(grams_a | grams_b)
    assert 0.75 < jaccard < 0.9
    assert filters.near_duplicates([a, b], threshold=0.7) == [False, True]
    assert filters.near_duplicates([a, b], threshold=0.95) == [False, False]


def test_near_duplicates_scale_to_thousands_of_posts():
    import random

    rng = random.Random(0)
    words = [f"w{i}" for i in range(500)]
    posts = [" ".join(rng.choice(words) for _ in range(15)) for _ in range(3000)]
    posts += [p + " x" for p in posts[:50]]
    flags = filters.near_duplicates(posts, threshold=0.8)
    assert sum(flags[:3000]) == 0 and all(flags[3000:])


def test_near_duplicates_at_thresholds_datasketch_cannot_band():
    """Issue 31, point 9: 0.99 and 1.0 (documented as valid) raised datasketch's "number of bands are too
    small" in generate, after all the generating was done; prepare's minimum of 16 permutations did at 0.9."""
    import random

    rng = random.Random(0)
    long = " ".join(f"w{rng.randrange(10_000)}" for _ in range(120))  # ~700 shingles: one more is J > 0.998
    posts = [long, long + "!", long.upper(), "a short distinct post about something else entirely"]
    for num_perm in (16, 128):
        assert filters.near_duplicates(posts, threshold=0.99, num_perm=num_perm) == [False, True, True, False]
        assert filters.near_duplicates(posts, threshold=0.9, num_perm=num_perm) == [False, True, True, False]
    assert filters.near_duplicates(posts, threshold=1.0) == [False, False, True, False]
