"""video.analysis: Speech batch for audio URLs, the multimodal model for base64 audio and key
frames, one structured answer for scenes, objects, summary and sentiment."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from majordome import BadRequestError, Majordome, MajordomeConfig
from majordome.jobs import JobOutputError, SpeechBatchClient, VideoAnalysisInput, video_analysis
from majordome.models.messages import AudioPart, ImagePart
from majordome.testing import Reply, ScriptedModel

FRAME = "data:image/png;base64," + base64.b64encode(b"\x89PNG\r\n\x1a\nframe").decode()
AUDIO = base64.b64encode(b"RIFF....WAVEfmt ").decode()
ANALYSIS = json.dumps(
    {
        "scenes": ["A woman waves at the camera in a kitchen", "She holds up a cake"],
        "objects": ["cake", "kitchen counter"],
        "summary": "A cheerful baking video.",
        "sentiment": "positive",
    }
)


def majordome(*replies: str) -> tuple[Majordome, ScriptedModel]:
    model = ScriptedModel(*(Reply(r) for r in replies))
    return Majordome(MajordomeConfig(), providers={"*": model}, env={}), model


async def test_base64_audio_and_frames_go_to_the_multimodal_model() -> None:
    mj, model = majordome("Hi guys, today we bake a cake.", ANALYSIS)
    async with mj:
        out = await video_analysis(
            mj, VideoAnalysisInput(tenant="c1", audio_base64=AUDIO, audio_format="wav", key_frames=[FRAME, FRAME])
        )
    assert out.transcript == "Hi guys, today we bake a cake." and out.transcript_source == "model"
    assert out.scenes[1] == "She holds up a cake" and out.objects == ["cake", "kitchen counter"]
    assert (out.summary, out.sentiment, out.language) == ("A cheerful baking video.", "positive", "en")
    assert out.auto_send is False
    transcribe, analyse = model.calls
    assert any(isinstance(p, AudioPart) for p in transcribe.messages[-1].content)
    images = [p for p in analyse.messages[-1].content if isinstance(p, ImagePart)]
    assert len(images) == 2
    assert "Hi guys, today we bake a cake." in analyse.messages[-1].text
    assert analyse.json_mode is False  # the image reader has no JSON mode: the schema is in the prompt
    assert '"scenes"' in analyse.messages[0].text
    assert transcribe.context is not None and transcribe.context.deadline_s <= 120.0


async def test_frames_only_with_a_retry_on_a_bad_answer() -> None:
    mj, model = majordome('{"scenes": ["x"]}', ANALYSIS)
    async with mj:
        out = await video_analysis(mj, VideoAnalysisInput(tenant="c1", key_frames=[FRAME]))
    assert out.transcript == "" and out.transcript_source == "none" and out.sentiment == "positive"
    assert len(out.trace_ids) == 2 and "objects" in model.calls[1].messages[-1].text


async def test_an_unusable_answer_twice_raises() -> None:
    mj, _ = majordome("no", "still no")
    async with mj:
        with pytest.raises(JobOutputError):
            await video_analysis(mj, VideoAnalysisInput(tenant="c1", key_frames=[FRAME]))


async def test_an_audio_url_without_speech_is_a_bad_request() -> None:
    mj, model = majordome(ANALYSIS)
    async with mj:
        with pytest.raises(BadRequestError, match="AZURE_SPEECH_ENDPOINT"):
            await video_analysis(mj, VideoAnalysisInput(tenant="c1", audio_url="https://blob.example/a.wav"))
    assert model.calls == []


def test_inputs_are_validated() -> None:
    with pytest.raises(BadRequestError, match="nothing to analyse"):
        VideoAnalysisInput(tenant="c1")
    with pytest.raises(BadRequestError):
        VideoAnalysisInput(tenant="c1", key_frames=["/tmp/frame.png"])
    with pytest.raises(BadRequestError, match="not both"):
        VideoAnalysisInput(tenant="c1", audio_url="https://x.example/a.wav", audio_base64=AUDIO)


@pytest.fixture
async def speech_stub() -> AsyncIterator[str]:
    """A minimal Speech batch API that succeeds at once, its result on the same server."""

    async def create(request: web.Request) -> web.Response:
        body = await request.json()
        assert body["contentUrls"] == ["https://blob.example/clip.wav"]
        return web.json_response({"self": f"{base}/speechtotext/v3.2/transcriptions/t9"}, status=201)

    async def status(request: web.Request) -> web.Response:
        return web.json_response({"status": "Succeeded", "links": {"files": f"{base}/files"}})

    async def files(request: web.Request) -> web.Response:
        return web.json_response({"values": [{"kind": "Transcription", "links": {"contentUrl": f"{base}/r.json"}}]})

    async def result(request: web.Request) -> web.Response:
        return web.json_response(
            {"combinedRecognizedPhrases": [{"channel": 0, "display": "Coucou tout le monde, on fait un gâteau !"}]}
        )

    async def delete(request: web.Request) -> web.Response:
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/speechtotext/v3.2/transcriptions", create)
    app.router.add_get("/speechtotext/v3.2/transcriptions/t9", status)
    app.router.add_delete("/speechtotext/v3.2/transcriptions/t9", delete)
    app.router.add_get("/files", files)
    app.router.add_get("/r.json", result)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    yield base
    await runner.cleanup()


async def test_an_audio_url_goes_to_speech_batch(speech_stub: str) -> None:
    mj, model = majordome(ANALYSIS)
    async with mj, SpeechBatchClient(speech_stub, "k-0123456789", poll_initial_s=0.01) as speech:
        out = await video_analysis(
            mj,
            VideoAnalysisInput(tenant="c1", audio_url="https://blob.example/clip.wav", key_frames=[FRAME]),
            speech=speech,
        )
    assert out.transcript == "Coucou tout le monde, on fait un gâteau !"
    assert out.transcript_source == "azure-speech-batch" and out.language == "fr"
    (analyse,) = model.calls  # no model call for the transcript
    assert "French" in analyse.messages[0].text
