import json
from collections import Counter
from pathlib import Path

from hivelm.cli import main as cli
from hivelm.stages.instruct import build_demonstrations
from hivelm.templates import Template, load_templates

REPO = Path(__file__).resolve().parents[1]


def test_demonstrations_pair_each_post_with_a_seeded_template_draw():
    posts = [{"post_id": str(i), "text": f"post {i}"} for i in range(400)]
    templates = [Template(f"t{i}", f"In {{community}} number {i}, what would you post?") for i in range(20)]
    records = build_demonstrations(posts, templates, "keto", "keto cooking", "You are a helpful assistant.", 0)
    assert len(records) == 400
    first = records[0]
    assert [m["role"] for m in first["messages"]] == ["system", "user", "assistant"]
    assert first["messages"][2]["content"] == "post 0"
    used = Counter(r["template_id"] for r in records)
    assert len(used) == 20 and max(used.values()) < 40  # uniform-ish: 20 expected per template
    for record in records:
        template = next(t for t in templates if t.id == record["template_id"])
        assert record["messages"][1]["content"] == template.render(community="keto cooking")
    again = build_demonstrations(posts, templates, "keto", "keto cooking", "sys", 0)
    assert [r["template_id"] for r in again] == [r["template_id"] for r in records]
    other_seed = build_demonstrations(posts, templates, "keto", "keto cooking", "sys", 1)
    assert [r["template_id"] for r in other_seed] != [r["template_id"] for r in records]


def test_shipped_templates_are_our_own_and_have_one_slot_each():
    templates = load_templates(REPO / "configs/templates/instructions.yaml", minimum=20)
    paper = {"What would you tweet?", "What's your tweet?", "Tweet something."}
    assert not any(p in t.text for t in templates for p in paper)
    assert all(t.text.count("{community}") == 1 for t in templates)


def test_instruct_stage_writes_chat_records_for_one_community(small_corpus, project):
    assert cli(["prepare", "prepare.min_posts_per_community=10"]) == 0
    assert cli(["instruct", "--community", "running"]) == 0
    records = [json.loads(line) for line in (project / "data/instructions/running.jsonl").open()]
    train = [json.loads(line) for line in (project / "data/prepared/running/train.jsonl").open()]
    assert [r["messages"][2]["content"] for r in records] == [p["text"] for p in train]
    assert all("distance running" in r["messages"][1]["content"] for r in records)
    assert not (project / "data/instructions/keto.jsonl").exists()


def test_instruct_unknown_community_is_an_error(small_corpus, project, capsys):
    assert cli(["instruct", "--community", "paleo"]) == 2
    assert "unknown community 'paleo'" in capsys.readouterr().err
