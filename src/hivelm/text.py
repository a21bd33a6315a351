"""Text normalisation and anonymisation: pure functions, no I/O.

Anonymisation runs before any model sees a post (paper section 3.2 strips URLs and mentions; the ethics
section asks that posts be anonymised before modelling).
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter

# Order matters: emails contain '@' and URLs may contain digit runs, so both go before handles and phones.
URL = re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE)
EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")
HANDLE = re.compile(r"(?<![\w@])@\w{1,30}")
# Phone numbers: a run of digits and separators holding 7 to 15 digits (E.164 allows at most 15) with at
# least one separator-free group of 3+; ISO dates, paces ("3:45") and lists of small numbers do not match.
PHONE_CANDIDATE = re.compile(r"(?<![\w+])(?:\+\d{1,3}[\s.-]?)?(?:\(\d{2,4}\)[\s.-]?)?\d{2,4}(?:[\s.-]\d{2,4}){1,3}(?![\w:])")
ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
HASHTAG = re.compile(r"(?<![\w#])#(\w+)")
RETWEET = re.compile(r"^\s*RT\s+@", re.IGNORECASE)
CONTROL = re.compile(r"[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u200b\u200e\u200f\ufeff]")
WHITESPACE = re.compile(r"\s+")

PLACEHOLDERS = {"email": "<EMAIL>", "url": "<URL>", "user": "<USER>", "phone": "<PHONE>"}


def _is_phone(candidate: str) -> bool:
    digits = sum(ch.isdigit() for ch in candidate)
    return 7 <= digits <= 15 and not ISO_DATE.match(candidate)


# kind -> (pattern, predicate a match must pass to be replaced)
_PATTERNS = {"email": (EMAIL, None), "url": (URL, None), "user": (HANDLE, None), "phone": (PHONE_CANDIDATE, _is_phone)}


def normalize(text: str, form: str = "NFKC") -> str:
    """Unicode-normalise, drop control and zero-width characters, collapse whitespace."""
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
        if accept is not None and not accept(match.group(0)):
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

    return WHITESPACE.sub(" ", emoji.replace_emoji(text, replace=" ")).strip()


def is_retweet(text: str) -> bool:
    return bool(RETWEET.match(text))


def dedupe_key(text: str) -> str:
    """Key under which two posts count as exact duplicates: case- and whitespace-insensitive."""
    return WHITESPACE.sub(" ", text.casefold()).strip()
