"""One worker per source (or per consumer of a shared stream): slots held through PostgreSQL
advisory locks, so ``serve --workers N`` does not run every source N times."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime

import orjson
import paho.mqtt.client as mqtt
import pytest
from sqlalchemy import func, select

from citydesk.config import Settings
from citydesk.db import make_engine
from citydesk.hub.models import observations
from citydesk.hub.sources import SourceIn, SourceRunner
from citydesk.hub.sources.slots import SlotClaims
from citydesk.web.app import App, build_app
from tests.conftest import create_sensor, port_open


def test_a_slot_is_held_by_one_process_at_a_time(db_url: str, app: App) -> None:
    other_process = SlotClaims(make_engine(db_url))
    mine = SlotClaims(app.engine)
    held = mine.claim(7, 0)
    assert held is not None
    assert mine.claim(7, 0) is None  # not twice in one process either
    assert mine.claim(7, 1) is not None  # another consumer of the same source is another slot
    if app.engine.dialect.name == "postgresql":
        assert other_process.claim(7, 0) is None
    held.release()
    again = other_process.claim(7, 0) if app.engine.dialect.name == "postgresql" else mine.claim(7, 0)
    assert again is not None
    again.release()
    other_process.engine.dispose()


@pytest.mark.postgres
@pytest.mark.mqtt
@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
def test_two_workers_share_a_stream_and_store_each_message_once(db_url: str, app: App) -> None:
    if not port_open(1883):
        pytest.skip("Mosquitto is not reachable on 127.0.0.1:1883")
    ds = create_sensor(app, "shared stream", observed_property="Noise")
    prefix = f"t{uuid.uuid4().hex[:8]}"
    second_worker = build_app(Settings(database_url=db_url))  # same database, its own engine and locks

    async def scenario() -> tuple[int, list[int]]:
        runners = [
            SourceRunner(app, claim_retry_seconds=0.2),
            SourceRunner(second_worker, claim_retry_seconds=0.2),
        ]
        spec = SourceIn(
            name="shared",
            kind="mqtt",
            config={
                "url": "mqtt://127.0.0.1:1883",
                "topics": [f"{prefix}/v1.1/+/Observations"],
                "layout": "sta",
                "consumers": 2,
                "client_id": f"cd-{prefix}",
            },
        )
        await runners[0].create(spec)  # not started yet: saved, launched by start()
        await runners[0].start()
        await asyncio.sleep(0.5)
        await runners[1].start()  # the first worker holds both slots: the second waits
        await asyncio.sleep(1.0)
        held = [len(r.slots._held) for r in runners]
        await runners[0].stop()  # the first worker goes away: the second takes over both consumers
        await asyncio.sleep(1.5)
        pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"p-{prefix}")
        pub.connect("127.0.0.1", 1883)
        pub.loop_start()
        t0 = datetime(2026, 3, 1, tzinfo=UTC).timestamp()
        infos = [
            pub.publish(
                f"{prefix}/v1.1/Datastreams({ds})/Observations",
                orjson.dumps(
                    {"phenomenonTime": datetime.fromtimestamp(t0 + i, UTC).isoformat(), "result": i}
                ),
                qos=1,
            )
            for i in range(300)
        ]
        for info in infos:
            info.wait_for_publish(10)
        pub.loop_stop()
        deadline = time.monotonic() + 20
        stored = 0
        while time.monotonic() < deadline and stored < 300:
            await asyncio.sleep(0.3)
            with app.engine.connect() as conn:
                stored = conn.execute(select(func.count()).select_from(observations)).scalar_one()
        held.append(len(runners[1].slots._held))
        await runners[1].stop()
        return stored, held

    stored, held = asyncio.run(scenario())
    second_worker.engine.dispose()
    assert held == [2, 0, 2], "slots: first worker both, second none; then the second took both over"
    assert stored == 300


@pytest.mark.mqtt
def test_a_worker_learns_of_sources_created_and_deleted_elsewhere(app: App) -> None:
    if not port_open(1883):
        pytest.skip("Mosquitto is not reachable on 127.0.0.1:1883")
    from citydesk.hub.sources import delete_source

    async def scenario() -> tuple[list[int], list[int]]:
        worker = SourceRunner(app, rescan_seconds=0.2)
        await worker.start()
        elsewhere = SourceRunner(app)  # e.g. the worker that served POST /api/hub/sources
        spec = SourceIn(
            name="made elsewhere",
            kind="mqtt",
            config={
                "url": "mqtt://127.0.0.1:1883",
                "topics": [f"t{uuid.uuid4().hex[:8]}/#"],
                "layout": "sta",
            },
        )
        source = await elsewhere.create(spec)
        await asyncio.sleep(1.0)
        seen = worker.running()
        await asyncio.to_thread(delete_source, app.engine, source.id)
        await asyncio.sleep(1.0)
        after = worker.running()
        await worker.stop()
        return seen, after

    seen, after = asyncio.run(scenario())
    assert len(seen) == 1 and after == []
