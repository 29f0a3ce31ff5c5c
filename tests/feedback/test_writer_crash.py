"""A process writing events through the writer is killed (SIGKILL) in the middle of its work;
every event it had seen acknowledged must be in the store once the spill file is replayed. Run
with the store up (events committed to SQLite) and down (events fsync'd to the spill file)."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from majordome.feedback.sqlite import SQLiteEventStore
from majordome.feedback.writer import EventWriter

# Submits events e0, e1, ... in rounds of 150 (batches of 64: the last batch of a round is
# partial), flushes after each round and prints how many are acknowledged, forever.
_PRODUCER = """
import asyncio, sys
from majordome.feedback.events import CallEvent
from majordome.feedback.sqlite import SQLiteEventStore
from majordome.feedback.store import StoreUnavailable

db, spill, mode = sys.argv[1:4]

class Down(SQLiteEventStore):
    def write(self, events):
        raise StoreUnavailable("down for the test")

async def main():
    from majordome.feedback.writer import EventWriter
    store = (Down if mode == "down" else SQLiteEventStore)(db)
    writer = EventWriter(store, spill, batch_size=64, flush_interval_s=0.002)
    n = 0
    while True:
        for _ in range(150):
            writer.submit(CallEvent(trace_id=f"t{n}", tenant="c", model="m", event_id=f"e{n}"))
            n += 1
        await writer.flush()
        print(writer.acknowledged, flush=True)

asyncio.run(main())
"""


@pytest.mark.parametrize("mode", ["up", "down"])
def test_every_acknowledged_event_survives_sigkill(tmp_path: Path, mode: str) -> None:
    db, spill = tmp_path / "events.db", tmp_path / "spill.jsonl"
    SQLiteEventStore(db).close()  # migrated before the producer starts
    producer = subprocess.Popen(
        [sys.executable, "-c", _PRODUCER, str(db), str(spill), mode],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    acknowledged = 0
    try:
        assert producer.stdout is not None
        deadline = time.monotonic() + 60
        while acknowledged < 3000 and time.monotonic() < deadline:
            line = producer.stdout.readline()
            if not line:
                break
            acknowledged = int(line)
        assert acknowledged >= 3000, f"the producer stopped early: {producer.stderr.read() if producer.stderr else ''}"
        time.sleep(random.uniform(0.0, 0.01))  # somewhere in the next round's batches
        os.kill(producer.pid, signal.SIGKILL)
        # lines printed before the kill landed count too
        rest, _ = producer.communicate(timeout=30)
        acknowledged = max([acknowledged, *(int(x) for x in rest.split())])
    finally:
        if producer.poll() is None:
            producer.kill()
            producer.wait()
    assert producer.returncode == -signal.SIGKILL

    with SQLiteEventStore(db) as store:
        writer = EventWriter(store, spill)
        asyncio.run(writer.flush())  # the start-up replay
        replayed = writer.metrics.replayed
        writer.close_sync()
    with sqlite3.connect(db) as conn:
        stored = {row[0] for row in conn.execute("SELECT event_id FROM majordome_calls")}
    missing = {f"e{n}" for n in range(acknowledged)} - stored
    assert not missing, f"{len(missing)} acknowledged events lost, e.g. {sorted(missing)[:5]}"
    if mode == "down":
        assert replayed >= acknowledged  # they all came from the spill file
