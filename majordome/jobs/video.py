"""``video.analysis``: transcript, scenes, objects, summary and sentiment of a video, from its
audio and a few key frames, within the job's deadline (120 s by default)."""

from __future__ import annotations

import time
from typing import Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from majordome._client import Majordome
from majordome._errors import BadRequestError, DeadlineExceeded
from majordome._types import Request
from majordome._validation import ValidatedModel
from majordome.jobs._common import JobOutput, detect_language, language_hint
from majordome.jobs._structured import ask_structured, schema_instruction
from majordome.jobs.speech import SpeechBatchClient
from majordome.models.messages import AudioPart, ContentPart, ImagePart, Message, TextPart

__all__ = ["VideoAnalysisInput", "VideoAnalysisOutput", "video_analysis"]

JOB_TYPE = "video.analysis"
MAX_KEY_FRAMES = 16

Sentiment = Literal["positive", "neutral", "negative"]
AudioFormat = Literal["wav", "mp3", "flac", "ogg", "m4a", "webm"]


class VideoAnalysisInput(ValidatedModel):
    """A video to analyse: its audio (an URL the Speech service can read, or base64 data) and/or
    key frames (image URLs or ``data:`` URIs). ``language``: ``auto``, ``fr``, ``en`` or a locale."""

    tenant: str = Field(min_length=1, max_length=200)
    audio_url: str | None = None
    audio_base64: str | None = None
    audio_format: AudioFormat = "wav"
    key_frames: list[str] = Field(default_factory=list, max_length=MAX_KEY_FRAMES)
    language: str = "auto"

    @field_validator("key_frames")
    @classmethod
    def _frames_are_images(cls, frames: list[str]) -> list[str]:
        for frame in frames:
            ImagePart(url=frame)  # raises on anything but an http(s) URL or an image data URI
        return frames

    @model_validator(mode="after")
    def _has_something(self) -> VideoAnalysisInput:
        if self.audio_url and self.audio_base64:
            raise ValueError("give the audio as audio_url or as audio_base64, not both")
        if not (self.audio_url or self.audio_base64 or self.key_frames):
            raise ValueError("nothing to analyse: give audio and/or key frames")
        if self.audio_url is not None and not self.audio_url.startswith(("http://", "https://")):
            raise ValueError("audio_url must be an http(s) URL")
        if self.audio_base64 is not None:
            AudioPart(data=self.audio_base64, format=self.audio_format)
        return self


class _VideoAnswer(BaseModel):
    scenes: list[str]
    objects: list[str]
    summary: str = Field(min_length=1)
    sentiment: Sentiment


class VideoAnalysisOutput(JobOutput):
    """What is seen and said in the video, for the creator's team.

    ``transcript_source`` says what transcribed the audio: the Azure Speech batch service, the
    multimodal model (Phi-4-multimodal's audio input), or nothing (no audio given)."""

    transcript: str
    transcript_source: Literal["azure-speech-batch", "model", "none"]
    scenes: list[str]
    objects: list[str]
    summary: str
    sentiment: Sentiment
    language: str


_TRANSCRIBE = "Transcribe this audio verbatim, in its own language. Answer with the transcript only."

_ANALYSE = """You analyse a short video by a creator, from its key frames (in order) and its \
transcript. List the scenes (one short sentence each, in order), the notable objects, write a \
summary of two or three sentences and give the overall sentiment (positive, neutral or negative).
Write in {language}.
{schema}"""


class _Clock:
    def __init__(self, deadline_s: float) -> None:
        self.deadline_s = deadline_s
        self._end = time.monotonic() + deadline_s

    def remaining(self) -> float:
        left = self._end - time.monotonic()
        if left <= 0:
            raise DeadlineExceeded(self.deadline_s)
        return left


async def video_analysis(
    mj: Majordome, data: VideoAnalysisInput, *, speech: SpeechBatchClient | None = None
) -> VideoAnalysisOutput:
    """Transcribe the audio, then read the key frames with the transcript for scenes, objects, a
    summary and a sentiment, all within the ``video.analysis`` deadline.

    The audio goes to ``speech`` (Azure Speech batch transcription, see
    :meth:`SpeechBatchClient.from_catalogue`) when it is given as ``audio_url``; audio given as
    base64 goes to a model with audio input (Phi-4-multimodal) through ``mj``, as batch
    transcription only reads URLs. An ``audio_url`` with no Speech client is a
    :class:`~majordome.BadRequestError`. Key frames need a model that reads images
    (Phi-4-multimodal); the router picks it from the images. An unusable answer, twice, raises
    :class:`~majordome.jobs.JobOutputError`; the deadline passing raises
    :class:`~majordome.DeadlineExceeded`.
    """
    clock = _Clock(mj.config.deadline_for(JOB_TYPE))
    transcript = ""
    source: Literal["azure-speech-batch", "model", "none"] = "none"
    if data.audio_url is not None:
        if speech is None:
            raise BadRequestError(
                "audio_url needs the Azure Speech batch endpoint (AZURE_SPEECH_ENDPOINT and AZURE_SPEECH_KEY); "
                "send the audio as audio_base64 instead"
            )
        result = await speech.transcribe(
            data.audio_url,
            deadline_s=clock.remaining(),
            language=data.language,
            display_name=f"{JOB_TYPE} {data.tenant}",
        )
        transcript, source = result.text, "azure-speech-batch"
    elif data.audio_base64 is not None:
        answer = await mj.ask(
            Request(
                messages=[
                    Message(
                        role="user",
                        content=[
                            TextPart(text=_TRANSCRIBE),
                            AudioPart(data=data.audio_base64, format=data.audio_format),
                        ],
                    )
                ],
                tenant=data.tenant,
                job_type=JOB_TYPE,
                intent="transcription",
                deadline_s=clock.remaining(),
                ground=False,
            )
        )
        transcript, source = answer.text.strip(), "model"

    language = detect_language(transcript, data.language) if transcript else data.language.lower()
    language = language.split("-")[0]  # a locale (fr-FR) names its language first
    if language in ("auto", "other"):
        language = "en"
    parts: list[ContentPart] = [TextPart(text=f"Transcript:\n{transcript}" if transcript else "No transcript.")]
    parts.extend(ImagePart(url=frame) for frame in data.key_frames)
    system = _ANALYSE.format(
        language={"fr": "French", "en": "English"}.get(language, language), schema=schema_instruction(_VideoAnswer)
    )
    request = Request(
        messages=[Message(role="system", content=system), Message(role="user", content=parts)],
        tenant=data.tenant,
        job_type=JOB_TYPE,
        intent="vision" if data.key_frames else None,
        language=language_hint(language),
        # The one model reading images (Phi-4-multimodal) has no JSON mode: the schema in the
        # prompt and the validation with one retry carry the structure instead.
        json_mode=not data.key_frames,
        deadline_s=clock.remaining(),
        ground=False,
    )
    structured = await ask_structured(mj, request, _VideoAnswer)
    value = structured.value
    return VideoAnalysisOutput(
        transcript=transcript,
        transcript_source=source,
        scenes=value.scenes,
        objects=value.objects,
        summary=value.summary,
        sentiment=value.sentiment,
        language=language,
        trace_id=structured.answer.trace_id,
        trace_ids=[a.trace_id for a in structured.answers],
    )
