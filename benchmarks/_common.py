"""What the benchmark programs share: percentiles, tables, JSON results, the machine, stub processes."""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import platform
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"

# Every chat slot of the packaged catalogue; a benchmark enables the ones it points at a stub.
CHAT_SLOTS = ("deepseek-v3", "deepseek-r1", "phi-4-multimodal", "phi-4-mini", "llama-3.3-70b", "mistral-large")
NON_CHAT_SLOTS = ("azure-speech-batch",)


# -- numbers ---------------------------------------------------------------------------------


def percentile(ordered: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of already sorted values, linearly interpolated."""
    if not ordered:
        return math.nan
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summary_ms(seconds: Sequence[float]) -> dict[str, float]:
    """p50/p90/p99/p99.9/max/mean of durations given in seconds, in milliseconds."""
    ordered = sorted(seconds)
    if not ordered:
        return {}
    return {
        "n": len(ordered),
        "p50_ms": percentile(ordered, 50) * 1000,
        "p90_ms": percentile(ordered, 90) * 1000,
        "p99_ms": percentile(ordered, 99) * 1000,
        "p99_9_ms": percentile(ordered, 99.9) * 1000,
        "max_ms": ordered[-1] * 1000,
        "mean_ms": sum(ordered) / len(ordered) * 1000,
    }


def fmt(value: Any, digits: int = 3) -> str:
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def print_table(title: str, headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """A plain-text table with right-aligned numbers (also valid Markdown)."""
    cells = [[str(h) for h in headers], *[[fmt(v) for v in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        padded = (c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True)))
        return "| " + " | ".join(padded) + " |"

    print(f"\n{title}\n")
    print(line(cells[0]))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in cells[1:]:
        print(line(row))
    print(flush=True)


# -- the machine and the code measured ---------------------------------------------------------


def _git(*args: str) -> str:
    try:
        out = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10, check=False)
    except OSError:
        return ""
    return out.stdout.strip()


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _tree_digest() -> str:
    """A digest of majordome/*.py as measured (the working tree may differ from the commit)."""
    digest = hashlib.sha1()
    for path in sorted((ROOT / "majordome").rglob("*.py")):
        digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def machine() -> dict[str, Any]:
    """The machine, the interpreter and the code a result was measured on."""
    return {
        "cpus": os.cpu_count(),
        "load_average_1m_at_end": os.getloadavg()[0],
        "cpu_model": _cpu_model(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "commit": _git("rev-parse", "--short", "HEAD"),
        "working_tree_dirty": bool(_git("status", "--porcelain", "--", "majordome")),
        "majordome_tree_digest": _tree_digest(),
        "packages": {
            name: _version(name)
            for name in ("majordome", "openai", "httpx2", "aiohttp", "azure-ai-inference", "azure-core", "litellm")
        },
    }


def write_json(name: str, data: Mapping[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
    print(f"results written to {path.relative_to(ROOT)}")
    return path


def command_line() -> str:
    script = Path(sys.argv[0]).resolve()
    with contextlib.suppress(ValueError):
        script = script.relative_to(ROOT)
    return " ".join(["python", str(script), *sys.argv[1:]])


# -- stub servers in their own processes -------------------------------------------------------


@contextlib.contextmanager
def stub_process(
    *, latency: float = 0.0, fault_rate: float = 0.0, timeout_delay: float = 5.0, seed: int = 0
) -> Iterator[str]:
    """Run ``python -m majordome.testing.stub_server`` in a child process; yields its URL.

    A separate process, so the stub never competes with the client for its event loop.
    """
    command = [
        sys.executable,
        "-W",
        "ignore::RuntimeWarning",  # runpy's note about majordome.testing importing stub_server
        "-m",
        "majordome.testing.stub_server",
        "--latency",
        str(latency),
        "--fault-rate",
        str(fault_rate),
        "--timeout-delay",
        str(timeout_delay),
        "--seed",
        str(seed),
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert process.stdout is not None
        line = process.stdout.readline().split()
        if len(line) != 2 or line[0] != "listening":
            raise RuntimeError(f"the stub server did not start (said {line!r})")
        yield line[1]
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def slot_env(slots: Mapping[str, tuple[str, str]], extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment pointing catalogue slots at stubs: ``{model id: (api, stub url)}``.

    ``openai`` slots get ``<url>/v1`` and no auth; ``azure-ai-inference`` slots get
    ``<url>/models`` and a dummy key in the variable the catalogue names. Every other slot is
    disabled.
    """
    from majordome.models.catalogue import Catalogue

    catalogue = Catalogue.default()
    env: dict[str, str] = {}
    for model_id in (*CHAT_SLOTS, *NON_CHAT_SLOTS):
        key = model_id.upper().replace("-", "_").replace(".", "_")
        prefix = f"MAJORDOME_MODEL__{key}__"
        if model_id not in slots:
            env[prefix + "ENABLED"] = "false"
            continue
        api, url = slots[model_id]
        spec = catalogue[model_id]
        if api == "openai":
            env[prefix + "API"] = "openai"
            env[prefix + "ENDPOINT"] = f"{url}/v1"
            env[prefix + "AUTH"] = "none"
        elif api == "azure-ai-inference":
            env[prefix + "API"] = "azure-ai-inference"
            assert spec.endpoint_env and spec.api_key_env
            env[spec.endpoint_env] = f"{url}/models"
            env[spec.api_key_env] = "dummy-benchmark-key"
        else:
            raise ValueError(f"unknown api {api!r}")
    env.update(extra or {})
    return env


class Stopwatch:
    """``with Stopwatch() as sw: ...`` then ``sw.seconds``."""

    def __enter__(self) -> Stopwatch:
        self.started = time.perf_counter()
        self.seconds = 0.0
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.started
