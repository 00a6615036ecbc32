"""The source runner: polls each enabled poll source on its interval and keeps each stream running.

Each source has its own asyncio task, so a source that hangs or fails never holds up another.
Sources are added, changed and removed only through this runner (``create``, ``update``,
``delete``; the API and the staff pages share them), which restarts the source's task in this
process at once. Every other worker (``serve --workers N``, other servers on the same database)
notices within ``rescan_seconds``: ``rescan`` compares each running task with the source as stored
and starts, restarts or stops it.
The contract with connectors is enforced here: every batch a connector yields is stored through
``app.ingest.ingest(..., dedupe=True)`` in a worker thread, and only then is the generator resumed
(so code after ``yield`` may acknowledge its sender). A failing source is retried with capped
exponential backoff; its error is logged once per failure streak and recorded in its status.
All state lives on the runner instance, which ``attach`` puts in ``app.background``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
from sqlalchemy.exc import SQLAlchemyError

from citydesk.errors import BadRequest, NotFound
from citydesk.hub.connectors.base import ConnectorError, RunContext
from citydesk.hub.connectors.registry import ConnectorRegistry
from citydesk.hub.records import Batch, IngestResult, ObservationIn, Rejected
from citydesk.hub.sources import service
from citydesk.hub.sources.slots import SlotClaims
from citydesk.hub.sources.types import RunOutcome, Source, SourceIn, SourcePatch, SourceState

if TYPE_CHECKING:
    from citydesk.web.app import App

log = logging.getLogger(__name__)
IMPORT_FOLDER = Path("citydesk-data") / "imports"


@dataclass(frozen=True)
class Backoff:
    """Retry delays after failures: ``base * 2**(n-1)`` seconds, never more than ``cap`` or the interval."""

    base: float = 5.0
    cap: float = 300.0

    def delay(self, failures: int, interval: float) -> float:
        return min(self.base * 2 ** max(failures - 1, 0), self.cap, interval)


def _default_http() -> httpx.AsyncClient:
    return httpx.AsyncClient(follow_redirects=True, headers={"User-Agent": "citydesk-connector/0.1"})


def _definition(source: Source) -> tuple[Any, ...]:
    """What a source's task was started with: when any of it changes, the task must restart."""
    return (source.name, source.kind, source.enabled, source.interval_seconds, source.config)


@dataclass
class _Holding:
    """How many consumer slots of one source this process holds (the lock orders their claims)."""

    count: int = 0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class SourceRunner:
    """A background service (``start``/``stop``) running every enabled source of the app."""

    name = "source runner"

    def __init__(
        self,
        app: App,
        *,
        registry: ConnectorRegistry | None = None,
        http_factory: Callable[[], httpx.AsyncClient] = _default_http,
        file_roots: Sequence[Path] | None = (IMPORT_FOLDER,),
        backoff: Backoff = Backoff(),
        stream_flush_seconds: float = 5.0,
        claim_retry_seconds: float = 15.0,
        rescan_seconds: float = 30.0,
    ) -> None:
        self.app = app
        self.registry = registry or ConnectorRegistry()
        self.http_factory = http_factory
        self.file_roots = tuple(file_roots) if file_roots is not None else None
        self.backoff = backoff
        self.stream_flush_seconds = stream_flush_seconds
        self.http: httpx.AsyncClient | None = None
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self._definitions: dict[int, tuple[Any, ...]] = {}
        self._changing = asyncio.Lock()
        """Held while tasks are started or stopped, so two changes of one source never leave two tasks."""
        self.slots = SlotClaims(app.engine)
        self._held: dict[int, _Holding] = {}
        self.claim_retry_seconds = claim_retry_seconds
        self._locks: dict[int, asyncio.Lock] = {}
        self._started = False
        self.rescan_seconds = rescan_seconds
        self._scanner: asyncio.Task[None] | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        self.http = self.http_factory()
        self._started = True
        await self.rescan()
        self._scanner = asyncio.create_task(self._rescan_loop(), name="source-rescan")

    async def rescan(self) -> None:
        """Run sources created elsewhere, restart changed ones, stop deleted or disabled ones.

        The worker that handled a change restarts the source at once; the other workers (and other
        servers on the same database) learn of it here, every ``rescan_seconds``. A task that died
        (a database error it could not ride out) is restarted here too.
        """
        current = {s.id: s for s in await asyncio.to_thread(service.list_sources, self.app.engine)}
        async with self._changing:
            for source_id, task in list(self._tasks.items()):
                source = current.get(source_id)
                if task.done() and not task.cancelled() and (died := task.exception()) is not None:
                    log.error("source %s stopped on an error; restarting it", source_id, exc_info=died)
                if task.done() or source is None or self._definitions.get(source_id) != _definition(source):
                    await self._restart(source_id, source)
            for source in current.values():
                if source.id not in self._tasks:
                    self._launch(source)

    async def _rescan_loop(self) -> None:
        while True:
            await asyncio.sleep(self.rescan_seconds)
            try:
                await self.rescan()
            except SQLAlchemyError:
                log.exception("could not read the list of sources; trying again")

    async def stop(self) -> None:
        self._started = False
        if self._scanner is not None:
            self._scanner.cancel()
            await asyncio.gather(self._scanner, return_exceptions=True)
            self._scanner = None
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
        self._definitions.clear()
        if self.http is not None:
            await self.http.aclose()
            self.http = None

    async def refresh(self, source_id: int) -> None:
        """Pick up a created, changed, disabled or deleted source in this process, at once."""
        if not self._started:  # nothing runs here yet; ``start`` reads every source
            return
        async with self._changing:
            try:
                source = await asyncio.to_thread(service.get_source, self.app.engine, source_id)
            except NotFound:  # deleted: nothing to run
                source = None
            await self._restart(source_id, source)

    async def _restart(self, source_id: int, source: Source | None) -> None:
        """Stop the source's task, if any, and start it again as ``source`` says (None: gone)."""
        await self._stop_task(source_id)
        if source is not None:
            self._launch(source)

    async def _stop_task(self, source_id: int) -> None:
        task = self._tasks.pop(source_id, None)
        self._definitions.pop(source_id, None)
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    @property
    def state(self) -> str:
        return "running" if self._started else "stopped"

    def running(self) -> list[int]:
        return sorted(i for i, t in self._tasks.items() if not t.done())

    def _launch(self, source: Source) -> None:
        if not source.enabled or not self._started:
            return
        try:
            mode = self.registry.manifest(source.kind).mode
        except Exception:  # an unknown kind is reported by its first run
            mode = "poll"
        if mode == "push":
            return
        consumers = int(source.config.get("consumers", 1)) if mode == "stream" else 1
        self._tasks[source.id] = asyncio.create_task(
            self._supervise(source.id, mode, consumers), name=f"source-{source.id}-{source.name}"
        )
        self._definitions[source.id] = _definition(source)

    async def _supervise(self, source_id: int, mode: str, consumers: int) -> None:
        """Run the source's consumers, each only while this process holds its slot (see slots)."""
        await asyncio.gather(*(self._with_slot(source_id, i, mode) for i in range(consumers)))

    async def _with_slot(self, source_id: int, consumer: int, mode: str) -> None:
        held = self._held.setdefault(source_id, _Holding())
        while True:
            if held.count:
                # This worker already runs a consumer of the source: let the other workers take
                # theirs first, so the consumers spread over the processes.
                await asyncio.sleep(self.claim_retry_seconds)
            async with held.lock:
                slot = await asyncio.to_thread(self.slots.claim, source_id, consumer)
                if slot is not None:
                    held.count += 1
            if slot is None:  # another worker runs it; take over if that worker goes away
                await asyncio.sleep(self.claim_retry_seconds)
                continue
            try:
                if mode == "stream":
                    await self._stream_loop(source_id, consumer)
                else:
                    await self._poll_loop(source_id)
            finally:
                held.count -= 1
                await asyncio.to_thread(slot.release)

    # -- contexts ----------------------------------------------------------------------------
    def context(
        self, source: Source | None, http: httpx.AsyncClient, *, name: str = "", consumer: int = 0
    ) -> RunContext:
        """The run context of a source (or of a source being created, for its check)."""
        return RunContext(
            source_id=source.id if source else None,
            source_name=source.name if source else name,
            http=http,
            state=dict(source.status.cursor or {}) if source else {},
            clock=self.app.now,
            timezone=self.app.settings.timezone,
            log=logging.getLogger(f"citydesk.hub.connectors.{source.kind if source else 'check'}"),
            file_roots=self.file_roots,
            consumer=consumer,
        )

    async def create(self, spec: SourceIn) -> Source:
        """Check, save and (if this runner is started) launch a new source: the one way to add one."""
        http, own = await self.client()
        try:
            ctx = self.context(None, http, name=spec.name)
            source = await service.create_source(
                self.app.engine, self.registry, spec, now=self.app.now(), ctx=ctx
            )
        finally:
            if own:
                await http.aclose()
        await self.refresh(source.id)
        return source

    async def update(self, source_id: int, patch: SourcePatch) -> Source:
        """Change, enable or disable a source (a changed config is checked first), then restart it."""
        current = await asyncio.to_thread(service.get_source, self.app.engine, source_id)
        http, own = await self.client()
        try:
            ctx = self.context(current, http)
            source = await service.update_source(self.app.engine, self.registry, source_id, patch, ctx=ctx)
        finally:
            if own:
                await http.aclose()
        await self.refresh(source_id)
        return source

    async def delete(self, source_id: int) -> None:
        """Stop the source here, then delete it (its quarantine stays); other workers stop it on rescan.

        Stopping first means this process never records a run of a source that is gone. Should the
        delete fail, the next rescan finds the source still there and starts it again."""
        async with self._changing:
            await self._stop_task(source_id)
            await asyncio.to_thread(service.delete_source, self.app.engine, source_id)

    async def client(self) -> tuple[httpx.AsyncClient, bool]:
        """The shared HTTP client when started, else a fresh one the caller must close (True)."""
        if self.http is not None:
            return self.http, False
        return self.http_factory(), True

    # -- one run -----------------------------------------------------------------------------
    async def _store(self, batch: Batch, source: Source) -> IngestResult:
        """Store a batch in one transaction. A batch the pipeline cannot process (a bug, not the
        database) is stored record by record and the culprits quarantined, so one poisonous message
        cannot block a stream forever by being redelivered again and again."""
        try:
            return await asyncio.to_thread(self._ingest, batch.observations, batch.rejected, source)
        except SQLAlchemyError:
            raise  # the database: transient, the whole batch is retried
        except Exception:  # a record the pipeline chokes on; find it
            log.exception(
                "source %s (%s): batch failed; storing its records one by one", source.id, source.name
            )
            return await asyncio.to_thread(self._store_each, batch, source)

    def _ingest(self, records: list[ObservationIn], rejected: list[Rejected], source: Source) -> IngestResult:
        return self.app.ingest.ingest(
            records, channel=source.kind, source_id=source.id, dedupe=True, rejected=rejected
        )

    def _store_each(self, batch: Batch, source: Source) -> IngestResult:
        total = self._ingest([], batch.rejected, source)
        for record in batch.observations:
            try:
                one = self._ingest([record], [], source)
            except SQLAlchemyError:
                raise
            except Exception as exc:  # this record is the poison: keep it for review
                reason = f"could not be processed ({exc.__class__.__name__}: {exc})"
                kept = {
                    k: str(v) if k.endswith("time") else v for k, v in asdict(record).items() if v is not None
                }
                one = self._ingest([], [Rejected(kept, reason)], source)
            total.stored += one.stored
            total.duplicates += one.duplicates
            total.rejected += one.rejected
        return total

    async def _save_cursor(
        self, source: Source, state: dict[str, Any], saved: dict[str, Any]
    ) -> dict[str, Any]:
        if state != saved:
            await asyncio.to_thread(service.save_cursor, self.app.engine, source.id, dict(state))
        return dict(state)

    async def run_once(self, source: Source, http: httpx.AsyncClient) -> RunOutcome:
        """One poll: store every batch, then persist the cursor the connector advanced."""
        outcome = RunOutcome()
        ctx = self.context(source, http)
        saved = dict(ctx.state)
        gen = None
        try:
            connector = self.registry.connector(source.kind)
            config = self.registry.parse_config(source.kind, source.config)
            gen = connector.run(config, ctx)
            async for batch in gen:
                # The generator has resumed past the previous batch: its cursor is safe to keep.
                saved = await self._save_cursor(source, ctx.state, saved)
                outcome.add(await self._store(batch, source))
        except ConnectorError as exc:
            outcome.error = exc.message
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug in one source must not stop the others
            log.exception("source %s (%s) failed unexpectedly", source.id, source.name)
            outcome.error = f"internal error: {exc.__class__.__name__}: {exc}"
        finally:
            if gen is not None:
                await gen.aclose()  # cancelled mid-batch: the connector sees GeneratorExit, acks nothing
        # Connectors touch ctx.state only after a yield returned, so it describes committed work.
        await self._save_cursor(source, ctx.state, saved)
        return outcome

    async def run_now(self, source_id: int) -> RunOutcome:
        """Run a poll source once, now (``POST /api/hub/sources/{id}/run``), and record it."""
        source = await asyncio.to_thread(service.get_source, self.app.engine, source_id)
        mode = self.registry.manifest(source.kind).mode
        if mode != "poll":
            raise BadRequest(f"a {mode} source is not run on demand: it runs continuously or takes entries")
        http, own = await self.client()
        try:
            async with self._lock(source_id):
                outcome = await self.run_once(source, http)
                await self._record(source, outcome, failures_before=source.status.consecutive_failures)
        finally:
            if own:
                await http.aclose()
        return outcome

    def _lock(self, source_id: int) -> asyncio.Lock:
        return self._locks.setdefault(source_id, asyncio.Lock())

    async def _record(
        self, source: Source, outcome: RunOutcome, *, failures_before: int, state: SourceState | None = None
    ) -> None:
        if outcome.error is not None and failures_before == 0:
            log.warning("source %s (%s) failing: %s", source.id, source.name, outcome.error)
        elif outcome.error is None and failures_before > 0:
            log.info("source %s (%s) recovered after %d failure(s)", source.id, source.name, failures_before)
        record = partial(
            service.record_run, self.app.engine, source.id, outcome, now=self.app.now(), state=state
        )
        await asyncio.to_thread(record)

    # -- loops -------------------------------------------------------------------------------
    async def _poll_loop(self, source_id: int) -> None:
        source = await asyncio.to_thread(service.get_source, self.app.engine, source_id)
        failures = source.status.consecutive_failures
        interval = float(source.interval_seconds or service.DEFAULT_INTERVAL)
        if source.status.last_run_at is not None:  # a restart does not poll again before it is due
            due = interval - (self.app.now() - source.status.last_run_at).total_seconds()
            await asyncio.sleep(max(0.0, min(due, interval)))
        while True:
            source = await asyncio.to_thread(service.get_source, self.app.engine, source_id)
            assert self.http is not None
            async with self._lock(source_id):
                outcome = await self.run_once(source, self.http)
                await self._record(source, outcome, failures_before=failures)
            failures = failures + 1 if outcome.error else 0
            interval = float(source.interval_seconds or service.DEFAULT_INTERVAL)
            await asyncio.sleep(self.backoff.delay(failures, interval) if failures else interval)

    async def _stream_loop(self, source_id: int, consumer: int = 0) -> None:
        failures = 0
        while True:
            source = await asyncio.to_thread(service.get_source, self.app.engine, source_id)
            assert self.http is not None
            outcome, failures = await self._stream(source, self.http, failures, consumer)
            await self._record(source, outcome, failures_before=failures)
            failures = failures + 1 if outcome.error else 0
            await asyncio.sleep(self.backoff.delay(max(failures, 1), self.backoff.cap))

    async def _stream(
        self, source: Source, http: httpx.AsyncClient, failures: int, consumer: int = 0
    ) -> tuple[RunOutcome, int]:
        """Run a stream until it fails; status is flushed every ``stream_flush_seconds``.

        Returns what was not yet flushed, and the failure streak (ended by the first flush)."""
        outcome = RunOutcome()
        ctx = self.context(source, http, consumer=consumer)
        loop = asyncio.get_running_loop()
        flushed = loop.time()
        gen = None
        try:
            connector = self.registry.connector(source.kind)
            config = self.registry.parse_config(source.kind, source.config)
            await asyncio.to_thread(service.set_state, self.app.engine, source.id, SourceState.STREAMING)
            gen = connector.run(config, ctx)
            async for batch in gen:
                outcome.add(await self._store(batch, source))
                if loop.time() - flushed >= self.stream_flush_seconds:
                    await self._record(source, outcome, failures_before=failures, state=SourceState.STREAMING)
                    outcome, flushed, failures = RunOutcome(), loop.time(), 0
            outcome.error = "the stream ended"
        except ConnectorError as exc:
            outcome.error = exc.message
        except asyncio.CancelledError:
            if outcome.batches:
                await asyncio.shield(self._record(source, outcome, failures_before=failures))
            raise
        except Exception as exc:  # a bug in one source must not stop the others
            log.exception("stream source %s (%s) failed unexpectedly", source.id, source.name)
            outcome.error = f"internal error: {exc.__class__.__name__}: {exc}"
        finally:
            if gen is not None:
                await gen.aclose()
        return outcome, failures


def attach(
    app: App,
    *,
    registry: ConnectorRegistry | None = None,
    http_factory: Callable[[], httpx.AsyncClient] = _default_http,
    file_roots: Sequence[Path] | None = (IMPORT_FOLDER,),
) -> SourceRunner:
    """Create the app's source runner and add it to ``app.background`` (started with the web app)."""
    runner = SourceRunner(app, registry=registry, http_factory=http_factory, file_roots=file_roots)
    app.background.append(runner)
    return runner


def runner_of(app: App) -> SourceRunner:
    """The runner attached to ``app``; else a fresh unstarted one (it can still check and run once)."""
    for service_ in app.background:
        if isinstance(service_, SourceRunner):
            return service_
    return SourceRunner(app)
