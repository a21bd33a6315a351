"""Text normalisation and anonymisation: pure functions, no I/O.

Anonymisation runs before any model sees a post (paper section 3.2 strips URLs and mentions; the ethics
section asks that posts be anonymised before modelling).
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections import Counter

# Every pattern runs in time linear in the text (a 1 MB post without spaces must not stall `prepare`): a
# match can start only where a lookbehind allows (the start of a token, not every character inside it),
# quantifiers are possessive or bounded, and alternatives never overlap, so no attempt rescans a token.
# Order matters: emails contain '@' and URLs may contain digit runs, so both go before handles and phones.
# A URL: a scheme or www., or a bare domain ending in a known top-level domain (instagram.com/jane.doe,
# bit.ly/x, youtu.be/x), so words joined by a dot ("e.g.", "lbs.", "16.5", "i.e") are not taken for one. The
# list holds the TLDs that host most links (https://w3techs.com/technologies/overview/top_level_domain) and
# the shorteners' (bit.ly, t.co, goo.gl), in lower case (ASP.NET is not a link); two-letter words that follow
# a dot in text (in, it, is, to) are left out. Labels are bounded and a match starts only at the start of a token, so the pattern stays linear.
TLDS = ("com|org|net|edu|gov|info|biz|io|co|ly|gl|gg|be|me|tv|uk|us|ca|au|nz|ie|de|fr|es|nl|ru|br|jp|app|"
        "dev|xyz|site|online|link|page|club|shop|blog")
URL = re.compile(
    r"(?:https?://|www\.)\S+"
    rf"|(?<![\w.@/-])(?:[a-z0-9][a-z0-9-]{{0,62}}\.){{1,8}}(?-i:{TLDS})(?![\w-])(?:/\S*+)?",
    re.IGNORECASE,
)
EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]++@[\w-]++(?:\.[\w-]++)++")
# An @handle whole (a handle cut at 30 characters left its tail in the post), or a Reddit mention u/name,
# /u/name (Reddit names have 3 to 20 characters: https://www.reddit.com/r/help/wiki/faqs/username).
HANDLE = re.compile(r"(?<![\w@/])(?:@\w++|/?u/[\w-]{3,}+)")

# Phone numbers must look like one: North American 3-3-4 groups (215-943-2221, (215) 943-2221, 215.943.2221,
# 1-800-555-0142, +1 215 943 2221), '+' and a country code (+44 20 7946 0958, +44 (0)20 7946 0958), a trunk 0
# and 10 to 12 digits (020 7946 0958), or an unbroken run of 10 to 15 digits (2159432221: no calorie count,
# weight, size or year is that long, and an account number is an identifier too). A separator is '-', '.' or
# spaces, possibly spaced ('215 - 943 - 2221': text split into tokens), the same throughout. Quantities are
# content and stay: calorie and weight lists (1200 1500, 120 115 110 105, 300 500 1200), ranges (1500-3000,
# 2019-2023), dates, heights (5'4), decimals. A 7-digit local number (555-0142) has the shape of a range, so
# one that reads as a rising range of round numbers (800-1200, 930 - 1130) is kept.
_SEP = r"(?:\s{0,3}[-.]\s{0,3}|\s{1,3})"
_AREA = r"[2-9]\d\d"  # North American area codes and exchanges never start with 0 or 1
PHONE = re.compile(
    r"(?<![\w+.-])(?:"
    rf"(?:\+?1{_SEP})?(?:\(\s{{0,3}}{_AREA}\s{{0,3}}\)\s{{0,3}}{_AREA}{_SEP}"      # (215) 943-2221
    rf"|{_AREA}(?P<sep>{_SEP}){_AREA}(?P=sep))\d{{4}}"                           # 215-943-2221
    rf"|(?P<intl>\+\s?\d{{1,15}}(?:\s?\(\d{{1,4}}\)\s?\d{{1,12}})?(?:{_SEP}\d{{1,12}}){{0,5}})"  # +44 20 ...
    rf"|(?P<trunk>0\d{{1,4}}(?P<tsep>{_SEP})\d{{2,8}}(?:(?P=tsep)\d{{2,8}}){{0,3}})"  # 020 7946 0958
    r"|\d{10,15}"                                                                   # 2159432221
    rf"|(?P<local>{_AREA}\s{{0,3}}[-.]\s{{0,3}}\d{{4}})"                             # 555-0142
    r")(?!\w|[.-]\d)"
)
HASHTAG = re.compile(r"(?<![\w#])#(\w+)")
RETWEET = re.compile(r"^\s*RT\s+@", re.IGNORECASE)
CONTROL = re.compile(r"[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u200b\u200e\u200f\ufeff]")
# Bidirectional controls reorder how text is displayed (Trojan Source, https://trojansource.codes): marks,
# embeddings, overrides and isolates (https://www.unicode.org/reports/tr9/#Directional_Formatting_Characters).
BIDI = re.compile(r"[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
SURROGATE = re.compile(r"[\ud800-\udfff]")
# Chat-template control tokens (<|im_start|>, <|im_end|>, <|eot_id|>, <|endoftext|>): in a post they would
# become real control tokens when a prompt is tokenised, and a post could open a system turn. Whatever the
# tokenizer, chat.neutralize also strips its own special tokens at every place a prompt is rendered.
CHAT_TOKEN = re.compile(r"<\|[^\s|<>]{1,64}\|>")
WHITESPACE = re.compile(r"\s+")
# Emoji joined by zero-width joiners: real sequences join at most 4 (a family); the emoji package's cost grows
# with the square of a chain's length, so chains of 8 or more are split into single emoji before it runs.
ZWJ_CHAIN = re.compile(r"(?:[^\s\u200d]{1,4}\u200d){8,}")
# Unicode's stream-safe limit (UAX #15): at most 30 combining marks in a row. Longer runs (zalgo text) make
# normalisation quadratic (it sorts each run), and carry no content, so the rest of a run is dropped.
MAX_COMBINING_RUN = 30

PLACEHOLDERS = {"email": "<EMAIL>", "url": "<URL>", "user": "<USER>", "phone": "<PHONE>"}
SCRUBBED = ("surrogate", "bidi", "chat_token")
"""What `scrub` counts: lone surrogates replaced by U+FFFD, bidi controls and chat control tokens removed."""


def _is_phone(match: re.Match) -> bool:
    number = match.group(0)
    digits = sum(ch.isdigit() for ch in number)
    if match["intl"]:
        return 8 <= digits <= 15
    if match["trunk"]:
        return 10 <= digits <= 12
    groups = [int(group) for group in re.findall(r"\d+", number)]
    round_numbers = all(group % 10 == 0 for group in groups)
    if match["local"]:
        return not (round_numbers and groups[0] < groups[1])
    # "ate 300 500 1200": space-separated round numbers are a list of quantities, not a phone number
    spaced = not re.search(r"[-.()+]", number)
    return not (spaced and len(groups) > 1 and round_numbers)


# kind -> (pattern, predicate a match must pass to be replaced)
_PATTERNS = {"email": (EMAIL, None), "url": (URL, None), "user": (HANDLE, None), "phone": (PHONE, _is_phone)}


@functools.cache
def _combining_overflow() -> re.Pattern:
    """Matches the 31st and later characters of a run of combining marks (built once, on first use: 0.1 s).

    A mark: a character of non-zero combining class, or one that decomposes into such (U+0F73, U+FF9E);
    every one lies below U+30000. The class is written as ranges: a list of single characters is slower."""
    def is_mark(char: str) -> bool:
        return bool(unicodedata.combining(char)
                    or unicodedata.combining(unicodedata.normalize("NFKD", char)[0]))

    ranges: list[list[int]] = []
    for code in (c for c in range(0x30000) if is_mark(chr(c))):
        if ranges and ranges[-1][1] == code - 1:
            ranges[-1][1] = code
        else:
            ranges.append([code, code])
    marks = "[" + "".join(f"{re.escape(chr(a))}-{re.escape(chr(b))}" for a, b in ranges) + "]"
    return re.compile(rf"(?<={marks}{{{MAX_COMBINING_RUN}}}){marks}++")


def scrub(text: str, form: str = "NFKC") -> tuple[str, Counter]:
    """`normalize`, and what must never reach a model removed and counted per kind (SCRUBBED).

    A lone surrogate (from a JSON escape such as "\\ud800") cannot be written as UTF-8: it becomes U+FFFD,
    while a split pair is joined into its character."""
    counts: Counter = Counter({kind: 0 for kind in SCRUBBED})
    if not text.isascii():
        if SURROGATE.search(text):
            before = text.count("\ufffd")
            text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
            counts["surrogate"] = text.count("\ufffd") - before
        text, counts["bidi"] = BIDI.subn("", text)
    text = normalize(text, form)  # first: NFKC turns fullwidth <｜im_end｜> into <|im_end|>
    text, counts["chat_token"] = CHAT_TOKEN.subn(" ", text)
    return (WHITESPACE.sub(" ", text).strip() if counts["chat_token"] else text), counts


def strip_strings(text: str, strings: tuple[str, ...]) -> tuple[str, int]:
    """Every occurrence of `strings` replaced by a space, until none is left (removing one must not join two
    halves into another); returns the text and the number removed."""
    if not strings:
        return text, 0
    pattern = _alternation(strings)
    total = 0
    while True:
        text, found = pattern.subn(" ", text)
        if not found:
            return text, total
        total += found


@functools.lru_cache(maxsize=8)
def _alternation(strings: tuple[str, ...]) -> re.Pattern:
    return re.compile("|".join(re.escape(s) for s in sorted(strings, key=len, reverse=True)))


def normalize(text: str, form: str = "NFKC") -> str:
    """Unicode-normalise, drop control and zero-width characters, collapse whitespace."""
    if not text.isascii():
        text = _combining_overflow().sub("", text)
    text = unicodedata.normalize(form, text)
    text = CONTROL.sub("", text)
    return WHITESPACE.sub(" ", text).strip()


def anonymize(text: str, mode: str = "placeholder") -> tuple[str, Counter]:
    """Replace emails, URLs, @handles and phone numbers; return the text and counts per kind.

    mode "placeholder" keeps a typed marker (<URL>, <USER>, ...) so the post's shape survives;
    "remove" deletes them, as the paper did.
    """
    counts: Counter = Counter()
    for kind, (pattern, accept) in _PATTERNS.items():
        replacement = PLACEHOLDERS[kind] if mode == "placeholder" else " "
        text, counts[kind] = _substitute(pattern, accept, replacement, text)
    return WHITESPACE.sub(" ", text).strip(), counts


def redact(text: str, words: int = 30) -> str:
    """A generated post as the report and MLflow may show it: anonymised and cut to its first `words` words."""
    return " ".join(anonymize(text, "placeholder")[0].split()[:words]) + " ..."


def _substitute(pattern: re.Pattern, accept, replacement: str, text: str) -> tuple[str, int]:
    """pattern.subn, replacing only matches that pass `accept` (all of them when it is None)."""
    count = 0

    def replace(match: re.Match) -> str:
        nonlocal count
        if accept is not None and not accept(match):
            return match.group(0)
        count += 1
        return replacement

    return pattern.sub(replace, text), count


def strip_hashtags(text: str, mode: str = "remove") -> str:
    """keep: unchanged; symbol: '#legday' -> 'legday'; remove: drop the whole tag (the paper)."""
    if mode == "keep":
        return text
    replacement = r"\1" if mode == "symbol" else " "
    return WHITESPACE.sub(" ", HASHTAG.sub(replacement, text)).strip()


def strip_emoji(text: str) -> str:
    """Remove emoji, including multi-codepoint sequences (skin tones, ZWJ sequences, keycaps)."""
    import emoji

    text = ZWJ_CHAIN.sub(lambda chain: chain.group(0).replace("\u200d", " "), text)
    return WHITESPACE.sub(" ", emoji.replace_emoji(text, replace=" ")).strip()


def is_retweet(text: str) -> bool:
    return bool(RETWEET.match(text))


def dedupe_key(text: str) -> str:
    """Key under which two posts count as exact duplicates: case- and whitespace-insensitive."""
    return WHITESPACE.sub(" ", text.casefold()).strip()


def clip(value: str, width: int = 40) -> str:
    """A data value as a log line or an error may quote it: one line, cut to `width` characters, quoted. A
    community value can be post text when a column is mis-named, and post text never goes into logs whole."""
    flat = WHITESPACE.sub(" ", str(value)).strip()
    return repr(flat if len(flat) <= width else flat[:width] + "...")
