"""The generated reference pages of the docs site, and the writer that keeps them current.

    python -m hivelm.reference           # rewrite docs/configuration.md, docs/reference/cli.md, .../instruments.md
                                         # and the demo's validity card in docs/explanation/validity.md,
                                         # the planted power curve's tables in docs/planted.md
    python -m hivelm.reference --check   # exit 1 naming each page that differs from its source

Each page is generated from the one place its facts are declared: the config dataclasses (hivelm.config),
the argument parser (hivelm.cli.build_parser) and the instrument format (hivelm.survey.instrument's
docstring). No stage imports this module, so editing it reruns no stage.
"""

from __future__ import annotations

import argparse
import ast
import inspect
import os
import re
import sys
from dataclasses import MISSING, fields, is_dataclass
from pathlib import Path

from hivelm import config
from hivelm.artifacts import read_json
from hivelm.recovery import STRONG_200_RESULTS, STRONG_500_RESULTS  # light: paths and arithmetic, no model

DOCS = Path(__file__).resolve().parents[2] / "docs"  # the checkout's docs/ (the pages are not shipped)
NESTED = {name: cls for name, cls in vars(config).items() if isinstance(cls, type) and is_dataclass(cls)}
"""Every config dataclass by name: fields annotated with a string type (PEP 563) name them."""


def reference_markdown() -> str:
    """The configuration reference (docs/configuration.md), generated from the dataclasses of hivelm.config: every
    key with its type, default and the docstring under its field."""
    tree = ast.parse(inspect.getsource(config))
    docs: dict[tuple[str, str], str] = {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            body = node.body
            for current, following in zip(body, body[1:]):
                if isinstance(current, ast.AnnAssign) and isinstance(following, ast.Expr) \
                        and isinstance(following.value, ast.Constant) and isinstance(following.value.value, str):
                    docs[(node.name, current.target.id)] = " ".join(following.value.value.split())
    lines = ["# Configuration reference", "",
             "Generated from `src/hivelm/config.py` (`python -m hivelm.reference`); a test keeps it current.",
             "Every key lives in `params.yaml` under its section; override one with `hivelm <stage> section.key=value`.",
             ""]

    def section(cls, prefix: str, instance=None) -> None:
        """`instance`: the parent's default for this block (e.g. survey.decoding's own max_new_tokens)."""
        lines.extend([f"## `{prefix}`", "", " ".join((cls.__doc__ or "").split()), "",
                      "| key | type | default | meaning |", "| --- | --- | --- | --- |"])
        nested = []
        for f in fields(cls):
            if is_dataclass(f.type) or (isinstance(f.type, str) and f.type in NESTED):
                child = f.default_factory() if f.default_factory is not MISSING else None
                nested.append((NESTED.get(f.type, f.type), f"{prefix}.{f.name}", child))
                continue
            if instance is not None:
                default = getattr(instance, f.name)
            else:
                default = f.default if f.default is not MISSING else (
                    f.default_factory() if f.default_factory is not MISSING else "required")
            text = docs.get((cls.__name__, f.name), "").replace("|", "\\|")
            kind = str(f.type).replace("|", "\\|")
            item = re.fullmatch(r"list\[(\w+)\]", str(f.type))
            if item and item.group(1) in NESTED:
                nested.append((NESTED[item.group(1)], f"{prefix}.{f.name}[]", None))
            lines.append(f"| `{f.name}` | `{kind}` | `{default!r}` | {text} |")
        lines.append("")
        for child, child_prefix, child_default in nested:
            section(child, child_prefix, child_default)

    for f in fields(config.HiveConfig):
        if f.name == "communities":
            lines.extend(["## `communities`", "", "A mapping: key (names files, stages and runs) -> community.", ""])
            section(config.CommunityConfig, "communities.<key>")
        else:
            section(NESTED[f.type], f.name)
    return "\n".join(lines).rstrip() + "\n"


def cli_markdown() -> str:
    """The command-line reference (docs/reference/cli.md): every subcommand's --help, from build_parser."""
    from hivelm.cli import build_parser

    columns = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "100"  # argparse wraps to the terminal: one width, so the page is the same everywhere
    try:
        parser = build_parser()
        parser.prog = "hivelm"
        commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        lines = ["# Command-line reference", "",
                 "Generated from the argument parser (`hivelm.cli.build_parser`, `python -m hivelm.reference`); "
                 "a test keeps it current. Every stage command also takes trailing `KEY=VALUE` overrides of "
                 "params.yaml keys ([overrides](overrides.md), [configuration](../configuration.md)).", "",
                 "## `hivelm`", "", "```text", parser.format_help().rstrip(), "```", ""]
        for name, sub in commands.choices.items():
            lines += [f"## `hivelm {name}`", "", "```text", sub.format_help().rstrip(), "```", ""]
    finally:
        if columns is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = columns
    return "\n".join(lines).rstrip() + "\n"


def instruments_markdown() -> str:
    """The survey instrument format (docs/reference/instruments.md), from hivelm.survey.instrument's docstring."""
    from hivelm.survey import instrument

    title, _, body = (instrument.__doc__ or "").partition("\n")
    return ("# Survey instruments\n\n"
            "Generated from the docstring of `src/hivelm/survey/instrument.py` (`python -m hivelm.reference`). "
            "`configs/instruments/swed.yaml` and `edeq.yaml` are worked examples; `survey.instrument` picks one "
            "([configuration](../configuration.md#survey)).\n\n"
            f"{title.strip()}\n\n```text\n{body.strip()}\n```\n")


def demo_card_markdown(metrics: Path | None = None) -> str:
    """What the survey's validity card says for the demo's committed run (summarize's metrics file,
    survey.validity): per community and model the verdict and the failed checks, then how many contrasts
    are supported."""
    import json

    from hivelm import paths

    metrics = metrics or DOCS.parent / paths.METRICS
    section = json.loads(metrics.read_text(encoding="utf-8")).get("survey", {}).get("validity")
    if not section:
        return f"The demo's committed run has no validity card ({paths.METRICS} has no `survey.validity`).\n"
    lines = ["| community | model | verdict | checks passed | failed checks |", "| --- | --- | --- | ---: | --- |"]
    verdicts = []
    for community, rows in section["communities"].items():
        for model, row in rows.items():
            if isinstance(row, dict) and "verdict" in row:
                verdicts.append(row["verdict"])
                lines.append(f"| {community} | {model} | {row['verdict']} | {row['checks_passed']:.0%} | "
                             f"{', '.join(row['failed']) or 'none'} |")
    pairs = [call for calls in section["contrasts"].values() for call in calls.values()]
    supported = sum(call["supported"] for call in pairs)
    return (f"For SmolLM2-135M on the demo (the committed `make repro`; generated from {paths.METRICS} by "
            "`python -m hivelm.reference`): "
            f"{verdicts.count('informative')} of {len(verdicts)} models are informative, and "
            f"{supported} of {len(pairs)} community contrasts are supported.\n\n" + "\n".join(lines) + "\n")


def _run_line(results: dict) -> str:
    cuts = results["cuts"]
    said = [f"{cuts['tune_steps']} tuning steps" if cuts.get("tune_steps") else None,
            f"the first {cuts['personas']} personas" if cuts.get("personas") else None,
            "the validity card" if cuts.get("validity") else "no validity card"] + list(cuts.get("set") or []) + (
        [f"only the stages the {' and '.join(cuts['families'])} measures read"] if cuts.get("families") else [])
    # The cells' own times: a rerun into the same OUT reads finished cells back, so the last run's wall_s can
    # cover only some of them.
    seconds = sum(sum(record["seconds"].values()) for record in results["records"])
    commits = sorted({record.get("commit", results["commit"])[:7] for record in results["records"]})
    return (f"Commit{'s' if len(commits) > 1 else ''} {', '.join(f'`{c}`' for c in commits)}; {results['cells']} "
            f"cells (posts per community {', '.join(map(str, results['sizes']))}; rate gaps "
            f"{', '.join(f'{g:g}' for g in results['gaps'])}; seeds {', '.join(map(str, results['seeds']))}), "
            f"{seconds:,.0f} s of cells ({seconds / 3600:.1f} h) on 2 CPU cores, {results['failed']} failed; cuts: "
            f"{'; '.join(c for c in said if c)}.")


def planted_power_markdown(path: Path | None = None) -> str:
    """The power curve's tables (docs/planted.md) from its committed results (hivelm.recovery.POWER_RESULTS):
    per measure and gap the smallest N recovering the planted order in at least 80% of seeds, then every cell's
    count of seeds that recovered it."""
    from hivelm.recovery import POWER_RESULTS

    results = read_json(path or DOCS.parent / POWER_RESULTS)
    if results is None:
        return f"No run of the power curve is committed ({POWER_RESULTS} does not exist).\n"
    gaps, sizes = results["gaps"], sorted(results["sizes"])
    lines = [_run_line(results), "", "Smallest posts per community at which the measure recovered the planted order "
             "in at least 80% of seeds (`not within the grid`: at no size tried; `n/a`: no seed could judge it):", "",
             "| measure | " + " | ".join(f"gap {g:g}" for g in gaps) + " |", "| --- |" + " ---: |" * len(gaps)]
    judged = {name: row for name, row in results["smallest_n"].items() if set(row.values()) != {"n/a"}}
    for name, row in judged.items():
        shown = ["not within the grid" if row[f"{g:g}"] is None else str(row[f"{g:g}"]) for g in gaps]
        lines.append(f"| `{name}` | " + " | ".join(shown) + " |")
    unjudged = [name for name in results["smallest_n"] if name not in judged]
    if unjudged:
        lines += ["", "Not measured in this run (their corpus or the validity card was cut): "
                  + ", ".join(f"`{name}`" for name in unjudged) + "."]
    lines += ["", "Seeds that recovered the planted order, of those run (a failed cell or a null verdict counts as "
              "not recovered; `-`: no seed could judge it):", "",
              "| measure | " + " | ".join(f"gap {g:g}, N {n}" for g in gaps for n in sizes) + " |",
              "| --- |" + " ---: |" * (len(gaps) * len(sizes))]
    for name, slots in results["shares"].items():
        if name not in judged:
            continue
        cells = [slots.get(f"gap {g:g}, n {n}") for g in gaps for n in sizes]
        shown = ["-" if not c or not c["judged"] else f"{c['recovered']} of {c['seeds']}" for c in cells]
        lines.append(f"| `{name}` | " + " | ".join(shown) + " |")
    return "\n".join(lines) + "\n"


def planted_strong_markdown(path: Path | None = None) -> str:
    """The strong-signal case's outcome per measure (docs/planted.md) from its committed results
    (hivelm.recovery.STRONG_RESULTS): in how many seeds it recovered the planted order, and whether a test of
    that case may assert it (hivelm.recovery.reliable)."""
    from hivelm.recovery import POWER, STRONG_RESULTS, reliable

    path = path or STRONG_RESULTS
    results = read_json(DOCS.parent / path)
    if results is None:
        return f"No run of this case is committed ({path} does not exist).\n"
    cells = results["records"]
    seed = results["seeds"][0]
    asserted = reliable(results, seed)
    lines = [_run_line(results), "", f"A test running seed {seed} may assert each measure that recovered the planted "
             f"order in at least {POWER:.0%} of the seeds and in seed {seed} (hivelm.recovery.reliable): "
             + (", ".join(f"`{name}`" for name in asserted) if asserted else "none does") + ".", "",
             f"| measure | seeds recovering the planted order | seed {seed} | a test may assert it |",
             "| --- | ---: | --- | --- |"]
    for name in dict.fromkeys(name for cell in cells for name in cell["measures"]):
        verdicts = {cell["seed"]: cell["measures"].get(name) for cell in cells}
        if all(v is None for v in verdicts.values()):
            continue  # not measured in this case (its corpus or the validity card was cut)
        recovered = sum(v is True for v in verdicts.values())
        lines.append(f"| `{name}` | {recovered} of {len(cells)} | {'recovered' if verdicts[seed] else 'not'} | "
                     f"{'yes' if name in asserted else 'no'} |")
    return "\n".join(lines) + "\n"


PAGES = {"configuration.md": reference_markdown, "reference/cli.md": cli_markdown,
         "reference/instruments.md": instruments_markdown}
BLOCKS = {"explanation/validity.md": {"demo-card": demo_card_markdown},
          "planted.md": {"planted-power": planted_power_markdown, "planted-strong": planted_strong_markdown,
                         "planted-strong-500": lambda: planted_strong_markdown(STRONG_500_RESULTS),
                         "planted-strong-200": lambda: planted_strong_markdown(STRONG_200_RESULTS)}}
"""Generated blocks inside hand-written pages: between `<!-- NAME -->` and `<!-- /NAME -->`."""


def _with_blocks(text: str, blocks: dict) -> str:
    for name, make in blocks.items():
        start, end = f"<!-- {name} -->", f"<!-- /{name} -->"
        head, found, rest = text.partition(start)
        if not found:
            raise ValueError(f"no {start} marker")
        tail = rest.partition(end)[2].removeprefix("\n") if end in rest else rest.partition("\n")[2]
        text = f"{head}{start}\n{make()}{end}\n{tail}"
    return text


def stale(docs: Path = DOCS) -> list[str]:
    """The generated pages and blocks under `docs` that differ from what their sources say now."""
    names = [name for name, make in PAGES.items()
             if not (docs / name).is_file() or (docs / name).read_text(encoding="utf-8") != make()]
    return names + [name for name, blocks in BLOCKS.items()
                    if (text := (docs / name).read_text(encoding="utf-8")) != _with_blocks(text, blocks)]


def main(argv: list[str] | None = None) -> int:
    check = "--check" in (sys.argv[1:] if argv is None else argv)
    if check:
        names = stale()
        for name in names:
            print(f"docs/{name} is out of date: run `python -m hivelm.reference`")
        return 1 if names else 0
    for name, make in PAGES.items():
        (DOCS / name).parent.mkdir(parents=True, exist_ok=True)
        (DOCS / name).write_text(make(), encoding="utf-8")
    for name, blocks in BLOCKS.items():
        page = DOCS / name
        page.write_text(_with_blocks(page.read_text(encoding="utf-8"), blocks), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
