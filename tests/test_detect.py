"""detect: Louvain on a synthetic interaction graph with planted communities, built here in the test."""

import json
import math
from pathlib import Path

import pandas as pd
import pytest
import yaml

from hivelm.cli import run_stage
from hivelm.config import ConfigError, load_config
from hivelm.stages.detect import build_graph, detect, label_posts, read_edges
from hivelm.tables import CorpusError

BLOCKS, BLOCK_SIZE = 4, 30


def planted(sizes=(BLOCK_SIZE,) * BLOCKS, p_in=0.3, p_out=0.01, seed=7):
    """(graph with user ids u<n>, {user: planted block}) from a seeded stochastic block model."""
    import networkx as nx

    probs = [[p_in if i == j else p_out for j in range(len(sizes))] for i in range(len(sizes))]
    graph = nx.stochastic_block_model(list(sizes), probs, seed=seed)
    truth = {f"u{node}": graph.nodes[node]["block"] for node in graph}
    return graph, truth


def write_edge_list(path: Path, graph) -> Path:
    """The graph as a retweet-style edge list: every edge once, the first 10 again reversed, the next 10
    duplicated as they are, and one self-loop."""
    rows = [{"source": f"u{a}", "target": f"u{b}"} for a, b in graph.edges]
    rows += [{"source": r["target"], "target": r["source"]} for r in rows[:10]]
    rows += rows[10:20]
    rows.append({"source": "u0", "target": "u0"})
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def ari_vs_truth(partition, truth):
    from sklearn.metrics import adjusted_rand_score

    users = sorted(truth)
    return adjusted_rand_score([truth[u] for u in users], [partition.get(u, -1) for u in users])


def test_read_edges_drops_and_counts_self_loops_and_build_graph_sums_repeats(tmp_path):
    graph, _ = planted()
    edges, counts = read_edges(write_edge_list(tmp_path / "edges.csv", graph), "source", "target")
    n = graph.number_of_edges()
    assert counts == {"rows": n + 21, "self_loops_dropped": 1, "edges": n + 20}
    built = build_graph(edges)
    assert built.number_of_edges() == n and built.number_of_nodes() == graph.number_of_nodes()
    (a, b), (c, d) = list(graph.edges)[0], list(graph.edges)[10]
    assert built[f"u{a}"][f"u{b}"]["weight"] == 2.0       # once, plus once reversed
    assert built[f"u{d}"][f"u{c}"]["weight"] == 2.0       # once, plus an exact repeat
    assert built.size(weight="weight") == n + 20


def test_weights_add_up_across_directions_and_jsonl_ids_become_strings(tmp_path):
    path = tmp_path / "edges.jsonl"
    rows = [{"a": 1, "b": 2, "w": 0.5}, {"a": 2, "b": 1, "w": 2}, {"a": 2, "b": 3, "w": 1}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    edges, _ = read_edges(path, "a", "b", "w")
    graph = build_graph(edges)
    assert graph["1"]["2"]["weight"] == 2.5 and graph["3"]["2"]["weight"] == 1.0


def test_parquet_edges_read_like_csv(tmp_path):
    graph, _ = planted()
    csv_edges, csv_counts = read_edges(write_edge_list(tmp_path / "edges.csv", graph), "source", "target")
    pd.read_csv(tmp_path / "edges.csv").to_parquet(tmp_path / "edges.parquet")
    parquet_edges, parquet_counts = read_edges(tmp_path / "edges.parquet", "source", "target")
    assert parquet_counts == csv_counts and parquet_edges.equals(csv_edges)


def test_detect_recovers_planted_blocks_with_high_modularity_and_stability(tmp_path):
    graph, truth = planted()
    edges, _ = read_edges(write_edge_list(tmp_path / "edges.csv", graph), "source", "target")
    result = detect(build_graph(edges), resolution=1.0, seeds=[0, 1, 2, 3, 4], keep_largest=BLOCKS)
    assert ari_vs_truth(result["partition"], truth) > 0.9
    assert result["modularity"] > 0.5
    stability = result["stability"]
    assert sorted(stability["ari"]) == ["1", "2", "3", "4"]
    assert stability["mean"] > 0.9 and stability["min"] > 0.8
    assert result["communities_found"] == BLOCKS and result["users_kept"] == BLOCKS * BLOCK_SIZE
    assert set(result["partition"].values()) == {1, 2, 3, 4}


def test_detect_is_deterministic_for_a_seed():
    graph, _ = planted(p_in=0.15, p_out=0.03)      # weaker structure: seeds could disagree, a seed cannot
    edges = pd.DataFrame([(f"u{a}", f"u{b}", 1.0) for a, b in graph.edges], columns=["source", "target", "weight"])
    first, again = (detect(build_graph(edges), seeds=[3], keep_largest=10) for _ in range(2))
    assert first["partition"] == again["partition"] and first["modularity"] == again["modularity"]
    assert first["stability"] == {"ari": {}}     # one seed: nothing to compare against


def test_stability_is_low_without_community_structure():
    import networkx as nx

    graph = nx.gnp_random_graph(120, 0.05, seed=1)
    edges = pd.DataFrame([(f"u{a}", f"u{b}", 1.0) for a, b in graph.edges], columns=["source", "target", "weight"])
    result = detect(build_graph(edges), seeds=[0, 1, 2, 3, 4], keep_largest=3)
    assert result["stability"]["mean"] < 0.7


def test_keep_largest_ranks_by_size_and_drops_the_smallest():
    graph, truth = planted(sizes=(12, 40, 20, 30), p_in=0.5)
    edges = pd.DataFrame([(f"u{a}", f"u{b}", 1.0) for a, b in graph.edges], columns=["source", "target", "weight"])
    result = detect(build_graph(edges), seeds=[0, 1], keep_largest=2)
    assert result["communities_found"] == 4 and result["communities_kept"] == 2
    assert result["sizes"] == {"community_1": 40, "community_2": 30}
    blocks_of = {rank: {truth[u] for u, r in result["partition"].items() if r == rank} for rank in (1, 2)}
    assert blocks_of == {1: {1}, 2: {3}}             # planted block 1 has 40 users, block 3 has 30
    assert not any(truth[u] in (0, 2) for u in result["partition"])
    assert result["users"] == 102 and result["users_kept"] == 70


def test_label_posts_drops_and_counts_authors_outside_kept_communities():
    partition = {"ana": 1, "bo": 2, "cy": 1}
    posts = pd.DataFrame({
        "post_id": ["p1", "p2", "p3", "p4", "p5", "p6"],
        "user": ["ana", "bo", "dee", "", None, "cy"],    # dee: not kept (or not in the graph); two blank
        "text": ["a", "b", "c", "d", "e", "f"],
    })
    labelled, counts = label_posts(posts, "user", partition)
    assert labelled["post_id"].tolist() == ["p1", "p2", "p6"]
    assert labelled["community"].tolist() == ["community_1", "community_2", "community_1"]
    assert list(labelled.columns) == ["post_id", "user", "text", "community"]
    assert counts == {"input": 6, "no_author": 2, "outside_kept": 1, "labelled": 3,
                      "per_community": {"community_1": 2, "community_2": 1}}


def _edges_file(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize("name, text, weight, expected", [
    ("missing.csv", None, None, "missing.csv: file not found"),
    ("e.csv", "", None, "e.csv: file is empty"),
    ("e.csv", "source,target\n", None, "e.csv: no data rows"),
    ("e.txt", "source,target\na,b\n", None, "cannot tell the format from extension '.txt'"),
    ("e.csv", "from,target\na,b\n", None, "column 'source' (detect.source_column) not found; the file has "
                                         "columns ['from', 'target']"),
    ("e.csv", "source,target\na,b\n", "w", "column 'w' (detect.weight_column) not found"),
    ("e.csv", "source,target\na,b\nc,\n", None, "data row 2: column 'target' (detect.target_column) is empty"),
    ("e.csv", "source,target,w\na,b,1\nb,c,lots\n", "w", "data row 2: column 'w' (detect.weight_column) value "
                                                        "'lots' is not a finite number"),
    ("e.csv", "source,target,w\na,b,1\nb,c,2\nc,d,-1\n", "w", "data row 3: column 'w' (detect.weight_column) "
                                                             "value '-1' is negative"),
    ("e.csv", "source,target\na,a\nb,b\n", None, "no edges between two different users (2 self-loop(s) dropped)"),
    ("e.csv", "source,target,w\na,b,0\n", "w", "every edge weight is 0"),
    ("e.jsonl", '{"source": "a", "target": "b"}\nnot json\n', None, "e.jsonl: line 2 is not valid JSON"),
])
def test_bad_edge_files_say_what_and_where(tmp_path, name, text, weight, expected):
    path = tmp_path / name if text is None else _edges_file(tmp_path, name, text)
    with pytest.raises(CorpusError) as err:
        read_edges(path, "source", "target", weight)
    assert expected in str(err.value) and name in str(err.value)


def test_zero_total_weight_is_an_error():
    edges = pd.DataFrame({"source": ["a"], "target": ["b"], "weight": [0.0]})
    with pytest.raises(CorpusError, match="no edge with positive weight"):
        detect(build_graph(edges))


def _detect_params(project: Path, **detect_overrides) -> Path:
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["data"]["columns"]["author_id"] = "user"
    params["detect"] = {"edges": "data/raw/retweets.csv", "source_column": "source", "target_column": "target",
                        "posts": "data/raw/tweets.csv", "output": "data/detected/posts.csv",
                        "resolution": 1.0, "seeds": [0, 1, 2, 3, 4], "keep_largest": 3, **detect_overrides}
    path = project / "detect_params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def _numbers_only(tree) -> bool:
    if isinstance(tree, dict):
        return all(_numbers_only(value) for value in tree.values())
    return isinstance(tree, (int, float)) and not isinstance(tree, bool) and math.isfinite(tree)


def test_main_writes_labelled_posts_summary_and_mlflow_run(project):
    from mlflow.tracking import MlflowClient

    graph, truth = planted()
    write_edge_list(project / "data/raw/retweets.csv", graph)
    users = sorted(truth)
    posts = pd.DataFrame({"id": [f"t{i}" for i in range(len(users) + 2)],
                          "user": users + ["stranger", ""],
                          "text": [f"post {i}" for i in range(len(users) + 2)]})
    posts.to_csv(project / "data/raw/tweets.csv", index=False)
    cfg = load_config(_detect_params(project))

    run_stage("detect", cfg, None)

    labelled = pd.read_csv(project / "data/detected/posts.csv", dtype=str, keep_default_na=False)
    assert list(labelled.columns) == ["id", "user", "text", "community"]
    assert len(labelled) == 3 * BLOCK_SIZE and set(labelled["community"]) == {f"community_{r}" for r in (1, 2, 3)}
    by_block = labelled.groupby("community")["user"].agg(lambda us: {truth[u] for u in us})
    assert all(len(blocks) == 1 for blocks in by_block)  # each kept community is one planted block
    written = json.loads((project / "reports/detect/summary.json").read_text())
    assert _numbers_only(written)
    assert written["modularity"] > 0.5 and written["stability"]["mean"] > 0.9
    assert written["sizes"] == {f"community_{r}": BLOCK_SIZE for r in (1, 2, 3)}
    assert written["edges"]["self_loops_dropped"] == 1
    assert written["posts"] == {"input": len(users) + 2, "no_author": 1, "outside_kept": BLOCK_SIZE + 1,
                                "labelled": 3 * BLOCK_SIZE,
                                "per_community": {f"community_{r}": BLOCK_SIZE for r in (1, 2, 3)}}
    client = MlflowClient()
    [run] = client.search_runs([client.get_experiment_by_name(cfg.tracking.experiment).experiment_id],
                               "tags.stage = 'detect'")
    assert run.info.status == "FINISHED" and run.data.params["detect.keep_largest"] == "3"
    assert run.data.metrics["stability.mean"] > 0.9 and run.data.metrics["sizes.community_1"] == BLOCK_SIZE


def test_main_failure_leaves_previous_output_and_names_the_null_author_key(project):
    graph, truth = planted()
    write_edge_list(project / "data/raw/retweets.csv", graph)
    pd.DataFrame({"user": sorted(truth), "text": "x"}).to_csv(project / "data/raw/tweets.csv", index=False)
    run_stage("detect", load_config(_detect_params(project)), None)
    before = (project / "data/detected/posts.csv").read_bytes()

    (project / "data/raw/retweets.csv").write_text("source,target,w\na,b,heavy\n")
    with pytest.raises(CorpusError, match="retweets.csv: data row 1: column 'w'"):
        run_stage("detect", load_config(_detect_params(project, weight_column="w")), None)
    assert (project / "data/detected/posts.csv").read_bytes() == before

    with pytest.raises(ConfigError, match=r"data\.columns\.author_id is null"):
        run_stage("detect", load_config(_detect_params(project), ["data.columns.author_id=null"]), None)


def test_main_says_when_the_author_column_is_missing_or_matches_no_user(project):
    graph, _ = planted()
    write_edge_list(project / "data/raw/retweets.csv", graph)
    pd.DataFrame({"author": ["u1"], "text": ["x"]}).to_csv(project / "data/raw/tweets.csv", index=False)
    with pytest.raises(CorpusError, match=r"tweets.csv: column 'user' \(data.columns.author_id\) not found"):
        run_stage("detect", load_config(_detect_params(project)), None)
    pd.DataFrame({"user": ["nobody"], "text": ["x"]}).to_csv(project / "data/raw/tweets.csv", index=False)
    with pytest.raises(CorpusError, match="no post's author"):
        run_stage("detect", load_config(_detect_params(project)), None)
