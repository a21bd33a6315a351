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
URL = re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE)
EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]++@[\w-]++(?:\.[\w-]++)++")
HANDLE = re.compile(r"(?<![\w@])@\w{1,30}")

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
WHITESPACE = re.compile(r"\s+")
# Emoji joined by zero-width joiners: real sequences join at most 4 (a family); the emoji package's cost grows
# with the square of a chain's length, so chains of 8 or more are split into single emoji before it runs.
ZWJ_CHAIN = re.compile(r"(?:[^\s\u200d]{1,4}\u200d){8,}")
# Unicode's stream-safe limit (UAX #15): at most 30 combining marks in a row. Longer runs (zalgo text) make
# normalisation quadratic (it sorts each run), and carry no content, so the rest of a run is dropped.
MAX_COMBINING_RUN = 30

PLACEHOLDERS = {"email": "<EMAIL>", "url": "<URL>", "user": "<USER>", "phone": "<PHONE>"}


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
