"""`hivelm plant` (issue 26): planted communities whose truth we know. Pure and fast: no model, no pipeline."""

from __future__ import annotations

import csv
import math
import re
import shlex

import pytest
import yaml

from conftest import REPO
from hivelm import plant
from hivelm.cli import build_parser
from hivelm.cli import main as cli
from hivelm.config import load_config
from hivelm.errors import HiveError

PLANTED_PARAMS = REPO / "configs" / "planted" / "params.yaml"
VOCABULARY = plant.load_vocabulary(REPO / plant.VOCABULARY)


def rows_of(rates, n, seed=0, **kwargs):
    return plant.plant(rates, n, seed, VOCABULARY, **kwargs)


def read_csv(path):
    with open(path, encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def run_plant(tmp_path, *arguments):
    out = tmp_path / "posts.csv"
    code = cli(["--params", str(PLANTED_PARAMS), "plant", "--templates", str(REPO / plant.VOCABULARY),
                "--out", str(out), *arguments])
    return code, out


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path, capsys):
    written = {}
    for name, seed in (("first", "0"), ("again", "0"), ("other", "1")):
        (tmp_path / name).mkdir()
        code, out = run_plant(tmp_path / name, "--seed", seed, "--per-community", "40")
        assert code == 0
        written[name] = (out.read_bytes(), plant.labels_path(out).read_bytes())
    assert written["first"] == written["again"]
    assert written["first"][0] != written["other"][0] and written["first"][1] != written["other"][1]
    assert "group_b" in capsys.readouterr().out  # one line per community


@pytest.mark.parametrize("rate", [0.1, 0.3, 0.5, 0.9])
def test_planted_rates_hold_within_a_binomial_tolerance(rate):
    """Each post is planted with probability p, independently, so a community's count k of planted posts out
    of n is Binomial(n, p) with sd sqrt(n p (1 - p)). A correct generator lands outside 4 sd with probability
    6e-5 (normal approximation) per community: over the 40 samples here, under 0.3% for all of them. One
    sample is loose against a bias (4 sd of a rate is 0.09 at n = 500, p = 0.5), so the 10 seeds are also
    pooled (n = 5,000: 4 sd = 0.028): a generator off by 0.03 fails. The seeds are fixed, so the outcome is
    deterministic; the tail bounds say it is not luck."""
    n, seeds = 500, range(10)
    counts = []
    for seed in seeds:
        rows = rows_of({"x": rate}, n, seed)
        counts.append(sum(row["label"] == "attitude" for row in rows))
        assert abs(counts[-1] - n * rate) <= 4 * math.sqrt(n * rate * (1 - rate)), (seed, counts[-1])
    pooled = n * len(seeds)
    assert abs(sum(counts) - pooled * rate) <= 4 * math.sqrt(pooled * rate * (1 - rate))


def test_rates_zero_and_one_are_exact_and_the_rest_split_by_the_opposite_share():
    rows = rows_of({"none": 0.0, "all": 1.0}, 300, opposite_share=0.25)
    labels = {name: [row["label"] for row in rows if row["community"] == name] for name in ("none", "all")}
    assert set(labels["all"]) == {"attitude"} and "attitude" not in labels["none"]
    opposite = labels["none"].count("opposite")
    assert abs(opposite - 300 * 0.25) <= 4 * math.sqrt(300 * 0.25 * 0.75)  # the same binomial bound


def test_a_higher_rate_changes_only_stance_sentences():
    """Common random numbers: at the same seed, posts with the same label are the same post, and every post
    planted at 0.2 is planted at 0.7 too."""
    low, high = (sorted(rows_of({"x": rate}, 200), key=lambda row: row["post_id"]) for rate in (0.2, 0.7))
    for a, b in zip(low, high):
        assert (a["author_id"], a["created_at"], a["post_id"]) == (b["author_id"], b["created_at"], b["post_id"])
        if a["label"] == b["label"]:
            assert a["text"] == b["text"]
        if a["label"] == "attitude":
            assert b["label"] == "attitude"
    assert sum(a["label"] != b["label"] for a, b in zip(low, high)) > 50


def test_a_larger_community_holds_the_smaller_ones_posts_and_other_communities_change_nothing():
    def posts(rows, name):
        return {(r["author_id"], r["created_at"], r["text"], r["label"]) for r in rows if r["community"] == name}

    small, large = rows_of({"x": 0.4, "y": 0.6}, 150), rows_of({"z": 0.1, "y": 0.6, "x": 0.4}, 500)
    assert posts(small, "x") < posts(large, "x") and posts(small, "y") < posts(large, "y")


def _forbidden(rates) -> list[str]:
    """What must never be in a post: the label names, the side file's columns, the community names (and the
    word 'planted'); rates cannot be, as no post has a digit."""
    return [*plant.LABELS, *plant.LABEL_COLUMNS, *rates, "planted"]


def _vocabulary_strings(node):
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from _vocabulary_strings(value)
    else:
        for value in node:
            yield from _vocabulary_strings(value)


def test_no_label_word_or_rate_appears_in_any_post():
    rates = {"group_a": 0.0, "group_b": 0.5, "group_c": 1.0, "calm": 0.25}
    words = re.compile(r"\b(?:" + "|".join(map(re.escape, _forbidden(rates))) + r")\b", re.IGNORECASE)
    rows = rows_of(rates, 400)
    texts = [row["text"] for row in rows] + list(_vocabulary_strings(VOCABULARY))  # sampled posts, every string
    assert [t for t in texts if words.search(t) or re.search(r"\d", t)] == []
    assert all(row["label"] in plant.LABELS for row in rows)


def test_post_lengths_do_not_depend_on_the_label():
    """Attitude, opposite and neutral sentences were written to the same lengths, so a community's planted
    rate shows in what its posts say, not in how long they are."""
    rows = rows_of({"a": 0.0, "b": 0.5, "c": 1.0}, 2000)
    mean = {label: sum(len(r["text"]) for r in rows if r["label"] == label)
            / sum(r["label"] == label for r in rows) for label in plant.LABELS}
    assert max(mean.values()) - min(mean.values()) < 4, mean  # sd of a post's length ~15, of each mean < 0.4


def test_side_file_covers_every_post_exactly_once_and_the_corpus_reads_like_the_demo(tmp_path, capsys):
    from hivelm.tables import read_corpus

    code, out = run_plant(tmp_path, "--rates", "calm=0.2,tense=0.8", "--per-community", "60")
    assert code == 0
    posts, labels = read_csv(out), read_csv(plant.labels_path(out))
    demo_header = (REPO / "data" / "demo" / "posts.csv").read_text(encoding="utf-8").splitlines()[0]
    assert out.read_text(encoding="utf-8").splitlines()[0] == demo_header
    assert list(labels[0]) == list(plant.LABEL_COLUMNS)
    assert len({p["post_id"] for p in posts}) == len(posts) == 120
    assert sorted(p["post_id"] for p in posts) == sorted(row["post_id"] for row in labels)
    community = {p["post_id"]: p["community"] for p in posts}
    assert all(community[row["post_id"]] == row["community"] for row in labels)
    assert all((row["dimension"] == "") == (row["label"] == "neutral") for row in labels)
    assert {row["planted_rate"] for row in labels if row["community"] == "tense"} == {"0.8"}
    columns = vars(load_config(PLANTED_PARAMS).data.columns)
    frame = read_corpus(str(out), columns, "auto", "utf-8")  # what prepare reads through data.path
    assert len(frame) == 120 and set(frame["community"]) == {"calm", "tense"}


def test_prepare_keeps_most_posts_at_500_per_community():
    """kept_share is prepare's own clean_community; 500 posts per community keep at least 95% (measured over
    seeds 0 to 4: 99.8% to 100%; 99.8% at 2,000). The duplicated corpus shows it can say otherwise."""
    prepare = load_config(PLANTED_PARAMS).prepare
    rows = rows_of({"group_a": 0.0, "group_b": 0.5, "group_c": 1.0}, 500)
    shares = plant.kept_share(rows, prepare)
    assert set(shares) == {"group_a", "group_b", "group_c"}
    assert all(s["posts"] == 500 and s["share"] >= 0.95 for s in shares.values()), shares
    small = rows_of({"x": 0.5}, 40)
    assert plant.kept_share(small + small, prepare)["x"] == {"posts": 80, "kept": 40, "share": 0.5}


@pytest.mark.parametrize(("arguments", "named"), [
    (["--rates", "0,1.5"], "--rates"),
    (["--rates", "calm=-0.1"], "--rates"),
    (["--rates", "nan"], "--rates"),
    (["--rates", "calm=0.2,0.4"], "--rates"),
    (["--rates", "Calm=0.2"], "--rates"),
    (["--per-community", "0"], "--per-community"),
    (["--per-community", "ten"], "--per-community"),
    (["--opposite-share", "2"], "--opposite-share"),
])
def test_bad_arguments_exit_2_naming_the_argument(tmp_path, capsys, arguments, named):
    with pytest.raises(SystemExit) as stop:
        run_plant(tmp_path, *arguments)
    assert stop.value.code == 2 and f"argument {named}" in capsys.readouterr().err
    assert not (tmp_path / "posts.csv").exists()


def test_the_core_refuses_what_the_command_line_refuses():
    for rates, n, named in (({"a": 1.5}, 10, "rate of 'a'"), ({"a": 0.5}, 0, "per_community"),
                            ({"A b": 0.5}, 10, "community name")):
        with pytest.raises(HiveError, match=named):
            rows_of(rates, n)


def test_an_existing_file_that_is_not_a_planted_corpus_is_kept(tmp_path, capsys):
    (tmp_path / "posts.csv").write_text("someone's real posts\n")
    code, out = run_plant(tmp_path)
    assert code == 2 and "--force" in capsys.readouterr().err
    assert out.read_text() == "someone's real posts\n" and not plant.labels_path(out).exists()
    assert run_plant(tmp_path, "--force")[0] == 0 and run_plant(tmp_path)[0] == 0  # then it is one


def _keys(node, prefix=""):
    if not isinstance(node, dict):
        return {prefix}
    return {key for name, value in node.items() for key in _keys(value, f"{prefix}.{name}" if prefix else name)}


def test_planted_params_load_and_keep_every_key_of_params_yaml():
    cfg = load_config(PLANTED_PARAMS)
    defaults = build_parser().parse_args(["plant"])
    assert defaults.out is None and PLANTED_PARAMS.relative_to(REPO) == plant.PARAMS  # --out: its data.path
    assert {c.label for c in cfg.communities.values()} == set(defaults.rates) == set(cfg.communities)
    planted, demo = (yaml.safe_load(p.read_text()) for p in (PLANTED_PARAMS, REPO / "params.yaml"))
    planted.pop("communities"), demo.pop("communities")
    assert _keys(planted) == _keys(demo)


def test_every_hivelm_command_in_the_planted_docs_parses():
    """The commands docs/how-to/planted.md and README.md show are the parser's."""
    shown = []
    for page in (REPO / "docs" / "how-to" / "planted.md", REPO / "README.md"):
        for block in re.findall(r"```bash\n(.*?)```", page.read_text(encoding="utf-8"), re.DOTALL):
            for line in block.splitlines():
                for command in line.split("#")[0].split("&&"):
                    words = shlex.split(command)
                    if words[:1] == ["hivelm"] and ("plant" in words or page.name == "planted.md"):
                        shown.append(words[1:])
    assert any("plant" in words for words in shown)
    for words in shown:
        build_parser().parse_args(words)
