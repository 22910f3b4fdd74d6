"""What a test scripts the server with (`Reply`, `Choice`, `Fault`, `Drop`, `Malformed`) and
what it reads back (`Request`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, Literal, TypeAlias

__all__ = [
    "Choice",
    "Drop",
    "Fault",
    "Malformed",
    "Outcome",
    "Provider",
    "Reply",
    "Request",
    "Responder",
    "ScriptItem",
    "content_text",
]

Provider: TypeAlias = Literal["openai", "anthropic"]


def content_text(content: Any) -> str:
    """Text of a message `content`: a string, or the joined text parts of a list of blocks."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [
            block["text"]
            for block in content
            if isinstance(block, Mapping)
            and block.get("type", "text") == "text"
            and isinstance(block.get("text"), str)
        ]
        return "\n".join(parts)
    return ""


@dataclass(frozen=True)
class Request:
    """One request the server received, as the provider would have seen it.

    `headers` has lower-cased names; `body` is the parsed JSON body.
    """

    provider: Provider
    path: str
    model: str
    headers: Mapping[str, str]
    body: Mapping[str, Any]
    stream: bool

    @property
    def messages(self) -> list[Any]:
        """The request's `messages` list (empty if absent)."""
        messages = self.body.get("messages")
        return list(messages) if isinstance(messages, list) else []

    @property
    def system(self) -> str | None:
        """The system prompt's text, or None.

        Anthropic: the top-level `system` (text blocks joined when it is a list). OpenAI: the text
        of the `system` (or `developer`) messages, joined with newlines.
        """
        if self.provider == "anthropic":
            system = self.body.get("system")
            if system is None:
                return None
            return content_text(system)
        texts = [
            content_text(message.get("content"))
            for message in self.messages
            if isinstance(message, Mapping) and message.get("role") in ("system", "developer")
        ]
        return "\n".join(texts) if texts else None

    @property
    def last_user_text(self) -> str:
        """Text of the last `user` message ("" if none), text blocks joined with newlines."""
        for message in reversed(self.messages):
            if isinstance(message, Mapping) and message.get("role") == "user":
                return content_text(message.get("content"))
        return ""

    @property
    def n(self) -> int:
        """How many choices the request asks for: OpenAI's `n` (default 1); Anthropic: 1."""
        n = self.body.get("n")
        if self.provider != "openai" or n is None or isinstance(n, bool):
            return 1
        return n if isinstance(n, int) else 1


@dataclass(frozen=True, kw_only=True)
class Choice:
    """One choice of an OpenAI response to a request with `n` > 1, for `Reply(choices=...)`.

    The fields mean what they mean on `Reply`; `output_tokens` is this choice's share of the
    completion tokens (default: counted).
    """

    data: Any = None
    text: str | None = None
    tool_name: str | None = None
    finish_reason: Literal["stop", "length"] = "stop"
    refusal: str | None = None
    logprobs: float | Sequence[float] | None = None
    output_tokens: int | None = None


_CHOICE_FIELDS = tuple(f.name for f in fields(Choice) if f.name != "output_tokens")


@dataclass(frozen=True, kw_only=True)
class Reply:
    """A successful answer (HTTP 200) in the provider's format.

    - `data`: the structured answer (JSON-able). With `tools` in the request it becomes the
      arguments of a tool call (OpenAI `tool_calls`, Anthropic `tool_use` block) to the tool
      forced by `tool_choice`, else the first tool; without tools it is sent as JSON text content.
    - `text`: raw content text instead of `data` (plain answers, prose where JSON was expected).
      Takes precedence over `data`; never sent as a tool call. Neither set: content is "".
    - `tool_name`: call this tool instead (with `data` as arguments), even if the request
      forced another one or sent no tools.
    - `served_model`: the `model` the response reports (default: the requested model).
    - `input_tokens`, `output_tokens`: usage to report (default: counted, see the package docs);
      `output_tokens` is the total over all choices. `cached_tokens`: cache reads; OpenAI
      `prompt_tokens` includes them, Anthropic `input_tokens` excludes them (reported as
      `cache_read_input_tokens`). A counted input is raised to `cached_tokens` if it falls short.
      Scripted `cached_tokens` replace the server's own Anthropic prompt cache figures.
    - `usage`: fields set in the response's wire `usage` after everything else, verbatim (None
      sends `null`), e.g. `usage={"input_tokens": None}`; a nested mapping (OpenAI
      `prompt_tokens_details`) is merged into the computed one. OpenAI `total_tokens` is
      recomputed from the result unless set here.
    - `finish_reason`: "length" is OpenAI `finish_reason="length"`, Anthropic
      `stop_reason="max_tokens"`.
    - `refusal`: OpenAI `message.refusal`, with `content` null and no tool call unless `text`
      or `data` is set (instructor rejects it). Anthropic: a text block with this text and
      `stop_reason="refusal"`.
    - `logprobs`: served only when the OpenAI request asks `logprobs: true`, over the tokens of
      the emitted content: a float for every token, or a sequence in order (its last value
      repeats if it is shorter). None means 0.0 for each token. Tool-call replies carry
      `logprobs.content = null` (OpenAI has no logprobs for tool arguments).
    - `choices`: one `Choice` per choice, for an OpenAI request with `n`: there must be exactly
      `n` of them (choice `i` answers index `i`), and the per-choice fields above (`data`,
      `text`, `tool_name`, `finish_reason`, `refusal`, `logprobs`) stay unset. Without
      `choices`, a request with `n` gets `n` copies of this reply's one choice. A responder can
      read `request.n` to build them.
    - `delay`: seconds to wait before answering.
    """

    data: Any = None
    text: str | None = None
    tool_name: str | None = None
    served_model: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cached_tokens: int = 0
    usage: Mapping[str, Any] | None = None
    finish_reason: Literal["stop", "length"] = "stop"
    refusal: str | None = None
    logprobs: float | Sequence[float] | None = None
    choices: Sequence[Choice] | None = None
    delay: float = 0.0

    def __post_init__(self) -> None:
        if self.choices is None:
            return
        choices = tuple(self.choices)
        if not choices or not all(isinstance(choice, Choice) for choice in choices):
            raise TypeError("Reply(choices=...) takes a non-empty sequence of Choice")
        default = Choice()
        for name in _CHOICE_FIELDS:
            if getattr(self, name) != getattr(default, name):
                raise ValueError(f"Reply(choices=...) and Reply({name}=...): set it per Choice")
        object.__setattr__(self, "choices", choices)

    def choice_list(self) -> tuple[Choice, ...]:
        """The scripted choices: `choices`, or this reply's own fields as one choice."""
        if self.choices is not None:
            return tuple(self.choices)
        own = {name: getattr(self, name) for name in _CHOICE_FIELDS}
        return (Choice(**own),)


_DEFAULT_FAULT_MESSAGES: dict[int, str] = {
    400: "Invalid request.",
    401: "Invalid authentication credentials.",
    403: "Permission denied.",
    404: "Not found.",
    408: "Request timed out.",
    409: "Conflict.",
    413: "Request too large.",
    422: "Unprocessable entity.",
    429: "Rate limit reached; please try again later.",
    500: "The server had an error while processing your request.",
    502: "Bad gateway.",
    503: "The service is temporarily unavailable.",
    504: "Gateway timeout.",
    529: "Overloaded",
}


@dataclass(frozen=True)
class Fault:
    """An HTTP error in the provider's error format.

    `retry_after` (seconds) sends `retry-after` and `retry-after-ms` headers; with
    `retry_after_format="date"` it sends only `retry-after`, as an HTTP date (RFC 9110) that
    many seconds from when the error is sent, truncated to the second. `message` defaults to a
    usual text for the status. `delay` waits before answering.
    """

    status: int
    retry_after: float | None = None
    message: str = ""
    delay: float = 0.0
    retry_after_format: Literal["seconds", "date"] = "seconds"

    def __post_init__(self) -> None:
        if not 400 <= self.status <= 599:
            raise ValueError(f"Fault status must be an HTTP error status, got {self.status}")
        if self.retry_after_format not in ("seconds", "date"):
            raise ValueError("Fault retry_after_format is 'seconds' or 'date'")
        if not self.message:
            default = _DEFAULT_FAULT_MESSAGES.get(
                self.status, "Server error." if self.status >= 500 else "Request failed."
            )
            object.__setattr__(self, "message", default)


@dataclass(frozen=True)
class Drop:
    """Read the request, then close the connection without a whole answer (a connection error).

    By default nothing is sent. `halfway=True` starts the answer `reply` (default `Reply()`)
    would have been, then closes mid-body: the status line and headers (a `content-length`
    for the whole body, or a chunked event stream) and the first half of the body's bytes
    (of a stream: the first half of its events, without the closing chunk). The SDKs then
    fail while reading the body, not while connecting.
    """

    halfway: bool = False
    reply: Reply | None = None


@dataclass(frozen=True)
class Malformed:
    """Answer with this body as is: by default HTTP 200, `content-type: application/json`, and a
    body that is not JSON.

    `Malformed("<html>...</html>", content_type="text/html")` is a proxy's HTML page: the SDKs
    then return the page as a `str` instead of raising (they only parse JSON content types).
    `status` sends another status with the same raw body (a proxy's HTML 502, say).
    """

    body: str = "{not json"
    content_type: str = "application/json"
    status: int = 200


Outcome: TypeAlias = Reply | Fault | Drop | Malformed
Responder: TypeAlias = Callable[[Request], Outcome]
ScriptItem: TypeAlias = Outcome | Responder

OUTCOME_TYPES = (Reply, Fault, Drop, Malformed)
