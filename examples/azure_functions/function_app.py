"""An Azure Functions worker (Python v2 programming model) running majordome's platform jobs.

One Service Bus queue trigger per job type; each hands the message to :func:`handlers.process`
and, when it returns, writes the result (succeeded, or failed permanently) to the results queue.
App settings (``local.settings.example.json`` lists them):

- ``SERVICEBUS_CONNECTION``: the Service Bus connection (a connection string, or
  ``SERVICEBUS_CONNECTION__fullyQualifiedNamespace`` for a managed identity);
- ``CHAT_SUGGEST_QUEUE``, ``CONTENT_SUGGEST_QUEUE``, ``CONTENT_ANALYZE_QUEUE``,
  ``VIDEO_ANALYSIS_QUEUE``, ``RESULTS_QUEUE``: the queue names;
- ``MAJORDOME_MAX_ATTEMPTS``: the attempt on which a transient failure is given up (default 5;
  keep the queues' ``MaxDeliveryCount`` above it);
- majordome's own settings (``MAJORDOME_*``, model endpoints and keys), read by
  :meth:`Majordome.from_env`.
"""

from __future__ import annotations

import atexit
import json
import os
import sys
import threading
from pathlib import Path

import azure.functions as func

# The Functions host runs from this folder; the line lets the app import when loaded from elsewhere (tests).
sys.path.insert(0, str(Path(__file__).resolve().parent))

import handlers

from majordome import Majordome

app = func.FunctionApp()

CONNECTION = "SERVICEBUS_CONNECTION"

_lock = threading.Lock()
_majordome: Majordome | None = None


def majordome() -> Majordome:
    """The worker process's one Majordome, created from the environment on first use and closed
    when the process exits."""
    global _majordome
    with _lock:
        if _majordome is None:
            _majordome = Majordome.from_env()
            atexit.register(_majordome.close)
        return _majordome


def _max_attempts() -> int:
    return int(os.environ.get("MAJORDOME_MAX_ATTEMPTS", handlers.DEFAULT_MAX_ATTEMPTS))


async def _run(msg: func.ServiceBusMessage, result: func.Out[str], job_type: str) -> None:
    outcome = await handlers.process(
        msg.get_body(),
        majordome(),
        queue_job_type=job_type,
        delivery_count=msg.delivery_count,
        max_attempts=_max_attempts(),
    )
    result.set(json.dumps(outcome))  # a transient failure raised above: nothing is written


@app.service_bus_queue_trigger(arg_name="msg", queue_name="%CHAT_SUGGEST_QUEUE%", connection=CONNECTION)
@app.service_bus_queue_output(arg_name="result", queue_name="%RESULTS_QUEUE%", connection=CONNECTION)
async def chat_suggest_job(msg: func.ServiceBusMessage, result: func.Out[str]) -> None:
    await _run(msg, result, "chat.suggest")


@app.service_bus_queue_trigger(arg_name="msg", queue_name="%CONTENT_SUGGEST_QUEUE%", connection=CONNECTION)
@app.service_bus_queue_output(arg_name="result", queue_name="%RESULTS_QUEUE%", connection=CONNECTION)
async def content_suggest_job(msg: func.ServiceBusMessage, result: func.Out[str]) -> None:
    await _run(msg, result, "content.suggest")


@app.service_bus_queue_trigger(arg_name="msg", queue_name="%CONTENT_ANALYZE_QUEUE%", connection=CONNECTION)
@app.service_bus_queue_output(arg_name="result", queue_name="%RESULTS_QUEUE%", connection=CONNECTION)
async def content_analyze_job(msg: func.ServiceBusMessage, result: func.Out[str]) -> None:
    await _run(msg, result, "content.analyze")


@app.service_bus_queue_trigger(arg_name="msg", queue_name="%VIDEO_ANALYSIS_QUEUE%", connection=CONNECTION)
@app.service_bus_queue_output(arg_name="result", queue_name="%RESULTS_QUEUE%", connection=CONNECTION)
async def video_analysis_job(msg: func.ServiceBusMessage, result: func.Out[str]) -> None:
    await _run(msg, result, "video.analysis")
