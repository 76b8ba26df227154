"""How a task's prompt text reaches a Hugging Face model: plain, or through its chat template.

Instruct models expect their chat template; fed a raw prompt, SmolLM2-135M-Instruct ends about half
of its answers at once with ``<|im_end|>``. ``prompt_format``:

- ``auto``: the chat template when the tokenizer has one, else plain text;
- ``chat``: the chat template (an error when the tokenizer has none);
- ``plain``: the text as it is, with the tokenizer's usual special tokens.

Under a chat template, generation stops at the template's end-of-turn token (``<|im_end|>`` for
ChatML models such as SmolLM2), which becomes the policy's ``eos``.
"""

from __future__ import annotations

PROMPT_FORMATS = ("auto", "chat", "plain")
END_OF_TURN_MARKERS = ("<|im_end|>", "<|eot_id|>", "<end_of_turn>", "<|end|>", "<|endoftext|>")
"""End-of-turn tokens of common chat templates, tried in this order when the template names one."""


def check_format(prompt_format: str) -> None:
    if prompt_format not in PROMPT_FORMATS:
        raise ValueError(f"prompt_format must be one of {', '.join(PROMPT_FORMATS)}, got {prompt_format!r}")


def uses_chat(tok, prompt_format: str) -> bool:
    """Whether prompts go through ``tok``'s chat template under ``prompt_format``."""
    check_format(prompt_format)
    has = bool(getattr(tok, "chat_template", None))
    if prompt_format == "chat" and not has:
        raise ValueError("prompt_format is chat but the tokenizer has no chat template: use auto or plain")
    return has and prompt_format != "plain"


def end_of_turn_id(tok) -> int | None:
    """The id of the end-of-turn token the chat template writes after a message, if one is known."""
    template = getattr(tok, "chat_template", None) or ""
    vocab = tok.get_vocab()
    for marker in END_OF_TURN_MARKERS:
        if marker in template and marker in vocab:
            return vocab[marker]
    return None


def chat_ids(tok, text: str, system_prompt: str = "") -> list[int]:
    """Token ids of one user turn (after an optional system turn) and the assistant's header."""
    messages = ([{"role": "system", "content": system_prompt}] if system_prompt else []) + [
        {"role": "user", "content": text}]
    ids = tok.apply_chat_template(messages, tokenize=True, add_generation_prompt=True)
    if isinstance(ids, dict) or hasattr(ids, "keys"):  # transformers >= 5 may return a BatchEncoding
        ids = ids["input_ids"]
    return list(ids)
