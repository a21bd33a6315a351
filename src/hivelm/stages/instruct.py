"""instruct: a community's training posts -> chat-format demonstrations (paper section 4.1).

    hivelm instruct --community keto
    hivelm instruct --community keto instruct.seed=3

Each post is used verbatim as the assistant's reply to a persona instruction drawn uniformly, with a seed,
from the template file; every record keeps the id of the template it used.
"""

from __future__ import annotations

from collections import Counter

from hivelm import paths
from hivelm.artifacts import staged_outputs, write_jsonl
from hivelm.config import HiveConfig
from hivelm.rng import keyed_rng
from hivelm.tables import read_jsonl
from hivelm.templates import Template, load_templates

MIN_TEMPLATES = 20


def build_demonstrations(posts: list[dict], templates: list[Template], community: str, community_name: str,
                         system_prompt: str, seed: int) -> list[dict]:
    """Pure core: pair every post with a seeded uniform draw from `templates`."""
    draws = keyed_rng(seed, community).integers(len(templates), size=len(posts))
    records = []
    for post, draw in zip(posts, draws):
        template = templates[draw]
        records.append({
            "id": f"{community}-{post['post_id']}",
            "community": community,
            "post_id": post["post_id"],
            "template_id": template.id,
            "messages": [
                {"role": "system", "content": system_prompt},
                {"role": "user", "content": template.render(community=community_name)},
                {"role": "assistant", "content": post["text"]},
            ],
        })
    return records


def main(cfg: HiveConfig, run, community: str) -> dict:
    spec = cfg.community(community)
    templates = load_templates(cfg.instruct.templates, slots=("community",), minimum=MIN_TEMPLATES)
    posts = read_jsonl(paths.train_posts(community))
    records = build_demonstrations(posts, templates, community, spec.name, cfg.instruct.system_prompt,
                                   cfg.instruct.seed)
    usage = Counter(r["template_id"] for r in records)
    stats = {"demonstrations": len(records), "templates_available": len(templates),
             "templates_used": len(usage), "template_uses": dict(sorted(usage.items()))}
    with staged_outputs() as out:
        write_jsonl(out.path(paths.instructions(community)), records)
        run.log_metrics(stats)
    return stats
