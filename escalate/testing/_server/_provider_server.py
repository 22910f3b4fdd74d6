"""`ProviderServer`: scripts, responders, recorded requests and counters behind the HTTP side."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections import Counter, deque
from types import TracebackType
from typing import Literal

from escalate.testing._server._cache import PromptCache
from escalate.testing._server._http import HTTPServer
from escalate.testing._server._tokens import APPROX, CL100K
from escalate.testing._server._values import (
    OUTCOME_TYPES,
    Outcome,
    Request,
    Responder,
    ScriptItem,
)

__all__ = ["ProviderServer"]


class ProviderServer:
    """A scripted OpenAI- and Anthropic-compatible server on 127.0.0.1 (a free port).

    It binds when built and serves from `start()` (or entering it as a context manager) until
    `stop()`. Point `openai.OpenAI(base_url=server.openai_base_url)` or
    `anthropic.Anthropic(base_url=server.anthropic_base_url)` at it.

    Each model answers from its FIFO script (`script`), then from its responder (`respond`).
    With neither, it answers HTTP 400 naming the model. With `require_api_key`, requests whose
    `authorization: Bearer <key>` (OpenAI) or `x-api-key` (Anthropic) differs get HTTP 401.
    Every request to a provider route is recorded (`requests`), including those answered 400
    or 401; `request_count` and `request_counts` count every HTTP request received, per path,
    404s included. Anthropic prompt caching is simulated per server (`cache_control` blocks,
    see `escalate.testing._server._cache`). All methods are thread-safe.

    `tokens="auto"` counts tokens with cl100k when `bpe_openai` imports (the first `start()` in a
    process loads it, about a second, so that no request waits for it); `tokens="approx"` never
    imports it and counts `max(1, round(len(text) / 4))` per text.
    """

    def __init__(
        self,
        *,
        require_api_key: str | None = None,
        tokens: Literal["auto", "approx"] = "auto",
    ) -> None:
        self.require_api_key = require_api_key
        self.tokenizer = APPROX if tokens == "approx" else CL100K
        self.prompt_cache = PromptCache()
        self._lock = threading.Lock()
        self._scripts: dict[str, deque[ScriptItem]] = {}
        self._responders: dict[str, Responder] = {}
        self._requests: list[Request] = []
        self._received_paths: Counter[str] = Counter()
        self._connections: set[socket.socket] = set()
        self._httpd = HTTPServer(self, ("127.0.0.1", 0))
        self._thread: threading.Thread | None = None
        self._stopped = False

    # -- lifecycle -----------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The TCP port the server listens on."""
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """`http://127.0.0.1:PORT`."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def openai_base_url(self) -> str:
        """Base URL for `openai.OpenAI(base_url=...)`: `url + "/v1"`."""
        return self.url + "/v1"

    @property
    def google_base_url(self) -> str:
        """Base URL for a ``google/...`` tier: ``url + "/v1beta/openai"``, the path of
        Gemini's OpenAI-compatible endpoint (answered in the OpenAI wire format)."""
        return self.url + "/v1beta/openai"

    @property
    def anthropic_base_url(self) -> str:
        """Base URL for `anthropic.Anthropic(base_url=...)`: `url`."""
        return self.url

    def start(self) -> ProviderServer:
        """Serve in a daemon thread. Calling it again while running does nothing."""
        with self._lock:
            if self._stopped:
                raise RuntimeError("this ProviderServer was stopped; build a new one")
            if self._thread is not None:
                return self
            self.tokenizer.load()
            self._thread = threading.Thread(
                target=self._httpd.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"escalate-provider-server-{self.port}",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close open connections and join the thread. Idempotent."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
            thread = self._thread
        if thread is not None:
            self._httpd.shutdown()
            thread.join()
        self._httpd.server_close()
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def __enter__(self) -> ProviderServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- scripting -----------------------------------------------------------------------------

    def script(self, model: str, *items: ScriptItem) -> None:
        """Append outcomes (or callables `fn(request) -> outcome`, used once) to `model`'s queue."""
        for item in items:
            if not (isinstance(item, OUTCOME_TYPES) or callable(item)):
                raise TypeError(
                    "script items must be Reply, Fault, Drop, Malformed or a callable, "
                    f"got {item!r}"
                )
        with self._lock:
            self._scripts.setdefault(model, deque()).extend(items)

    def respond(self, model: str, fn: Responder | None) -> None:
        """Answer every call to `model` with `fn(request)` once its script is empty.

        `None` removes the responder.
        """
        with self._lock:
            if fn is None:
                self._responders.pop(model, None)
            else:
                self._responders[model] = fn

    def reset(self) -> None:
        """Forget all scripts, responders, recorded requests, counts and cached prompts."""
        with self._lock:
            self._scripts.clear()
            self._responders.clear()
            self._requests.clear()
            self._received_paths.clear()
        self.prompt_cache.clear()

    @property
    def requests(self) -> list[Request]:
        """A copy of the recorded requests, in arrival order."""
        with self._lock:
            return list(self._requests)

    def requests_for(self, model: str) -> list[Request]:
        """The recorded requests for `model`, in arrival order."""
        with self._lock:
            return [request for request in self._requests if request.model == model]

    @property
    def request_count(self) -> int:
        """How many HTTP requests the server received, whatever their path and answer."""
        with self._lock:
            return sum(self._received_paths.values())

    @property
    def request_counts(self) -> dict[str, int]:
        """HTTP requests received per path (query string left out), e.g.
        `{"/v1/chat/completions": 3, "/v1/messages": 1}`; unknown paths (answered 404) too."""
        with self._lock:
            return dict(self._received_paths)

    def pending(self, model: str) -> int:
        """How many scripted items are still queued for `model`."""
        with self._lock:
            return len(self._scripts.get(model, ()))

    # -- used by the HTTP handler --------------------------------------------------------------

    def _received(self, path: str) -> None:
        """Count one HTTP request to `path`."""
        with self._lock:
            self._received_paths[path] += 1

    def _record(self, request: Request) -> None:
        """Record one received request."""
        with self._lock:
            self._requests.append(request)

    def _authorized(self, request: Request) -> bool:
        """Whether `request` carries the required API key (always True without one)."""
        key = self.require_api_key
        if key is None:
            return True
        bearer = request.headers.get("authorization") == f"Bearer {key}"
        if request.provider == "openai":
            return bearer
        return request.headers.get("x-api-key") == key or bearer

    def _next_outcome(self, request: Request) -> Outcome | str:
        """The outcome for `request`, or an error message when nothing is scripted for it."""
        model = request.model
        with self._lock:
            queue = self._scripts.get(model)
            item: ScriptItem | None = queue.popleft() if queue else None
            if item is None:
                item = self._responders.get(model)
        if item is None:
            return (
                f"escalate test server: no scripted reply left for model {model!r} "
                "(script it with server.script(...) or server.respond(...))"
            )
        if isinstance(item, OUTCOME_TYPES):
            return item
        outcome = item(request)
        if not isinstance(outcome, OUTCOME_TYPES):
            return (
                f"escalate test server: the responder for model {model!r} returned "
                f"{outcome!r}, not a Reply, Fault, Drop or Malformed"
            )
        return outcome

    def _connection_opened(self, connection: socket.socket) -> None:
        """Track an open client connection."""
        with self._lock:
            self._connections.add(connection)

    def _connection_closed(self, connection: socket.socket) -> None:
        """Forget a closed client connection."""
        with self._lock:
            self._connections.discard(connection)
