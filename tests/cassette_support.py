"""What the cassette tests share: the modules warmed up for pytester's in-process runs,
the key and addresses they use, and readers of what a run printed and wrote (their
fixtures are the plugin tests.cassette_fixtures)."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest


def _warm_up() -> None:
    """pytester's in-process runs forget the modules each run imports, and a second copy
    breaks registries (instructor's modes, yaml's constructors): import them all here, in
    the outer process, where they stay."""
    for module in ("yaml", "vcr", "genai_prices", "instructor.core.hooks", "httpx2"):
        importlib.import_module(module)
    import anthropic
    import instructor
    import openai

    instructor.from_openai(openai.OpenAI(api_key="unused"), mode=instructor.Mode.TOOLS)
    instructor.from_openai(openai.AsyncOpenAI(api_key="unused"), mode=instructor.Mode.TOOLS)
    instructor.from_anthropic(anthropic.Anthropic(api_key="unused"), mode=instructor.Mode.TOOLS)
    instructor.from_anthropic(
        anthropic.AsyncAnthropic(api_key="unused"), mode=instructor.Mode.TOOLS
    )


_warm_up()

ROOT = Path(__file__).resolve().parent.parent
KEY = "sk-kit-0123456789abcdef-SECRET"
DEAD_URL = "http://127.0.0.1:9"  # nothing listens: a replay must never connect
INI = """
[pytest]
asyncio_mode = auto
asyncio_default_fixture_loop_scope = function
"""


def run(kit: pytest.Pytester, *args: str) -> pytest.RunResult:
    return kit.runpytest("-p", "no:cacheprovider", "-p", "no:randomly", *args)


def cassettes(kit: pytest.Pytester) -> dict[str, str]:
    return {
        path.relative_to(kit.path).as_posix(): path.read_text()
        for path in sorted(kit.path.rglob("*.yaml"))
    }


def failure_text(result: pytest.RunResult, test: str) -> list[str]:
    """The lines pytest printed for the failure of ``test``, its header excluded."""
    lines = result.stdout.lines
    start = next(i for i, line in enumerate(lines) if re.fullmatch(rf"_+ {test} _+", line))
    end = next(
        (i for i in range(start + 1, len(lines)) if re.match(r"(_{3,} \S|={3,} )", lines[i])),
        len(lines),
    )
    return lines[start + 1 : end]
