"""Questionnaire instruments as declarative YAML files: the format, its loader and its validator.

An instrument file (configs/instruments/swed.yaml and edeq.yaml are worked examples) has these keys:

    id: swed                       # short name, used in reports
    name: ...                      # full name
    source: ...                    # citation of the instrument
    primary: C1                    # optional: the headline score that community contrasts compare
    notes: ...                     # optional free text (discrepancies, provenance)
    option_sets:                   # optional: named option lists that items reuse by name
      yes_no: [{letter: a, text: "Yes"}, {letter: b, text: "No"}]
    items:                         # in the order they are asked
      - id: Q5                     # unique; criteria and answers refer to it
        type: single_choice        # single_choice | yes_no | numeric | multi_select
        stem: "..."                # the question, in our own words
        options:                   # ordered; or the name of an option set
          - {letter: a, code: 1, text: "..."}
        reverse: false             # reverse keying: keyed = min(code) + max(code) - code
        subscales: [weight]        # optional subscale membership (for subscale_mean)
        unit: pounds               # optional, numeric items
        note: "..."                # optional
        paraphrases: ["..."]       # optional: parallel forms of the stem (same options), validity card only
        twin: "..."                # optional: a reverse-worded stem (same options) for the acquiescence
                                   # check, never scored (single_choice and yes_no items)
      - id: Q10
        type: numeric
        stem: "..."
        bins:                      # numeric items: lettered bins, so loglik can score them as options
          - {letter: a, text: "0 times", min: 0, max: 1, value: 0}   # min <= number < max
    criteria:                      # named predicates or scores over answers, evaluated in dependency order
      C3: {kind: answer_in, item: Q6, options: [c, d, e], label: "...", source: "..."}

Options. `letter` is one lowercase letter, in order a, b, c, ...; `text` is what the respondent reads;
`code` is the option's raw numeric code. `code` may be left out: single_choice items then count 1, 2, 3, ...
by position (the a = 1 mapping of the SWED scoring rules), yes_no items 1 for the first option and 0 for
the second. All scoring uses the *keyed* value (the code, flipped when `reverse: true`). A yes_no item must
have exactly two options coded 0 and 1; a keyed 1 means "yes". Numeric bins carry `min` (inclusive), `max`
(exclusive) and `value`, the number a bin stands for when an answer is a bin letter (loglik mode).
multi_select items have lettered options; an answer is the list of chosen letters, and its value is how
many were chosen.

Criteria. Every criterion has `kind`, `source` (required: where the rule comes from) and an optional
`label`; its other keys are parameters, which `survey.criterion_params` can override per criterion, e.g.
{C3: {options: [d, e]}}. Kinds (numeric ones give a number, the others True / False):

    scale_mean     items: {item: formula in x}   mean of each item's keyed value x rescaled by its formula
                                                 (+ - * / and numbers only); None if any item is missing
    subscale_mean  subscale, more_than=0.5       mean keyed value of the subscale's rated items, provided
                                                 more than that share of its items is rated; else None
    mean_of        of: [criteria]                mean of numeric criteria; None if any is None
    answer_in      item, options: [letters]      the answer is one of the options (multi_select: any chosen)
    count_yes      items: [yes_no items], at_least   at least that many keyed "yes" answers
    threshold      of: criterion or item, at_least   value >= at_least
    all_of/any_of  of: [boolean criteria]        three-valued AND / OR

A missing answer (not asked, null, or UNPARSEABLE) makes a criterion None exactly when the result depends on
it: count_yes is still True once enough yeses are in, all_of is False once one part is False.

`instrument_text` files map item ids to official wording that replaces ours item by item:
    Q6: "official stem"                      or
    Q6: {stem: "official stem", options: {a: "official text of a"}}
"""

from __future__ import annotations

import ast
import copy
import json
import operator
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from hivelm.errors import HiveError

ITEM_TYPES = ("single_choice", "yes_no", "numeric", "multi_select")
NUMERIC_KINDS = {"scale_mean", "subscale_mean", "mean_of"}
# kind -> (required parameters, parameters with a default)
KINDS: dict[str, tuple[set[str], dict[str, Any]]] = {
    "scale_mean": ({"items"}, {}),
    "subscale_mean": ({"subscale"}, {"more_than": 0.5}),
    "mean_of": ({"of"}, {}),
    "answer_in": ({"item", "options"}, {}),
    "count_yes": ({"items", "at_least"}, {}),
    "threshold": ({"of", "at_least"}, {}),
    "all_of": ({"of"}, {}),
    "any_of": ({"of"}, {}),
}
CRITERION_META = {"kind", "label", "source", "note"}
TOP_KEYS = {"id", "name", "source", "version", "primary", "notes", "option_sets", "items", "criteria"}
ITEM_KEYS = {"id", "type", "stem", "options", "bins", "reverse", "subscales", "unit", "note", "paraphrases", "twin"}
LETTERS = "abcdefghijklmnopqrstuvwxyz"


class InstrumentError(HiveError):
    """A bad instrument, instrument_text or answers file; the message names the file and the item or criterion."""


@dataclass(frozen=True)
class Option:
    letter: str
    code: float
    text: str
    low: float | None = None
    """Numeric bins: smallest number in the bin (inclusive)."""
    high: float | None = None
    """Numeric bins: the bin holds numbers below this (exclusive)."""


@dataclass(frozen=True)
class Item:
    id: str
    type: str
    stem: str
    options: tuple[Option, ...]
    reverse: bool = False
    subscales: tuple[str, ...] = ()
    unit: str | None = None
    note: str | None = None
    paraphrases: tuple[str, ...] = ()
    """Parallel forms of the stem, asked with the same options (validity card: variance from wording)."""
    twin: str | None = None
    """A reverse-worded stem with the same options, asked for the acquiescence check and never scored."""

    @property
    def letters(self) -> tuple[str, ...]:
        return tuple(o.letter for o in self.options)

    def option(self, letter: str) -> Option | None:
        return next((o for o in self.options if o.letter == letter), None)

    def keyed(self, code: float) -> float:
        """Reverse keying flips the code within the item's range (standard practice, e.g. EDE-Q manuals)."""
        if not self.reverse:
            return float(code)
        codes = [o.code for o in self.options]
        return float(min(codes) + max(codes) - code)

    def bin_of(self, number: float) -> Option | None:
        """The numeric bin holding `number` (min <= number < max), or None when out of range."""
        return next((o for o in self.options if o.low <= number < o.high), None)


@dataclass(frozen=True)
class Criterion:
    id: str
    kind: str
    params: dict[str, Any]
    source: str
    label: str = ""

    @property
    def numeric(self) -> bool:
        return self.kind in NUMERIC_KINDS


@dataclass(frozen=True)
class Instrument:
    id: str
    name: str
    source: str
    items: dict[str, Item]
    criteria: dict[str, Criterion]
    """In evaluation order: every criterion comes after the criteria it refers to."""
    primary: str | None = None
    path: str = "<instrument>"
    raw_criteria: dict[str, dict] = field(default_factory=dict, repr=False)

    def subscale(self, name: str) -> list[str]:
        return [i.id for i in self.items.values() if name in i.subscales]


# ---------------------------------------------------------------------------------------------- formulas

_OPS: dict[type, Callable] = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
                              ast.Div: operator.truediv, ast.USub: operator.neg, ast.UAdd: operator.pos}


def compile_formula(text: str) -> Callable[[float], float]:
    """A rescaling formula in `x` ("100 * (x - 1) / 4") as a function; only numbers, x, + - * / and
    parentheses are allowed, so an instrument file cannot run code."""
    tree = ast.parse(str(text), mode="eval")
    for node in ast.walk(tree):
        ok = isinstance(node, (ast.Expression, ast.BinOp, ast.UnaryOp, ast.Load, *_OPS)) or (
            isinstance(node, ast.Name) and node.id == "x") or (
            isinstance(node, ast.Constant) and type(node.value) in (int, float))
        if not ok:
            raise ValueError(f"only numbers, x, + - * / and parentheses are allowed: {text!r}")

    def evaluate(node, x: float) -> float:
        if isinstance(node, ast.Constant):
            return float(node.value)
        if isinstance(node, ast.Name):
            return x
        if isinstance(node, ast.UnaryOp):
            return _OPS[type(node.op)](evaluate(node.operand, x))
        return _OPS[type(node.op)](evaluate(node.left, x), evaluate(node.right, x))

    function = lambda x: evaluate(tree.body, float(x))  # noqa: E731
    function(1.0)  # fail at load time on 1/0-style formulas
    return function


# ---------------------------------------------------------------------------------------------- loading

def _read_mapping(path: Path, what: str) -> dict:
    import yaml

    if not path.is_file():
        raise InstrumentError(f"{path}: {what} file not found")
    try:
        text = path.read_text(encoding="utf-8")
        document = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (yaml.YAMLError, json.JSONDecodeError, UnicodeDecodeError) as err:
        raise InstrumentError(f"{path}: not valid {'JSON' if path.suffix == '.json' else 'YAML'}: {err}") from None
    if not isinstance(document, dict):
        raise InstrumentError(f"{path}: must be a mapping at the top level")
    return document


def load_instrument(path: str | Path, text: str | Path | None = None,
                    criterion_params: Mapping[str, Mapping] | None = None) -> Instrument:
    """Load and validate an instrument file; then replace wording from an `instrument_text` file and
    criterion parameters from `survey.criterion_params`. Errors name the file and the item or criterion."""
    path = Path(path)
    document = _read_mapping(path, "instrument")
    where = str(path)
    if extra := sorted(set(document) - TOP_KEYS):
        raise InstrumentError(f"{where}: unknown top-level key(s) {extra}; allowed: {sorted(TOP_KEYS)}")
    for key in ("id", "name", "source"):
        if not isinstance(document.get(key), str) or not document[key].strip():
            raise InstrumentError(f"{where}: '{key}' must be a non-empty string")
    option_sets = document.get("option_sets") or {}
    if not isinstance(option_sets, dict):
        raise InstrumentError(f"{where}: option_sets must map names to option lists")
    entries = document.get("items")
    if not isinstance(entries, list) or not entries:
        raise InstrumentError(f"{where}: needs a non-empty 'items' list")
    items: dict[str, Item] = {}
    for number, entry in enumerate(entries, start=1):
        item = _parse_item(entry, number, option_sets, where)
        if item.id in items:
            raise InstrumentError(f"{where}: item {item.id} is defined twice")
        items[item.id] = item
    raw = document.get("criteria") or {}
    if not isinstance(raw, dict):
        raise InstrumentError(f"{where}: criteria must be a mapping of criterion id -> definition")
    instrument = Instrument(id=document["id"], name=document["name"], source=document["source"], items=items,
                            criteria={}, primary=document.get("primary"), path=where,
                            raw_criteria={str(k): v for k, v in raw.items()})
    instrument = _with_criteria(instrument, instrument.raw_criteria, where)
    if instrument.primary is not None and instrument.primary not in instrument.criteria:
        raise InstrumentError(f"{where}: primary {instrument.primary!r} is not a criterion")
    if text is not None:
        instrument = apply_instrument_text(instrument, text)
    if criterion_params:
        instrument = with_params(instrument, criterion_params)
    return instrument


def _parse_item(entry: Any, number: int, option_sets: dict, where: str) -> Item:
    if not isinstance(entry, dict) or "id" not in entry:
        raise InstrumentError(f"{where}: item #{number} must be a mapping with an 'id'")
    iid = str(entry["id"])
    at = f"{where}: item {iid}"
    if extra := sorted(set(entry) - ITEM_KEYS):
        raise InstrumentError(f"{at}: unknown key(s) {extra}; allowed: {sorted(ITEM_KEYS)}")
    kind = entry.get("type")
    if kind not in ITEM_TYPES:
        raise InstrumentError(f"{at}: type must be one of {list(ITEM_TYPES)} (got {kind!r})")
    if not isinstance(entry.get("stem"), str) or not entry["stem"].strip():
        raise InstrumentError(f"{at}: needs a non-empty 'stem'")
    if kind == "numeric":
        if "options" in entry:
            raise InstrumentError(f"{at}: numeric items take 'bins', not 'options'")
        options = _parse_bins(entry.get("bins"), at)
        if entry.get("reverse"):
            raise InstrumentError(f"{at}: numeric items cannot be reverse-keyed")
    else:
        if "bins" in entry:
            raise InstrumentError(f"{at}: only numeric items take 'bins'")
        spec = entry.get("options")
        if isinstance(spec, str):
            if spec not in option_sets:
                raise InstrumentError(f"{at}: unknown option set {spec!r}; defined: {sorted(option_sets)}")
            spec = option_sets[spec]
        options = _parse_options(spec, kind, at)
    subscales = entry.get("subscales") or []
    if not isinstance(subscales, list) or not all(isinstance(s, str) for s in subscales):
        raise InstrumentError(f"{at}: subscales must be a list of names")
    if not isinstance(entry.get("reverse", False), bool):
        raise InstrumentError(f"{at}: reverse must be true or false")
    paraphrases = entry.get("paraphrases") or []
    if not isinstance(paraphrases, list) or not all(isinstance(p, str) and p.strip() for p in paraphrases):
        raise InstrumentError(f"{at}: paraphrases must be a list of non-empty stems")
    if kind == "multi_select" and paraphrases:
        raise InstrumentError(f"{at}: multi_select items take no paraphrases (loglik asks them option by option)")
    twin = entry.get("twin")
    if twin is not None and (not isinstance(twin, str) or not twin.strip()):
        raise InstrumentError(f"{at}: twin must be a non-empty stem")
    if twin is not None and kind not in ("single_choice", "yes_no"):
        raise InstrumentError(f"{at}: only single_choice and yes_no items take a twin (got {kind})")
    return Item(id=iid, type=kind, stem=entry["stem"].strip(), options=options,
                reverse=entry.get("reverse", False), subscales=tuple(subscales), unit=entry.get("unit"),
                note=entry.get("note"), paraphrases=tuple(p.strip() for p in paraphrases),
                twin=twin.strip() if twin else None)


def _check_letters(letters: list[str], at: str) -> None:
    expected = list(LETTERS[: len(letters)])
    if letters != expected:
        raise InstrumentError(f"{at}: option letters must be {expected} in order (got {letters})")


def _parse_options(spec: Any, kind: str, at: str) -> tuple[Option, ...]:
    if not isinstance(spec, list) or len(spec) < 2:
        raise InstrumentError(f"{at}: needs an 'options' list of at least two options")
    options = []
    for position, entry in enumerate(spec):
        if not isinstance(entry, dict) or not isinstance(entry.get("text"), str) or set(entry) - {"letter", "code", "text"}:
            raise InstrumentError(f"{at}: option #{position + 1} must be a mapping with text (and letter, code)")
        default = (1 - position) if kind == "yes_no" else position + 1
        code = entry.get("code", default)
        if isinstance(code, bool) or not isinstance(code, (int, float)):
            raise InstrumentError(f"{at}: option #{position + 1} code must be a number (got {code!r})")
        options.append(Option(str(entry.get("letter", LETTERS[position])), float(code), entry["text"].strip()))
    _check_letters([o.letter for o in options], at)
    if kind == "yes_no" and sorted(o.code for o in options) != [0.0, 1.0]:
        raise InstrumentError(f"{at}: a yes_no item needs exactly two options coded 1 (yes) and 0 (no)")
    if len({o.code for o in options}) != len(options):
        raise InstrumentError(f"{at}: option codes must be distinct")
    return tuple(options)


def _parse_bins(spec: Any, at: str) -> tuple[Option, ...]:
    if not isinstance(spec, list) or len(spec) < 2:
        raise InstrumentError(f"{at}: a numeric item needs a 'bins' list of at least two bins")
    bins = []
    for position, entry in enumerate(spec):
        keys = {"letter", "text", "min", "max", "value"}
        if not isinstance(entry, dict) or set(entry) - keys or not {"text", "min", "max", "value"} <= set(entry):
            raise InstrumentError(f"{at}: bin #{position + 1} must have text, min, max, value (and letter)")
        low, high, value = (entry[k] for k in ("min", "max", "value"))
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high, value)):
            raise InstrumentError(f"{at}: bin #{position + 1} min, max and value must be numbers")
        if not low <= value < high:
            raise InstrumentError(f"{at}: bin #{position + 1} needs min <= value < max (got {low}, {value}, {high})")
        if bins and low < bins[-1].high:
            raise InstrumentError(f"{at}: bin #{position + 1} overlaps the previous bin (bins ascend, min >= "
                                  f"previous max)")
        bins.append(Option(str(entry.get("letter", LETTERS[position])), float(value), str(entry["text"]).strip(),
                           float(low), float(high)))
    _check_letters([b.letter for b in bins], at)
    return tuple(bins)


# ---------------------------------------------------------------------------------------------- criteria

def with_params(instrument: Instrument, overrides: Mapping[str, Mapping]) -> Instrument:
    """A copy with criterion parameters overridden (survey.criterion_params), validated like the file."""
    raw = copy.deepcopy(instrument.raw_criteria)
    where = f"{instrument.path} with survey.criterion_params"
    for cid, params in (overrides or {}).items():
        if cid not in raw:
            raise InstrumentError(f"{where}: unknown criterion {cid!r}; the instrument has {list(raw)}")
        if not isinstance(params, Mapping):
            raise InstrumentError(f"{where}: criterion {cid}: overrides must be a mapping of parameter -> value")
        kind = raw[cid].get("kind")
        allowed = set(KINDS.get(kind, (set(), {}))[0]) | set(KINDS.get(kind, (set(), {}))[1])
        if bad := sorted(set(params) - allowed):
            raise InstrumentError(f"{where}: criterion {cid}: unknown parameter(s) {bad} for kind {kind} "
                                  f"(parameters: {sorted(allowed)})")
        raw[cid].update(_plain(params))
    return _with_criteria(instrument, raw, where)


def _plain(value: Any) -> Any:
    """OmegaConf containers (from params.yaml) as plain dicts and lists."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)) or type(value).__name__ == "ListConfig":
        return [_plain(v) for v in value]
    return value


def _with_criteria(instrument: Instrument, raw: dict[str, dict], where: str) -> Instrument:
    parsed = {cid: _parse_criterion(cid, spec, instrument, raw, where) for cid, spec in raw.items()}
    order = _evaluation_order(parsed, where)
    return replace(instrument, criteria={cid: parsed[cid] for cid in order}, raw_criteria=raw)


def _parse_criterion(cid: str, spec: Any, instrument: Instrument, raw: dict, where: str) -> Criterion:
    at = f"{where}: criterion {cid}"
    if not isinstance(spec, dict):
        raise InstrumentError(f"{at}: must be a mapping with kind, source and parameters")
    kind = spec.get("kind")
    if kind not in KINDS:
        raise InstrumentError(f"{at}: kind must be one of {sorted(KINDS)} (got {kind!r})")
    if not isinstance(spec.get("source"), str) or not spec["source"].strip():
        raise InstrumentError(f"{at}: needs a 'source' saying where the rule comes from")
    required, defaults = KINDS[kind]
    params = {**defaults, **{k: v for k, v in spec.items() if k not in CRITERION_META}}
    if missing := sorted(required - set(params)):
        raise InstrumentError(f"{at}: kind {kind} needs parameter(s) {missing}")
    if extra := sorted(set(params) - required - set(defaults)):
        raise InstrumentError(f"{at}: unknown parameter(s) {extra} for kind {kind}")
    _check_references(kind, params, instrument, raw, at)
    return Criterion(cid, kind, params, spec["source"].strip(), str(spec.get("label", "")))


def _item(instrument: Instrument, iid: Any, at: str, types: tuple[str, ...] = ITEM_TYPES) -> Item:
    item = instrument.items.get(str(iid))
    if item is None:
        raise InstrumentError(f"{at}: unknown item {iid!r}")
    if item.type not in types:
        raise InstrumentError(f"{at}: item {iid} is {item.type}; this needs {' or '.join(types)}")
    return item


def _criteria_list(value: Any, raw: dict, at: str, numeric: bool) -> None:
    if not isinstance(value, list) or not value:
        raise InstrumentError(f"{at}: 'of' must be a non-empty list of criteria")
    for cid in value:
        if cid not in raw:
            raise InstrumentError(f"{at}: unknown criterion {cid!r}")
        if (raw[cid].get("kind") in NUMERIC_KINDS) != numeric:
            raise InstrumentError(f"{at}: criterion {cid} is not {'numeric' if numeric else 'true/false'}")


def _number(value: Any, at: str, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InstrumentError(f"{at}: {name} must be a number (got {value!r})")


def _check_references(kind: str, p: dict, instrument: Instrument, raw: dict, at: str) -> None:
    """Every item, letter, subscale and criterion a criterion names must exist and have the right type."""
    if kind == "scale_mean":
        if not isinstance(p["items"], dict) or not p["items"]:
            raise InstrumentError(f"{at}: items must map item ids to rescaling formulas in x")
        for iid, formula in p["items"].items():
            _item(instrument, iid, at, ("single_choice", "yes_no", "numeric"))
            try:
                compile_formula(formula)
            except (SyntaxError, ValueError, ZeroDivisionError) as err:
                raise InstrumentError(f"{at}: item {iid}: bad formula {formula!r}: {err}") from None
    elif kind == "subscale_mean":
        members = instrument.subscale(str(p["subscale"]))
        if not members:
            raise InstrumentError(f"{at}: no item belongs to subscale {p['subscale']!r}")
        for iid in members:
            _item(instrument, iid, at, ("single_choice", "yes_no", "numeric"))
        _number(p["more_than"], at, "more_than")
        if not 0 <= p["more_than"] < 1:
            raise InstrumentError(f"{at}: more_than must be a share in [0, 1)")
    elif kind in ("mean_of", "all_of", "any_of"):
        _criteria_list(p["of"], raw, at, numeric=kind == "mean_of")
    elif kind == "answer_in":
        item = _item(instrument, p["item"], at, ("single_choice", "yes_no", "multi_select", "numeric"))
        if not isinstance(p["options"], list) or not p["options"]:
            raise InstrumentError(f"{at}: options must be a non-empty list of letters")
        if bad := [x for x in p["options"] if x not in item.letters]:
            raise InstrumentError(f"{at}: option(s) {bad} are not letters of item {item.id} {list(item.letters)}")
    elif kind == "count_yes":
        if not isinstance(p["items"], list) or not p["items"]:
            raise InstrumentError(f"{at}: items must be a non-empty list of yes_no items")
        for iid in p["items"]:
            _item(instrument, iid, at, ("yes_no",))
        _number(p["at_least"], at, "at_least")
        if not 1 <= p["at_least"] <= len(p["items"]):
            raise InstrumentError(f"{at}: at_least must be between 1 and {len(p['items'])}")
    elif kind == "threshold":
        _number(p["at_least"], at, "at_least")
        target = p["of"]
        if target in raw:
            if raw[target].get("kind") not in NUMERIC_KINDS:
                raise InstrumentError(f"{at}: criterion {target} is true/false, not a number")
        elif target not in instrument.items:
            raise InstrumentError(f"{at}: 'of' names neither a criterion nor an item: {target!r}")


def _references(criterion: Criterion) -> list[str]:
    p = criterion.params
    if criterion.kind in ("mean_of", "all_of", "any_of"):
        return list(p["of"])
    return [p["of"]] if criterion.kind == "threshold" else []


def _evaluation_order(criteria: dict[str, Criterion], where: str) -> list[str]:
    """Depth-first topological order; a cycle is an error naming the criterion."""
    order: list[str] = []
    state: dict[str, str] = {}

    def visit(cid: str) -> None:
        if state.get(cid) == "done":
            return
        if state.get(cid) == "active":
            raise InstrumentError(f"{where}: criterion {cid} refers to itself through other criteria")
        state[cid] = "active"
        for ref in _references(criteria[cid]):
            if ref in criteria:
                visit(ref)
        state[cid] = "done"
        order.append(cid)

    for cid in criteria:
        visit(cid)
    return order


def _needs(criterion: Criterion) -> set[str]:
    """Item ids a criterion reads directly."""
    p = criterion.params
    if criterion.kind == "scale_mean":
        return set(p["items"])
    if criterion.kind in ("answer_in",):
        return {p["item"]}
    if criterion.kind == "count_yes":
        return set(p["items"])
    return set()


def built_on(instrument: Instrument, cids: Iterable[str]) -> set[str]:
    """`cids` and every criterion they are built from, directly or further down."""
    out, todo = set(), list(cids)
    while todo:
        cid = todo.pop()
        if cid not in out:
            out.add(cid)
            todo += [c for c in _references(instrument.criteria[cid]) if c in instrument.criteria]
    return out


def reads(instrument: Instrument, cid: str) -> list[str]:
    """The items a criterion reads, directly or through the criteria it is built from, in instrument order."""
    wanted = set()
    for criterion in (instrument.criteria[c] for c in built_on(instrument, [cid])):
        p = criterion.params
        wanted |= _needs(criterion)
        if criterion.kind == "subscale_mean":
            wanted |= set(instrument.subscale(p["subscale"]))
        if criterion.kind == "threshold" and p["of"] in instrument.items:
            wanted.add(p["of"])
    return [iid for iid in instrument.items if iid in wanted]


def select_items(instrument: Instrument, item_ids: list[str]) -> Instrument:
    """A smaller instrument with only these items (in instrument order) and the criteria that can still be
    computed from them; for quick runs and benchmarks, never for reported results."""
    if unknown := [i for i in item_ids if i not in instrument.items]:
        raise InstrumentError(f"{instrument.path}: unknown item(s) {unknown}")
    items = {iid: item for iid, item in instrument.items.items() if iid in item_ids}
    kept: dict[str, Criterion] = {}
    for cid, criterion in instrument.criteria.items():  # dependency order: references are decided first
        p = criterion.params
        refs = set(_references(criterion)) - set(instrument.items)
        item_refs = _needs(criterion) | ({p["of"]} & set(instrument.items) if criterion.kind == "threshold" else set())
        if criterion.kind == "subscale_mean":
            item_refs = set(instrument.subscale(p["subscale"]))
            ok = any(i in items for i in item_refs)
        else:
            ok = item_refs <= set(items)
        if ok and refs <= set(kept):
            kept[cid] = criterion
    primary = instrument.primary if instrument.primary in kept else None
    return replace(instrument, items=items, criteria=kept, primary=primary,
                   raw_criteria={cid: instrument.raw_criteria[cid] for cid in kept})


# ---------------------------------------------------------------------------------------------- wording

def apply_instrument_text(instrument: Instrument, path: str | Path) -> Instrument:
    """Replace our item wording with official wording, item by item (survey.instrument_text).

    The official SWED and EDE-Q texts are licensed; users who hold them keep them in a file of their own."""
    path = Path(path)
    document = _read_mapping(path, "instrument_text")
    items = dict(instrument.items)
    for iid, entry in document.items():
        at = f"{path}: item {iid}"
        if str(iid) not in items:
            raise InstrumentError(f"{at}: not an item of {instrument.path} ({', '.join(items)})")
        item = items[str(iid)]
        if isinstance(entry, str):
            entry = {"stem": entry}
        if not isinstance(entry, dict) or set(entry) - {"stem", "options"}:
            raise InstrumentError(f"{at}: must be a stem string or a mapping with stem and/or options")
        stem = entry.get("stem", item.stem)
        texts = entry.get("options") or {}
        if not isinstance(stem, str) or not stem.strip() or not isinstance(texts, dict):
            raise InstrumentError(f"{at}: stem must be text and options a mapping of letter -> text")
        if bad := sorted(str(k) for k in texts if k not in item.letters):
            raise InstrumentError(f"{at}: option letter(s) {bad} not in {list(item.letters)}")
        options = tuple(replace(o, text=str(texts[o.letter]).strip()) if o.letter in texts else o
                        for o in item.options)
        items[item.id] = replace(item, stem=stem.strip(), options=options)
    return replace(instrument, items=items)


def resolve_instrument_path(name_or_path: str | Path, folder: str | Path = "configs/instruments") -> Path:
    """`swed` -> configs/instruments/swed.yaml (relative to the working directory); a path stays a path."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml", ".json") or path.exists():
        return path
    return Path(folder) / f"{name_or_path}.yaml"
