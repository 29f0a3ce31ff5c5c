"""A client for Azure AI Speech **batch transcription** (REST API v3.2).

A transcription is created from audio URLs (``POST {endpoint}/speechtotext/v3.2/transcriptions``),
its status polled until ``Succeeded`` or ``Failed`` with a growing interval bounded by the caller's
deadline, then its files listed and the transcription JSON's ``combinedRecognizedPhrases`` read.
The transcription is deleted afterwards (best effort), as the service keeps it otherwise.

The key travels in the ``Ocp-Apim-Subscription-Key`` header, and only to the configured endpoint's
origin: the result files are SAS URLs on blob storage and are fetched without it. Error messages
name the step and the status, never the endpoint or the key (both are registered with the log
redaction). HTTP failures become :class:`~majordome.ProviderHTTPError` (429:
:class:`~majordome.ProviderRateLimited`), transport failures
:class:`~majordome.ProviderConnectionError` / :class:`~majordome.ProviderTimeout`, unexpected
answers :class:`~majordome.ProviderResponseError`, a ``Failed`` transcription
:class:`TranscriptionFailed`, and a transcription still running at the deadline
:class:`~majordome.DeadlineExceeded`.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from majordome._errors import (
    ConfigurationError,
    DeadlineExceeded,
    ProviderConnectionError,
    ProviderError,
    ProviderHTTPError,
    ProviderRateLimited,
    ProviderResponseError,
    ProviderTimeout,
)
from majordome._logging import get_logger, register_endpoint, register_secret
from majordome.models.catalogue import Catalogue

__all__ = ["SpeechBatchClient", "Transcript", "TranscriptionFailed", "speech_locale"]

MODEL_ID = "azure-speech-batch"
_KEY_HEADER = "Ocp-Apim-Subscription-Key"
_LOCALES = {"fr": "fr-FR", "en": "en-US"}
_MAX_FILE_PAGES = 20
_log = get_logger("majordome.jobs.speech")


class TranscriptionFailed(ProviderError):
    """The service ran the transcription and reported ``Failed``; ``code`` is its error code."""

    def __init__(self, message: str, *, code: str = "", deployment: str = "") -> None:
        self.code = code
        super().__init__(message, model=MODEL_ID, deployment=deployment)


@dataclass(frozen=True, slots=True)
class Transcript:
    """The text of a transcription (channels joined by new lines), each channel's text, the
    locale asked for and the audio's duration when the service said."""

    text: str
    channels: tuple[str, ...]
    locale: str
    duration_s: float | None = None


def speech_locale(language: str | None) -> str | None:
    """The Speech locale for a language (``fr`` → ``fr-FR``; a locale is kept); None for
    ``auto``/unknown, when the service should identify the language itself."""
    if not language or language in ("auto", "other"):
        return None
    if "-" in language:
        return language
    return _LOCALES.get(language.lower())


class SpeechBatchClient:
    """Azure Speech batch transcription over REST. Use ``async with`` or call :meth:`aclose`.

    ``poll_initial_s`` is the first wait between status checks; each next wait is 1.5 times
    longer, up to ``poll_max_s``, and never past the deadline.
    """

    def __init__(
        self,
        endpoint: str,
        key: str,
        *,
        api_version: str = "v3.2",
        deployment: str = "speech-batch",
        poll_initial_s: float = 2.0,
        poll_max_s: float = 30.0,
        request_timeout_s: float = 30.0,
        delete_after: bool = True,
    ) -> None:
        if not endpoint.startswith(("http://", "https://")):
            raise ConfigurationError("the Speech endpoint must be an http(s) URL")
        if not key:
            raise ConfigurationError("the Speech key is empty")
        register_endpoint(endpoint)
        register_secret(key)
        self._endpoint = endpoint.rstrip("/")
        self._origin = _origin(endpoint)
        self._key = key
        self._base = f"{self._endpoint}/speechtotext/{api_version}"
        self.deployment = deployment
        self.poll_initial_s = poll_initial_s
        self.poll_max_s = poll_max_s
        self._timeout = aiohttp.ClientTimeout(total=request_timeout_s)
        self.delete_after = delete_after
        self._session: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:  # never the endpoint or the key
        return f"SpeechBatchClient(deployment={self.deployment!r})"

    @classmethod
    def from_catalogue(
        cls, catalogue: Catalogue, env: Mapping[str, str] | None = None, **options: Any
    ) -> SpeechBatchClient | None:
        """The client for the catalogue's ``azure-speech-batch`` entry, its endpoint and key read
        from ``env`` (``os.environ`` by default) through the entry's ``endpoint_env`` and
        ``api_key_env``; None when the entry is absent, disabled or has no endpoint. An endpoint
        without a key is a :class:`~majordome.ConfigurationError` naming the variable."""
        env = os.environ if env is None else env
        spec = catalogue.get(MODEL_ID)
        if spec is None or not spec.enabled:
            return None
        endpoint = spec.endpoint or (env.get(spec.endpoint_env) if spec.endpoint_env else None)
        if not endpoint:
            return None
        key = env.get(spec.api_key_env) if spec.api_key_env else None
        if not key:
            raise ConfigurationError(
                f"model {MODEL_ID}: an endpoint but no key; set {spec.api_key_env or f'models.{MODEL_ID}.api_key_env'}"
            )
        return cls(endpoint, key, deployment=spec.deployment, **options)

    async def __aenter__(self) -> SpeechBatchClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session

    async def transcribe(
        self,
        content_url: str,
        *,
        deadline_s: float,
        language: str | None = None,
        display_name: str = "majordome transcription",
    ) -> Transcript:
        """Transcribe the audio at ``content_url`` (which the service must be able to read: a
        public or SAS URL) within ``deadline_s`` seconds. ``language``: ``fr``, ``en``, a locale,
        or None/``auto`` to let the service identify French or English."""
        deadline = time.monotonic() + deadline_s
        locale = speech_locale(language)
        body: dict[str, Any] = {
            "contentUrls": [content_url],
            "locale": locale or "en-US",
            "displayName": display_name,
            "properties": {"wordLevelTimestampsEnabled": False, "punctuationMode": "DictatedAndAutomatic"},
        }
        if locale is None:
            body["properties"]["languageIdentification"] = {"candidateLocales": ["en-US", "fr-FR"]}
        created = await self._json("POST", f"{self._base}/transcriptions", "create transcription", json=body)
        status_url = _field(created, "self", "create transcription")
        _log.info("speech_transcription_created", deployment=self.deployment)
        try:
            status = await self._wait(status_url, deadline, deadline_s)
            return await self._result(status, body["locale"])
        finally:
            if self.delete_after:
                await self._delete(status_url)

    async def _wait(self, status_url: str, deadline: float, deadline_s: float) -> dict[str, Any]:
        interval = self.poll_initial_s
        while True:
            try:
                status = await self._json("GET", status_url, "transcription status")
            except ProviderError as exc:
                if not _transient(exc):
                    raise
                status = {"status": "Retrying"}
            state = status.get("status")
            if state == "Succeeded":
                return status
            if state == "Failed":
                code, detail = _failure(status)
                _log.info("speech_transcription_failed", deployment=self.deployment, code=code)
                raise TranscriptionFailed(
                    f"transcription failed: {code or 'no error code'}{': ' + detail if detail else ''}",
                    code=code,
                    deployment=self.deployment,
                )
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise DeadlineExceeded(deadline_s)
            await asyncio.sleep(min(interval, remaining))
            interval = min(interval * 1.5, self.poll_max_s)

    async def _result(self, status: Mapping[str, Any], locale: str) -> Transcript:
        links = status.get("links")
        files_url = links.get("files") if isinstance(links, dict) else None
        if not isinstance(files_url, str):
            raise ProviderResponseError(
                "transcription status without links.files", model=MODEL_ID, deployment=self.deployment
            )
        content_urls: list[str] = []
        page: str | None = files_url
        for _ in range(_MAX_FILE_PAGES):
            if page is None:
                break
            listing = await self._json("GET", page, "transcription files")
            values = listing.get("values")
            if not isinstance(values, list):
                raise ProviderResponseError("files list without values", model=MODEL_ID, deployment=self.deployment)
            for item in values:
                if isinstance(item, dict) and item.get("kind") == "Transcription":
                    url = item.get("links", {}).get("contentUrl") if isinstance(item.get("links"), dict) else None
                    if isinstance(url, str):
                        content_urls.append(url)
            next_link = listing.get("@nextLink")
            page = next_link if isinstance(next_link, str) else None
        if not content_urls:
            raise ProviderResponseError(
                "the transcription has no result file", model=MODEL_ID, deployment=self.deployment
            )
        channels: list[str] = []
        duration: float | None = None
        for url in content_urls:
            result = await self._json("GET", url, "transcription result")
            phrases = result.get("combinedRecognizedPhrases")
            if not isinstance(phrases, list):
                raise ProviderResponseError(
                    "result without combinedRecognizedPhrases", model=MODEL_ID, deployment=self.deployment
                )
            ordered = sorted((p for p in phrases if isinstance(p, dict)), key=lambda p: int(p.get("channel", 0)))
            channels.extend(str(p.get("display", "")).strip() for p in ordered if str(p.get("display", "")).strip())
            duration = _duration_s(result) if duration is None else duration
        return Transcript(text="\n".join(channels), channels=tuple(channels), locale=locale, duration_s=duration)

    async def _delete(self, url: str) -> None:
        try:
            async with self._http().delete(url, headers=self._headers(url)):
                pass
        except (aiohttp.ClientError, TimeoutError):
            _log.info("speech_transcription_delete_failed", deployment=self.deployment)

    def _headers(self, url: str) -> dict[str, str]:
        # The key goes to the Speech endpoint only, never to blob storage or a redirect elsewhere.
        return {_KEY_HEADER: self._key} if _origin(url) == self._origin else {}

    async def _json(self, method: str, url: str, step: str, json: Any = None) -> dict[str, Any]:
        try:
            async with self._http().request(
                method, url, json=json, headers=self._headers(url), allow_redirects=False
            ) as response:
                if response.status == 429:
                    raise ProviderRateLimited(
                        f"{step}: HTTP 429",
                        retry_after=_retry_after(response.headers.get("Retry-After")),
                        model=MODEL_ID,
                        deployment=self.deployment,
                    )
                if not 200 <= response.status < 300:
                    raise ProviderHTTPError(
                        f"{step}: HTTP {response.status}",
                        status_code=response.status,
                        model=MODEL_ID,
                        deployment=self.deployment,
                    )
                try:
                    data = await response.json(content_type=None)
                except ValueError as exc:
                    raise ProviderResponseError(
                        f"{step}: not JSON", model=MODEL_ID, deployment=self.deployment
                    ) from exc
        except TimeoutError as exc:
            raise ProviderTimeout(f"{step}: timed out", model=MODEL_ID, deployment=self.deployment) from exc
        except aiohttp.ClientError as exc:
            raise ProviderConnectionError(
                f"{step}: {type(exc).__name__}", model=MODEL_ID, deployment=self.deployment
            ) from exc
        if not isinstance(data, dict):
            raise ProviderResponseError(f"{step}: not a JSON object", model=MODEL_ID, deployment=self.deployment)
        return data


def _failure(status: Mapping[str, Any]) -> tuple[str, str]:
    """The error code and message of a failed transcription (``properties.error``)."""
    properties = status.get("properties")
    error = properties.get("error") if isinstance(properties, dict) else None
    if not isinstance(error, dict):
        return "", ""
    return str(error.get("code", "")), str(error.get("message", ""))[:300]


def _transient(exc: ProviderError) -> bool:
    return exc.retryable and not isinstance(exc, ProviderResponseError)


def _field(data: Mapping[str, Any], name: str, step: str) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not value:
        raise ProviderResponseError(f"{step}: no {name!r} in the answer", model=MODEL_ID)
    return value


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme.lower(), parts.netloc.lower()


def _retry_after(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _duration_s(result: Mapping[str, Any]) -> float | None:
    if isinstance(result.get("durationMilliseconds"), int | float):
        return float(result["durationMilliseconds"]) / 1000
    if isinstance(result.get("durationInTicks"), int | float):
        return float(result["durationInTicks"]) / 1e7  # ticks of 100 ns
    return None
