"""The `hivelm` command: one subcommand per pipeline stage, plus `run` for the whole pipeline.

Stages are imported only when they run, so `hivelm --help` starts instantly (no torch, no MLflow).
Overrides: any trailing `key=value` replaces that key of params.yaml for this invocation.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import signal
import sys
import threading
import time
import warnings

from hivelm import paths
from hivelm.contracts import STAGES


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hivelm", description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, stage in STAGES.items():  # one subcommand per stage contract (hivelm/contracts.py)
        sub = commands.add_parser(name, help=stage.help, description=stage.help)
        if stage.per_community:
            target = sub.add_mutually_exclusive_group(required=True)
            target.add_argument("--community", help="community key from params.yaml")
            target.add_argument("--all", action="store_true", help="every community in turn")
        sub.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="override a params.yaml key")
    attribute = commands.choices["attribute"]  # also `hivelm attribute FILE`: any posts, not the stage
    attribute.usage = "hivelm attribute [FILE] [--out PATH] [KEY=VALUE ...]"
    attribute.epilog = ("hivelm attribute FILE [--out PATH] [KEY=VALUE ...]: each post of FILE (CSV / JSONL, "
                        "columns as data.columns) -> its distribution over communities, written beside FILE")
    attribute.add_argument("--out", metavar="PATH",
                           help="with FILE: where the distributions go (default: beside FILE, NAME.attribution.jsonl)")
    run = commands.add_parser("run", help="run the whole pipeline (dvc repro) under one parent MLflow run",
                              description="Run `dvc repro` under one parent MLflow run; extra arguments "
                                          "after -- go to dvc repro (e.g. hivelm run -- --force).")
    run.add_argument("--name", help="MLflow name of the pipeline run")
    run.add_argument("dvc_args", nargs=argparse.REMAINDER, help="arguments for dvc repro")
    ui = commands.add_parser("ui", help="start the MLflow UI on this project's runs (Ctrl-C stops it)")
    ui.add_argument("--host", default="127.0.0.1")
    ui.add_argument("--port", type=int, default=5000)
    panel = commands.add_parser("panel", help="a local web page that asks every community's model at once",
                                description="Ask every community's adapter and the untuned base a question or an "
                                            "instrument item, answers side by side (needs the `panel` extra).")
    panel.add_argument("--host", default="127.0.0.1")
    panel.add_argument("--port", type=int, default=7860)
    panel.add_argument("--params", default=argparse.SUPPRESS, help="params file (default: params.yaml)")
    render = commands.add_parser("dvc-yaml", help="render dvc.yaml from the stage contracts (or --check it)",
                                 description="Write dvc.yaml from src/hivelm/contracts.py, the stages' imports and "
                                             "the params (external corpus files; with only external corpora, no "
                                             "model stages); --check exits 1 when the committed file differs.")
    render.add_argument("--check", action="store_true", help="compare instead of writing")
    check = commands.add_parser("check-metrics", help="fail if the pipeline's metrics regressed against BASE",
                                description="Compare the pipeline's metrics file with BASE (a git revision or a "
                                            "baseline file) under the rules file; exit 1 on a regression.")
    check.add_argument("base", metavar="BASE", help="git revision or baseline JSON file")
    check.add_argument("--rules", default="configs/metric_rules.yaml")
    check.add_argument("--metrics", default=str(paths.METRICS))
    score = commands.add_parser("survey-score", help="score answers collected elsewhere (people, other models)",
                                description="ANSWERS maps each respondent to {item id: letter, number or list}.")
    score.add_argument("--instrument", default="swed", help="instrument name (configs/instruments/) or file")
    score.add_argument("answers", metavar="ANSWERS")
    score.add_argument("--json", action="store_true", help="also print the scores as JSON")
    sample = commands.add_parser("harm-sample", help="write a blinded harm-annotation sample of the generated corpora")
    sample.add_argument("--out-dir", default=str(paths.HARM_DIR))
    sample.add_argument("--per-corpus", type=int, default=20, help="posts per community and corpus (paper: 20)")
    sample.add_argument("--seed", type=int, default=0)
    sample.add_argument("--force", action="store_true", help="replace an existing sample and key")
    ingest = commands.add_parser("harm-ingest", help="agreement and harm rates from two or more annotators' files")
    ingest.add_argument("annotations", nargs="+", metavar="ANNOTATION_CSV")
    ingest.add_argument("--key", default=str(paths.HARM_KEY))
    ingest.add_argument("--out", default=str(paths.HARM_REPORT))
    ingest.add_argument("--rule", choices=("all", "half", "any"), default="all",
                        help="when an item counts as harmful: all annotators (paper), at least half, or any")
    ingest.add_argument("--resamples", type=int, default=1000)
    return parser


def _interrupt(signum, frame):
    raise KeyboardInterrupt(signal.Signals(signum).name)


SHELLS = frozenset({"sh", "dash", "bash", "zsh", "fish", "ksh"})


def _name_and_parent(pid: int) -> tuple[str, int] | None:
    """A process's command name and parent pid from /proc; None when it is gone (or not Linux)."""
    try:
        with open(f"/proc/{pid}/stat") as file:
            stat = file.read()
    except OSError:
        return None
    name_end = stat.rindex(")")  # the name itself may hold spaces and parentheses
    return stat[stat.index("(") + 1:name_end], int(stat[name_end + 2:].split()[1])


def _end_with_dvc() -> bool:
    """Under `dvc repro`, end (SIGTERM, so runs close as KILLED) when DVC dies: a killed `dvc repro` would
    otherwise leave its stage (say, a trainer) running on as an orphan. DVC starts a stage through $SHELL -c;
    bash execs the command, so DVC is our parent, but dash (/bin/sh on Debian) stays between us. So: the
    kernel signals us when our parent dies, and where shells stand between, a watcher notices the outermost
    shell losing DVC as its parent. False when DVC is already gone."""
    import ctypes

    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1: PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the stage lock still refuses a second trainer
        return True
    shell, dvc = None, os.getppid()
    while (found := _name_and_parent(dvc)) and found[0] in SHELLS:
        shell, dvc = dvc, found[1]
    if dvc == 1 or found is None:
        return False
    if shell is not None:
        def watch(shell: int = shell, dvc: int = dvc) -> None:
            while (found := _name_and_parent(shell)) and found[1] == dvc:
                time.sleep(1)
            os.kill(os.getpid(), signal.SIGTERM)

        threading.Thread(target=watch, name="end-with-dvc", daemon=True).start()
    return True


def main(argv: list[str] | None = None, forked: bool = False) -> int:
    """`forked`: this process is a stage forked by hivelm/forkserver.py, whose client (DVC's child) watches
    DVC and forwards its signals."""
    args = build_parser().parse_args(argv)
    # SIGTERM (kill, DVC, a scheduler) unwinds like Ctrl-C: context managers end MLflow runs as KILLED,
    # `run` and `ui` stop their child process groups, and partial outputs stay in temporary paths.
    if threading.current_thread() is threading.main_thread():  # signal() refuses other threads
        signal.signal(signal.SIGTERM, _interrupt)
    if os.environ.get("DVC_STAGE") and not forked:
        if not _end_with_dvc():
            print(f"hivelm {args.command}: interrupted (dvc exited)", file=sys.stderr)
            return 130
        if args.command in STAGES:  # under `hivelm run`: fork the stage from the warm server
            from hivelm import forkserver

            code = forkserver.delegate(sys.argv[1:] if argv is None else argv)
            if code is not None:
                return code
    # Telemetry would try to reach the network at start-up; users can still opt in explicitly.
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    # peft calls a transformers API deprecated in v5, once per model load: noise, not a user problem.
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    from hivelm.config import load_config
    from hivelm.errors import HiveError, redact

    try:
        if args.command == "run":
            from hivelm import pipeline

            return pipeline.run(load_config(args.params), args.dvc_args, args.name)
        if args.command == "ui":
            from hivelm import ui

            return ui.main(load_config(args.params), args.host, args.port)
        if args.command == "panel":
            from hivelm import panel

            return panel.main(load_config(args.params), args.host, args.port)
        if args.command == "check-metrics":
            from hivelm import gate

            return gate.main(args.base, args.rules, args.metrics)
        if args.command == "survey-score":
            from hivelm.survey.cli import survey_score_main

            return survey_score_main(args.instrument, args.answers, args.json)
        if args.command == "harm-sample":
            from hivelm import harm

            cfg = load_config(args.params)
            harm.main_sample(list(cfg.communities), list(cfg.evaluate.corpora), out_dir=args.out_dir,
                             per_corpus=args.per_corpus, seed=args.seed, overwrite=args.force)
            return 0
        if args.command == "harm-ingest":
            from hivelm import harm

            harm.main_ingest(args.annotations, key=args.key, out=args.out, rule=args.rule, resamples=args.resamples)
            return 0
        if args.command == "dvc-yaml":
            from hivelm import dvcfile

            return dvcfile.main(args.check, cfg=load_config(args.params))
        files = _post_files(args.overrides) if args.command == "attribute" else []
        if files:
            from hivelm.stages.attribute import cli_main

            return cli_main(args.params, files, [a for a in args.overrides if a not in files], args.out)
        if getattr(args, "out", None):
            raise HiveError("--out goes with a FILE of posts: hivelm attribute FILE --out PATH")
        cfg = load_config(args.params, args.overrides)
        if not STAGES[args.command].per_community:
            return run_stage(args.command, cfg, None)
        return run_stage(args.command, cfg, list(cfg.communities) if args.all else [args.community])
    except HiveError as err:
        print(f"hivelm {args.command}: error: {redact(str(err))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:
        print(f"hivelm {args.command}: interrupted ({err or 'SIGINT'})", file=sys.stderr)
        return 130
    return 0


def _post_files(arguments: list[str]) -> list[str]:
    """`hivelm attribute FILE`: a positional is a FILE of posts when it names an existing file (which may be
    called my=posts.csv) or has no '='; the others are key=value overrides."""
    return [arg for arg in arguments if "=" not in arg or os.path.isfile(arg)]


def run_stage(name: str, cfg, communities: list[str] | None) -> int:
    """The recipe of every stage: open its MLflow run with its declared params, hand it a config in which
    only those params can be read, run it (once per community of `communities` for a fanned-out stage)."""
    from hivelm import tracking
    from hivelm.config import declared

    contract = STAGES[name]
    module = importlib.import_module(contract.module)
    for community in communities or [None]:
        if community is not None:
            cfg.community(community)  # unknown key: a clear error before any run is opened
        with tracking.stage_run(cfg, contract, community) as run:
            view = declared(cfg, name, contract.params, community)
            module.main(view, run, community) if community is not None else module.main(view, run)
    return 0


if __name__ == "__main__":
    sys.exit(main())
