"""Chat demonstrations into token ids, one rule for learning and for scoring: tune trains on `encode`'s labels
and attribute scores a post with the same ids (models.mean_logliks), so a text is scored exactly as it was
learned. Its own module so that attribute does not depend on the tune stage's code (dvc.yaml's deps)."""

from __future__ import annotations

IGNORE = -100  # label id the loss skips


def encode(record: dict, tokenizer, max_length: int) -> dict | None:
    """Token ids of one chat demonstration, with labels only on the assistant's reply and its end of turn.

    Prompt and reply are tokenised separately and concatenated, so the label boundary is exact. Special-token
    strings in the messages are removed first (chat.render_messages): a post cannot forge a turn.
    Returns None when the prompt alone fills `max_length` (nothing left to learn).
    """
    from hivelm.chat import render_messages

    messages = record["messages"]
    prompt = render_messages(tokenizer, messages[:-1], add_generation_prompt=True)
    full = render_messages(tokenizer, messages)
    if not full.startswith(prompt):
        raise ValueError(f"{record.get('id')}: chat template renders the prompt differently inside the dialogue")
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    reply_ids = tokenizer(full[len(prompt):], add_special_tokens=False)["input_ids"]
    if len(prompt_ids) >= max_length:
        return None
    input_ids = (prompt_ids + reply_ids)[:max_length]
    labels = ([IGNORE] * len(prompt_ids) + reply_ids)[:max_length]
    return {"input_ids": input_ids, "labels": labels, "length": len(input_ids)}


def special_tokens_removed(tokenizer, records: list[dict]) -> int:
    """How many special-token strings `encode` removed from these demonstrations' messages."""
    from hivelm.chat import neutralize

    return sum(neutralize(tokenizer, m["content"])[1] for r in records for m in r["messages"])
