"""HTTP: the threaded server, routing, request bodies, answers, faults and server-sent events."""

from __future__ import annotations

import contextlib
import email.utils
import json
import socket
import time
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

import escalate.testing._server._anthropic as _anthropic
import escalate.testing._server._openai as _openai
from escalate.testing._server._answers import Answer, new_id, resolve
from escalate.testing._server._cache import PromptCache
from escalate.testing._server._tokens import Tokenizer, to_json
from escalate.testing._server._values import (
    Drop,
    Fault,
    Malformed,
    Outcome,
    Provider,
    Reply,
    Request,
)

__all__ = ["HTTPServer", "Owner"]


class Owner(Protocol):
    """What the HTTP side needs from the `ProviderServer` it serves."""

    @property
    def tokenizer(self) -> Tokenizer: ...

    @property
    def prompt_cache(self) -> PromptCache: ...

    def _received(self, path: str) -> None: ...

    def _record(self, request: Request) -> None: ...

    def _authorized(self, request: Request) -> bool: ...

    def _next_outcome(self, request: Request) -> Outcome | str: ...

    def _connection_opened(self, connection: socket.socket) -> None: ...

    def _connection_closed(self, connection: socket.socket) -> None: ...


_BODIES: dict[Provider, Callable[[Request, Answer], dict[str, Any]]] = {
    "openai": _openai.completion,
    "anthropic": _anthropic.message,
}
_STREAMS: dict[Provider, Callable[[Request, Answer], list[bytes]]] = {
    "openai": _openai.stream_events,
    "anthropic": _anthropic.stream_events,
}
_ERROR_BODIES: dict[Provider, Callable[[int, str, str], dict[str, Any]]] = {
    "openai": _openai.error_body,
    "anthropic": _anthropic.error_body,
}
_REQUEST_ID_HEADERS: dict[Provider, str] = {
    "openai": _openai.REQUEST_ID_HEADER,
    "anthropic": _anthropic.REQUEST_ID_HEADER,
}


def _seconds(value: float) -> str:
    return str(int(value)) if value == int(value) else repr(float(value))


def _retry_after_headers(fault: Fault) -> dict[str, str]:
    if fault.retry_after is None:
        return {}
    if fault.retry_after_format == "date":
        return {"retry-after": email.utils.formatdate(time.time() + fault.retry_after, usegmt=True)}
    return {
        "retry-after": _seconds(fault.retry_after),
        "retry-after-ms": _seconds(fault.retry_after * 1000),
    }


class HTTPServer(ThreadingHTTPServer):
    """A threaded HTTP/1.1 server on `address`, answering for `owner`."""

    daemon_threads = True
    request_queue_size = 128

    def __init__(self, owner: Owner, address: tuple[str, int]) -> None:
        self.owner = owner
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that time out or hang up are part of the job; stay quiet about them.
        return


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server_version = "escalate-test-server/1"
    sys_version = ""

    def setup(self) -> None:
        super().setup()
        self._owner()._connection_opened(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self._owner()._connection_closed(self.connection)

    def _owner(self) -> Owner:
        server = self.server
        assert isinstance(server, HTTPServer)
        return server.owner

    def log_message(self, format: str, *args: Any) -> None:
        return

    # -- routing -------------------------------------------------------------------------------

    def _guess_provider(self) -> Provider:
        if "x-api-key" in self.headers or "anthropic-version" in self.headers:
            return "anthropic"
        return "openai"

    def do_GET(self) -> None:
        self._owner()._received(self.path.split("?", 1)[0])
        self._read_body()
        self._not_found(self._guess_provider())

    do_PUT = do_GET
    do_DELETE = do_GET
    do_PATCH = do_GET

    def do_POST(self) -> None:
        owner = self._owner()
        owner._received(self.path.split("?", 1)[0])
        raw = self._read_body()
        path = self.path.split("?", 1)[0].rstrip("/")
        provider: Provider
        if path.endswith("/chat/completions"):
            provider = "openai"
        elif path.endswith("/messages"):
            provider = "anthropic"
        else:
            self._not_found(self._guess_provider())
            return
        request = self._parse(provider, raw)
        if request is None:
            return
        owner._record(request)
        if not owner._authorized(request):
            self._error(provider, 401, "escalate test server: invalid API key")
            return
        try:
            outcome = owner._next_outcome(request)
        except Exception as exc:  # a scripted callable or responder raised
            self._error(provider, 400, f"escalate test server: responder raised {exc!r}")
            return
        if isinstance(outcome, str):
            self._error(provider, 400, outcome)
            return
        self._serve(request, outcome)

    def _parse(self, provider: Provider, raw: bytes) -> Request | None:
        """The request, or None once a 400 has been sent for a body that is not a JSON object."""
        try:
            body = json.loads(raw or b"{}")
        except ValueError as exc:
            self._error(provider, 400, f"escalate test server: request body is not JSON ({exc})")
            return None
        if not isinstance(body, dict):
            self._error(provider, 400, "escalate test server: request body must be a JSON object")
            return None
        model = body.get("model")
        return Request(
            provider=provider,
            path=self.path,
            model=model if isinstance(model, str) else "",
            headers={name.lower(): value for name, value in self.headers.items()},
            body=body,
            stream=body.get("stream") is True,
        )

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("transfer-encoding", "").lower():
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("content-length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    # -- answering -----------------------------------------------------------------------------

    def _serve(self, request: Request, outcome: Outcome) -> None:
        provider = request.provider
        if isinstance(outcome, Drop):
            if outcome.halfway:
                self._serve_halfway(request, outcome.reply or Reply())
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        if isinstance(outcome, Malformed):
            self._send(outcome.status, outcome.body.encode(), outcome.content_type)
            return
        if outcome.delay > 0:
            time.sleep(outcome.delay)
        if isinstance(outcome, Fault):
            self._error(provider, outcome.status, outcome.message, _retry_after_headers(outcome))
            return
        owner = self._owner()
        try:
            # Everything is built before the first byte is sent, so a Reply that cannot be
            # served (say, data that is not JSON-able) is a clear 400, not a dropped connection.
            plan = owner.prompt_cache.plan(request, owner.tokenizer)
            answer = resolve(outcome, request, owner.tokenizer, plan)
            if request.stream:
                events = _STREAMS[provider](request, answer)
            else:
                payload = to_json(_BODIES[provider](request, answer)).encode()
        except Exception as exc:
            self._error(provider, 400, f"escalate test server: cannot serve {outcome!r}: {exc!r}")
            return
        owner.prompt_cache.commit(plan)
        if request.stream:
            self._stream(provider, events)
        else:
            name, request_id = self._request_id_header(provider)
            self._send(200, payload, "application/json", {name: request_id})

    def _serve_halfway(self, request: Request, reply: Reply) -> None:
        """The first half of `reply`'s answer, headers whole; the caller then hangs up."""
        provider = request.provider
        owner = self._owner()
        plan = owner.prompt_cache.plan(request, owner.tokenizer)
        answer = resolve(reply, request, owner.tokenizer, plan)
        name, request_id = self._request_id_header(provider)
        if request.stream:
            events = _STREAMS[provider](request, answer)
            head = (
                "HTTP/1.1 200 OK\r\n"
                "content-type: text/event-stream; charset=utf-8\r\n"
                "transfer-encoding: chunked\r\n"
                f"{name}: {request_id}\r\n\r\n"
            ).encode("latin-1")
            sent = b"".join(b"%x\r\n%s\r\n" % (len(e), e) for e in events[: len(events) // 2])
            data = head + sent
        else:
            body = to_json(_BODIES[provider](request, answer)).encode()
            head = (
                "HTTP/1.1 200 OK\r\n"
                "content-type: application/json\r\n"
                f"content-length: {len(body)}\r\n"
                f"{name}: {request_id}\r\n\r\n"
            ).encode("latin-1")
            data = head + body[: len(body) // 2]
        with contextlib.suppress(OSError):
            self.wfile.write(data)
            self.wfile.flush()

    def _request_id_header(self, provider: Provider) -> tuple[str, str]:
        return _REQUEST_ID_HEADERS[provider], new_id("req_")

    def _error(
        self,
        provider: Provider,
        status: int,
        message: str,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        name, request_id = self._request_id_header(provider)
        body = _ERROR_BODIES[provider](status, message, request_id)
        all_headers = {name: request_id, **(headers or {})}
        self._send(status, to_json(body).encode(), "application/json", all_headers)

    def _not_found(self, provider: Provider) -> None:
        self._error(provider, 404, f"escalate test server: no route for {self.command} {self.path}")

    def _send(
        self,
        status: int,
        body: bytes,
        content_type: str,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        # One write for status line, headers and body.
        lines = [
            f"HTTP/1.1 {status} {self.responses.get(status, ('Error',))[0]}",
            f"content-type: {content_type}",
            f"content-length: {len(body)}",
        ]
        lines.extend(f"{name}: {value}" for name, value in (headers or {}).items())
        if self.close_connection:
            lines.append("connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        try:
            self.wfile.write(head + body)
        except OSError:
            self.close_connection = True

    def _stream(self, provider: Provider, events: list[bytes]) -> None:
        name, request_id = self._request_id_header(provider)
        head = (
            "HTTP/1.1 200 OK\r\n"
            "content-type: text/event-stream; charset=utf-8\r\n"
            "cache-control: no-cache\r\n"
            "transfer-encoding: chunked\r\n"
            f"{name}: {request_id}\r\n\r\n"
        ).encode("latin-1")
        try:
            self.wfile.write(head)
            for event_bytes in events:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(event_bytes), event_bytes))
            self.wfile.write(b"0\r\n\r\n")
        except OSError:
            self.close_connection = True
