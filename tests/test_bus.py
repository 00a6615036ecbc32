"""The event bus across processes, against the real Redis and NATS JetStream servers.

Two ``Bus`` objects on one ``BUS_URL`` stand for two worker processes (each has its own origin id
and its own broker connections). The shared servers on 6379 and 4222 are started by
``services.sh`` if they are down; tests that stop a server run a private one on a free port.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import nats
import pytest
from fastapi.testclient import TestClient
from nats.js.api import StorageType, StreamConfig
from nats.js.errors import NotFoundError
from sqlalchemy import update

from citydesk.bus import FORWARDED, Bus, Event, Subscription
from citydesk.bus.nats import MAX_AGE_SECONDS, MAX_BYTES, NatsTransport
from citydesk.cli import main as cli_main
from citydesk.config import Settings
from citydesk.errors import BusUnavailable, InvalidSetting
from citydesk.hub.models import datastreams
from citydesk.hub.records import ObservationIn, StoredObservation
from citydesk.web.app import App, build_app, create_asgi
from citydesk.web.assemble import attach_services
from tests.conftest import SERVICES, create_sensor, migrated_engine, port_open

STANDARD = {"redis": 6379, "nats": 4222}
_redis_dbs = itertools.count()


def _standard_server(service: str) -> None:
    """The shared local server, started if it is down; a missing one fails the test (no skip)."""
    port = STANDARD[service]
    if not port_open(port) and SERVICES.exists():
        subprocess.run(["bash", str(SERVICES), service], check=False)
    if not port_open(port):
        pytest.fail(f"{service} is not reachable on 127.0.0.1:{port} and services.sh could not start it")


def _redis_url() -> str:
    """A bus on the shared Redis, in a database (1 to 15) other than the previous test's."""
    _standard_server("redis")
    return f"redis://127.0.0.1:6379/{next(_redis_dbs) % 15 + 1}"


def _nats_url() -> str:
    """A bus on the shared NATS server, with a stream of its own (see ``_delete_stream``)."""
    _standard_server("nats")
    return f"nats://127.0.0.1:4222/t{uuid.uuid4().hex[:12]}"


async def _delete_stream(bus_url: str) -> None:
    nc = await nats.connect(bus_url.rsplit("/", 1)[0])
    with contextlib.suppress(NotFoundError):
        await nc.jetstream().delete_stream(NatsTransport(bus_url).stream)
    await nc.close()


@pytest.fixture(params=["redis", "nats"])
def bus_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A bus of this test's own on the shared server: a Redis db, or a NATS stream (deleted after)."""
    if request.param == "redis":
        yield _redis_url()
        return
    url = _nats_url()
    yield url
    asyncio.run(_delete_stream(url))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PrivateServer:
    """A Redis or NATS server of the test's own, on a free port, that the test may stop and restart."""

    def __init__(self, kind: str, data_dir: Path, *, jetstream: bool = True) -> None:
        self.kind = kind
        self.port = free_port()
        binary = shutil.which(f"{kind}-server") or shutil.which(f"{kind}-server", path="/usr/sbin:/usr/bin")
        if binary is None:
            pytest.fail(f"{kind}-server is not installed (Debian package {kind}-server)")
        if kind == "redis":
            self.argv = [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ]
        else:
            self.argv = [binary, "-a", "127.0.0.1", "-p", str(self.port)]
            self.argv += ["-js", "-sd", str(data_dir)] if jetstream else []
        self.url = f"{kind}://127.0.0.1:{self.port}" + ("/0" if kind == "redis" else "")
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self._proc = subprocess.Popen(self.argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while not port_open(self.port):
            if time.monotonic() > deadline or self._proc.poll() is not None:
                pytest.fail(f"{self.kind}-server did not start on port {self.port}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait(10)
            self._proc = None


@pytest.fixture(params=["redis", "nats"])
def private_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[PrivateServer]:
    server = PrivateServer(request.param, tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@asynccontextmanager
async def started(*buses: Bus) -> AsyncIterator[None]:
    """Run the buses' links, as the web app's lifespan does."""
    for bus in buses:
        await bus.start()
    try:
        yield
    finally:
        for bus in buses:
            await bus.stop()


async def next_event(sub: Subscription, timeout: float = 10.0) -> Event:
    return await asyncio.wait_for(sub.queue.get(), timeout)


async def wait_until(check: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


def _origin(bus: Bus) -> str:
    assert bus.link is not None
    return bus.link.origin


# -- two processes on one bus -----------------------------------------------------------------


@pytest.mark.anyio
async def test_an_event_reaches_the_other_process_and_never_comes_back(bus_url: str) -> None:
    a, b = Bus.from_url(bus_url), Bus.from_url(bus_url)
    b_remote: list[Event] = []
    b_local: list[Event] = []
    b.on("sta.*", b_remote.append, remote=True)
    b.on("sta.*", b_local.append)  # a side effect (MQTT out, alerts): this process's events only
    async with started(a, b):
        a_sub, b_sub = a.subscribe("*"), b.subscribe("*")
        a.publish("sta.created", {"set": "Things", "id": 7})
        got = await next_event(b_sub)
        assert (got.topic, got.data, got.portable) == ("sta.created", {"set": "Things", "id": 7}, got.data)
        assert got.remote and got.origin == _origin(a)
        own = await next_event(a_sub)
        assert (own.topic, own.remote) == ("sta.created", False)

        b.publish("sta.deleted", {"set": "Things", "id": 7})
        back = await next_event(a_sub)
        assert (back.topic, back.origin) == ("sta.deleted", _origin(b))
        assert (await next_event(b_sub)).remote is False  # B's own, delivered locally once
        await asyncio.sleep(0.5)  # an echo of either event would have arrived by now
        assert a_sub.queue.empty() and b_sub.queue.empty()
    assert [(e.topic, e.remote) for e in b_remote] == [("sta.created", True), ("sta.deleted", False)]
    assert [(e.topic, e.remote) for e in b_local] == [("sta.deleted", False)]


@pytest.mark.anyio
async def test_patterns_and_local_only_topics(bus_url: str) -> None:
    a, b = Bus.from_url(bus_url), Bus.from_url(bus_url)
    now = datetime.now(UTC)
    row = StoredObservation(3, "default", now, None, None, None, None, 4.5, None, None, None, None, None)
    async with started(a, b):
        b_sta, b_obs, b_all = b.subscribe("sta.*"), b.subscribe("observations.stored"), b.subscribe("*")
        a_all = a.subscribe("*")
        a.publish("local.only", {"rule": 1})  # not in FORWARDED: stays in A
        a.publish("sta.updated", {"set": "Datastreams", "id": 3})
        a.publish("observations.stored", {"channel": "t", "source_id": None, "observations": [row]})
        assert [(await next_event(b_all)).topic for _ in range(2)] == ["sta.updated", "observations.stored"]
        assert (await next_event(b_sta)).topic == "sta.updated"
        assert (await next_event(b_obs)).data["datastreams"][0]["result"] == 4.5
        await asyncio.sleep(0.3)
        assert b_all.queue.empty() and b_sta.queue.empty() and b_obs.queue.empty()
        assert [(await next_event(a_all)).topic for _ in range(3)] == [
            "local.only",
            "sta.updated",
            "observations.stored",
        ]
    assert set(FORWARDED) == {
        "observations.stored",
        "sta.created",
        "sta.updated",
        "sta.deleted",
        "status.notice",
        "alerts.rules",
    }


@pytest.mark.anyio
async def test_a_batch_stored_through_ingest_arrives_compacted(bus_url: str, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/citydesk.db"
    engine = migrated_engine(url)
    app = build_app(Settings(database_url=url, bus_url=bus_url), engine=engine)
    pm10, no2 = create_sensor(app, "A"), create_sensor(app, "B", observed_property="NO2")
    other = Bus.from_url(bus_url)
    t = datetime(2026, 5, 1, 3, 0, tzinfo=UTC)
    records = [
        ObservationIn(pm10, 40.0, phenomenon_time=t),
        ObservationIn(pm10, 12.5, phenomenon_time=t + timedelta(minutes=1)),
        ObservationIn(no2, 20.0, phenomenon_time=t),
    ]
    try:
        async with started(app.bus, other):
            sub = other.subscribe("observations.stored")
            result = await asyncio.to_thread(app.ingest.ingest, records, channel="mqtt")
            event = await next_event(sub)
    finally:
        engine.dispose()
    assert len(result.stored) == 3
    assert event.remote and event.data == event.portable
    assert {k: v for k, v in event.data.items() if k != "datastreams"} == {
        "channel": "mqtt",
        "source_id": None,
        "count": 3,
    }
    assert sorted(event.data["datastreams"], key=lambda d: d["id"]) == [
        {"id": pm10, "count": 2, "phenomenonTime": "2026-05-01T03:01:00+00:00", "result": 12.5},
        {"id": no2, "count": 1, "phenomenonTime": "2026-05-01T03:00:00+00:00", "result": 20.0},
    ]


@pytest.mark.postgres
@pytest.mark.anyio
async def test_a_write_on_one_app_updates_the_other_apps_latest_values_without_a_poll(
    bus_url: str, pg_url: str
) -> None:
    engine = migrated_engine(pg_url)
    a = build_app(Settings(database_url=pg_url, bus_url=bus_url), engine=engine)
    b = build_app(Settings(database_url=pg_url, bus_url=bus_url))  # its own engine, as a worker has
    ds = create_sensor(a, "shared")  # before the links run: B learns of it from the database
    b.latest.refresh(full=True)
    b.latest.poll_seconds = 3600.0  # B reads the database no more: only the bus can update it

    def b_value() -> object:
        with b.engine.connect() as conn:
            return {e["datastream"]: e["result"] for e in b.latest.values(conn, {"public"})}.get(ds)

    now = datetime.now(UTC)
    try:
        async with started(a.bus, b.bus):
            await asyncio.to_thread(
                a.ingest.ingest, [ObservationIn(ds, 41.0, phenomenon_time=now)], channel="t"
            )
            await wait_until(lambda: b_value() == 41.0, 10)
        newer = [ObservationIn(ds, 7.0, phenomenon_time=now + timedelta(seconds=1))]
        await asyncio.to_thread(a.ingest.ingest, newer, channel="t")  # the links are stopped
        await asyncio.sleep(0.3)
        assert b_value() == 41.0, "without the bus B sees the write only when it polls"
        b.latest.refresh()
        assert b_value() == 7.0
    finally:
        engine.dispose()
        b.engine.dispose()


@pytest.mark.anyio
async def test_another_workers_datastream_change_is_forgotten_here(bus_url: str, tmp_path: Path) -> None:
    """Worker B validates against cached facts; A making a datastream internal must reach them."""
    url = f"sqlite:///{tmp_path}/citydesk.db"
    engine = migrated_engine(url)
    a = build_app(Settings(database_url=url, bus_url=bus_url), engine=engine)
    b = build_app(Settings(database_url=url, bus_url=bus_url), engine=engine)
    ds = create_sensor(a, "shared")
    assert b.catalog.lookup(engine, {ds})[ds].disclosure == "public"
    try:
        async with started(a.bus, b.bus):
            with engine.begin() as conn:  # what a PATCH through A's SensorThings API commits ...
                conn.execute(update(datastreams).where(datastreams.c.id == ds).values(disclosure="internal"))
            a.bus.publish("sta.updated", {"set": "Datastreams", "id": ds})  # ... and then announces
            await wait_until(lambda: b.catalog.lookup(engine, {ds})[ds].disclosure == "internal", 10)
    finally:
        engine.dispose()


@pytest.mark.anyio
async def test_redis_databases_are_separate_buses() -> None:
    one, two = _redis_url(), _redis_url()  # Redis pub/sub itself ignores the db number
    a, same, other = Bus.from_url(one), Bus.from_url(one), Bus.from_url(two)
    async with started(a, same, other):
        same_sub, other_sub = same.subscribe("*"), other.subscribe("*")
        a.publish("sta.created", {"set": "Things", "id": 1})
        assert (await next_event(same_sub)).topic == "sta.created"
        await asyncio.sleep(0.3)
        assert other_sub.queue.empty()


@pytest.mark.anyio
async def test_the_nats_stream_is_made_idempotently_with_bounded_age() -> None:
    fresh, existing = _nats_url(), _nats_url()
    nc = await nats.connect(fresh.rsplit("/", 1)[0])
    js = nc.jetstream()
    theirs = NatsTransport(existing)
    # As an operator (or an older citydesk) made it: on disk, with a shorter age.
    await js.add_stream(
        StreamConfig(name=theirs.stream, subjects=[theirs.subject], max_age=5, storage=StorageType.FILE)
    )
    try:
        buses = [Bus.from_url(url) for url in (fresh, fresh, existing)]
        for bus in buses:
            bus.check()  # connects (and makes the stream) once more
        async with started(*buses):
            made = (await js.stream_info(NatsTransport(fresh).stream)).config
            kept = (await js.stream_info(theirs.stream)).config
    finally:
        await nc.close()
        for url in (fresh, existing):
            await _delete_stream(url)
    assert (made.max_age, made.max_bytes, made.storage) == (MAX_AGE_SECONDS, MAX_BYTES, StorageType.MEMORY)
    assert (kept.max_age, kept.max_bytes, kept.storage) == (MAX_AGE_SECONDS, MAX_BYTES, StorageType.FILE)


@pytest.mark.anyio
async def test_a_nats_worker_resumes_after_a_short_disconnect() -> None:
    """What JetStream adds over plain pub/sub: events published while a worker was cut off."""
    url = _nats_url()
    a, b = Bus.from_url(url), Bus.from_url(url)
    assert b.link is not None
    try:
        async with started(a, b):
            b_sub = b.subscribe("sta.*")
            a.publish("sta.created", {"set": "Things", "id": 1})
            assert (await next_event(b_sub)).data["id"] == 1
            await b.link.transport.close()  # B's connection drops; A's stays
            await wait_until(lambda: b.state.startswith("reconnecting"), 5)
            for i in (2, 3, 4):
                a.publish("sta.created", {"set": "Things", "id": i})
            await asyncio.sleep(0.1)
            assert b.state.startswith("reconnecting"), "B must still be away when A publishes"
            assert [(await next_event(b_sub)).data["id"] for _ in range(3)] == [2, 3, 4]
    finally:
        await _delete_stream(url)


@pytest.mark.anyio
async def test_a_deleted_nats_stream_is_made_anew_and_heard_again(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("citydesk.bus.nats.QUIET_CHECK_SECONDS", 0.3)
    url = _nats_url()
    a, b = Bus.from_url(url), Bus.from_url(url)
    try:
        async with started(a, b):
            b_sub = b.subscribe("sta.*")
            await _delete_stream(url)  # by an operator, under both workers
            a.publish("sta.created", {"set": "Things", "id": 1})  # fails: A makes the stream again
            await wait_until(lambda: a.state.startswith("reconnecting"), 5)
            await wait_until(lambda: b.state.startswith("reconnecting"), 5)  # B's check saw it
            await wait_until(lambda: a.state.startswith("connected") and b.state.startswith("connected"))
            a.publish("sta.created", {"set": "Things", "id": 2})
            assert (await next_event(b_sub)).data["id"] == 2
    finally:
        await _delete_stream(url)


# -- outages ----------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_bus_server_going_away_and_coming_back(
    private_server: PrivateServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="citydesk.bus.remote")
    a, b = Bus.from_url(private_server.url), Bus.from_url(private_server.url)
    link = a.link
    assert link is not None
    local: list[Event] = []
    a.on("sta.*", local.append)
    async with started(a, b):
        a_sub, b_sub = a.subscribe("sta.*"), b.subscribe("sta.*")
        private_server.stop()
        await wait_until(lambda: a.state.startswith("reconnecting") and b.state.startswith("reconnecting"))
        for i in range(3):
            a.publish("sta.updated", {"set": "Things", "id": i})  # neither raises nor waits
        assert [e.data["id"] for e in local] == [0, 1, 2]
        assert [(await next_event(a_sub)).data["id"] for _ in range(3)] == [0, 1, 2]
        await wait_until(lambda: link.dropped == 3, 5)

        private_server.start()
        await wait_until(lambda: a.state.startswith("connected") and b.state.startswith("connected"))
        a.publish("sta.created", {"set": "Things", "id": 99})
        got = await next_event(b_sub)
        assert (got.topic, got.data["id"]) == ("sta.created", 99)  # what A dropped never arrives
        assert b_sub.queue.empty()
    messages = [r.getMessage() for r in caplog.records]
    assert sum("unreachable" in m for m in messages) == 2, messages  # once per worker per outage
    assert sum("is back" in m for m in messages) == 2, messages


# -- configuration ----------------------------------------------------------------------------


def test_bus_url_mistakes_are_refused_with_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(InvalidSetting, match="unknown scheme 'amqp'"):
        Bus.from_url("amqp://127.0.0.1:5672")
    with pytest.raises(InvalidSetting, match=r"stream name 'a\.b'"):
        Bus.from_url("nats://127.0.0.1:4222/a.b")
    assert Bus.from_url("memory://").state == "in-process only"
    url = f"sqlite:///{tmp_path}/citydesk.db"
    engine = migrated_engine(url)
    port = free_port()  # nothing listens there
    try:
        for bus_url in (f"redis://:s3cret@127.0.0.1:{port}/0", f"nats://127.0.0.1:{port}"):
            with pytest.raises(BusUnavailable, match=f"127.0.0.1:{port}.* cannot be used") as caught:
                build_app(Settings(database_url=url, bus_url=bus_url), engine=engine)
            assert "s3cret" not in caught.value.message
        plain_nats = PrivateServer("nats", tmp_path, jetstream=False)
        plain_nats.start()
        try:
            with pytest.raises(BusUnavailable, match="has no JetStream: run it with -js"):
                build_app(Settings(database_url=url, bus_url=plain_nats.url), engine=engine)
        finally:
            plain_nats.stop()
    finally:
        engine.dispose()


def test_serve_refuses_an_unreachable_bus_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path}/citydesk.db"
    migrated_engine(url).dispose()
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("BUS_URL", f"redis://127.0.0.1:{free_port()}/0")
    assert cli_main(["serve", "--port", str(free_port())]) == 2
    err = capsys.readouterr().err
    assert "error: The event bus redis://127.0.0.1:" in err and "BUS_URL=memory://" in err


def test_the_app_runs_its_bus_link_with_the_other_services(bus_url: str, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/citydesk.db"
    engine = migrated_engine(url)
    app: App = build_app(Settings(database_url=url, bus_url=bus_url), engine=engine)
    attach_services(app)
    assert app.background[0] is app.bus and app.bus.state == "stopped"
    try:
        with TestClient(create_asgi(app)) as client:
            services = {s["name"]: s["state"] for s in client.get("/api/overview").json()["services"]}
            assert services["event bus"].startswith("connected to ")
        assert app.bus.state == "stopped"
    finally:
        engine.dispose()
