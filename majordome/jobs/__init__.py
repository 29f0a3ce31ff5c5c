"""One helper per platform job type, each a draft for a human: nothing here sends to a fan.

- :func:`chat_suggest` (``chat.suggest``): three reply drafts for a fan's message, guardrailed.
- :func:`content_suggest` (``content.suggest``): post / message / PPV / story ideas by tone.
- :func:`content_analyze` (``content.analyze``): engagement score, sentiment, recommendations.
- :func:`video_analysis` (``video.analysis``): transcript, scenes, objects, summary, sentiment.

Each takes a :class:`~majordome.Majordome` and a validated input model and returns an output
model whose ``auto_send`` is always False. Structured answers go through
:func:`ask_structured` (JSON validated by pydantic, one retry carrying the error, then
:class:`JobOutputError`).
"""

from __future__ import annotations

from majordome.jobs._common import JobOutput
from majordome.jobs._structured import JobOutputError, Structured, ask_structured, schema_instruction
from majordome.jobs.chat import ChatSuggestInput, ChatSuggestOutput, ChatTurn, Draft, chat_suggest
from majordome.jobs.content import (
    ContentAnalyzeInput,
    ContentAnalyzeOutput,
    ContentSuggestInput,
    ContentSuggestOutput,
    Idea,
    content_analyze,
    content_suggest,
)
from majordome.jobs.speech import SpeechBatchClient, Transcript, TranscriptionFailed
from majordome.jobs.video import VideoAnalysisInput, VideoAnalysisOutput, video_analysis

__all__ = [
    "ChatSuggestInput",
    "ChatSuggestOutput",
    "ChatTurn",
    "ContentAnalyzeInput",
    "ContentAnalyzeOutput",
    "ContentSuggestInput",
    "ContentSuggestOutput",
    "Draft",
    "Idea",
    "JobOutput",
    "JobOutputError",
    "SpeechBatchClient",
    "Structured",
    "Transcript",
    "TranscriptionFailed",
    "VideoAnalysisInput",
    "VideoAnalysisOutput",
    "ask_structured",
    "chat_suggest",
    "content_analyze",
    "content_suggest",
    "schema_instruction",
    "video_analysis",
]
