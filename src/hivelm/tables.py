"""Reading posts and records files: a corpus (CSV, JSON, JSONL, Parquet) into the canonical columns, and JSONL
records. Every error names the file and, where there is one, the row and column (CorpusError)."""

from __future__ import annotations

import json
from pathlib import Path

from hivelm.errors import HiveError

CANONICAL = ("text", "community", "post_id", "author_id", "timestamp")


class CorpusError(HiveError):
    """Bad input data; the message names the file and the row, column or community."""


def detect_format(path: Path, fmt: str = "auto") -> str:
    if fmt != "auto":
        return fmt
    suffix = path.suffix.lower()
    formats = {".csv": "csv", ".tsv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json",
               ".parquet": "parquet"}
    if suffix not in formats:
        raise CorpusError(f"{path}: cannot tell the format from extension {suffix!r}; set data.format")
    return formats[suffix]


def _decode(path: Path, raw: bytes, encoding: str) -> str:
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise CorpusError(
            f"{path}: line {line} (byte {err.start}) is not valid {encoding}: {raw[err.start:err.start + 8]!r}"
        ) from None


def read_table(path: str | Path, fmt: str = "auto", encoding: str = "utf-8"):
    """A CSV (every column as strings), JSONL, JSON (an array of objects) or Parquet file as a DataFrame.

    Errors name the file, and the line for undecodable bytes or bad JSON.
    """
    import io as _io

    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise CorpusError(f"{path}: file not found")
    fmt = detect_format(path, fmt)
    if fmt == "parquet":
        try:
            frame = pd.read_parquet(path)
        except Exception as err:  # pyarrow raises many types for a bad file
            raise CorpusError(f"{path}: cannot read as Parquet: {err}") from None
    else:
        text = _decode(path, path.read_bytes(), encoding)
        if not text.strip():
            raise CorpusError(f"{path}: file is empty")
        if fmt == "csv":
            sep = "\t" if path.suffix.lower() == ".tsv" else ","
            try:
                frame = pd.read_csv(_io.StringIO(text), sep=sep, dtype=str, keep_default_na=False)
            except Exception as err:  # pandas parser errors come in several types
                raise CorpusError(f"{path}: cannot parse as CSV: {err}") from None
        elif fmt == "json":
            frame = pd.DataFrame(_parse_json_array(path, text))
        else:
            frame = pd.DataFrame(_parse_jsonl(path, text))
    if frame.empty:
        raise CorpusError(f"{path}: no data rows")
    return frame


def read_corpus(path: str | Path, columns: dict[str, str | None], fmt: str = "auto",
                encoding: str = "utf-8"):
    """Read a corpus into a DataFrame with canonical columns text, community, post_id, author_id,
    timestamp and source_row (1-based data row in the file).

    `columns` maps canonical names to the file's column names (None = absent). Missing optional fields are
    filled: post_id from the row number, author_id and timestamp as None.
    """
    return _canonical(Path(path), read_table(path, fmt, encoding), columns)


def _parse_json_array(path: Path, text: str) -> list[dict]:
    try:
        rows = json.loads(text)
    except json.JSONDecodeError as err:
        raise CorpusError(f"{path}: line {err.lineno} is not valid JSON: {err.msg}") from None
    if not isinstance(rows, list):
        raise CorpusError(f"{path}: expected a JSON array of objects, got {type(rows).__name__}")
    for number, row in enumerate(rows, start=1):
        if not isinstance(row, dict):
            raise CorpusError(f"{path}: element {number} of the array is not a JSON object")
    return rows


def _parse_jsonl(path: Path, text: str) -> list[dict]:
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise CorpusError(f"{path}: line {number} is not valid JSON: {err.msg}") from None
        if not isinstance(row, dict):
            raise CorpusError(f"{path}: line {number} is not a JSON object")
        rows.append(row)
    return rows


def _canonical(path: Path, frame, columns: dict[str, str | None]):
    import pandas as pd

    out = pd.DataFrame(index=frame.index)
    rows = range(1, len(frame) + 1)
    problems = []
    for field in CANONICAL:
        source = columns.get(field)
        if source is None:
            continue
        if source not in frame.columns:
            raise CorpusError(
                f"{path}: column {source!r} (data.columns.{field}) not found; "
                f"the file has columns {list(map(str, frame.columns))}"
            )
        values, bad = [], {}
        for row, value in zip(rows, frame[source].tolist()):
            cell, problem = _cell(value, field)
            if problem:
                bad.setdefault(problem, (row, value, []))[2].append(row)
            values.append(cell)
        problems += [f"column {source!r} (data.columns.{field}) {what} in {_rows(where)}"
                     + ("" if what == _MISSING else f" (row {row}: {value!r:.60})")
                     for what, (row, value, where) in bad.items()]
        out[field] = pd.Series(values, index=frame.index, dtype=object)  # None stays None, never NaN
    out["source_row"] = list(rows)
    if problems:
        raise CorpusError(f"{path}: " + "; ".join(problems))
    if "post_id" not in out:
        out["post_id"] = None
    # a post without an id (null, or an empty CSV cell) is named by its row, as when the file has no id column
    out["post_id"] = [pid or f"row{row}" for pid, row in zip(out["post_id"], rows)]
    repeated = out[out["post_id"].duplicated(keep=False)].groupby("post_id", sort=False)["source_row"]
    if len(repeated):  # two posts under one id: which one a later stage meant would be a guess
        listed = "; ".join(f"{pid!r} in {_rows(list(where))}" for pid, where in list(repeated)[:5])
        raise CorpusError(f"{path}: column {columns.get('post_id')!r} (data.columns.post_id) must be unique; "
                          f"{len(repeated)} id(s) repeat: {listed}")
    for field in ("author_id", "timestamp"):
        if field not in out:
            out[field] = None
    return out.reset_index(drop=True)


_MISSING = "is null or missing"


def _cell(value, field: str) -> tuple[str | None, str | None]:
    """A cell as (string or None when missing, None) or (None, what is wrong with it).

    Text must be a string and present (a number or a list is not a post). Ids, labels and timestamps may be
    scalars of any type; an integral float is an integer column that had nulls (Parquet): 7.0 -> '7'.
    """
    import pandas as pd

    scalar = pd.api.types.is_scalar(value)
    if value is None or (scalar and pd.isna(value)):
        return None, _MISSING if field == "text" else None
    if isinstance(value, str):
        return value, None
    if field == "text" or not scalar:
        return None, f"holds {type(value).__name__} values, not text"
    if isinstance(value, float) and value.is_integer():
        return str(int(value)), None
    return str(value), None


def _rows(rows: list[int], shown: int = 10) -> str:
    """'row 3', 'rows 3, 9' or 'rows 3, 9, ... (25 rows)': data rows, 1-based, header not counted."""
    listed = ", ".join(map(str, rows[:shown]))
    more = f", ... ({len(rows)} rows)" if len(rows) > shown else ""
    return f"row {listed}" if len(rows) == 1 else f"rows {listed}{more}"


def read_jsonl(path: str | Path) -> list[dict]:
    path = Path(path)
    if not path.is_file():
        raise CorpusError(f"{path}: file not found (run the stage that writes it first)")
    return _parse_jsonl(path, _decode(path, path.read_bytes(), "utf-8"))
