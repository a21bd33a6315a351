"""Reading a free-text answer as an option letter, a number or a list of letters (generate mode), or as
UNPARSEABLE. Pure: regexes only.

The paper's parser (github.com/Davidchu11381/llm_align_eval, neda-test/process_neda_results.py) took a leading "x. ", else "option x",
else the whole answer stripped of punctuation, and mapped an empty answer to "a". Here every rule is strict,
and whatever is not clearly one answer is UNPARSEABLE, a distinct value that is counted and never mapped to
an option (docs/reference/stages.md, survey). In particular:
  - refusals, empty answers, two different letters, a letter outside the item's options -> UNPARSEABLE;
  - the English words "a" and "I" are not letters: "a lot more" reads as option "a" only if that is the text
    of option a; a letter inside a word ("about") is never a letter;
  - a letter whose text contradicts it ("b. Very afraid" when b is "Slightly afraid") -> UNPARSEABLE;
  - an option's own text, at the start of the answer, selects it ("Slightly afraid, I guess");
  - numeric items: one number (digits or a number word, with or without units: "3 times", "three", "twice"),
    or a bin letter; two different numbers (ranges, "5 ft 6") or a number outside every bin -> UNPARSEABLE;
  - an answer that names two options (two letters, "A. Never\nd. Often", or two options' texts) -> UNPARSEABLE;
  - multi_select items: letters separated by commas / "and" ("a, c and e"), lines starting "a. <its text>",
    "none" (nothing chosen) or "all of the above".
"""

from __future__ import annotations

import re

from hivelm.survey.instrument import Item

UNPARSEABLE = "UNPARSEABLE"
"""An answer that could not be read: recorded as such and counted, never mapped to an option."""

REFUSAL = re.compile(
    r"\b(?:i\s*(?:can\s*not|cannot|can't|won't|am not able|'m not able|am unable|'m unable|do not feel comfortable|"
    r"don't feel comfortable|must decline|prefer not)|as an ai\b|i'm (?:sorry|an ai|just an ai)|i am (?:sorry|an ai)"
    r"|language model|not able to answer|unable to answer|i do not have (?:a |any )?(?:body|weight|personal)"
    r"|i don't have (?:a |any )?(?:body|weight|personal))",
    re.IGNORECASE,
)
_QUOTES = "\"'`*_“”‘’"
_KEYWORD_STRICT = r"(?:option|choice|letter)"
_KEYWORD_LOOSE = r"(?:answer|answer is|answer would be|i choose|i'd choose|i would choose|i pick|i'd pick|" \
                 r"i would pick|i select|i'd say|i would say|i'll go with|i'd go with|i would go with|go with|" \
                 r"pick|choose|select)"
_AFTER_LETTER = r"(?![\w'’])"
_LEADING_MARKER = re.compile(r"^[\(\[]?([A-Za-z])(?:[.)\]:]|\s+-)(?:\s+|$)")
_LEAD_INS = re.compile(r"^(?:(?:my )?answer(?: is| would be)?|i(?:'d| would)? (?:say|choose|pick|go with)|"
                       r"i choose|i pick|i select|i'll go with)\s*[:,-]?\s*", re.IGNORECASE)
_NUMBER = re.compile(r"(?<![A-Za-z\d.,])(\d{1,3}(?:,\d{3})+|\d+(?:\.\d+)?)(?![\d])")
_WORDS = {"zero": 0, "none": 0, "never": 0, "no times": 0, "not once": 0, "once": 1, "one": 1, "twice": 2,
          "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10,
          "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15, "sixteen": 16,
          "seventeen": 17, "eighteen": 18, "nineteen": 19, "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50}
_NUMBER_WORDS = re.compile(r"\b(" + "|".join(sorted(_WORDS, key=len, reverse=True)) + r")\b", re.IGNORECASE)


def _clean(text: str) -> str:
    text = " ".join(str(text).split())
    return text.strip(_QUOTES + " ")


def _words(text: str) -> str:
    """Lowercase words and digits only: how option texts are compared."""
    return " ".join(re.sub(r"[^a-z0-9]+", " ", text.lower()).split())


def _is_article(text: str, start: int, letter: str) -> bool:
    """'a' / 'A' / 'I' followed by a word is English, not an option letter ("a lot", "A little", "I think")."""
    return letter.lower() in "ai" and re.match(r"\s+[A-Za-z]", text[start + 1:]) is not None


def explicit_letters(text: str) -> set[str]:
    """Letters the answer states explicitly (lowercased): a bare letter "b", "(b)", "B)", "b."; a marker
    starting any line "b. ..." / "(b) ..."; "option b", "answer: b", "I'd say c"; a standalone capital "C"."""
    lines = [_clean(line) for line in str(text).splitlines()]
    text = _clean(text)
    bare = re.fullmatch(r"[\(\[]?([A-Za-z])[\)\]]?[.):]?", text)
    if bare:
        return {bare.group(1).lower()}
    found = {m.group(1).lower() for line in lines if (m := _LEADING_MARKER.match(line))}
    marker = _LEADING_MARKER.match(text)
    for m in re.finditer(rf"\b{_KEYWORD_STRICT}\s*[:#]?\s*[\(\[]?([A-Za-z]){_AFTER_LETTER}", text, re.IGNORECASE):
        found.add(m.group(1).lower())
    for m in re.finditer(rf"\b{_KEYWORD_LOOSE}\s*[:=-]?\s*[\(\[\"']?([A-Za-z]){_AFTER_LETTER}", text, re.IGNORECASE):
        if not _is_article(text, m.start(1), m.group(1)):
            found.add(m.group(1).lower())
    for m in re.finditer(rf"(?<![\w'’])([A-Z]){_AFTER_LETTER}", text):
        if m.group(1) != "I" and not _is_article(text, m.start(1), m.group(1)) and not (
                marker and m.start(1) == marker.start(1)):
            found.add(m.group(1).lower())
    return found


def _remainder(text: str) -> str:
    """The answer without a leading letter marker and lead-in words ("b. ", "My answer is ")."""
    text = _clean(text)
    marker = _LEADING_MARKER.match(text)
    if marker:
        text = text[marker.end():]
    return _LEAD_INS.sub("", text, count=1).strip(_QUOTES + " ")


def matching_options(item: Item, text: str) -> set[str]:
    """Letters whose option text the answer gives: the answer (after any marker or lead-in) starts with it,
    the longest winning where one option's text begins another's; or the answer (two words or more) is the
    start of option texts, cut short; or, failing both, a text of two or more words appears in the answer,
    not right after a negation ("I worry a lot more than others", but not "not very afraid"). More than one
    letter back means the answer is ambiguous."""
    rest = _words(_remainder(text))
    if not rest:
        return set()
    texts = {o.letter: _words(o.text) for o in item.options if _words(o.text)}
    starts = [letter for letter, words in texts.items() if rest == words or rest.startswith(words + " ")]
    if starts:
        best = max(starts, key=lambda letter: len(texts[letter]))
        tail = rest[len(texts[best]):]
        return {best} | {letter for letter, words in texts.items()
                         if letter != best and re.search(rf"\b{re.escape(words)}\b", tail)}
    truncated = {letter for letter, words in texts.items() if " " in rest and words.startswith(rest + " ")}
    if truncated:  # the option's text cut short (max_new_tokens): only an unambiguous start counts
        return truncated
    found = set()
    for letter, words in texts.items():
        for m in re.finditer(rf"\b{re.escape(words)}\b", rest):
            if " " in words and not re.search(r"\b(?:not|no|never|nt|t)\s*$", rest[:m.start()]):
                found.add(letter)
    return found


def parse_choice(item: Item, text: str) -> str:
    """One option letter of a single_choice or yes_no item, or UNPARSEABLE."""
    cleaned = _clean(text or "")
    if not cleaned or REFUSAL.search(cleaned):
        return UNPARSEABLE
    letters = explicit_letters(text)
    by_text = matching_options(item, cleaned)
    if len(letters) > 1 or len(by_text) > 1:
        return UNPARSEABLE
    if letters:
        letter = letters.pop()
        return letter if letter in item.letters and (not by_text or letter in by_text) else UNPARSEABLE
    return by_text.pop() if by_text else UNPARSEABLE


def numbers_in(text: str) -> list[float]:
    """Numbers written as digits ("1,200", "3.5", "3x") or words ("three", "twice", "never" = 0)."""
    values = [float(m.group(1).replace(",", "")) for m in _NUMBER.finditer(text)]
    values += [float(_WORDS[m.group(1).lower()]) for m in _NUMBER_WORDS.finditer(text)]
    return values


def parse_number(item: Item, text: str) -> float | str:
    """A numeric item's answer: the number (float) when exactly one distinct number is given and it falls in
    a bin; a bin letter when the answer names one (its numbers, if any, must lie in that bin); else
    UNPARSEABLE."""
    cleaned = _clean(text or "")
    if not cleaned or REFUSAL.search(cleaned):
        return UNPARSEABLE
    letters = explicit_letters(text)
    if len(letters) > 1:
        return UNPARSEABLE
    if letters:
        option = item.option(letters.pop())
        if option is None:
            return UNPARSEABLE
        rest, own = _words(_remainder(cleaned)), _words(option.text)
        rest = rest[len(own):] if rest.startswith(own) else rest  # the bin's own text has numbers in it
        return UNPARSEABLE if any(not option.low <= v < option.high for v in numbers_in(rest)) else option.letter
    by_text = matching_options(item, cleaned)
    if len(by_text) == 1:
        return by_text.pop()
    distinct = sorted(set(numbers_in(cleaned)))
    if len(distinct) != 1 or item.bin_of(distinct[0]) is None:
        return UNPARSEABLE
    return distinct[0]


def parse_multi(item: Item, text: str) -> list[str] | str:
    """A multi_select answer: the sorted chosen letters ([] for "none"), or UNPARSEABLE."""
    cleaned = _clean(text or "")
    if not cleaned or REFUSAL.search(cleaned):
        return UNPARSEABLE
    lowered = _words(cleaned)
    if re.fullmatch(r"(?:none|none of (?:these|them|the above|those)|no|nothing)", lowered):
        return []
    if re.fullmatch(r"(?:all|all of (?:these|them|the above|those))", lowered):
        return list(item.letters)
    tokens = [t for t in re.split(r"[\s,;/&()\[\].:]+|\band\b", cleaned) if t]
    if tokens and all(re.fullmatch(r"[A-Za-z]", t) for t in tokens):
        letters = {t.lower() for t in tokens}
    else:  # one option per line, "a. <its text>"; chatter after the first line is ignored
        lines = [_clean(line) for line in str(text).splitlines() if line.strip()]
        marked = [(m.group(1).lower(), line) for line in lines if (m := _LEADING_MARKER.match(line))]
        if not marked or not _LEADING_MARKER.match(lines[0]):
            return UNPARSEABLE
        for letter, line in marked:
            if (said := matching_options(item, line)) and said != {letter}:
                return UNPARSEABLE
        letters = {letter for letter, _ in marked}
    if not letters <= set(item.letters):
        return UNPARSEABLE
    return sorted(letters)


def parse_answer(item: Item, text: str):
    """Dispatch on the item type: a letter, a number, a list of letters, or UNPARSEABLE."""
    if item.type == "numeric":
        return parse_number(item, text)
    if item.type == "multi_select":
        return parse_multi(item, text)
    return parse_choice(item, text)
