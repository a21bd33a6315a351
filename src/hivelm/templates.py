"""Prompt template files: loading and validation (shared by instruct, generate and survey)."""

from __future__ import annotations

import string
from dataclasses import dataclass
from pathlib import Path

from hivelm.errors import HiveError


class TemplateError(HiveError):
    """A template file problem, naming the file and the template."""


@dataclass(frozen=True)
class Template:
    id: str
    text: str

    def render(self, **slots: str) -> str:
        return self.text.format(**slots)


def slots_of(text: str) -> list[str]:
    return [name for _, name, _, _ in string.Formatter().parse(text) if name is not None]


def load_templates(path: str | Path, slots: tuple[str, ...] | None = None, minimum: int = 1) -> list[Template]:
    """Load a template file: `slots: [...]` (the slots every template fills) and `templates: [{id, text}]`.

    Each text must use every declared slot exactly once and no other; ids and texts must be unique. When
    `slots` is given (what the calling stage fills), the file must declare exactly those.
    """
    import yaml

    path = Path(path)
    if not path.is_file():
        raise TemplateError(f"{path}: template file not found")
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        entries, declared = document.get("templates"), document.get("slots", ["community"])
    except (yaml.YAMLError, AttributeError) as err:
        raise TemplateError(f"{path}: not a YAML mapping with a 'templates' list: {err}") from None
    if slots is not None and sorted(declared) != sorted(slots):
        raise TemplateError(f"{path}: declares slots {declared}, but this stage fills {list(slots)}")
    if not isinstance(entries, list) or len(entries) < minimum:
        raise TemplateError(f"{path}: needs a 'templates' list of at least {minimum} entries")
    templates, seen_ids, seen_texts = [], set(), set()
    for number, entry in enumerate(entries, start=1):
        if not isinstance(entry, dict) or set(entry) != {"id", "text"}:
            raise TemplateError(f"{path}: template #{number} must have exactly the keys id and text")
        tid, text = str(entry["id"]), str(entry["text"])
        try:
            used = slots_of(text)
        except ValueError as err:
            raise TemplateError(f"{path}: template {tid}: bad braces: {err}") from None
        for slot in declared:
            if used.count(slot) != 1:
                raise TemplateError(f"{path}: template {tid} must contain {{{slot}}} exactly once "
                                    f"(found {used.count(slot)}): {text!r}")
        if extra := sorted(set(used) - set(declared)):
            raise TemplateError(f"{path}: template {tid} uses unknown slot(s) {extra}")
        if tid in seen_ids or text in seen_texts:
            raise TemplateError(f"{path}: template {tid} repeats an earlier id or text")
        seen_ids.add(tid)
        seen_texts.add(text)
        templates.append(Template(tid, text))
    return templates
