"""The corpora evaluate compares, read and validated before any model loads.

A corpus is a built-in one (finetuned, untuned, in_context: generate's filtered files) or an external one
declared in `evaluate.external` (a file with a community column, or one file per community). `load` reads the
prepared real posts and every corpus file, checks every record, and raises one HiveError listing every problem
at once (`file:line: missing field 'text'`), so a bad input costs seconds, not a scoring run.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from hivelm import filters, paths
from hivelm.errors import HiveError
from hivelm.text import clip

log = logging.getLogger(__name__)

BUILT_IN_PROVENANCE = {
    "finetuned": "generate: the base model with the community's LoRA adapter (tune), prompted with persona + topic",
    "untuned": "generate: the base model without adapter, prompted with persona + topic",
    "in_context": "generate: the base model without adapter, k real training posts of the community in the prompt",
}


SHOWN_VALUES = 20
"""Unmatched community values an error lists (and the outputs keep), most frequent first; more than this many
usually means the column holds something else."""


class InputError(HiveError):
    """evaluate's inputs have problems; the message lists every one, one per line."""


@dataclass
class Inputs:
    """Real posts and every corpus, as texts per community, plus where each corpus comes from."""

    train: dict[str, list[str]]
    heldout: dict[str, list[str]]
    corpora: dict[str, dict[str, list[str]]]
    """{corpus: {community: posts}}."""
    sources: dict[str, dict] = field(default_factory=dict)
    """{corpus: {kind, provenance, files: {path: sha256}, filtered, filter_counts, dropped}} for the report;
    dropped (external corpora): {empty_text: {community: posts}, unmatched_community: {posts, values, shown}}."""


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def _jsonl_records(path: Path, text_field: str, problems: list[str], missing_hint: str,
                   null_ok: bool = False) -> list[dict] | None:
    """Records of a JSONL file whose `text_field` is a string (or null, with `null_ok`); every bad line is a
    problem `file:line: ...`."""
    if not path.is_file():
        problems.append(f"{path}: file not found ({missing_hint})")
        return None
    try:
        lines = path.read_bytes().decode("utf-8").splitlines()
    except UnicodeDecodeError as err:
        problems.append(f"{path}: not valid utf-8 (byte {err.start})")
        return None
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            problems.append(f"{path}:{number}: not valid JSON ({err.msg})")
            continue
        if not isinstance(record, dict):
            problems.append(f"{path}:{number}: not a JSON object")
        elif text_field not in record or (record[text_field] is None and not null_ok):
            problems.append(f"{path}:{number}: missing field {text_field!r}")
        elif record[text_field] is not None and not isinstance(record[text_field], str):
            problems.append(f"{path}:{number}: field {text_field!r} holds {type(record[text_field]).__name__}, not text")
        else:
            records.append(record | {"_where": f"{path}:{number}"})
    return records


def _table_records(path: Path, spec, key: str, problems: list[str]) -> list[dict] | None:
    """Records of an external CSV / JSON / Parquet / JSONL file, with `text` (and `community`) as named by
    spec.columns; every bad row is a problem `file:line:` (JSONL) or `file:row N:` (other formats)."""
    from hivelm.tables import CorpusError, detect_format, read_table

    wanted = {"text": spec.columns.text}
    if spec.columns.community is not None:
        wanted["community"] = spec.columns.community
    try:
        fmt = detect_format(path, spec.format)
    except CorpusError as err:
        problems.append(f"{err} ({key}.format)")
        return None
    if fmt == "jsonl":
        records = _jsonl_records(path, wanted["text"], problems, f"{key}.path", null_ok=True)
        if records is None:
            return None
        rows = [(r["_where"], r) for r in records]
    else:
        if not path.is_file():
            problems.append(f"{path}: file not found ({key}.path)")
            return None
        try:
            frame = read_table(path, fmt)
        except CorpusError as err:
            problems.append(str(err))
            return None
        absent = [f"{column!r} ({key}.columns.{name})" for name, column in wanted.items() if column not in frame]
        if absent:
            problems.append(f"{path}: no column {', '.join(absent)}; the file has columns "
                            f"{list(map(str, frame.columns))}")
            return None
        rows = [(f"{path}:row {number}", row) for number, row in enumerate(frame.to_dict("records"), start=1)]
    out = []
    for where, row in rows:
        record = {}
        for name, column in wanted.items():
            value = row.get(column)
            if value is None or (isinstance(value, float) and value != value):
                value = None if name == "community" else ""  # a null text is an empty post: dropped, counted
            if name == "community" and (value is None or not str(value).strip()):
                problems.append(f"{where}: missing field {column!r}")
                break
            if name == "text" and not isinstance(value, str):
                problems.append(f"{where}: field {column!r} holds {type(value).__name__}, not text")
                break
            record[name] = value if name == "text" else str(value)
        else:
            out.append(record | {"_where": where})
    return out


def _external(cfg, index: int, spec, root: Path, problems: list[str]) -> tuple[dict[str, list[dict]], dict]:
    """One external corpus: its records per community, and its source entry for the outputs (provenance, file
    hashes, and every post left out, counted). One rule for empty posts: a text that is null, empty or
    whitespace only is dropped and counted under dropped.empty_text (a record without the text field at all is
    a problem: the wrong field named?)."""
    communities = list(cfg.communities)
    key = f"evaluate.external[{index}]"
    by_community: dict[str, list[dict]] = {c: [] for c in communities}
    files, unmatched, keys = {}, Counter(), _label_keys(cfg, spec)
    for community, relative in spec.files(communities).items():
        path = root / relative
        records = _table_records(path, spec, key, problems)
        if records is None:
            continue
        files[relative] = sha256(path)
        if community is not None:
            by_community[community] += records
            continue
        found = _by_community(records, keys, by_community)
        unmatched += found
        if found and spec.unmatched == "error":
            problems.append(_unmatched_problem(path, spec, key, found, keys))
        elif found:
            log.warning("%s: %d posts skipped (%s.unmatched: skip): %d community value(s) match no declared "
                        "community, e.g. %s", path, sum(found.values()), key, len(found),
                        ", ".join(f"{clip(v)} ({n})" for v, n in found.most_common(3)))
    dropped: dict = {"empty_text": {}}
    for c, records in by_community.items():
        by_community[c] = [r for r in records if r["text"].strip()]
        dropped["empty_text"][c] = len(records) - len(by_community[c])
    if spec.columns.community is not None:
        dropped["unmatched_community"] = {
            "posts": sum(unmatched.values()), "values": len(unmatched),
            "shown": {clip(v): n for v, n in unmatched.most_common(SHOWN_VALUES)}}
    return by_community, {"kind": "external", "provenance": spec.provenance.strip(), "files": files,
                          "filtered": spec.filter, "dropped": dropped}


def _label_keys(cfg, spec) -> dict[str, str]:
    """{community value: community key}: the keys, the declared labels and the corpus's own `labels`."""
    keys = {c: c for c in cfg.communities} | {community.label.strip(): c for c, community in cfg.communities.items()}
    return keys | {value.strip(): c for value, c in spec.labels.items()}


def _by_community(records: list[dict], keys: dict[str, str], by_community: dict[str, list[dict]]) -> Counter:
    """Add each record to its community's list; return the values that matched none, with their counts."""
    unmatched: Counter = Counter()
    for record in records:
        value = record["community"].strip()
        if value in keys:
            by_community[keys[value]].append(record)
        else:
            unmatched[value] += 1
    return unmatched


def _unmatched_problem(path: Path, spec, key: str, unmatched: Counter, keys: dict[str, str]) -> str:
    """Every unmatched value (up to SHOWN_VALUES, each clipped) with its count and the closest declared label."""
    import difflib

    def closest(value: str) -> str:
        match = difflib.get_close_matches(value, list(keys), n=1, cutoff=0.0)
        return f"closest {clip(match[0])} = {keys[match[0]]}" if match else "no declared label"

    listed = "; ".join(f"{clip(v)} ({n} posts; {closest(v)})" for v, n in unmatched.most_common(SHOWN_VALUES))
    more = len(unmatched) - SHOWN_VALUES
    return (f"{path}: {sum(unmatched.values())} posts have a value of column {spec.columns.community!r} "
            f"({key}.columns.community) that matches no declared community: {listed}"
            + (f"; and {more} more values (is that the community column?)" if more > 0 else "")
            + f". Map each to a community key under {key}.labels, or set {key}.unmatched: skip to leave them "
              "out (counted)")


def _real(cfg, root: Path, problems: list[str], splits=("train", "heldout")) -> dict[str, dict[str, list[str]]]:
    """{split: {community: texts}} of the prepared real posts."""
    where = {"train": paths.train_posts, "heldout": paths.heldout_posts}
    return {split: {c: [r["text"] for r in _jsonl_records(root / where[split](c), "text", problems,
                                                          "run `hivelm prepare` first") or []]
                    for c in cfg.communities} for split in splits}


def _external_corpora(cfg, root: Path, train: dict[str, list[str]], problems: list[str]) -> tuple[dict, dict]:
    """({corpus: {community: records}}, {corpus: source}) of every external corpus, as evaluate measures it:
    empty and unmatched posts left out (counted), post-filtered against `train` where `filter: true`."""
    ev, records, sources = cfg.evaluate, {}, {}
    for index, spec in enumerate(ev.external):
        by_community, sources[spec.name] = _external(cfg, index, spec, root, problems)
        if spec.filter and not problems:
            sources[spec.name]["filter_counts"] = {}
            for c, kept in by_community.items():
                by_community[c], sources[spec.name]["filter_counts"][c] = filters.post_filter(
                    kept, cfg.generate.filters, train[c], ev.statistics.seed)
        records[spec.name] = by_community
    return records, sources


def _raise(problems: list[str]) -> None:
    if problems:
        shown = problems[:50] + ([f"... and {len(problems) - 50} more"] if len(problems) > 50 else [])
        raise InputError(f"{len(problems)} problem(s) in evaluate's inputs (nothing was computed):\n"
                         + "\n".join(shown))


def load(cfg, root: Path = Path(".")) -> Inputs:
    """Read and check every input of evaluate (cfg: the config evaluate may read); InputError lists all
    problems. External corpora with `filter: true` go through generate's post-filters here."""
    problems: list[str] = []
    real = _real(cfg, root, problems)
    corpora: dict[str, dict[str, list[str]]] = {}
    sources: dict[str, dict] = {}
    for name in cfg.evaluate.corpora:
        corpora[name] = {}
        for c in cfg.communities:
            records = _jsonl_records(root / paths.corpus(c, name), "text", problems,
                                     f"run `hivelm generate --community {c}`, or drop {name!r} from evaluate.corpora")
            corpora[name][c] = [r["text"] for r in records or []]
        sources[name] = {"kind": "built-in", "provenance": BUILT_IN_PROVENANCE[name]}
    external, external_sources = _external_corpora(cfg, root, real["train"], problems)
    _raise(problems)
    corpora |= {name: {c: [r["text"] for r in records] for c, records in by_community.items()}
                for name, by_community in external.items()}
    return Inputs(real["train"], real["heldout"], corpora, sources | external_sources)


def external_records(cfg, root: Path = Path(".")) -> dict[str, dict[str, list[dict]]]:
    """{corpus: {community: [{text, id}]}} of every external corpus, the posts evaluate measures (harm-sample
    draws from them); `id` is the post's file and line or row. Prepared training posts are read only for a
    corpus with `filter: true` (its leakage filter)."""
    problems: list[str] = []
    filtered = any(spec.filter for spec in cfg.evaluate.external)
    train = _real(cfg, root, problems, ("train",))["train"] if filtered else {}
    external, _ = _external_corpora(cfg, root, train, problems)
    _raise(problems)
    return {name: {c: [{"text": r["text"], "id": r["_where"]} for r in records] for c, records in by_community.items()}
            for name, by_community in external.items()}
