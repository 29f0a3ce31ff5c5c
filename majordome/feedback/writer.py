"""Events off the request path: a bounded in-memory queue, a writer thread, a spill file.

:meth:`EventWriter.submit` only appends to a queue (about a microsecond). A thread takes the
queue in batches (``batch_size`` events, or whatever arrived within ``flush_interval_s`` of the
first one) and writes each batch to the store in one transaction. Nothing submitted is lost
quietly:

- when the store fails (:class:`StoreUnavailable` or any other :class:`StoreError`), the batch
  is appended to the spill file (JSON lines, fsync'd) and the store is left alone for a while
  (0.5 s, doubling up to 30 s); then the spill file is replayed into the store, and emptied
  once all of it is in. It is also replayed when the writer starts;
- when the queue is full (the store is slower than the requests), :meth:`submit` appends the
  event to the spill file itself (a write, no fsync: the thread syncs it) instead of waiting;
- events the store refuses as such (:class:`StoreRejected`, e.g. a value it cannot hold) are
  retried one by one; those refused alone are counted in ``rejected`` and logged;
- the spill file is bounded (``spill_max_bytes``): past the bound, events already replayed are
  removed first, then the oldest ones, counted in ``dropped`` and logged;
- lines of the spill file that cannot be read back (a torn last line after a crash, a corrupted
  disk) are skipped, counted in ``corrupt_lines``, logged with their line numbers, and copied to
  ``<spill>.corrupt``.

An event is **acknowledged** once it is committed to the store or fsync'd to the spill file; it
then survives the process being killed (not the loss of the spill file's disk). The
``acknowledged`` counter counts those events; when :meth:`flush` returns, every event submitted
before the call is acknowledged. One writer per spill file: a second one, in any process, is
refused.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import fcntl
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

from majordome._errors import BadRequestError, ConfigurationError, MajordomeError
from majordome._logging import get_logger
from majordome.feedback.events import CallEvent, DecisionEvent, Event, EventDecodeError, FeedbackEvent, decode_event
from majordome.feedback.store import EventStore, StoreError, StoreRejected

__all__ = ["EventWriter", "WriterClosed", "WriterMetrics"]

_log = get_logger("majordome.feedback")
_EVENT_TYPES = (DecisionEvent, CallEvent, FeedbackEvent)
_RETRY_FIRST_S = 0.5
_RETRY_MAX_S = 30.0
_SHOWN_LINES = 20


class WriterClosed(MajordomeError):
    """An event was submitted to a closed :class:`EventWriter`."""


@dataclass(frozen=True, slots=True)
class WriterMetrics:
    """The writer's counters since it started (events unless said otherwise)."""

    submitted: int  # accepted by submit()
    written: int  # from the queue into the store
    spilled: int  # fsync'd to the spill file (store failing, or queue full)
    replayed: int  # from the spill file into the store
    dropped: int  # spilled, then removed unreplayed to keep the spill file bounded; or unwritable
    rejected: int  # refused by the store as such
    corrupt_lines: int  # spill lines that could not be read back
    acknowledged: int  # written + spilled: durable
    queued: int  # waiting in memory now
    spill_bytes: int  # size of the spill file now


class _Marker:
    """A flush request in the queue: released once every event before it is acknowledged."""

    __slots__ = ("done", "future", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.done = threading.Event()
        self.loop = loop
        self.future: asyncio.Future[None] | None = loop.create_future() if loop is not None else None

    def release(self) -> None:
        self.done.set()
        if self.loop is not None and self.future is not None:
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
                self.loop.call_soon_threadsafe(self._resolve)

    def _resolve(self) -> None:
        if self.future is not None and not self.future.done():
            self.future.set_result(None)


class EventWriter:
    """Writes events to ``store`` from a thread of its own, spilling to ``spill_path`` when it
    cannot (see the module's documentation). The writer does not close the store."""

    def __init__(
        self,
        store: EventStore,
        spill_path: str | Path,
        *,
        batch_size: int = 500,
        flush_interval_s: float = 0.05,
        queue_size: int = 20_000,
        spill_max_bytes: int = 64 * 1024 * 1024,
    ) -> None:
        if batch_size < 1 or queue_size < 1 or spill_max_bytes < 1 or flush_interval_s < 0:
            raise ConfigurationError("batch_size, queue_size and spill_max_bytes must be >= 1, flush_interval_s >= 0")
        self.store = store
        self.spill_path = Path(spill_path).expanduser()
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        self.queue_size = queue_size
        self.spill_max_bytes = spill_max_bytes
        self._queue: deque[Event | _Marker] = deque()
        self._lock = threading.Lock()  # submitted, closed, queue admission, pending markers
        self._spill_lock = threading.Lock()  # the spill file's descriptor, size and unsynced appends
        self._wake = threading.Event()
        self._closed = False
        self._stopping = False
        self._markers = 0
        self._submitted = 0
        self._written = self._spilled = self._replayed = self._dropped = 0
        self._rejected = self._corrupt = 0
        self._unsynced = 0  # events submit() appended to the spill file, not yet fsync'd
        self._replayed_upto = 0  # bytes at the start of the spill file already in the store
        self._replayed_lines = 0  # lines in those bytes
        self._corrupt_seen_upto = 0  # bytes of the spill file whose corrupt lines were reported
        self._down_until = 0.0  # the store failed: leave it alone until then (time.monotonic)
        self._retry_s = _RETRY_FIRST_S
        self._replaying = False
        self._lock_fd = self._claim_spill()
        self._fd = -1
        self._spill_bytes = 0
        try:
            self._open_spill()
        except BaseException:
            os.close(self._lock_fd)
            raise
        self._thread = threading.Thread(target=self._run, name="majordome-event-writer", daemon=True)
        self._thread.start()
        atexit.register(self._at_exit)

    # -- the request path ----------------------------------------------------------------------

    def submit(self, event: Event) -> None:
        """Queue ``event`` for writing; never blocks on I/O (when the queue is full the event
        goes straight to the spill file)."""
        if not isinstance(event, _EVENT_TYPES):
            raise BadRequestError(f"not an event: {type(event).__name__}")
        with self._lock:
            if self._closed:
                raise WriterClosed("the event writer is closed")
            self._submitted += 1
            queued = len(self._queue)
            if queued < self.queue_size:
                self._queue.append(event)
                if queued == 0 or (queued + 1) % self.batch_size == 0:
                    self._wake.set()
                return
        self._overflow(event)

    def _overflow(self, event: Event) -> None:
        data = _encode_lines([event])
        with self._spill_lock:
            try:
                _write_all(self._fd, data)
            except OSError as exc:
                self._undo_append()
                self._dropped += 1
                _log.error("feedback_spill_failed", path=str(self.spill_path), events=1, error=str(exc))
                return
            self._spill_bytes += len(data)
            self._unsynced += 1
        self._wake.set()

    # -- flushing and closing ------------------------------------------------------------------

    def _enqueue_marker(self, loop: asyncio.AbstractEventLoop | None) -> _Marker:
        marker = _Marker(loop)
        with self._lock:
            if self._closed:
                marker.release()
                return marker
            self._markers += 1
            self._queue.append(marker)
        self._wake.set()
        return marker

    async def flush(self) -> None:
        """Return once every event submitted before the call is acknowledged (in the store or
        fsync'd to the spill file); also waits for the start-up replay."""
        marker = self._enqueue_marker(asyncio.get_running_loop())
        if marker.future is not None and not marker.done.is_set():
            await marker.future

    def flush_sync(self, timeout: float | None = None) -> bool:
        """:meth:`flush` for callers without an event loop; False if ``timeout`` passed first."""
        return self._enqueue_marker(None).done.wait(timeout)

    async def close(self) -> None:
        """Acknowledge everything submitted, then stop the thread; submit() raises afterwards."""
        await asyncio.to_thread(self.close_sync)

    def close_sync(self, timeout: float | None = None) -> None:
        with self._lock:
            self._closed = True
            self._stopping = True
        self._wake.set()
        self._thread.join(timeout)
        if self._thread.is_alive():
            _log.warning("feedback_writer_close_timeout", queued=len(self._queue), timeout_s=timeout)
            return
        atexit.unregister(self._at_exit)
        with self._spill_lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1

    def _at_exit(self) -> None:
        self.close_sync(timeout=10.0)

    async def __aenter__(self) -> EventWriter:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    def __enter__(self) -> EventWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close_sync()

    # -- counters ------------------------------------------------------------------------------

    @property
    def acknowledged(self) -> int:
        """Events committed to the store or fsync'd to the spill file so far."""
        return self._written + self._spilled

    @property
    def metrics(self) -> WriterMetrics:
        return WriterMetrics(
            submitted=self._submitted,
            written=self._written,
            spilled=self._spilled,
            replayed=self._replayed,
            dropped=self._dropped,
            rejected=self._rejected,
            corrupt_lines=self._corrupt,
            acknowledged=self.acknowledged,
            queued=len(self._queue) - self._markers,
            spill_bytes=self._spill_bytes,
        )

    # -- the thread ----------------------------------------------------------------------------

    def _urgent(self) -> bool:
        return self._stopping or self._markers > 0 or len(self._queue) >= self.batch_size

    def _idle_timeout(self) -> float | None:
        if self._spill_bytes > self._replayed_upto or self._unsynced:
            return max(0.0, self._down_until - time.monotonic()) if self._down_until else 0.0
        return None

    def _run(self) -> None:
        self._guarded(self._replay)
        while True:
            self._wake.wait(self._idle_timeout())
            self._wake.clear()
            deadline = time.monotonic() + self.flush_interval_s
            while not self._urgent() and (left := deadline - time.monotonic()) > 0:
                self._wake.wait(left)
                self._wake.clear()
            self._guarded(self._cycle)
            if self._stopping and not self._queue:
                self._guarded(self._sync_overflow)
                return

    def _guarded(self, step: Callable[[], None]) -> None:
        try:
            step()
        except Exception as exc:  # noqa: BLE001 - the thread must outlive any bug in one step
            _log.error("feedback_writer_error", error_class=type(exc).__name__, error=str(exc))
            self._down_until = time.monotonic() + self._retry_s  # not a busy loop of errors

    def _cycle(self) -> None:
        if self._spill_bytes > self._replayed_upto and time.monotonic() >= self._down_until:
            self._replay()
        while self._queue:
            self._drain_one_batch()
        self._sync_overflow()

    def _take(self) -> tuple[list[Event], list[_Marker]]:
        events: list[Event] = []
        markers: list[_Marker] = []
        queue = self._queue
        while queue and len(events) < self.batch_size:
            item = queue.popleft()
            if isinstance(item, _Marker):
                markers.append(item)
            else:
                events.append(item)
        return events, markers

    def _drain_one_batch(self) -> None:
        events, markers = self._take()
        try:
            if events:
                self._deliver(events)
            if markers:
                self._sync_overflow()
        finally:
            if markers:
                with self._lock:
                    self._markers -= len(markers)
                for marker in markers:
                    marker.release()

    def _deliver(self, events: list[Event]) -> None:
        """Events from the queue: into the store, else into the spill file."""
        if time.monotonic() < self._down_until:
            self._spill(events)
            return
        rejected = self._rejected
        stored = self._store_write(events)
        self._written += stored - (self._rejected - rejected)
        if stored < len(events):
            self._spill(events[stored:])
        elif self._spill_bytes > self._replayed_upto:
            self._replay()

    def _store_write(self, events: Sequence[Event]) -> int:
        """Write ``events``; how many of the first ones are now stored or refused for good (the
        rest must be kept). Refused events are counted and logged."""
        error: Exception
        try:
            self.store.write(events)
        except StoreRejected as exc:
            error = exc
        except StoreError as exc:
            self._store_failed(exc)
            return 0
        except Exception as exc:  # noqa: BLE001 - a value the driver cannot take: found below
            error = exc
        else:
            self._store_ok()
            return len(events)
        if len(events) == 1:
            self._reject(events[0], error)
            return 1
        done = 0
        for event in events:
            if self._store_write([event]) == 0:
                break
            done += 1
        return done

    def _reject(self, event: Event, error: Exception) -> None:
        self._rejected += 1
        _log.error(
            "feedback_event_rejected",
            event_type=event.type,
            event_id=event.event_id,
            trace_id=event.trace_id,
            error_class=type(error).__name__,
            error=str(error),
        )

    def _store_ok(self) -> None:
        if self._down_until:
            _log.info("feedback_store_recovered", store=repr(self.store))
        self._down_until = 0.0
        self._retry_s = _RETRY_FIRST_S

    def _store_failed(self, exc: StoreError) -> None:
        if not self._down_until:
            _log.warning(
                "feedback_store_unavailable",
                store=repr(self.store),
                error_class=type(exc).__name__,
                error=str(exc),
                spill=str(self.spill_path),
            )
        self._down_until = time.monotonic() + self._retry_s
        self._retry_s = min(self._retry_s * 2, _RETRY_MAX_S)

    # -- the spill file ------------------------------------------------------------------------

    def _claim_spill(self) -> int:
        self.spill_path.parent.mkdir(parents=True, exist_ok=True)
        lock_path = self.spill_path.with_name(self.spill_path.name + ".lock")
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            raise ConfigurationError(
                f"the spill file {self.spill_path} is in use by another event writer; give each its own"
            ) from exc
        return fd

    def _open_spill(self) -> None:
        """(Re)open the spill file for appending; isolate a torn last line with a newline."""
        fd = os.open(self.spill_path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            _write_all(fd, b"\n")
            os.fsync(fd)
            size += 1
        if self._fd >= 0:
            os.close(self._fd)
        self._fd = fd
        self._spill_bytes = size

    def _spill(self, events: Sequence[Event]) -> None:
        data = _encode_lines(events)
        with self._spill_lock:
            try:
                _write_all(self._fd, data)
            except OSError as exc:
                self._undo_append()
                self._dropped += len(events)
                _log.error("feedback_spill_failed", path=str(self.spill_path), events=len(events), error=str(exc))
                return
            self._spill_bytes += len(data)
            fd = self._fd
        if self._sync(fd, len(events)):
            self._spilled += len(events)
        self._enforce_bound()

    def _sync_overflow(self) -> None:
        with self._spill_lock:
            pending, self._unsynced = self._unsynced, 0
            fd = self._fd
        if pending:
            if self._sync(fd, pending):
                self._spilled += pending
            self._enforce_bound()

    def _sync(self, fd: int, events: int) -> bool:
        """fsync the spill file; when the disk fails, the events are not acknowledged: counted
        as dropped (they may still be replayed if the data did reach the file)."""
        try:
            os.fsync(fd)
        except OSError as exc:
            self._dropped += events
            _log.error("feedback_spill_sync_failed", path=str(self.spill_path), events=events, error=str(exc))
            return False
        return True

    def _undo_append(self) -> None:
        """Cut a partly written append off (spill lock held), so the next line starts clean."""
        with contextlib.suppress(OSError):
            os.ftruncate(self._fd, self._spill_bytes)

    def _enforce_bound(self) -> None:
        if self._spill_bytes <= self.spill_max_bytes or self._replaying:
            return  # a replay reads the file by offsets: it enforces the bound when it ends
        with self._spill_lock:
            data = os.pread(self._fd, self._spill_bytes, 0)
            keep = memoryview(data)[self._replayed_upto :]  # already in the store: removed for free
            excess = len(keep) - self.spill_max_bytes
            cut = 0
            if excess > 0:
                newline = data.find(b"\n", self._replayed_upto + excess - 1)
                cut = len(keep) if newline < 0 else newline + 1 - self._replayed_upto
            dropped = keep[:cut].tobytes().count(b"\n")
            self._rewrite(keep[cut:].tobytes())
            removed = self._replayed_upto + cut
            self._corrupt_seen_upto = max(0, self._corrupt_seen_upto - removed)
            self._replayed_upto = self._replayed_lines = 0
        if dropped:
            self._dropped += dropped
            _log.warning(
                "feedback_spill_full",
                path=str(self.spill_path),
                max_bytes=self.spill_max_bytes,
                dropped_events=dropped,
                dropped_total=self._dropped,
            )

    def _rewrite(self, data: bytes) -> None:
        """Replace the spill file's content (spill lock held)."""
        if not data:
            os.ftruncate(self._fd, 0)
            os.fsync(self._fd)
            self._spill_bytes = 0
            return
        tmp = self.spill_path.with_name(self.spill_path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            _write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.spill_path)
        _fsync_dir(self.spill_path.parent)
        self._open_spill()

    def _pending_lines(self, end: int) -> Iterator[tuple[int, int, bytes]]:
        """(end offset, line number, line) of the spill file's lines from ``_replayed_upto`` to
        ``end``, read a megabyte at a time."""
        start, number = self._replayed_upto, self._replayed_lines
        carry = b""
        position = start
        while position < end:
            chunk = os.pread(self._fd, min(1 << 20, end - position), position)
            if not chunk:
                return
            line_start = position - len(carry)
            position += len(chunk)
            lines = (carry + chunk).split(b"\n")
            carry = lines.pop()
            for line in lines:
                line_start += len(line) + 1
                number += 1
                yield line_start, number, line

    def _replay(self) -> None:
        """Write the spill file's pending events to the store, a batch at a time; once all are
        in, the file keeps only what was appended meanwhile (usually nothing)."""
        if self._replaying or self._spill_bytes <= self._replayed_upto:
            return
        self._sync_overflow()
        self._replaying = True
        corrupt = _CorruptLines(self.spill_path)
        try:
            with self._spill_lock:
                end = self._spill_bytes
            _log.info("feedback_spill_replay", path=str(self.spill_path), pending_bytes=end - self._replayed_upto)
            batch: list[tuple[int, int, Event]] = []
            for offset, number, line in self._pending_lines(end):
                if not line.strip():
                    continue
                try:
                    batch.append((offset, number, decode_event(line, line_number=number, source=str(self.spill_path))))
                except EventDecodeError:
                    if offset > self._corrupt_seen_upto:  # not reported by an earlier, interrupted replay
                        corrupt.add(number, line)
                        self._corrupt_seen_upto = offset
                    continue
                if len(batch) >= self.batch_size:
                    if not self._replay_batch(batch):
                        return
                    batch = []
            if batch and not self._replay_batch(batch):
                return
            with self._spill_lock:
                tail = os.pread(self._fd, self._spill_bytes - end, end)
                self._rewrite(tail)
                self._replayed_upto = self._replayed_lines = self._corrupt_seen_upto = 0
        finally:
            self._replaying = False
            self._corrupt += corrupt.close()
            self._enforce_bound()

    def _replay_batch(self, batch: list[tuple[int, int, Event]]) -> bool:
        """Store one batch of spilled events; False when the store failed (the rest waits)."""
        rejected = self._rejected
        stored = self._store_write([event for _, _, event in batch])
        self._replayed += stored - (self._rejected - rejected)
        if stored:
            self._replayed_upto, self._replayed_lines, _ = batch[stored - 1]
        if stored < len(batch):
            return False
        if len(self._queue) >= self.batch_size:
            self._drain_one_batch()  # keep the queue moving during a long replay
        return True


class _CorruptLines:
    """Spill lines that cannot be read back: copied to ``<spill>.corrupt``, reported once."""

    def __init__(self, spill_path: Path) -> None:
        self.spill_path = spill_path
        self.path = spill_path.with_name(spill_path.name + ".corrupt")
        self.numbers: list[int] = []
        self.handle: BinaryIO | None = None

    def add(self, number: int, line: bytes) -> None:
        if self.handle is None:
            self.handle = self.path.open("ab")
        self.handle.write(line + b"\n")
        self.numbers.append(number)

    def close(self) -> int:
        """Report what was found; how many lines."""
        if self.handle is not None:
            self.handle.close()
        if self.numbers:
            _log.warning(
                "feedback_spill_corrupt_lines",
                path=str(self.spill_path),
                count=len(self.numbers),
                lines=self.numbers[:_SHOWN_LINES],
                more=max(0, len(self.numbers) - _SHOWN_LINES),
                copied_to=str(self.path),
            )
        return len(self.numbers)


def _encode_lines(events: Sequence[Event]) -> bytes:
    return "".join(event.to_json() + "\n" for event in events).encode("utf-8", "backslashreplace")


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
