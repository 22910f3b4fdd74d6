"""The HTTP side of the provider server: faults, dropped connections, delays, raw bodies,
routes, API keys, lifecycle and concurrency, through the real SDKs."""

from __future__ import annotations

import email.utils
import json
import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import anthropic
import httpx2
import instructor
import openai
import pytest
from instructor.core import InstructorRetryException

from escalate import Retry, escalating, receipt_of
from escalate.testing._server import Drop, Fault, Malformed, ProviderServer, Reply
from tests.server_support import ADA, CLAUDE, GPT, USER, Person

# SDK clients on the session server (`oai`, `claude`, `aoai`, `aclaude`), quiet instructor logs.
pytest_plugins = ["tests.server_fixtures"]


def test_rate_limit_with_retry_after(
    server: ProviderServer, oai: openai.OpenAI, claude: anthropic.Anthropic
) -> None:
    server.script(GPT, Fault(429, retry_after=0.25))
    server.script(CLAUDE, Fault(429, retry_after=2, message="slow down"))
    with pytest.raises(openai.RateLimitError) as oerr:
        oai.chat.completions.create(model=GPT, messages=USER)
    assert oerr.value.response.headers["retry-after"] == "0.25"
    assert oerr.value.response.headers["retry-after-ms"] == "250"
    assert oerr.value.body == {
        "message": "Rate limit reached; please try again later.",
        "type": "requests",
        "param": None,
        "code": "rate_limit_exceeded",
    }
    with pytest.raises(anthropic.RateLimitError) as aerr:
        claude.messages.create(model=CLAUDE, max_tokens=10, messages=USER)
    assert aerr.value.response.headers["retry-after"] == "2"
    body = aerr.value.body
    assert isinstance(body, dict)
    assert body["type"] == "error"
    assert body["error"] == {"type": "rate_limit_error", "message": "slow down"}


@pytest.mark.parametrize("status", [500, 503])
def test_server_errors(
    server: ProviderServer, oai: openai.OpenAI, claude: anthropic.Anthropic, status: int
) -> None:
    server.script(GPT, Fault(status))
    server.script(CLAUDE, Fault(status))
    with pytest.raises(openai.InternalServerError) as oerr:
        oai.chat.completions.create(model=GPT, messages=USER)
    assert oerr.value.status_code == status
    expected = anthropic.ServiceUnavailableError if status == 503 else anthropic.InternalServerError
    with pytest.raises(expected) as aerr:
        claude.messages.create(model=CLAUDE, max_tokens=10, messages=USER)
    assert aerr.value.body["error"]["type"] == "api_error"  # type: ignore[index]


def test_drop_is_a_connection_error_and_the_client_recovers(
    server: ProviderServer, oai: openai.OpenAI, claude: anthropic.Anthropic
) -> None:
    server.script(GPT, Drop(), Reply(text="back"))
    server.script(CLAUDE, Drop())
    with pytest.raises(openai.APIConnectionError) as err:
        oai.chat.completions.create(model=GPT, messages=USER)
    assert not isinstance(err.value, openai.APITimeoutError)
    assert (
        oai.chat.completions.create(model=GPT, messages=USER).choices[0].message.content == "back"
    )
    with pytest.raises(anthropic.APIConnectionError):
        claude.messages.create(model=CLAUDE, max_tokens=10, messages=USER)
    assert len(server.requests) == 3  # a dropped request is still recorded


def test_drop_halfway_sends_headers_and_half_the_body_then_closes(
    server: ProviderServer, oai: openai.OpenAI, claude: anthropic.Anthropic
) -> None:
    server.script(GPT, Drop(halfway=True, reply=Reply(text="cut")))
    body = json.dumps({"model": GPT, "messages": USER}).encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw:
        raw.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n"
            b"content-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body)
        )
        received = b""
        while chunk := raw.recv(65536):
            received += chunk
    head, _, partial = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    length = int(
        next(line for line in head.split(b"\r\n") if line.startswith(b"content-length")).split(
            b":"
        )[1]
    )
    assert 0 < len(partial) < length and len(partial) == length // 2

    server.script(GPT, Drop(halfway=True), Reply(text="back"))
    server.script(CLAUDE, Drop(halfway=True))
    with pytest.raises(openai.APIConnectionError) as err:
        oai.chat.completions.create(model=GPT, messages=USER)
    assert not isinstance(err.value, openai.APITimeoutError)
    assert (
        oai.chat.completions.create(model=GPT, messages=USER).choices[0].message.content == "back"
    )
    with pytest.raises(anthropic.APIConnectionError):
        claude.messages.create(model=CLAUDE, max_tokens=10, messages=USER)


def test_drop_halfway_through_a_stream_ends_it_early(
    server: ProviderServer, oai: openai.OpenAI
) -> None:
    server.script(GPT, Drop(halfway=True, reply=Reply(text="a longer streamed answer here")))
    stream = oai.chat.completions.create(model=GPT, messages=USER, stream=True)
    pieces: list[str] = []
    # The SDK does not wrap errors raised while iterating a stream: httpx2's own arrives.
    with pytest.raises(httpx2.RemoteProtocolError, match="incomplete chunked read"):
        for chunk in stream:
            pieces.extend(choice.delta.content or "" for choice in chunk.choices)
    assert pieces and "".join(pieces) != "a longer streamed answer here"


def test_delay_beyond_client_timeout_is_a_timeout(
    server: ProviderServer, oai: openai.OpenAI, claude: anthropic.Anthropic
) -> None:
    server.script(GPT, Reply(text="late", delay=0.3))
    server.script(CLAUDE, Fault(500, delay=0.3))
    with pytest.raises(openai.APITimeoutError):
        oai.with_options(timeout=0.05).chat.completions.create(model=GPT, messages=USER)
    with pytest.raises(anthropic.APITimeoutError):
        claude.with_options(timeout=0.05).messages.create(
            model=CLAUDE, max_tokens=10, messages=USER
        )


def test_small_delay_is_served(server: ProviderServer, oai: openai.OpenAI) -> None:
    server.script(GPT, Reply(text="slow tier", delay=0.05))
    reply = oai.with_options(timeout=2).chat.completions.create(model=GPT, messages=USER)
    assert reply.choices[0].message.content == "slow tier"


def test_malformed_body(
    server: ProviderServer, oai: openai.OpenAI, claude: anthropic.Anthropic
) -> None:
    server.script(GPT, Malformed())
    server.script(CLAUDE, Malformed("<html>bad gateway</html>"))
    # Both SDKs let the json.JSONDecodeError of the 200 body escape as is.
    with pytest.raises(json.JSONDecodeError):
        oai.chat.completions.create(model=GPT, messages=USER)
    with pytest.raises(json.JSONDecodeError):
        claude.messages.create(model=CLAUDE, max_tokens=10, messages=USER)


def test_instructor_reasks_after_a_malformed_body(
    server: ProviderServer, oai: openai.OpenAI
) -> None:
    # Surprise worth pinning: instructor counts the SDK's JSONDecodeError as a parse error and
    # re-asks, so a broken provider response looks like bad model output.
    server.script(GPT, Malformed(), Reply(data=ADA))
    person = instructor.from_openai(oai).chat.completions.create(
        model=GPT, response_model=Person, messages=USER, max_retries=1
    )
    assert person.name == "Ada"
    assert len(server.requests) == 2


def test_instructor_wraps_provider_errors(server: ProviderServer, oai: openai.OpenAI) -> None:
    server.script(GPT, Fault(429))
    with pytest.raises(InstructorRetryException) as err:
        instructor.from_openai(oai).chat.completions.create(
            model=GPT, response_model=Person, messages=USER, max_retries=2
        )
    assert isinstance(err.value.__cause__, openai.RateLimitError)
    assert err.value.failed_attempts == []
    assert len(server.requests) == 1


def test_unknown_path_is_a_404_in_provider_format(
    server: ProviderServer, oai: openai.OpenAI, claude: anthropic.Anthropic
) -> None:
    with pytest.raises(openai.NotFoundError) as oerr:
        oai.embeddings.create(model="text-embedding-3-small", input="x")
    assert oerr.value.body["type"] == "invalid_request_error"  # type: ignore[index]
    with pytest.raises(anthropic.NotFoundError) as aerr:
        claude.models.list()
    assert aerr.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]
    assert server.requests == []


def test_require_api_key() -> None:
    secret = "sk-sekrit-0123456789"
    with ProviderServer(require_api_key=secret) as locked:
        locked.respond(GPT, lambda req: Reply(text="ok"))
        locked.respond(CLAUDE, lambda req: Reply(text="ok"))
        for key in ("wrong-key-999", secret):
            oai = openai.OpenAI(base_url=locked.openai_base_url, api_key=key, max_retries=0)
            claude = anthropic.Anthropic(
                base_url=locked.anthropic_base_url, api_key=key, max_retries=0
            )
            with oai, claude:
                if key == secret:
                    assert oai.chat.completions.create(model=GPT, messages=USER).choices
                    assert claude.messages.create(model=CLAUDE, max_tokens=5, messages=USER)
                    continue
                with pytest.raises(openai.AuthenticationError) as oerr:
                    oai.chat.completions.create(model=GPT, messages=USER)
                with pytest.raises(anthropic.AuthenticationError) as aerr:
                    claude.messages.create(model=CLAUDE, max_tokens=5, messages=USER)
                for err in (oerr.value, aerr.value):
                    assert err.status_code == 401
                    assert secret not in str(err) and key not in str(err)
                    assert secret not in err.response.text and key not in err.response.text
                assert aerr.value.body["error"]["type"] == "authentication_error"  # type: ignore[index]


def test_lifecycle() -> None:
    server = ProviderServer(tokens="approx")
    assert server.url == f"http://127.0.0.1:{server.port}"
    assert server.openai_base_url == server.url + "/v1"
    assert server.anthropic_base_url == server.url
    with server:
        server.start()  # idempotent while running
        server.respond(GPT, lambda req: Reply(text="ok"))
        client = openai.OpenAI(base_url=server.openai_base_url, api_key="k", max_retries=0)
        with client:
            assert client.chat.completions.create(model=GPT, messages=USER).choices
    server.stop()  # idempotent
    with pytest.raises(RuntimeError):
        server.start()
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", server.port), timeout=1):
        pass


def test_stop_closes_keep_alive_connections() -> None:
    server = ProviderServer(tokens="approx").start()
    server.respond(GPT, lambda req: Reply(text="ok"))
    client = openai.OpenAI(base_url=server.openai_base_url, api_key="k", max_retries=0)
    with client:
        client.chat.completions.create(model=GPT, messages=USER)
        done = threading.Event()

        def stop() -> None:
            server.stop()
            done.set()

        threading.Thread(target=stop, daemon=True).start()
        assert done.wait(2)
        with pytest.raises(openai.APIConnectionError):
            client.chat.completions.create(model=GPT, messages=USER)


def test_concurrent_calls(server: ProviderServer, oai: openai.OpenAI) -> None:
    server.respond(GPT, lambda req: Reply(text="echo:" + req.last_user_text, delay=0.01))

    def ask(i: int) -> str | None:
        messages: Any = [{"role": "user", "content": str(i)}]
        return oai.chat.completions.create(model=GPT, messages=messages).choices[0].message.content

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(ask, range(64)))
    assert answers == [f"echo:{i}" for i in range(64)]
    assert len(server.requests_for(GPT)) == 64


def test_non_ascii_streams_reassemble(
    server: ProviderServer, oai: openai.OpenAI, claude: anthropic.Anthropic
) -> None:
    text = "café 日本語 🎉 ok"
    server.script(GPT, Reply(text=text), Reply(text=text))
    server.script(CLAUDE, Reply(text=text))
    for logprobs in (False, True):
        chunks = oai.chat.completions.create(
            model=GPT, messages=USER, stream=True, logprobs=logprobs
        )
        assert "".join(c.choices[0].delta.content or "" for c in chunks) == text
    with claude.messages.stream(model=CLAUDE, max_tokens=10, messages=USER) as stream:
        assert stream.get_final_text() == text


# --------------------------------------------------------------------------------------------
# Proxy pages, Retry-After dates, request counters
# --------------------------------------------------------------------------------------------

PAGE = "<html><body><h1>502 Bad Gateway</h1></body></html>"


def test_a_proxy_html_page_with_status_200(
    server: ProviderServer, oai: openai.OpenAI, claude: anthropic.Anthropic
) -> None:
    # Malformed() sends `application/json`: the SDKs raise JSONDecodeError (see above). A proxy's
    # page comes as text/html, and then both SDKs hand back the page as a str instead.
    page = Malformed(PAGE, content_type="text/html; charset=utf-8")
    server.script(GPT, page, page)
    server.script(CLAUDE, page, page)
    raw = oai.chat.completions.with_raw_response.create(model=GPT, messages=USER)
    assert (raw.status_code, raw.headers["content-type"], raw.text) == (
        200,
        "text/html; charset=utf-8",
        PAGE,
    )
    assert claude.messages.create(model=CLAUDE, max_tokens=10, messages=USER) == PAGE  # type: ignore[comparison-overlap]
    with pytest.raises(InstructorRetryException) as oerr:
        instructor.from_openai(oai).chat.completions.create(
            model=GPT, response_model=Person, messages=USER, max_retries=0
        )
    assert "No choices in OpenAI response" in str(oerr.value)
    with pytest.raises(InstructorRetryException):
        instructor.from_anthropic(claude).messages.create(
            model=CLAUDE, max_tokens=10, response_model=Person, messages=USER, max_retries=0
        )


def test_a_proxy_html_page_with_an_error_status(
    server: ProviderServer, oai: openai.OpenAI, claude: anthropic.Anthropic
) -> None:
    server.script(GPT, Malformed(PAGE, content_type="text/html", status=502))
    server.script(CLAUDE, Malformed(PAGE, content_type="text/html", status=502))
    with pytest.raises(openai.InternalServerError) as oerr:
        oai.chat.completions.create(model=GPT, messages=USER)
    assert (oerr.value.status_code, oerr.value.response.text) == (502, PAGE)
    with pytest.raises(anthropic.InternalServerError) as aerr:
        claude.messages.create(model=CLAUDE, max_tokens=10, messages=USER)
    assert aerr.value.status_code == 502


def test_retry_after_as_an_http_date(
    server: ProviderServer, oai: openai.OpenAI, claude: anthropic.Anthropic
) -> None:
    server.script(GPT, Fault(429, retry_after=30, retry_after_format="date"))
    server.script(CLAUDE, Fault(529, retry_after=0, retry_after_format="date"))
    with pytest.raises(openai.RateLimitError) as oerr:
        oai.chat.completions.create(model=GPT, messages=USER)
    headers = oerr.value.response.headers
    assert "retry-after-ms" not in headers
    when = email.utils.parsedate_to_datetime(headers["retry-after"])
    assert headers["retry-after"].endswith(" GMT")
    assert 28 <= (when - datetime.now(UTC)).total_seconds() <= 30
    with pytest.raises(anthropic.OverloadedError) as aerr:
        claude.messages.create(model=CLAUDE, max_tokens=10, messages=USER)
    when = email.utils.parsedate_to_datetime(aerr.value.response.headers["retry-after"])
    assert (when - datetime.now(UTC)).total_seconds() <= 0
    with pytest.raises(ValueError):
        Fault(429, retry_after=1, retry_after_format="http")  # type: ignore[arg-type]


def test_escalate_reads_a_retry_after_date(server: ProviderServer, openai_tier: Any) -> None:
    # A date two minutes away is beyond max_retry_after: the tier is left at once.
    server.script(GPT, Fault(429, retry_after=120, retry_after_format="date"))
    server.script("gpt-4o", Reply(data=ADA))
    extract = escalating(
        tiers=[openai_tier(GPT), openai_tier("gpt-4o")],
        response_model=Person,
        retry=Retry(attempts=3, initial=0.001, max=0.01, jitter=0, max_retry_after=30),
    )(lambda text: f"Who is in: {text}")
    receipt = receipt_of(extract("a note"))
    assert [a.status_code for a in receipt.attempts] == [429, None]
    assert receipt.escalated
    assert server.request_counts == {"/v1/chat/completions": len(receipt.attempts)}


def test_request_counters(
    server: ProviderServer, oai: openai.OpenAI, claude: anthropic.Anthropic
) -> None:
    assert (server.request_count, server.request_counts) == (0, {})
    server.script(GPT, Reply(text="a"), Drop(), Fault(500))
    server.script(CLAUDE, Reply(text="b"))
    oai.chat.completions.create(model=GPT, messages=USER)
    for error in (openai.APIConnectionError, openai.InternalServerError):
        with pytest.raises(error):
            oai.chat.completions.create(model=GPT, messages=USER)
    claude.messages.create(model=CLAUDE, max_tokens=10, messages=USER)
    with pytest.raises(openai.BadRequestError):  # nothing scripted: still received
        oai.chat.completions.create(model="unscripted", messages=USER)
    with pytest.raises(openai.NotFoundError):
        oai.embeddings.create(model="text-embedding-3-small", input="x")
    assert server.request_counts == {
        "/v1/chat/completions": 4,
        "/v1/messages": 1,
        "/v1/embeddings": 1,
    }
    assert server.request_count == 6
    assert len(server.requests) == 5  # 404s are counted, not recorded
    counts = server.request_counts
    counts.clear()  # a copy
    assert server.request_count == 6
    server.reset()
    assert (server.request_count, server.request_counts) == (0, {})
