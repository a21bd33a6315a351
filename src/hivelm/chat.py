"""Text into a chat model's input, safely: every post, prompt and persona goes through `render_messages`, which
removes the strings the tokenizer would turn into control tokens, so a post cannot forge a system turn
(<|im_end|><|im_start|>system ...). Its own module because tune, attribute, prepare's perplexity filter,
generate, survey and the harm judge all render chats: a change to sampling (generation.py) reruns only the
stages that sample."""

from __future__ import annotations


def special_strings(tokenizer) -> tuple[str, ...]:
    """Every string the tokenizer turns into a special or added token (<|im_start|>, <|im_end|>, <filename>,
    ...): in a post's text each would become the real control token, and a post could open a system turn."""
    found = set(tokenizer.all_special_tokens) | set(tokenizer.get_added_vocab())
    return tuple(sorted(s for s in found if s))


def neutralize(tokenizer, text: str) -> tuple[str, int]:
    """`text` without any of the tokenizer's special-token strings (text.strip_strings); and how many there
    were. Every place that renders text into a model's input goes through here (`render_messages`)."""
    from hivelm.text import strip_strings

    return strip_strings(text, special_strings(tokenizer))


def neutralize_prompts(tokenizer, prompts: list[dict]) -> tuple[list[dict], int]:
    """{system, prompt} records with both neutralised, and the number of special-token strings removed, so a
    stage can store the prompts its model saw and count what was changed."""
    cleaned, removed = [], 0
    for record in prompts:
        (system, a), (prompt, b) = neutralize(tokenizer, record["system"]), neutralize(tokenizer, record["prompt"])
        cleaned.append(record | {"system": system, "prompt": prompt})
        removed += a + b
    return cleaned, removed


def render_messages(tokenizer, messages: list[dict], add_generation_prompt: bool = False) -> str:
    """Chat messages rendered with the model's chat template, each message's content neutralised first, so
    only the template itself can put control tokens in the text."""
    safe = [m | {"content": neutralize(tokenizer, m["content"])[0]} for m in messages]
    return tokenizer.apply_chat_template(safe, add_generation_prompt=add_generation_prompt, tokenize=False)


def render_chat(tokenizer, system: str, prompt: str) -> str:
    """A system + user exchange, rendered up to the assistant's turn with the model's chat template."""
    return render_messages(tokenizer, [{"role": "system", "content": system}, {"role": "user", "content": prompt}],
                           add_generation_prompt=True)
