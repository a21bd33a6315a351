"""`hivelm survey-score`: score answers collected elsewhere (people, another model, a paper's tables).

    hivelm survey-score --instrument swed answers.json
    hivelm survey-score --instrument configs/instruments/edeq.yaml answers.json --json

ANSWERS maps each respondent (or community) name to {item id: letter, number or list of letters}, e.g.
{"Pro-ED": {"Q5": "b", "Q6": "c", "Q10": 2, "Q11": ["a", "c"]}}. Items left out or null are missing (criteria
that need them are n/a). A bad file raises HiveError naming the file, the respondent and the item.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from hivelm.survey.instrument import InstrumentError, load_instrument, resolve_instrument_path
from hivelm.survey.scoring import score_answers


def read_answers(path: str | Path) -> dict[str, dict]:
    """The ANSWERS file (JSON, or YAML by extension) as {respondent: {item: answer}}."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise InstrumentError(f"{path}: answers file not found")
    try:
        text = path.read_text(encoding="utf-8")
        data = yaml.safe_load(text) if path.suffix.lower() in (".yaml", ".yml") else json.loads(text)
    except (json.JSONDecodeError, yaml.YAMLError, UnicodeDecodeError) as err:
        raise InstrumentError(f"{path}: not a valid answers file: {err}") from None
    except RecursionError:  # both parsers recurse once per nesting level
        raise InstrumentError(f"{path}: not a valid answers file: nested too deeply") from None
    if not isinstance(data, dict) or not data:
        raise InstrumentError(f"{path}: must map respondent names to {{item id: answer}} mappings")
    for name, answers in data.items():
        if not isinstance(answers, dict):
            raise InstrumentError(f"{path}: respondent {name!r}: answers must map item ids to answers")
    return {str(name): answers for name, answers in data.items()}


def _cell(value) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return f"{value:.1f}"


def print_table(instrument, scores: Mapping[str, dict]) -> None:
    """One row per respondent, one column per criterion; criterion labels below."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not console.is_terminal:
        console = Console(width=max(100, 12 * (len(instrument.criteria) + 2)))
    table = Table(title=f"{instrument.name}")
    table.add_column("respondent")
    for cid in instrument.criteria:
        table.add_column(cid, justify="right")
    table.add_column("missing items")
    for name, score in scores.items():
        table.add_row(name, *(_cell(score["criteria"][cid]) for cid in instrument.criteria),
                      ", ".join(score["missing"]) or "-")
    console.print(table)
    for cid, criterion in instrument.criteria.items():
        console.print(f"  {cid}: {criterion.label or criterion.kind}", highlight=False)


def survey_score_main(instrument_path: str | Path, answers_path: str | Path, as_json: bool = False,
                      criterion_params: Mapping[str, Mapping] | None = None) -> int:
    """Score every respondent of ANSWERS under the instrument (a name in configs/instruments/ or a path);
    print a table, or only the JSON {respondent: {criteria, values, missing}} when `as_json`. Returns 0;
    bad input raises InstrumentError (a HiveError), which the CLI prints and exits 2 on."""
    instrument = load_instrument(resolve_instrument_path(instrument_path), criterion_params=criterion_params)
    scores = {name: score_answers(instrument, answers, where=f"{answers_path}: respondent {name!r}")
              for name, answers in read_answers(answers_path).items()}
    if as_json:
        print(json.dumps(scores, indent=2))
    else:
        print_table(instrument, scores)
    return 0
