"""The ``majordome`` command: ask a question, list the catalogue, run the demo tour."""

from __future__ import annotations

import contextlib
import json
import logging
import sys
from collections.abc import Iterator
from dataclasses import asdict
from typing import Annotated, Any

import typer

from majordome._client import Majordome
from majordome._errors import BadRequestError, ConfigurationError, MajordomeError
from majordome._types import Answer, Completed, ReasoningDelta, TextDelta

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Le Majordome: route requests to the right LLM.",
)


@contextlib.contextmanager
def _reported() -> Iterator[None]:
    """Majordome's errors as one red line and an exit code: 2 bad request, 3 configuration, 1 other."""
    try:
        yield
    except BadRequestError as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        raise typer.Exit(2) from None
    except ConfigurationError as exc:
        typer.secho(f"configuration error: {exc}", fg="red", err=True)
        raise typer.Exit(3) from None
    except MajordomeError as exc:
        typer.secho(f"error ({type(exc).__name__}): {exc}", fg="red", err=True)
        raise typer.Exit(1) from None


def _verbose(enabled: bool) -> None:
    if enabled:
        logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")


def _summary(answer: Answer) -> str:
    served = f"{answer.served_by} (local model serving the slot)" if answer.substituted else answer.served_by
    return (
        f"model {answer.model} · served by {served} · {answer.usage.input_tokens}+{answer.usage.output_tokens} tokens"
        f"{' (estimated)' if answer.usage.estimated else ''} · ${answer.cost_usd:.6f} · {answer.latency_ms:.0f} ms"
        f" · {len(answer.attempts)} attempt(s) · trace {answer.trace_id}\nwhy: {answer.decision.reason}"
    )


@app.command()
def ask(
    prompt: Annotated[str, typer.Argument(help="The user message.")],
    model: Annotated[str | None, typer.Option(help="Pin a catalogue model (id or display name).")] = None,
    tenant: Annotated[str, typer.Option(help="Tenant (creator) id.")] = "cli",
    job_type: Annotated[str | None, typer.Option(help="Job type, e.g. chat.suggest.")] = None,
    intent: Annotated[str | None, typer.Option(help="Intent hint, e.g. fan_reply, reasoning.")] = None,
    language: Annotated[str | None, typer.Option(help="Language hint, e.g. fr.")] = None,
    system: Annotated[str | None, typer.Option(help="A system message.")] = None,
    max_tokens: Annotated[int | None, typer.Option(help="Maximum output tokens.")] = None,
    stream: Annotated[bool, typer.Option(help="Print the answer as it arrives.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the whole answer as JSON.")] = False,
    verbose: Annotated[bool, typer.Option(help="Log majordome's events to stderr.")] = False,
) -> None:
    """Ask the Majordome one question."""
    _verbose(verbose)
    messages: list[dict[str, Any]] = [{"role": "system", "content": system}] if system else []
    messages.append({"role": "user", "content": prompt})
    request: dict[str, Any] = {
        "messages": messages,
        "tenant": tenant,
        "job_type": job_type,
        "intent": intent,
        "language": language,
        "model": model,
        "max_output_tokens": max_tokens,
    }
    with _reported(), Majordome.from_env() as mj:
        if stream and not as_json:
            for event in mj.stream_sync(request):
                if isinstance(event, TextDelta):
                    typer.echo(event.text, nl=False)
                elif isinstance(event, ReasoningDelta):
                    typer.secho(event.text, nl=False, dim=True, err=True)
                elif isinstance(event, Completed):
                    typer.echo()
                    typer.secho(_summary(event.answer), dim=True, err=True)
            return
        answer = mj.ask_sync(request)
    if as_json:
        typer.echo(json.dumps(answer.to_dict(), indent=2, ensure_ascii=False))
        return
    if answer.reasoning:
        typer.secho(f"[reasoning] {answer.reasoning}", dim=True, err=True)
    typer.echo(answer.text)
    typer.secho(_summary(answer), dim=True, err=True)


@app.command()
def models(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """List the catalogue: prices, context windows, capabilities, and what serves each model here."""
    with _reported(), Majordome.from_env() as mj:
        rows = mj.models()
    if as_json:
        typer.echo(json.dumps([asdict(row) for row in rows], indent=2))
        return
    typer.echo(f"{'model':<20} {'in $/M':>7} {'out $/M':>8} {'context':>8}  {'served by':<44} capabilities")
    for row in rows:
        served = row.served_by or ("disabled" if not row.enabled else f"not a chat model ({row.kind})")
        if row.substituted:
            served += " *"
        context = f"{row.context_window:,}" if row.context_window else "-"
        typer.echo(
            f"{row.id:<20} {row.price_input_per_mtok:>7.2f} {row.price_output_per_mtok:>8.2f} {context:>8}  "
            f"{served:<44} {', '.join(row.capabilities)}"
        )
    if any(row.substituted for row in rows):
        typer.echo("* no endpoint configured: the local model serves this slot (see README, 'Configuration')")


@app.command()
def demo() -> None:
    """A short tour on the embedded defaults (local model, no keys, no servers)."""
    from majordome._demo import run

    run()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
