"""What the provider-server tests share: model names, an answer, a pydantic model."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

GPT = "gpt-4o-mini"
CLAUDE = "claude-haiku-4-5"
USER: Any = [{"role": "user", "content": "Who wrote the first program?"}]
ADA: Any = {"name": "Ada", "age": 36}
STORY = "Once upon a time, a cheap model answered correctly and nobody had to escalate."


class Person(BaseModel):
    name: str
    age: int


def cl100k() -> Any:
    """The cl100k encoding, or skip the test without `bpe_openai`."""
    bpe_openai = pytest.importorskip("bpe_openai")
    return bpe_openai.get_encoding("cl100k_base")
