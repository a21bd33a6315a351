from hivelm import text


def test_normalize_unicode_whitespace_and_zero_width():
    assert text.normalize("  ﬁt\u200b   and\tstrong \n today ") == "fit and strong today"


def test_anonymize_replaces_every_kind_with_placeholders_and_counts_them():
    raw = "Ask @coach_amy or mail amy.r@example.com, call 555-0142, see https://club.example/join?x=1 now"
    cleaned, counts = text.anonymize(raw)
    assert cleaned == "Ask <USER> or mail <EMAIL>, call <PHONE>, see <URL> now"
    assert counts == {"user": 1, "email": 1, "phone": 1, "url": 1}


def test_anonymize_remove_mode_deletes_identifiers():
    cleaned, _ = text.anonymize("thanks @bob see www.blog.example/x")
    assert "<" in cleaned
    removed, counts = text.anonymize("thanks @bob see www.blog.example/x", mode="remove")
    assert removed == "thanks see"
    assert counts["user"] == 1 and counts["url"] == 1


def test_anonymize_leaves_running_numbers_and_times_alone():
    for kept in ("ran 10k in 48:12 today", "a 3:45 marathon", "week 12 of 16", "2026-03-01 race"):
        assert text.anonymize(kept)[0] == kept


def test_handle_inside_email_is_not_double_counted():
    cleaned, counts = text.anonymize("write to me@example.org")
    assert cleaned == "write to <EMAIL>" and counts["user"] == 0


def test_hashtag_modes():
    post = "Long run done #marathonTraining #day3 feeling good"
    assert text.strip_hashtags(post, "keep") == post
    assert text.strip_hashtags(post, "symbol") == "Long run done marathonTraining day3 feeling good"
    assert text.strip_hashtags(post, "remove") == "Long run done feeling good"
    assert text.strip_hashtags("issue #3 of C# code", "remove") == "issue of C# code"


def test_strip_emoji_handles_skin_tones_and_zwj_sequences():
    assert text.strip_emoji("proud 👍🏽 of me ❤️‍🩹 today 🏃‍♀️") == "proud of me today"


def test_retweet_detection_and_dedupe_key():
    assert text.is_retweet("RT @someone: hello") and not text.is_retweet("ART @ the gallery")
    assert text.dedupe_key("  Hello   World ") == text.dedupe_key("hello world")
