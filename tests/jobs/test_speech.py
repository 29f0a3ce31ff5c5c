"""The Azure Speech batch transcription client against a loopback stub of its REST API."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from majordome import ConfigurationError, DeadlineExceeded, ProviderHTTPError
from majordome._logging import redact
from majordome.jobs import SpeechBatchClient, TranscriptionFailed
from majordome.models.catalogue import Catalogue

KEY = "speech-key-0123456789abcdef"


@dataclass
class SpeechStub:
    """The v3.2 transcriptions API: ``outcome`` is the final status, reached after
    ``polls_before_done`` status checks (never when None). Result files are served on a
    second server standing for blob storage, so the key must not travel there."""

    outcome: str = "Succeeded"
    polls_before_done: int | None = 2
    requests: list[tuple[str, str, dict[str, str], Any]] = field(default_factory=list)
    blob_requests: list[dict[str, str]] = field(default_factory=list)
    base: str = ""
    blob_base: str = ""
    polls: int = 0

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/speechtotext/v3.2/transcriptions", self.create)
        app.router.add_get("/speechtotext/v3.2/transcriptions/t1", self.status)
        app.router.add_delete("/speechtotext/v3.2/transcriptions/t1", self.delete)
        app.router.add_get("/speechtotext/v3.2/transcriptions/t1/files", self.files)
        return app

    def blob_app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/results/t1.json", self.result)
        return app

    async def _record(self, request: web.Request) -> None:
        body = await request.json() if request.can_read_body else None
        self.requests.append((request.method, request.path, dict(request.headers), body))

    async def create(self, request: web.Request) -> web.Response:
        await self._record(request)
        if request.headers.get("Ocp-Apim-Subscription-Key") != KEY:
            return web.json_response({"error": {"code": "Unauthorized"}}, status=401)
        url = f"{self.base}/speechtotext/v3.2/transcriptions/t1"
        return web.json_response({"self": url, "status": "NotStarted"}, status=201, headers={"Location": url})

    async def status(self, request: web.Request) -> web.Response:
        await self._record(request)
        self.polls += 1
        done = self.polls_before_done is not None and self.polls > self.polls_before_done
        if not done:
            return web.json_response({"status": "Running"})
        body: dict[str, Any] = {"status": self.outcome}
        if self.outcome == "Succeeded":
            body["links"] = {"files": f"{self.base}/speechtotext/v3.2/transcriptions/t1/files"}
        else:
            body["properties"] = {"error": {"code": "InvalidData", "message": "The audio could not be decoded."}}
        return web.json_response(body)

    async def delete(self, request: web.Request) -> web.Response:
        await self._record(request)
        return web.Response(status=204)

    async def files(self, request: web.Request) -> web.Response:
        await self._record(request)
        return web.json_response(
            {
                "values": [
                    {"kind": "TranscriptionReport", "links": {"contentUrl": f"{self.blob_base}/results/report.json"}},
                    {"kind": "Transcription", "links": {"contentUrl": f"{self.blob_base}/results/t1.json?sv=sas"}},
                ]
            }
        )

    async def result(self, request: web.Request) -> web.Response:
        self.blob_requests.append(dict(request.headers))
        return web.Response(
            text=json.dumps(
                {
                    "durationInTicks": 123_000_000,
                    "combinedRecognizedPhrases": [
                        {"channel": 1, "display": "Second channel."},
                        {"channel": 0, "lexical": "hello everyone", "display": "Hello everyone, welcome back!"},
                    ],
                }
            ),
            content_type="application/octet-stream",
        )


async def _serve(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, f"http://127.0.0.1:{port}"


@pytest.fixture
async def stub() -> AsyncIterator[SpeechStub]:
    state = SpeechStub()
    runner, state.base = await _serve(state.app())
    blob_runner, state.blob_base = await _serve(state.blob_app())
    # The blob server answers on "localhost" so its origin differs from the endpoint's.
    state.blob_base = state.blob_base.replace("127.0.0.1", "localhost")
    yield state
    await runner.cleanup()
    await blob_runner.cleanup()


def client(stub: SpeechStub, **options: Any) -> SpeechBatchClient:
    return SpeechBatchClient(stub.base, KEY, poll_initial_s=0.01, poll_max_s=0.05, **options)


async def test_a_successful_transcription(stub: SpeechStub) -> None:
    async with client(stub) as speech:
        transcript = await speech.transcribe("https://blob.example/audio.wav?sas", deadline_s=10, language="fr")
    assert transcript.text == "Hello everyone, welcome back!\nSecond channel."
    assert transcript.locale == "fr-FR" and transcript.duration_s == pytest.approx(12.3)
    method, path, _headers, body = stub.requests[0]
    assert (method, path) == ("POST", "/speechtotext/v3.2/transcriptions")
    assert body["contentUrls"] == ["https://blob.example/audio.wav?sas"]
    assert body["locale"] == "fr-FR" and body["displayName"]
    assert all(h.get("Ocp-Apim-Subscription-Key") == KEY for _, _, h, _ in stub.requests)
    assert stub.polls == 3  # two "Running", then "Succeeded"
    assert [r[0] for r in stub.requests][-1] == "DELETE"  # cleaned up afterwards
    # The result file lives elsewhere (blob storage): fetched without the key.
    assert len(stub.blob_requests) == 1 and "Ocp-Apim-Subscription-Key" not in stub.blob_requests[0]


async def test_auto_language_asks_the_service_to_identify_it(stub: SpeechStub) -> None:
    async with client(stub) as speech:
        await speech.transcribe("https://blob.example/a.wav", deadline_s=10, language="auto")
    body = stub.requests[0][3]
    assert body["properties"]["languageIdentification"] == {"candidateLocales": ["en-US", "fr-FR"]}


async def test_a_failed_transcription_raises_with_the_service_code(stub: SpeechStub) -> None:
    stub.outcome = "Failed"
    async with client(stub) as speech:
        with pytest.raises(TranscriptionFailed) as caught:
            await speech.transcribe("https://blob.example/a.wav", deadline_s=10)
    assert caught.value.code == "InvalidData" and "could not be decoded" in str(caught.value)
    assert stub.base not in str(caught.value) and KEY not in str(caught.value)
    assert stub.requests[-1][0] == "DELETE"


async def test_a_transcription_still_running_at_the_deadline(stub: SpeechStub) -> None:
    stub.polls_before_done = None
    async with client(stub) as speech:
        with pytest.raises(DeadlineExceeded) as caught:
            await speech.transcribe("https://blob.example/a.wav", deadline_s=0.3)
    assert caught.value.deadline_s == 0.3
    assert stub.polls >= 3  # it polled, with growing waits, until the deadline


async def test_a_wrong_key_is_an_http_error_without_the_key(stub: SpeechStub) -> None:
    async with SpeechBatchClient(stub.base, "wrong-key-000000", poll_initial_s=0.01) as speech:
        with pytest.raises(ProviderHTTPError) as caught:
            await speech.transcribe("https://blob.example/a.wav", deadline_s=5)
    assert caught.value.status_code == 401 and caught.value.model == "azure-speech-batch"
    assert "wrong-key" not in str(caught.value) and stub.base not in str(caught.value)
    assert "wrong-key" not in repr(speech) and redact("k=wrong-key-000000") == "k=***"


def test_from_catalogue_reads_the_entry_variables() -> None:
    catalogue = Catalogue.load(None, {})
    assert SpeechBatchClient.from_catalogue(catalogue, {}) is None  # no endpoint: not configured
    env = {"AZURE_SPEECH_ENDPOINT": "https://speech.example", "AZURE_SPEECH_KEY": KEY}
    assert isinstance(SpeechBatchClient.from_catalogue(catalogue, env), SpeechBatchClient)
    with pytest.raises(ConfigurationError, match="AZURE_SPEECH_KEY"):
        SpeechBatchClient.from_catalogue(catalogue, {"AZURE_SPEECH_ENDPOINT": "https://speech.example"})
