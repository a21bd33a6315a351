"""`hivelm plant`: seeded synthetic corpora of communities whose truth we know (issue 26).

    hivelm plant                                              # group_a, group_b, group_c at rates 0, 0.5, 1
    hivelm plant --rates calm=0.1,tense=0.4 --per-community 500 --seed 3
    hivelm --params configs/planted/params.yaml plant         # kept shares under that file's prepare settings

Does the pipeline detect a difference when there is one, and how many posts does it need? Only a corpus whose
truth is known can say. Every community's posts come from one vocabulary (configs/planted/templates.yaml):
the same openers, scenes, closers, foods, casing and punctuation, drawn with the same probabilities. They
differ in one thing, the planted rate p_c: each post expresses, with probability p_c, one of four attitudes
SWED's criteria score (fear of weight gain, weight or shape driving self-worth, restriction, guilt after
eating); otherwise that dimension's opposite (with probability `opposite_share`) or no attitude at all.

Common random numbers: each post's draws are made whatever its label, from a stream keyed by (seed,
community), and its label is a threshold on one uniform draw. At the same seed a higher rate turns some
posts' stance into the attitude and changes nothing else (a post planted at rate p is planted at every rate
above p), and a larger community holds the smaller one's posts (and its own community's draws only: adding a
community changes no other). A power curve over rates and sizes compares like with like.

Output: the corpus in the demo's columns (post_id, author_id, community, created_at, text; rows shuffled
across communities), so data.path can point at it, and the truth beside it in <stem>.labels.csv (post_id,
community, label, dimension, planted_rate), never in the text. `kept_share` runs prepare's own cleaning and
deduplication on each community and reports the share of posts left.
"""

from __future__ import annotations

import argparse
import csv
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hivelm.config import COMMUNITY_KEY, MAX_KEY_CHARS, PrepareConfig
from hivelm.errors import HiveError

PARAMS = Path("configs/planted/params.yaml")
"""The planted pipeline's params: its data.path is where `hivelm plant` writes unless told otherwise, so the
corpus and the pipeline that reads it name one place."""
VOCABULARY = "configs/planted/templates.yaml"
LABELS = ("attitude", "opposite", "neutral")
CORPUS_COLUMNS = ("post_id", "author_id", "community", "created_at", "text")  # data/demo/posts.csv's header
LABEL_COLUMNS = ("post_id", "community", "label", "dimension", "planted_rate")
SLOTS = ("openers", "scenes", "times", "activities", "foods", "stances", "neutral", "closers", "endings")
START = datetime(2026, 1, 1, tzinfo=UTC)  # created_at: uniform over the demo's half-year
SPAN_S = 181 * 24 * 3600
AUTHORS = 40  # authors per community (the demo has 45 to 54), whatever its size, so sizes nest
DRAWS = ("label", "opposite", "dimension", "stance", "food", "opener", "scene", "time", "activity", "closer",
         "ending", "case", "order", "author", "created")  # one uniform each, per post
STANCE_FIRST = 0.3  # share of posts whose stance sentence comes before the scene


def rates_argument(text: str) -> dict[str, float]:
    """`--rates`: '0,0.5,1' (communities group_a, group_b, ...) or 'calm=0.1,tense=0.4'; each rate in [0, 1]."""
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items:
        raise argparse.ArgumentTypeError("give at least one rate, e.g. 0,0.5,1 or calm=0.1,tense=0.4")
    named = ["=" in item for item in items]
    if any(named) and not all(named):
        raise argparse.ArgumentTypeError(f"{text!r}: name every community (name=rate) or none")
    if not any(named):
        if len(items) > 26:
            raise argparse.ArgumentTypeError(f"{len(items)} rates: name the communities (name=rate) past 26")
        items = [f"group_{chr(ord('a') + i)}={item}" for i, item in enumerate(items)]
    rates: dict[str, float] = {}
    for item in items:
        name, _, value = (part.strip() for part in item.partition("="))
        if name in rates:
            raise argparse.ArgumentTypeError(f"community {name!r} is named twice")
        rates[name] = _unit(value, f"rate of {name!r}")
    try:
        check_names(rates)
    except HiveError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return rates


def share_argument(text: str) -> float:
    """`--opposite-share`: a number in [0, 1]."""
    return _unit(text, "share")


def count_argument(text: str) -> int:
    """`--per-community`: a whole number of posts, at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of posts") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} posts: each community needs at least 1")
    return value


def _unit(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{what} {text!r} is not a number") from None
    if not 0.0 <= value <= 1.0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"{what} {text} is outside [0, 1]")
    return value


def check_names(rates: dict[str, float]) -> None:
    """Community names are community keys (params.yaml's `communities`): they name files and stages."""
    for name in rates:
        if not COMMUNITY_KEY.fullmatch(name) or len(name) > MAX_KEY_CHARS:
            raise HiveError(f"community name {name!r}: lowercase letters, digits, '_' or '-', at most "
                            f"{MAX_KEY_CHARS} characters (it becomes a community key in params.yaml)")


def load_vocabulary(path: str | Path = VOCABULARY) -> dict:
    """The vocabulary file: every slot a non-empty list, each dimension an attitude and an opposite list."""
    import yaml

    try:
        vocabulary = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as err:
        raise HiveError(f"{path}: cannot read the vocabulary: {err}") from None
    missing = [slot for slot in SLOTS if not isinstance(vocabulary, dict) or not vocabulary.get(slot)]
    if missing:
        raise HiveError(f"{path}: no {', '.join(missing)} (every slot needs a non-empty list)")
    for dimension, sentences in vocabulary["stances"].items():
        if not isinstance(sentences, dict) or not sentences.get("attitude") or not sentences.get("opposite"):
            raise HiveError(f"{path}: stances.{dimension} needs non-empty attitude and opposite lists")
    return vocabulary


def plant(rates: dict[str, float], per_community: int, seed: int = 0, vocabulary: dict | None = None,
          opposite_share: float = 0.5) -> list[dict]:
    """Pure core: the planted corpus as rows, in file order (shuffled across communities). Each row has the
    corpus columns and the label columns; `write` splits them into the two files."""
    from hivelm.rng import keyed_rng

    vocabulary = vocabulary or load_vocabulary()
    check_names(rates)
    if per_community < 1:
        raise HiveError(f"per_community: each community needs at least 1 post (got {per_community})")
    for what, value in [*((f"rate of {name!r}", rate) for name, rate in rates.items()),
                        ("opposite_share", opposite_share)]:
        if not 0.0 <= value <= 1.0:
            raise HiveError(f"{what}: must be in [0, 1] (got {value})")
    rows = [row for name, rate in rates.items()
            for row in _community(name, rate, per_community, seed, vocabulary, opposite_share)]
    order = keyed_rng(seed, "order").permutation(len(rows))
    shuffled = [rows[i] for i in order]
    for number, row in enumerate(shuffled, 1):
        row["post_id"] = f"planted-{number:06d}"
    return shuffled


def _community(name: str, rate: float, n: int, seed: int, vocabulary: dict, opposite_share: float) -> list[dict]:
    """One community's posts. Each post's draws are one row of uniforms, made whatever its label turns out to
    be (common random numbers): only the stance sentences move with the rate, and the first n posts at a
    larger size are these n posts."""
    from hivelm.rng import keyed_rng

    draws = keyed_rng(seed, "community", name).random((n, len(DRAWS))).tolist()  # row by row: sizes nest
    dimensions = list(vocabulary["stances"])
    rows = []
    for row in draws:
        u = dict(zip(DRAWS, row))
        label = "attitude" if u["label"] < rate else "opposite" if u["opposite"] < opposite_share else "neutral"
        dimension = _pick(dimensions, u["dimension"]) if label != "neutral" else ""
        created = START + timedelta(seconds=int(u["created"] * SPAN_S))
        rows.append({"post_id": "", "author_id": f"{name}-u{_pick(range(AUTHORS), u['author']):02d}",
                     "community": name, "created_at": created.strftime("%Y-%m-%dT%H:%M:%SZ"),
                     "text": _compose(vocabulary, label, dimension, u), "label": label,
                     "dimension": dimension, "planted_rate": f"{rate:g}"})
    return rows


def _pick(options, u: float):
    return options[min(int(u * len(options)), len(options) - 1)]


def _compose(vocabulary: dict, label: str, dimension: str, u: dict[str, float]) -> str:
    """[opener] scene stance [closer] (or the stance first), in lower or sentence case."""
    pool = vocabulary["neutral"] if label == "neutral" else vocabulary["stances"][dimension][label]
    stance = _pick(pool, u["stance"]).format(food=_pick(vocabulary["foods"], u["food"]))
    scene = _pick(vocabulary["scenes"], u["scene"]).format(time=_pick(vocabulary["times"], u["time"]),
                                                           activity=_pick(vocabulary["activities"], u["activity"]))
    ending = _pick(vocabulary["endings"], u["ending"])
    body = [stance + ".", scene + ending] if u["order"] < STANCE_FIRST else [scene + ending, stance + "."]
    sentences = [s for s in (_pick(vocabulary["openers"], u["opener"]), *body,
                             _pick(vocabulary["closers"], u["closer"])) if s]
    if u["case"] < 0.5:  # sentence case: capitals after a full stop, and "I"
        sentences = [re.sub(r"\bi\b", "I", s[0].upper() + s[1:]) for s in sentences]
    return " ".join(sentences)


def labels_path(out: str | Path) -> Path:
    """The side file of the truth beside corpus `out`: posts.csv -> posts.labels.csv."""
    out = Path(out)
    return out.with_name(f"{out.stem}.labels.csv")


def write(rows: list[dict], out: str | Path, force: bool = False) -> Path:
    """Write the corpus and its labels file together (both or neither). An existing `out` is replaced only if
    it is a planted corpus (its labels file exists) or with `force`: --out may name someone's real posts."""
    from hivelm.artifacts import staged_outputs

    out, labels = Path(out), labels_path(out)
    if out.exists() and not labels.exists() and not force:
        raise HiveError(f"{out} exists and is not a planted corpus (no {labels.name} beside it): "
                        "pick another --out, or --force to replace it")
    with staged_outputs() as staged:
        for path, columns in ((out, CORPUS_COLUMNS), (labels, LABEL_COLUMNS)):
            with open(staged.path(path), "w", encoding="utf-8", newline="") as handle:
                writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
                writer.writeheader()
                writer.writerows(rows)
    return labels


def kept_share(rows: list[dict], prepare: PrepareConfig) -> dict[str, dict]:
    """{community: {posts, kept, share}}: posts left after prepare's cleaning, length range and exact and
    near-duplicate filters (hivelm.stages.prepare.clean_community itself, in file order, before the cap)."""
    import dataclasses

    from hivelm.stages.prepare import clean_community

    settings = dataclasses.replace(prepare, cap_strategy="random")  # the cap is not counted; no model needed
    shares = {}
    for community in dict.fromkeys(row["community"] for row in rows):
        posts = [{"text": row["text"], "community": community} for row in rows if row["community"] == community]
        _, counts = clean_community(posts, settings)
        kept = counts["after_near_dedupe"]
        shares[community] = {"posts": len(posts), "kept": kept, "share": kept / len(posts)}
    return shares


def main(rates: dict[str, float], per_community: int, seed: int, out: str, opposite_share: float,
         templates: str, prepare: PrepareConfig, params: str, force: bool = False) -> int:
    """`hivelm plant`: write the corpus and its labels, then one line per community with its planted rate,
    the share of posts that express the attitude, and the share prepare keeps."""
    rows = plant(rates, per_community, seed, load_vocabulary(templates), opposite_share)
    labels = write(rows, out, force)
    shares = kept_share(rows, prepare)
    print(f"wrote {out} ({len(rows)} posts) and its labels, {labels}")
    print(f"{'community':<16} {'rate':>5} {'posts':>6} {'attitude':>9} {'kept by prepare':>16}  ({params})")
    for name, rate in rates.items():
        planted = sum(row["label"] == "attitude" for row in rows if row["community"] == name)
        kept = shares[name]
        print(f"{name:<16} {rate:>5g} {kept['posts']:>6} {planted / kept['posts']:>9.3f} "
              f"{kept['kept']:>8} ({kept['share']:.3f})")
    return 0
