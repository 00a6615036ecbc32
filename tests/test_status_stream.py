"""The live stream (Server-Sent Events) end to end: a real uvicorn, an httpx streaming client.

An observation committed after the client connected arrives within seconds, filtered by what the
viewer may see and by measure; the subscription ends when the client goes; a slow client is told
to resync; and with a Redis bus a batch written through one app reaches a viewer of another.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import pytest

from citydesk.config import Settings
from citydesk.hub.records import ObservationIn
from citydesk.status.stream import RETRY_MS, VIEWER_QUEUE, Viewer, events, publish_notice
from citydesk.web.app import App, build_app, create_asgi
from tests.conftest import create_sensor, serving_asgi
from tests.test_bus import _delete_stream, _nats_url, _redis_url

ARRIVAL_SECONDS = 5.0


def sse(lines: Iterator[str]) -> Iterator[dict[str, Any]]:
    """Parse Server-Sent Events from text lines (fields ``id``, ``event``, ``data``, ``retry``)."""
    fields: dict[str, Any] = {}
    for line in lines:
        if not line:
            if fields:
                yield fields
            fields = {}
        elif line.startswith(":"):
            fields.setdefault("comment", line[1:].strip())
        else:
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")


def observations(events_: Iterator[dict[str, Any]]) -> dict[str, Any]:
    """The next ``observations`` event's data (pings skipped)."""
    for event in events_:
        if event.get("event") == "observations":
            return dict(orjson.loads(event["data"]), _id=event["id"])
    raise AssertionError("the stream ended")


def ingest(app: App, datastream: int, value: float) -> None:
    app.ingest.ingest([ObservationIn(datastream, value, phenomenon_time=datetime.now(UTC))], channel="test")


def wait_until(condition: Any, seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_an_observation_reaches_an_open_stream(app: App) -> None:
    public = create_sensor(app, "p")
    internal = create_sensor(app, "i", disclosure="internal")
    pm25 = create_sensor(app, "q", observed_property="PM2.5")
    app.status.feed.linger = 0.1  # the feed stays on the bus this long after its last viewer
    with serving_asgi(create_asgi(app)) as base:
        url = f"{base}/api/status/stream"
        with httpx.stream("GET", url, params={"measure": "PM10"}, timeout=10) as r:
            assert r.headers["content-type"].startswith("text/event-stream")
            assert r.headers["cache-control"] == "no-cache"
            stream = sse(r.iter_lines())
            first = next(stream)
            assert first == {"retry": str(RETRY_MS), "comment": "connected"}
            t0 = time.monotonic()
            ingest(app, internal, 666.0)  # never for an anonymous viewer
            ingest(app, pm25, 12.0)  # not the measure asked for
            ingest(app, public, 42.0)
            got = observations(stream)
            assert time.monotonic() - t0 < ARRIVAL_SECONDS
        epoch, _, seq = got.pop("_id").partition(".")
        assert epoch == app.status.feed.journal.epoch and seq.isdigit()
        assert got["measure"] == "PM10"
        [row] = got["datastreams"]
        assert {k: row[k] for k in ("id", "district", "measure", "result")} == {
            "id": public,
            "district": "11680",
            "measure": "PM10",
            "result": 42.0,
        }
        assert datetime.fromisoformat(row["phenomenonTime"]).tzinfo is not None
        # The client went: its viewer and the worker's bus subscription go too.
        assert wait_until(lambda: not app.status.feed.viewers)
        assert wait_until(lambda: not app.bus._subs)


def test_anonymous_never_sees_internal_staff_does(app: App, staff: tuple[str, str]) -> None:
    public = create_sensor(app, "p", observed_property="Noise")
    internal = create_sensor(app, "i", disclosure="internal")
    with serving_asgi(create_asgi(app)) as base:
        url = f"{base}/api/status/stream"
        with (
            httpx.stream("GET", url, timeout=10) as anonymous,
            httpx.stream("GET", url, auth=staff, timeout=10) as official,
        ):
            anonymous_events, official_events = sse(anonymous.iter_lines()), sse(official.iter_lines())
            next(anonymous_events), next(official_events)
            ingest(app, internal, 666.0)
            ingest(app, public, 55.0)
            first_anonymous = observations(anonymous_events)
            assert [d["id"] for d in first_anonymous["datastreams"]] == [public]
            assert "measure" not in first_anonymous
            assert [d["id"] for d in observations(official_events)["datastreams"]] == [internal]
            assert [d["id"] for d in observations(official_events)["datastreams"]] == [public]


def test_notices_reach_only_viewers_allowed_their_level(app: App, staff: tuple[str, str]) -> None:
    with serving_asgi(create_asgi(app)) as base:
        url = f"{base}/api/status/stream"
        with (
            httpx.stream("GET", url, timeout=10) as anonymous,
            httpx.stream("GET", url, auth=staff, timeout=10) as official,
        ):
            anonymous_events, official_events = sse(anonymous.iter_lines()), sse(official.iter_lines())
            next(anonymous_events), next(official_events)
            assert wait_until(lambda: len(app.status.feed.viewers) == 2)
            publish_notice(app, "command", "internal", {"id": 7, "status": "sent"})
            publish_notice(app, "event", "public", {"id": 3, "status": "reported"})

            def notices(stream: Iterator[dict[str, Any]], n: int) -> list[tuple[str, Any]]:
                got = []
                for event in stream:
                    if event.get("event") != "ping":
                        got.append((event["event"], orjson.loads(event["data"])))
                    if len(got) == n:
                        return got
                raise AssertionError("the stream ended")

            assert notices(anonymous_events, 1) == [("event", {"id": 3, "status": "reported"})]
            assert notices(official_events, 2) == [
                ("command", {"id": 7, "status": "sent"}),
                ("event", {"id": 3, "status": "reported"}),
            ]


def test_a_notice_of_unknown_kind_is_refused(app: App) -> None:
    with pytest.raises(ValueError, match="unknown notice kind"):
        publish_notice(app, "gossip", "public", {})


def test_a_slow_client_is_told_to_resync_and_an_idle_one_is_pinged() -> None:
    async def run() -> list[bytes]:
        viewer = Viewer(frozenset({"public"}), None)
        for i in range(VIEWER_QUEUE + 5):
            viewer.offer(b'{"n": %d}' % i)
        stream = events(viewer, ping_seconds=0.05)
        chunks = [await anext(stream) for _ in range(3)]
        for _ in range(VIEWER_QUEUE - 1):
            await anext(stream)
        chunks.append(await anext(stream))
        await stream.aclose()
        return chunks

    retry, resync, oldest_kept, ping = asyncio.run(run())
    assert retry.startswith(b"retry: ")
    assert resync == b'event: resync\ndata: {"dropped":5}\n\n'
    assert oldest_kept == b'event: observations\ndata: {"n": 5}\n\n'
    assert ping == b"event: ping\ndata: {}\n\n"  # no id: Last-Event-ID stays the last real one


@pytest.mark.parametrize("remote", ["redis", "nats"])
def test_a_batch_and_a_notice_from_one_app_reach_a_viewer_of_another(
    remote: str, db_url: str, app: App
) -> None:
    bus_url = _redis_url() if remote == "redis" else _nats_url()
    writer, reader = (
        build_app(Settings(database_url=db_url, bus_url=bus_url), engine=app.engine) for _ in "ab"
    )
    for each in (writer, reader):
        each.background.append(each.bus)
    ds = create_sensor(writer, "r")
    try:
        with serving_asgi(create_asgi(writer)), serving_asgi(create_asgi(reader)) as base:
            assert wait_until(
                lambda: writer.bus.state.startswith("connected") and reader.bus.state.startswith("connected")
            )
            with httpx.stream(
                "GET", f"{base}/api/status/stream", params={"measure": "PM10"}, timeout=10
            ) as r:
                stream = sse(r.iter_lines())
                next(stream)
                t0 = time.monotonic()
                ingest(writer, ds, 33.0)
                got = observations(stream)
                assert time.monotonic() - t0 < ARRIVAL_SECONDS
                publish_notice(writer, "event", "public", {"id": 5})
                notice = next(e for e in stream if e.get("event") == "event")
        assert [(d["id"], d["result"], d["district"]) for d in got["datastreams"]] == [(ds, 33.0, "11680")]
        assert orjson.loads(notice["data"]) == {"id": 5}
    finally:
        if remote == "nats":
            asyncio.run(_delete_stream(bus_url))


def test_a_reconnecting_client_gets_what_it_missed_filtered_or_is_told_to_resync(
    app: App, staff: tuple[str, str]
) -> None:
    public = create_sensor(app, "p")
    internal = create_sensor(app, "i", disclosure="internal")
    with serving_asgi(create_asgi(app)) as base:
        url = f"{base}/api/status/stream"
        with httpx.stream("GET", url, timeout=10) as first:
            stream = sse(first.iter_lines())
            next(stream)
            ingest(app, public, 1.0)
            last_seen = observations(stream)["_id"]
        # Offline: a batch, an internal batch, and an alert notice happen meanwhile.
        ingest(app, public, 2.0)
        ingest(app, internal, 666.0)
        publish_notice(app, "event", "public", {"id": 9})
        publish_notice(app, "command", "internal", {"id": 4})
        assert wait_until(lambda: len(app.status.feed.journal._entries) >= 5)

        def replay(headers: dict[str, str], auth: Any = None, n: int = 2) -> list[tuple[str, Any]]:
            with httpx.stream("GET", url, headers=headers, auth=auth, timeout=10) as again:
                got = []
                for event in sse(again.iter_lines()):
                    if "event" in event and event["event"] != "ping":
                        got.append((event["event"], orjson.loads(event["data"])))
                    if len(got) == n:
                        return got
            raise AssertionError("the stream ended")

        # Batches and notices travel separately, so their order between each other may vary.
        missed = sorted(replay({"Last-Event-ID": last_seen}), key=lambda m: m[0])
        assert missed[0] == ("event", {"id": 9})  # the internal batch and command are not for citizens
        assert missed[1][0] == "observations" and missed[1][1]["datastreams"][0]["result"] == 2.0
        staff_missed = replay({"Last-Event-ID": last_seen}, auth=staff, n=4)
        assert sorted(name for name, _ in staff_missed) == [
            "command",
            "event",
            "observations",
            "observations",
        ]
        # An id from another worker (or from before a restart) cannot be replayed: resync.
        assert replay({"Last-Event-ID": "feedbeef.3"}, n=1) == [("resync", {"dropped": 1})]
