"""mqtt against the real Mosquitto on 127.0.0.1:1883: persistence, manual acks, redelivery, quarantine.

Every test uses its own topic prefix and client id. Sessions are primed (subscribed, then left)
before publishing, so the broker holds the messages for the connector: no race with SUBSCRIBE.
"""

from __future__ import annotations

import asyncio
import getpass
import json
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from pydantic import SecretStr

from citydesk.hub.connectors.base import ConnectorError
from citydesk.hub.connectors.mqtt.config import MqttConfig
from citydesk.hub.connectors.registry import ConnectorRegistry
from citydesk.hub.connectors.testing import count_observations, make_datastreams, quarantined, run_context
from citydesk.hub.records import Batch
from citydesk.web.app import App
from tests.conftest import port_open

PAYLOADS = Path(__file__).parent / "payloads"
pytestmark = [pytest.mark.anyio, pytest.mark.mqtt]


@pytest.fixture(autouse=True)
def broker() -> None:
    if not port_open(1883):
        pytest.skip("Mosquitto is not reachable on 127.0.0.1:1883")


def _client(client_id: str = "") -> mqtt.Client:
    return mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id or f"t-{uuid.uuid4().hex[:10]}",
        protocol=MQTTProtocolVersion.MQTTv5,
    )


def prime(client_id: str, topics: list[str]) -> None:
    """Create the persistent session the connector will resume, subscribed, then leave it."""
    client = _client(client_id)
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 300
    client.connect("127.0.0.1", 1883, clean_start=True, properties=props)
    acked: list[int] = []
    client.on_subscribe = lambda _c, _u, mid, _rc, _p: acked.append(mid)
    client.loop_start()
    done = client.subscribe([(t, 1) for t in topics])[1]
    deadline = time.monotonic() + 5
    while done not in acked:
        assert time.monotonic() < deadline, "the broker did not confirm the subscription"
        time.sleep(0.01)
    client.disconnect()
    client.loop_stop()


def publish(messages: Sequence[tuple[str, bytes | str]]) -> None:
    client = _client()
    client.connect("127.0.0.1", 1883)
    client.loop_start()
    infos = [client.publish(topic, payload, qos=1) for topic, payload in messages]
    for info in infos:
        info.wait_for_publish(10)
    client.disconnect()
    client.loop_stop()


def sta(ds: int, minute: int, value: float) -> str:
    t = datetime(2019, 12, 31, tzinfo=UTC) + timedelta(minutes=minute)
    return json.dumps({"result": value, "phenomenonTime": t.isoformat()})


class Consumer:
    """Plays the runner: stores each batch, then resumes the generator (which acks)."""

    def __init__(self, app: App, gen: AsyncIterator[Batch]) -> None:
        self.app, self.gen = app, gen
        self.seen = 0
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        async for batch in self.gen:
            result = await asyncio.to_thread(
                self.app.ingest.ingest,
                batch.observations,
                channel="mqtt",
                dedupe=True,
                rejected=batch.rejected,
            )
            self.seen += len(result.stored) + result.duplicates + len(result.rejected)

    async def until(self, n: int, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while self.seen < n:
            if self.task.done():
                self.task.result()
            assert time.monotonic() < deadline, f"only {self.seen} of {n} messages arrived"
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


def setup(layout: str = "sta", **extra: object) -> tuple[MqttConfig, str]:
    prefix = f"citydesk-test/{uuid.uuid4().hex[:10]}"
    topic = f"{prefix}/v1.1/#" if layout == "sta" else f"{prefix}/+/+"
    config = MqttConfig.model_validate(
        {
            "topics": [topic],
            "layout": layout,
            "client_id": f"cd-{prefix[-10:]}",
            "session_expiry_seconds": 300,
            **extra,
        }
    )
    assert config.client_id is not None
    prime(config.client_id, config.topics)
    return config, prefix


def connector():
    return ConnectorRegistry().connector("mqtt")


async def test_sensorthings_messages_are_stored_and_malformed_ones_quarantined(app: App) -> None:
    ds = make_datastreams(app.engine, ["종로구 PM10", "종로구 PM2.5"])
    config, prefix = setup()
    base = f"{prefix}/v1.1/Datastreams"
    good = [(f"{base}({ds['종로구 PM10']})/Observations", sta(0, m, 30 + m % 7)) for m in range(150)]
    good += [(f"{base}({ds['종로구 PM2.5']})/Observations", (PAYLOADS / "sta_observation.json").read_text())]
    # The standard's other create topic: .../Observations with the Datastream linked in the body.
    linked = {
        "result": 5.0,
        "phenomenonTime": "2019-12-31T09:00:00Z",
        "Datastream": {"@iot.id": ds["종로구 PM2.5"]},
    }
    good += [(f"{prefix}/v1.1/Observations", json.dumps(linked))]
    bad = [
        (f"{base}({ds['종로구 PM10']})/Observations", "PM10=37"),
        (f"{base}(999999)/Observations", sta(0, 1, 3.0)),
        (
            f"{base}({ds['종로구 PM10']})/Observations",
            json.dumps({"result": 1, "phenomenonTime": "2019-12-31T00:00"}),
        ),
        (f"{prefix}/v1.1/Things(1)", json.dumps({"result": 1})),
        (f"{prefix}/v1.1/Observations", json.dumps({"result": 1})),
        (
            f"{base}({ds['종로구 PM10']})/Observations",
            json.dumps(
                {"result": 1, "FeatureOfInterest": {"feature": {"type": "Feature", "geometry": None}}}
            ),
        ),
    ]
    await asyncio.to_thread(publish, good + bad)
    consumer = Consumer(app, connector().run(config, run_context(source_id=None)))
    await consumer.until(len(good) + len(bad))
    await consumer.stop()
    assert count_observations(app.engine, ds.values()) == 152
    reasons = sorted(r for _, r in quarantined(app.engine))
    assert reasons == [
        'an Observation sent to .../Observations needs "Datastream": {"@iot.id": <id>}',
        "not JSON: unexpected character, expected a JSON value: line 1 column 1 (char 0)",
        "phenomenonTime: '2019-12-31T00:00' has no time zone (add Z or an offset like +09:00)",
        "the FeatureOfInterest's feature has no geometry",
        "topic is not .../Datastreams(<id>)/Observations or .../Observations",
        "unknown datastream 999999",
    ]
    # Everything was acknowledged, the quarantined messages too: nothing comes back.
    again = Consumer(app, connector().run(config, run_context()))
    await asyncio.sleep(0.5)
    assert again.seen == 0
    await again.stop()


async def test_device_layout_maps_device_and_measure_through_the_table(app: App) -> None:
    ds = make_datastreams(app.engine, ["pm10 a", "temp a", "pm10 b"], position=None)
    devices = [
        {"source": "V02Q1940043/pm10", "datastream_id": ds["pm10 a"]},
        {"source": "V02Q1940043/temp_f", "datastream_id": ds["temp a"], "converter": "fahrenheit_to_celsius"},
        {"source": "V02Q1940044/pm10", "datastream_id": ds["pm10 b"]},
    ]
    config, prefix = setup("device", devices=devices)
    recorded = json.loads((PAYLOADS / "sdot_messages.json").read_text())
    await asyncio.to_thread(
        publish, [(f"{prefix}/{m['device']}/{m['measure']}", json.dumps(m["body"])) for m in recorded]
    )
    consumer = Consumer(app, connector().run(config, run_context()))
    await consumer.until(len(recorded))
    await consumer.stop()
    assert count_observations(app.engine, ds.values()) == 3
    with app.engine.connect() as conn:
        temp = conn.exec_driver_sql(
            f"SELECT result_number FROM observations WHERE datastream_id = {ds['temp a']}"
        )
        assert round(temp.scalar_one(), 3) == -2.0  # 28.4 °F
    reasons = sorted(r for _, r in quarantined(app.engine))
    assert reasons == [
        "no mapping for key 'V02Q1940099/pm10'",
        "v (V02Q1940043/pm10): '점검중' is not a number",
    ]


@pytest.mark.parametrize("committed", [False, True], ids=["crash-before-commit", "crash-after-commit"])
async def test_a_crash_before_the_ack_means_redelivery_stored_once(app: App, committed: bool) -> None:
    ds = make_datastreams(app.engine, ["PM10"])["PM10"]
    config, prefix = setup(batch_max=30, batch_window_ms=3000)
    await asyncio.to_thread(
        publish, [(f"{prefix}/v1.1/Datastreams({ds})/Observations", sta(ds, m, 40.0 + m)) for m in range(30)]
    )
    gen = connector().run(config, run_context())
    batch = await anext(gen)  # received, not acknowledged
    assert len(batch.observations) == 30
    if committed:
        app.ingest.ingest(batch.observations, channel="mqtt", dedupe=True)
    await gen.aclose()  # the process dies here: no PUBACK was sent
    assert count_observations(app.engine, [ds]) == (30 if committed else 0)

    consumer = Consumer(app, connector().run(config, run_context()))
    await consumer.until(30)
    await consumer.stop()
    assert count_observations(app.engine, [ds]) == 30


async def test_check_connects_with_a_throwaway_session() -> None:
    config = MqttConfig(topics=["citydesk-test/check/#"])
    await connector().check(config, run_context())
    with pytest.raises(ConnectorError, match=r"cannot reach the broker at 127\.0\.0\.1:1\b"):
        await connector().check(MqttConfig(url="mqtt://127.0.0.1:1", topics=["x/#"]), run_context())


async def test_throughput(app: App) -> None:
    """Publish 5,000 messages in waves (Mosquitto queues at most 1,000 per client by default)."""
    ids = list(make_datastreams(app.engine, [f"S-DoT {i}" for i in range(10)]).values())
    config, prefix = setup()
    consumer = Consumer(app, connector().run(config, run_context()))
    started = time.perf_counter()
    for wave in range(5):
        msgs = [
            (f"{prefix}/v1.1/Datastreams({ids[i % 10]})/Observations", sta(0, wave * 1000 + i, float(i % 50)))
            for i in range(1000)
        ]
        await asyncio.to_thread(publish, msgs)
        await consumer.until((wave + 1) * 1000 - 200, timeout=60)
    await consumer.until(5000, timeout=60)
    elapsed = time.perf_counter() - started
    await consumer.stop()
    assert count_observations(app.engine, ids) == 5000
    print(
        f"\nmqtt → {app.engine.dialect.name}: 5000 messages stored in {elapsed:.2f} s "
        f"({5000 / elapsed:.0f}/s)"
    )


async def test_our_own_sensorthings_echoes_are_ignored(app: App) -> None:
    """citydesk's SensorThings publisher marks its messages; taking them back in would loop."""
    ds = make_datastreams(app.engine, ["PM10"])["PM10"]
    config, prefix = setup()
    topic = f"{prefix}/v1.1/Datastreams({ds})/Observations"
    client = _client()
    client.connect("127.0.0.1", 1883)
    client.loop_start()
    props = Properties(PacketTypes.PUBLISH)
    props.UserProperty = ("citydesk-origin", "server")
    client.publish(topic, sta(ds, 0, 1.0), qos=1, properties=props).wait_for_publish(10)
    client.publish(topic, sta(ds, 1, 2.0), qos=1).wait_for_publish(10)
    client.disconnect()
    client.loop_stop()
    consumer = Consumer(app, connector().run(config, run_context()))
    await consumer.until(1)
    await asyncio.sleep(0.2)
    await consumer.stop()
    assert consumer.seen == 1 and count_observations(app.engine, [ds]) == 1
    assert quarantined(app.engine) == []


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[Callable[..., tuple[int, subprocess.Popen[bytes]]]]:
    """Start private Mosquittos (to stop, or to configure) on free ports; all stopped at the end."""
    started: list[subprocess.Popen[bytes]] = []

    def start(*extra: str) -> tuple[int, subprocess.Popen[bytes]]:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        conf = tmp_path / f"mosquitto-{port}.conf"
        # As root, Mosquitto drops to the user "mosquitto", who could not read pytest's tmp_path.
        lines = [f"listener {port} 127.0.0.1", "persistence false", f"user {getpass.getuser()}", *extra]
        conf.write_text("\n".join(lines) + "\n")
        proc = subprocess.Popen(["mosquitto", "-c", str(conf)], stderr=subprocess.DEVNULL)
        started.append(proc)
        deadline = time.monotonic() + 5
        while not port_open(port):
            assert time.monotonic() < deadline, "the private Mosquitto did not start"
            time.sleep(0.02)
        return port, proc

    yield start
    for proc in started:
        proc.kill()
        proc.wait()


async def test_losing_the_broker_ends_the_run_with_a_clear_error(app: App, own_broker) -> None:
    """The runner reconnects with back-off; the run itself must end, not hang, and say why."""
    port, proc = own_broker("allow_anonymous true")
    config = MqttConfig(url=f"mqtt://127.0.0.1:{port}", topics=["t/#"], client_id="cd-lost")
    gen = connector().run(config, run_context())
    first = asyncio.ensure_future(anext(gen))
    await asyncio.sleep(0.3)  # connected and subscribed, waiting for messages
    proc.kill()
    with pytest.raises(ConnectorError, match="lost the connection to the broker"):
        await asyncio.wait_for(first, 10)


async def test_a_refused_login_is_said_in_words(own_broker, tmp_path: Path) -> None:
    passwords = tmp_path / "passwords"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(passwords), "sensor", "right"], check=True)
    port, _ = own_broker("allow_anonymous false", f"password_file {passwords}")
    good = MqttConfig(
        url=f"mqtt://127.0.0.1:{port}", topics=["t/#"], username="sensor", password=SecretStr("right")
    )
    await connector().check(good, run_context())
    wrong = good.model_copy(update={"password": SecretStr("wrong")})
    with pytest.raises(
        ConnectorError, match=r"the broker refused us: (bad user name or password|not authorized)"
    ):
        await connector().check(wrong, run_context())


def test_the_connection_works_on_uvloop_as_under_citydesk_serve() -> None:
    """uvicorn runs uvloop, whose transports are not asyncio.Transport subclasses."""
    uvloop = pytest.importorskip("uvloop")
    config = MqttConfig(topics=["citydesk-test/uvloop/#"])
    uvloop.run(connector().check(config, run_context()))
