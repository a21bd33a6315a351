"""detect: interaction edge list -> Louvain communities -> posts labelled community_<rank> (paper section 3.2).

    hivelm detect                                   # as DVC runs it
    hivelm detect detect.resolution=1.5 detect.keep_largest=20

Nodes are users; an undirected edge links two users who interact (retweet or reply), and repeated pairs, in
either direction, add their weights (1 per row unless `detect.weight_column` names a column). networkx's
Louvain runs once per seed in `detect.seeds`: the first seed's partition is kept, and the adjusted Rand index
of every other seed's partition against it measures stability (the paper gives neither resolution nor seeds).
Communities are ranked by member count (community_1 = largest) and only the `keep_largest` largest are kept;
posts whose author is in none of them are dropped and counted. Outputs: `detect.output` (CSV, the posts'
own columns plus `community`) and a numbers-only summary (paths.DETECT_SUMMARY).
"""

from __future__ import annotations

import logging
from pathlib import Path

from hivelm import paths
from hivelm.artifacts import atomic_path, write_json
from hivelm.config import ConfigError, HiveConfig
from hivelm.tables import CorpusError, read_table

log = logging.getLogger(__name__)

def _require_column(path, frame, column: str, key: str) -> None:
    if column not in frame.columns:
        raise CorpusError(f"{path}: column {column!r} ({key}) not found; "
                          f"the file has columns {list(map(str, frame.columns))}")


def _ids(path, frame, column: str, key: str):
    """The column as user-id strings; a missing or blank id is an error naming its data row."""
    import pandas as pd

    values = frame[column].map(lambda v: "" if pd.isna(v) else str(v).strip())
    blank = values == ""
    if blank.any():
        row = int(blank.to_numpy().argmax()) + 1
        raise CorpusError(f"{path}: data row {row}: column {column!r} ({key}) is empty "
                          f"({int(blank.sum())} row(s) like this)")
    return values


def _weights(path, frame, column: str | None):
    import numpy as np
    import pandas as pd

    if column is None:
        return np.ones(len(frame))
    weights = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=float)
    for bad, what in ((~np.isfinite(weights), "is not a finite number"), (weights < 0, "is negative")):
        if bad.any():
            row = int(bad.argmax())
            raise CorpusError(f"{path}: data row {row + 1}: column {column!r} (detect.weight_column) value "
                              f"{frame[column].iloc[row]!r} {what} ({int(bad.sum())} row(s) like this)")
    return weights


def read_edges(path: str | Path, source: str, target: str, weight: str | None = None,
               encoding: str = "utf-8"):
    """Read an edge list into a DataFrame (source, target as strings; weight as float, 1 by default).

    Self-loops are dropped. Returns (edges, counts) with counts rows, self_loops_dropped, edges.
    Raises CorpusError naming the file and the column or data row (1-based) of bad input.
    """
    import pandas as pd

    frame = read_table(path, encoding=encoding)
    for column, key in ((source, "detect.source_column"), (target, "detect.target_column"),
                        (weight, "detect.weight_column")):
        if column is not None:
            _require_column(path, frame, column, key)
    edges = pd.DataFrame({
        "source": _ids(path, frame, source, "detect.source_column"),
        "target": _ids(path, frame, target, "detect.target_column"),
        "weight": _weights(path, frame, weight),
    })
    loops = edges["source"] == edges["target"]
    edges = edges[~loops].reset_index(drop=True)
    if edges.empty:
        raise CorpusError(f"{path}: no edges between two different users ({int(loops.sum())} self-loop(s) "
                          "dropped)")
    if edges["weight"].sum() <= 0:
        raise CorpusError(f"{path}: every edge weight is 0 (column {weight!r}, detect.weight_column)")
    counts = {"rows": len(frame), "self_loops_dropped": int(loops.sum()), "edges": len(edges)}
    return edges, counts


def build_graph(edges):
    """Undirected weighted graph: repeated pairs, in either direction, add their weights."""
    import networkx as nx

    graph = nx.Graph()
    for source, target, weight in edges[["source", "target", "weight"]].itertuples(index=False):
        if graph.has_edge(source, target):
            graph[source][target]["weight"] += float(weight)
        else:
            graph.add_edge(source, target, weight=float(weight))
    return graph


def _labels(communities, nodes) -> list[int]:
    """Community index of every node, in `nodes` order."""
    index = {node: i for i, members in enumerate(communities) for node in members}
    return [index[node] for node in nodes]


def detect(graph, resolution: float = 1.0, seeds: list[int] | tuple[int, ...] = (0,),
           keep_largest: int = 6) -> dict:
    """Pure core: Louvain once per seed; keep the first seed's partition, ranked by size.

    Returns {partition: {user: rank} for users in the `keep_largest` largest communities (rank 1 = largest),
    modularity (standard, resolution 1, of the full first-seed partition, so values compare across
    resolutions), stability: {ari: {seed: ARI vs the first seed}, mean, min}
    (empty, without mean and min, for one seed), sizes: {community_<rank>: members} of kept communities,
    communities_found, communities_kept, users, users_kept}.
    """
    import networkx as nx
    from sklearn.metrics import adjusted_rand_score

    if graph.size(weight="weight") <= 0:
        raise CorpusError("the interaction graph has no edge with positive weight")
    runs = [nx.community.louvain_communities(graph, weight="weight", resolution=resolution, seed=seed)
            for seed in seeds]
    # Rank by member count; ties broken by the smallest member id so the ranking is deterministic.
    ranked = sorted(runs[0], key=lambda members: (-len(members), min(members)))
    kept = ranked[:keep_largest]
    if len(ranked) < keep_largest:
        log.warning("detect: only %d communities found, fewer than detect.keep_largest=%d",
                    len(ranked), keep_largest)
    nodes = list(graph.nodes)
    first = _labels(ranked, nodes)
    ari = {str(seed): float(adjusted_rand_score(first, _labels(run, nodes)))
           for seed, run in zip(seeds[1:], runs[1:])}
    stability: dict = {"ari": ari}
    if ari:
        stability.update(mean=sum(ari.values()) / len(ari), min=min(ari.values()))
    return {
        "partition": {user: rank for rank, members in enumerate(kept, start=1) for user in members},
        "modularity": float(nx.community.modularity(graph, ranked, weight="weight")),
        "stability": stability,
        "sizes": {f"community_{rank}": len(members) for rank, members in enumerate(kept, start=1)},
        "communities_found": len(ranked),
        "communities_kept": len(kept),
        "users": graph.number_of_nodes(),
        "users_kept": sum(len(members) for members in kept),
    }


def label_posts(posts, author_column: str, partition: dict[str, int]):
    """Add a `community` column (community_<rank>) to the posts of users in kept communities.

    Returns (labelled posts, counts): input, no_author (missing or blank author), outside_kept (author not in
    a kept community, or not in the graph at all), labelled, and posts per community.
    """
    import pandas as pd

    authors = posts[author_column].map(lambda v: "" if pd.isna(v) else str(v).strip())
    ranks = authors.map(partition)
    keep = ranks.notna()
    labelled = posts[keep].assign(community=[f"community_{int(r)}" for r in ranks[keep]])
    labelled = labelled.reset_index(drop=True)
    no_author = int((authors == "").sum())
    counts = {
        "input": len(posts),
        "no_author": no_author,
        "outside_kept": int((~keep).sum()) - no_author,
        "labelled": len(labelled),
        "per_community": {name: int(n) for name, n in
                          sorted(labelled["community"].value_counts().items(),
                                 key=lambda item: int(item[0].rsplit("_", 1)[1]))},
    }
    return labelled, counts


def main(cfg: HiveConfig, run) -> dict:
    """Read edges and posts, detect communities, write the labelled posts and the summary atomically."""
    spec, author = cfg.detect, cfg.data.columns.author_id
    if author is None:
        raise ConfigError("data.columns.author_id is null; detect needs the posts' author column to label "
                          "posts with their author's community")
    edges, edge_counts = read_edges(spec.edges, spec.source_column, spec.target_column,
                                    spec.weight_column, cfg.data.encoding)
    result = detect(build_graph(edges), spec.resolution, spec.seeds, spec.keep_largest)
    posts = read_table(spec.posts, encoding=cfg.data.encoding)
    _require_column(spec.posts, posts, author, "data.columns.author_id")
    labelled, post_counts = label_posts(posts, author, result["partition"])
    if labelled.empty:
        raise CorpusError(f"{spec.posts}: no post's author ({author!r}) is in one of the "
                          f"{result['communities_kept']} kept communities of {spec.edges}")
    with atomic_path(spec.output) as tmp:
        labelled.to_csv(tmp, index=False)
    summary = {key: value for key, value in result.items() if key != "partition"}
    summary.update(edges=edge_counts, posts=post_counts)
    write_json(paths.DETECT_SUMMARY, summary)
    run.log_metrics(summary)
    run.log_artifact(paths.DETECT_SUMMARY)
    log.info("detect: %d users, %d communities (modularity %.3f, mean ARI across seeds %s); kept %d: %s; "
             "%d of %d posts labelled", result["users"], result["communities_found"], result["modularity"],
             result["stability"].get("mean", "n/a"), result["communities_kept"], result["sizes"],
             post_counts["labelled"], post_counts["input"])
    return summary
