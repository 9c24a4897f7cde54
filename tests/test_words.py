"""What a model reads before calling anything says what Retab's score is, in whole lines.

Retab experiments are consensus evaluations: the score is the agreement between a block's passes, not
accuracy against expected values. Hosts show descriptions as written, so no line may break a sentence.
"""

from __future__ import annotations

import itertools
import re

import pytest
from mcp import Client

pytestmark = pytest.mark.anyio

SENTENCE_END = re.compile(r"[.:;!?)]$")
LIST_ITEM = re.compile(r"^(- |\d+\. )")
NOT_RETAB = ("expected values", "scored against", "is wrong", "ground truth", "correct answer")


async def everything_a_model_reads(client: Client) -> dict[str, str]:
    texts = {f"tool {t.name}": t.description or "" for t in (await client.list_tools()).tools}
    for prompt in (await client.list_prompts()).prompts:
        arguments = {argument.name: "exprun_2" for argument in prompt.arguments or []}
        got = await client.get_prompt(prompt.name, arguments)
        texts[f"prompt {prompt.name}"] = "\n".join(getattr(m.content, "text", "") for m in got.messages)
    return texts


def broken_lines(text: str) -> list[str]:
    lines = text.splitlines()
    return [
        line
        for line, after in itertools.pairwise(lines)
        if line.strip() and after.strip() and not SENTENCE_END.search(line.strip()) and not LIST_ITEM.match(after)
    ]


async def test_no_description_instruction_or_prompt_breaks_a_line_mid_sentence(writer: Client) -> None:
    texts = await everything_a_model_reads(writer)
    texts["instructions"] = writer.instructions or ""
    assert len(texts) >= 10
    for name, text in texts.items():
        assert text and not broken_lines(text), (name, broken_lines(text))


async def test_the_words_say_the_score_is_agreement_between_passes(writer: Client) -> None:
    texts = await everything_a_model_reads(writer)
    instructions = writer.instructions or ""
    for name, text in [*texts.items(), ("instructions", instructions)]:
        lowered = text.lower()
        assert not [phrase for phrase in NOT_RETAB if phrase in lowered], name
    assert "agreement" in instructions and "passes disagree" in instructions and "no labels" in instructions
    assert "passes disagree" in texts["prompt triage-experiment-run"]
