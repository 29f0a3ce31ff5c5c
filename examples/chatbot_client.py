"""A chatbot client for ``majordome serve``, with the plain ``openai`` package.

``majordome serve`` speaks OpenAI's chat completions API: point the client at it, send
``model="majordome"`` to let majordome route (or a catalogue id to pin one model), and read how the
answer was routed from the response's ``majordome`` field and its ``x-majordome-*`` headers.
Feedback on an answer goes to ``POST /v1/feedback`` with its trace id.

    export MAJORDOME_BASE_URL=http://127.0.0.1:8000 MAJORDOME_API_KEY=sk-...
    python examples/chatbot_client.py "A fan writes: 'Loved your last video!' Reply warmly."
    python examples/chatbot_client.py --stream --rate 5 "One line about Mondays."
    python examples/chatbot_client.py            # a conversation, one line per turn; Ctrl-D ends

Needs ``openai`` and ``httpx`` (both installed with ``majordome[server]``'s test extras, or
``pip install openai httpx``); nothing from majordome itself.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import openai
from openai.types.chat import ChatCompletionMessageParam

__all__ = ["ChatResult", "FeedbackError", "ask", "ask_stream", "describe", "main", "make_client", "send_feedback"]

DEFAULT_BASE_URL = "http://127.0.0.1:8000"
FEEDBACK_KINDS = ("rating", "thumbs", "edit", "conversion", "revenue")


@dataclass(frozen=True)
class ChatResult:
    """An answer and how majordome produced it. ``majordome``: the response's ``majordome`` field
    (trace id, model, served_by, substituted, cost, decision); ``headers``: the ``x-majordome-*``
    response headers."""

    text: str
    trace_id: str
    model: str
    majordome: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    usage: dict[str, int] | None = None


class FeedbackError(Exception):
    """The server refused the feedback; ``status_code`` and ``code`` say why."""

    def __init__(self, status_code: int, code: str, message: str) -> None:
        self.status_code = status_code
        self.code = code
        super().__init__(f"feedback refused ({status_code} {code}): {message}")


def make_client(base_url: str, api_key: str, *, timeout_s: float = 120.0, max_retries: int = 2) -> openai.OpenAI:
    """The OpenAI client for the server at ``base_url`` (its root, without ``/v1``)."""
    return openai.OpenAI(
        base_url=f"{base_url.rstrip('/')}/v1", api_key=api_key, timeout=timeout_s, max_retries=max_retries
    )


def _majordome_headers(headers: Mapping[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items() if k.lower().startswith("x-majordome-")}


def ask(
    client: openai.OpenAI,
    messages: Sequence[ChatCompletionMessageParam],
    *,
    model: str = "majordome",
    max_tokens: int | None = None,
) -> ChatResult:
    """One answer, not streamed."""
    raw = client.chat.completions.with_raw_response.create(
        model=model, messages=list(messages), max_tokens=max_tokens if max_tokens else openai.omit
    )
    completion = raw.parse()
    info: dict[str, Any] = (completion.model_extra or {}).get("majordome") or {}
    headers = _majordome_headers(raw.headers)
    usage = completion.usage.model_dump() if completion.usage is not None else None
    return ChatResult(
        text=completion.choices[0].message.content or "",
        trace_id=headers.get("x-majordome-trace-id") or str(info.get("trace_id", "")),
        model=completion.model,
        majordome=info,
        headers=headers,
        usage={k: int(v) for k, v in usage.items() if isinstance(v, int)} if usage else None,
    )


def ask_stream(
    client: openai.OpenAI,
    messages: Sequence[ChatCompletionMessageParam],
    *,
    model: str = "majordome",
    max_tokens: int | None = None,
    on_text: Callable[[str], None] | None = None,
) -> ChatResult:
    """One answer, streamed: ``on_text`` receives each text delta as it arrives. The routing
    metadata comes on the last chunk (the server adds it), the trace id in the headers at once."""
    parts: list[str] = []
    info: dict[str, Any] = {}
    usage: dict[str, int] | None = None
    model_seen = model
    with client.chat.completions.with_streaming_response.create(
        model=model,
        messages=list(messages),
        stream=True,
        stream_options={"include_usage": True},
        max_tokens=max_tokens if max_tokens else openai.omit,
    ) as response:
        headers = _majordome_headers(response.headers)
        for chunk in response.parse():
            for choice in chunk.choices:
                if choice.delta.content:
                    parts.append(choice.delta.content)
                    if on_text is not None:
                        on_text(choice.delta.content)
            extra = (chunk.model_extra or {}).get("majordome")
            if extra:
                info = extra
                model_seen = chunk.model
            if chunk.usage is not None:
                usage = {
                    "prompt_tokens": chunk.usage.prompt_tokens,
                    "completion_tokens": chunk.usage.completion_tokens,
                    "total_tokens": chunk.usage.total_tokens,
                }
    return ChatResult(
        text="".join(parts),
        trace_id=headers.get("x-majordome-trace-id") or str(info.get("trace_id", "")),
        model=model_seen,
        majordome=info,
        headers=headers,
        usage=usage,
    )


def send_feedback(
    base_url: str,
    api_key: str,
    trace_id: str,
    kind: str,
    value: float | bool | str,
    *,
    draft: str | None = None,
    idempotency_key: str | None = None,
    http: httpx.Client | None = None,
) -> dict[str, Any]:
    """Feedback on the answer ``trace_id`` (e.g. ``kind="rating", value=5``); the server's reply
    (``reward``, ``stored``, ``learned``). Raises :class:`FeedbackError` when refused."""
    body: dict[str, Any] = {"trace_id": trace_id, "kind": kind, "value": value}
    if draft is not None:
        body["draft"] = draft
    if idempotency_key is not None:
        body["idempotency_key"] = idempotency_key
    url = f"{base_url.rstrip('/')}/v1/feedback"
    headers = {"Authorization": f"Bearer {api_key}"}
    response = (http or httpx).post(url, json=body, headers=headers, timeout=30)
    if response.status_code >= 400:
        try:
            error = response.json().get("error", {})
        except ValueError:
            error = {}
        raise FeedbackError(response.status_code, str(error.get("code", "")), str(error.get("message", response.text)))
    reply: dict[str, Any] = response.json()
    return reply


def describe(result: ChatResult) -> str:
    """The routing metadata, one line each: model, what served it, cost, why, the fallbacks."""
    info = result.majordome
    decision: dict[str, Any] = info.get("decision") or {}
    lines = [f"trace {result.trace_id}", f"model {result.model} (served by {info.get('served_by', '?')})"]
    if info.get("substituted"):
        lines.append("substituted: a stand-in answered, not the model named")
    cost = result.headers.get("x-majordome-cost-usd") or info.get("cost_usd")
    if cost is not None:
        lines.append(f"cost ${float(cost):.6f}")
    if result.usage:
        lines.append(f"tokens {result.usage.get('prompt_tokens')} in, {result.usage.get('completion_tokens')} out")
    if decision.get("reason"):
        lines.append(f"why: {decision['reason']}")
    if decision.get("chain"):
        lines.append(f"chain: {' -> '.join(decision['chain'])}")
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Chat with `majordome serve` through the OpenAI client and print how each answer was routed."
    )
    parser.add_argument("message", nargs="?", help="one message to send; without it, a conversation from stdin")
    parser.add_argument(
        "--base-url",
        default=os.environ.get("MAJORDOME_BASE_URL", DEFAULT_BASE_URL),
        help="the server's root URL (env MAJORDOME_BASE_URL; default %(default)s)",
    )
    parser.add_argument(
        "--api-key", default=os.environ.get("MAJORDOME_API_KEY"), help="the tenant's API key (env MAJORDOME_API_KEY)"
    )
    parser.add_argument("--model", default="majordome", help="'majordome' routes; a catalogue id pins a model")
    parser.add_argument("--stream", action="store_true", help="stream the answer as it is written")
    parser.add_argument("--max-tokens", type=int, default=None, help="the answer's token limit")
    parser.add_argument("--system", default=None, help="a system message to start the conversation with")
    parser.add_argument("--rate", type=int, choices=range(1, 6), metavar="1-5", help="rate each answer (feedback)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if not args.api_key:
        _parser().error("an API key is needed: --api-key or MAJORDOME_API_KEY")
    client = make_client(args.base_url, args.api_key)
    history: list[ChatCompletionMessageParam] = []
    if args.system:
        history.append({"role": "system", "content": args.system})
    turns = [args.message] if args.message else (line.strip() for line in sys.stdin)
    for text in turns:
        if not text:
            continue
        history.append({"role": "user", "content": text})
        try:
            if args.stream:
                result = ask_stream(client, history, model=args.model, max_tokens=args.max_tokens, on_text=_print_delta)
                print()
            else:
                result = ask(client, history, model=args.model, max_tokens=args.max_tokens)
                print(result.text)
        except openai.APIError as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
        history.append({"role": "assistant", "content": result.text})
        print(describe(result), file=sys.stderr)
        if args.rate is not None:
            try:
                reply = send_feedback(args.base_url, args.api_key, result.trace_id, "rating", args.rate)
            except (FeedbackError, httpx.HTTPError) as error:
                print(f"feedback: {error}", file=sys.stderr)
            else:
                print(f"feedback: reward {reply.get('reward')}, stored {reply.get('stored')}", file=sys.stderr)
    return 0


def _print_delta(text: str) -> None:
    print(text, end="", flush=True)


if __name__ == "__main__":
    sys.exit(main())
