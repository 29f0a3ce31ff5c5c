"""The ``majordome`` command: ask a question, list the catalogue, run the demo tour."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
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
def route(
    prompt: Annotated[str, typer.Argument(help="The user message to route.")],
    tenant: Annotated[str, typer.Option(help="Tenant (creator) id.")] = "cli",
    job_type: Annotated[str | None, typer.Option(help="Job type, e.g. chat.suggest.")] = None,
    intent: Annotated[str | None, typer.Option(help="Intent hint.")] = None,
    language: Annotated[str | None, typer.Option(help="Language hint.")] = None,
    tier: Annotated[str | None, typer.Option(help="Tier hint (free, standard, premium).")] = None,
    explain_it: Annotated[bool, typer.Option("--explain", help="Print the scored candidates as a table.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the decision as JSON.")] = False,
) -> None:
    """Classify and route a message without calling any model."""
    from majordome.router.router import explain

    request = {
        "messages": [{"role": "user", "content": prompt}],
        "tenant": tenant,
        "job_type": job_type,
        "intent": intent,
        "language": language,
        "tier": tier,
    }
    with _reported(), Majordome.from_env() as mj:
        decision = mj.route(request)
    if as_json:
        typer.echo(json.dumps(decision.to_dict(), indent=2, ensure_ascii=False))
    elif explain_it:
        typer.echo(explain(decision))
    else:
        typer.echo(
            f"{decision.chosen}  (intent {decision.intent} {decision.intent_confidence or 0:.2f}, "
            f"language {decision.language})\nwhy: {decision.reason}"
        )


router_app = typer.Typer(no_args_is_help=True, help="Train and evaluate the router's models.")
app.add_typer(router_app, name="router")


@router_app.command("train")
def router_train(
    outcomes: Annotated[Path, typer.Argument(help="Outcomes (long format CSV or JSONL).")],
    out: Annotated[Path, typer.Option(help="Where to save the model (.npz).")],
    kind: Annotated[str, typer.Option(help="prior, knn or linear.")] = "knn",
) -> None:
    """Train a quality model from recorded outcomes; use it with MAJORDOME_QUALITY_MODEL."""
    from majordome.router.outcomes import OutcomeTable, read_outcomes
    from majordome.router.quality import load_quality
    from majordome.router.router import Router

    with _reported():
        table = OutcomeTable.from_outcomes(read_outcomes(outcomes))
        model = Router().train_quality(kind, table)
        model.save(out)
        load_quality(out)  # it must load back
    typer.echo(f"trained a {kind} quality model on {len(table.prompts)} prompts x {len(table.models)} models -> {out}")


@router_app.command("evaluate-intents")
def router_evaluate_intents(
    utterances: Annotated[Path, typer.Argument(help='JSONL lines {"text", "intent", "language"}.')],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Per-intent and per-language scores of the intent classifier on labelled utterances."""
    from majordome.router.intents import load_utterances
    from majordome.router.router import default_components

    with _reported():
        report = default_components().classifier.evaluate(load_utterances(utterances))
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "accuracy": report.accuracy,
                    "macro_f1": report.macro_f1,
                    "per_intent": {k: asdict(v) for k, v in report.per_intent.items()},
                    "per_language": report.per_language,
                },
                indent=2,
            )
        )
        return
    typer.echo(report.table())
    typer.echo(f"accuracy {report.accuracy:.3f}, macro-F1 {report.macro_f1:.3f}")


@app.command()
def bench(
    dataset: Annotated[
        list[str] | None, typer.Option("--dataset", "-d", help="A dataset name (see --all) or an outcomes file.")
    ] = None,
    run_all: Annotated[bool, typer.Option("--all", help="Every public dataset of the suite.")] = False,
    data: Annotated[Path | None, typer.Option(help="Data folder (default: MAJORDOME_DATA_DIR).")] = None,
    out: Annotated[Path, typer.Option(help="Where reports and plots go.")] = Path("bench-reports"),
    seed: Annotated[int, typer.Option(help="Seed of splits, bootstrap and online order.")] = 0,
    folds: Annotated[int, typer.Option(help="k of k-fold (datasets without their own split).")] = 5,
    routers: Annotated[str | None, typer.Option(help="Comma-separated routers (default: all).")] = None,
    prices: Annotated[Path | None, typer.Option(help="Price file for models outside the catalogue.")] = None,
    bootstrap: Annotated[int, typer.Option(help="Bootstrap resamples for the intervals.")] = 200,
    online: Annotated[bool, typer.Option(help="Simulate the online learner.")] = True,
) -> None:
    """Which routing policy gives the most quality per dollar, and how far from the oracle?"""
    import time

    from majordome.bench.report import markdown
    from majordome.bench.run import SUITE, run

    names = list(SUITE) if run_all else list(dataset or [])
    if not names:
        typer.secho("give --dataset NAME (or several) or --all; datasets: " + ", ".join(SUITE), err=True)
        raise typer.Exit(2)
    started = time.monotonic()
    sections = []
    with _reported():
        for name in names:
            typer.secho(f"== {name}", bold=True, err=True)
            result = run(
                name,
                data_dir=data,
                out=out,
                seed=seed,
                folds=folds,
                routers=routers.split(",") if routers else None,
                prices=prices,
                bootstrap=bootstrap,
                online=online,
                progress=lambda message: typer.secho(f"   {message}", dim=True, err=True),
                bars=sys.stderr.isatty(),
            )
            section = markdown(result)
            sections.append(section)
            typer.echo(section)
    if len(names) > 1:
        out.mkdir(parents=True, exist_ok=True)
        (out / "README.md").write_text("# Routing benchmarks\n\n" + "\n".join(sections), "utf-8")
    typer.secho(f"{len(names)} dataset(s) in {time.monotonic() - started:.1f} s; reports in {out}/", err=True)


kb_app = typer.Typer(no_args_is_help=True, help="The knowledge base: ingest, search, delete, evaluate.")
app.add_typer(kb_app, name="kb")
_KB_PATH = typer.Option(help="Embedded store folder (default: MAJORDOME_KB_PATH, else the cache).")
_KB_EMBEDDER = typer.Option(help="minilm (default), e5, or a sentence-transformers model (MAJORDOME_KB_EMBEDDER).")


def _open_kb(path: Path | None, embedder: str | None) -> Any:
    from majordome.knowledge import KnowledgeBase, default_embedder

    return KnowledgeBase.open(path, embedder=default_embedder(embedder))


@kb_app.command("ingest")
def kb_ingest(
    source: Annotated[Path, typer.Argument(help="A file or folder (txt, md, json, jsonl, csv, or BEIR corpus).")],
    tenant: Annotated[str, typer.Option(help="The creator id that owns these items, or 'shared'.")],
    kind: Annotated[str | None, typer.Option(help="CHAT_CLOSER_PLAY, VIRAL_STRUCTURE, ... or a free kind.")] = None,
    language: Annotated[str | None, typer.Option(help="fr or en (detected when absent).")] = None,
    niche: Annotated[str | None, typer.Option()] = None,
    platform: Annotated[str | None, typer.Option()] = None,
    path: Annotated[Path | None, _KB_PATH] = None,
    embedder: Annotated[str | None, _KB_EMBEDDER] = None,
) -> None:
    """Chunk, embed and store documents for a tenant; unreadable files are listed, not fatal."""
    with _reported(), _open_kb(path, embedder) as kb:
        summary = kb.ingest(
            source,
            tenant=tenant,
            kind=kind,
            language=language,
            niche=niche,
            platform=platform,
            progress=sys.stderr.isatty(),
        )
    typer.echo(summary.summary())
    for failure in summary.failed:
        typer.secho(f"  failed {failure}", err=True)


@kb_app.command("search")
def kb_search(
    query: Annotated[str, typer.Argument(help="What to look for.")],
    tenant: Annotated[str, typer.Option(help="Whose knowledge (its own items and shared ones).")],
    k: Annotated[int, typer.Option("-k", help="How many chunks.")] = 5,
    mode: Annotated[str, typer.Option(help="hybrid, dense or sparse.")] = "hybrid",
    kind: Annotated[list[str] | None, typer.Option(help="Only these kinds (repeatable).")] = None,
    language: Annotated[list[str] | None, typer.Option(help="Only these languages (repeatable).")] = None,
    diversity: Annotated[float, typer.Option(help="0 to 1: pick the chunks by maximal marginal relevance.")] = 0.0,
    boost: Annotated[float, typer.Option(help="Weight of the performance boost (conversions, revenue, score).")] = 0.0,
    explain: Annotated[bool, typer.Option(help="Show scores, ids, kinds, languages and headings.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    path: Annotated[Path | None, _KB_PATH] = None,
    embedder: Annotated[str | None, _KB_EMBEDDER] = None,
) -> None:
    """Retrieve what a tenant's grounded answer would see."""
    from majordome.knowledge import SearchFilters

    with _reported(), _open_kb(path, embedder) as kb:
        hits = kb.search(
            query,
            tenant=tenant,
            k=k,
            mode=mode,
            filters=SearchFilters(kind=kind or None, language=language or None),
            diversity=diversity,
            boost=boost,
        )
    if as_json:
        rows = [{"citation": h.citation, "score": h.score, "mode": h.mode, **h.chunk.payload()} for h in hits]
        typer.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    if not hits:
        typer.echo("no match")
    for rank, hit in enumerate(hits, 1):
        chunk = hit.chunk
        typer.secho(f"{rank}. [{hit.citation}] {chunk.title or chunk.source or ''}", bold=True)
        if explain:
            heading = " > ".join(chunk.heading_path)
            typer.echo(
                f"   score {hit.score:.4f} ({hit.mode}) · tenant {chunk.tenant} · kind {chunk.kind} · "
                f"language {chunk.language} · {chunk.token_count} tokens" + (f" · {heading}" if heading else "")
            )
        typer.echo("   " + chunk.text[:300].replace("\n", " ") + ("…" if len(chunk.text) > 300 else ""))


@kb_app.command("delete")
def kb_delete(
    tenant: Annotated[str, typer.Option(help="Whose items.")],
    doc_id: Annotated[
        str | None, typer.Option("--doc", help="One document id (default: every item of the tenant).")
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    path: Annotated[Path | None, _KB_PATH] = None,
    embedder: Annotated[str | None, _KB_EMBEDDER] = None,
) -> None:
    """Delete one document, or every item of a tenant."""
    what = f"document {doc_id} of {tenant}" if doc_id else f"every item of {tenant}"
    if not yes and not typer.confirm(f"Delete {what}?"):
        raise typer.Exit(1)
    with _reported(), _open_kb(path, embedder) as kb:
        before = kb.store.count(tenant)
        kb.delete(tenant, doc_id)
        after = kb.store.count(tenant)
    typer.echo(f"deleted {before - after} chunks ({what})")


@kb_app.command("eval")
def kb_eval(
    dataset: Annotated[Path, typer.Argument(help="A BEIR folder: corpus.jsonl, queries.jsonl, qrels/test.tsv.")],
    mode: Annotated[list[str] | None, typer.Option(help="dense, sparse, hybrid (repeatable; default all).")] = None,
    max_queries: Annotated[int | None, typer.Option(help="Only the first N judged queries.")] = None,
    embedder: Annotated[str | None, _KB_EMBEDDER] = None,
) -> None:
    """nDCG@10 and Recall@10 through the real ingest and search path (a fresh temporary store)."""
    from majordome.knowledge import default_embedder
    from majordome.knowledge.evaluate import evaluate_beir

    with _reported():
        results, ingest = evaluate_beir(
            dataset,
            modes=mode or ["dense", "sparse", "hybrid"],  # type: ignore[arg-type]
            embedder=default_embedder(embedder),
            max_queries=max_queries,
            progress=lambda message: typer.secho(f"   {message}", dim=True, err=True),
        )
    typer.echo(
        f"{ingest['documents']:.0f} documents, {ingest['chunks']:.0f} chunks, {ingest['chunks_per_s']:.1f} chunks/s"
    )
    typer.echo("| mode | queries | nDCG@10 | Recall@10 | query p50 ms |\n|---|---|---|---|---|")
    for r in results:
        typer.echo(f"| {r.mode} | {r.queries} | {r.ndcg10:.4f} | {r.recall10:.4f} | {r.query_p50_ms:.1f} |")


@app.command()
def warmup() -> None:
    """Build the router's cached artefacts now (static embedding table, intent classifier)."""
    import time

    from majordome.router.router import default_components

    started = time.monotonic()
    with _reported():
        components = default_components()
    typer.echo(
        f"router ready in {time.monotonic() - started:.1f} s: embedder "
        f"{components.embedder.name if components.embedder else 'none'}, "
        f"{len(components.classifier.intents)} intents, threshold {components.classifier.threshold:.2f}"
    )


@app.command()
def demo() -> None:
    """A short tour on the embedded defaults (local model, no keys, no servers)."""
    from majordome._demo import run

    run()


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    keys: Annotated[
        Path | None,
        typer.Option(help="API keys: JSON or TOML {tenant: [sha256 hex of each key]} (`printf %s KEY | sha256sum`)."),
    ] = None,
    requests_per_minute: Annotated[
        int, typer.Option(help="Per-tenant rate limit (shared through MAJORDOME_REDIS_URL).")
    ] = 600,
    max_body_bytes: Annotated[int, typer.Option(help="Largest request body.")] = 1_000_000,
    verbose: Annotated[bool, typer.Option(help="Log majordome's events to stderr.")] = False,
) -> None:
    """Serve an OpenAI-compatible API (/v1/chat/completions, /v1/models, /v1/feedback) until Ctrl-C."""
    _verbose(verbose)
    with _reported():
        from majordome.server import ApiKeys, ServerLimits
        from majordome.server import serve as run_server

        if keys is None:
            raise ConfigurationError("majordome serve needs --keys FILE: every request must carry a tenant's API key")
        api_keys = ApiKeys.load(keys)
        mj = Majordome.from_env()
        limits = ServerLimits(
            max_body_bytes=max_body_bytes, requests_per_minute=requests_per_minute, redis_url=mj.config.redis_url
        )
        run_server(mj, api_keys, host=host, port=port, limits=limits)


feedback_app = typer.Typer(no_args_is_help=True, help="The feedback store: statistics, export, the learner's versions.")
app.add_typer(feedback_app, name="feedback")
_STORE = typer.Option("--store", help="SQLite file or PostgreSQL DSN (default: MAJORDOME_FEEDBACK_STORE).")


def _open_store(store: str | None) -> Any:
    from majordome.feedback.loop import open_store

    where = store or os.environ.get("MAJORDOME_FEEDBACK_STORE")
    if not where:
        raise ConfigurationError("no feedback store: pass --store or set MAJORDOME_FEEDBACK_STORE")
    return open_store(where)


def _window(since: str) -> tuple[Any, Any]:
    """``24h``, ``7d``, ``30m`` or an ISO date → (since, now), both UTC."""
    from datetime import UTC, datetime, timedelta

    now = datetime.now(UTC)
    text = since.strip().lower()
    units = {"m": "minutes", "h": "hours", "d": "days"}
    if text[-1:] in units and text[:-1].replace(".", "", 1).isdigit():
        return now - timedelta(**{units[text[-1]]: float(text[:-1])}), now
    try:
        start = datetime.fromisoformat(since)
    except ValueError:
        raise BadRequestError(f"--since {since!r}: expected e.g. 24h, 7d, 30m or an ISO date") from None
    return (start if start.tzinfo else start.replace(tzinfo=UTC)), now


@feedback_app.command("stats")
def feedback_stats(
    since: Annotated[str, typer.Option(help="Window: 24h, 7d, 30m or an ISO date.")] = "7d",
    tenant: Annotated[str | None, typer.Option(help="One tenant only.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    store: Annotated[str | None, _STORE] = None,
) -> None:
    """Per intent and model: calls, mean reward, cost, latency p50/p95, failure rate."""
    with _reported():
        start, end = _window(since)
        with _open_store(store) as opened:
            rows = opened.stats(start, end, tenant=tenant)
    if as_json:
        typer.echo(json.dumps([{**asdict(r), "failure_rate": r.failure_rate} for r in rows], indent=2))
        return
    if not rows:
        typer.echo("no calls in this window")
        return
    typer.echo(
        f"{'intent':<18} {'model':<18} {'calls':>6} {'reward':>7} {'n':>5} {'cost $':>10} "
        f"{'p50 s':>7} {'p95 s':>7} {'fail':>6}"
    )
    for r in rows:
        reward = f"{r.mean_reward:.3f}" if r.mean_reward is not None else "-"
        typer.echo(
            f"{(r.intent or '-'):<18} {r.model:<18} {r.calls:>6} {reward:>7} {r.rewarded:>5} "
            f"{r.total_cost_usd:>10.5f} {r.latency_p50_s:>7.2f} {r.latency_p95_s:>7.2f} {r.failure_rate:>6.1%}"
        )


@feedback_app.command("export")
def feedback_export(
    out: Annotated[Path, typer.Argument(help="Outcomes file to write (.csv or .jsonl), for `majordome bench`.")],
    since: Annotated[str | None, typer.Option(help="Only traces since: 24h, 7d or an ISO date.")] = None,
    store: Annotated[str | None, _STORE] = None,
) -> None:
    """Recorded answers with feedback, in the benchmark's long outcomes format."""
    import csv

    with _reported():
        start = _window(since)[0] if since else None
        with _open_store(store) as opened:
            rows = list(opened.outcomes(since=start))
        out.parent.mkdir(parents=True, exist_ok=True)
        if out.suffix == ".jsonl":
            out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
        else:
            columns = list(rows[0]) if rows else ["prompt_id", "prompt", "model", "score"]
            with out.open("w", encoding="utf-8", newline="") as handle:
                writer = csv.DictWriter(handle, fieldnames=columns)
                writer.writeheader()
                writer.writerows(rows)
    typer.echo(f"{len(rows)} outcomes written to {out}")


@feedback_app.command("learner")
def feedback_learner(
    rollback: Annotated[int | None, typer.Option(help="Make this saved version current again.")] = None,
    store: Annotated[str | None, _STORE] = None,
) -> None:
    """The online learner's saved versions (newest last); --rollback N restores one."""
    from majordome.feedback.learner import rollback_state

    with _reported(), _open_store(store) as opened:
        if rollback is not None:
            new = rollback_state(opened, rollback)
            typer.echo(f"version {rollback} is current again, saved as version {new}")
        for version, created, note in opened.learner_versions():
            typer.echo(f"{version:>6}  {created.isoformat(timespec='seconds')}  {note}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
