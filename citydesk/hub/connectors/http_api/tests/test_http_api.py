"""http_api against recorded Seoul Open API answers; only the far side of the network is mocked."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest

from citydesk.hub.connectors.base import ConnectorError
from citydesk.hub.connectors.http_api.config import HttpApiConfig
from citydesk.hub.connectors.registry import ConnectorRegistry
from citydesk.hub.connectors.testing import collect, count_observations, make_datastreams, run_context
from citydesk.web.app import App

PAYLOADS = Path(__file__).parent / "payloads"
SEOUL = ZoneInfo("Asia/Seoul")
URL = "http://openapi.seoul.go.kr:8088/{api_key}/json/DailyAverageAirQuality/1/25/20191231"
pytestmark = pytest.mark.anyio


def client_for(
    body: bytes,
    *,
    status: int = 200,
    ctype: str = "application/json;charset=UTF-8",
    seen: list[httpx.Request] | None = None,
) -> httpx.AsyncClient:
    def handler(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request)
        return httpx.Response(status, content=body, headers={"content-type": ctype})

    return httpx.AsyncClient(transport=httpx.MockTransport(handler))


def daily_config(fields: list[dict], **extra: object) -> HttpApiConfig:
    mapping = {
        "time_field": "MSRDT_DE",
        "time_format": "%Y%m%d",
        "key_fields": ["MSRSTE_NM"],
        "fields": fields,
    }
    mapping.update(extra.pop("mapping", {}))  # type: ignore[call-overload]
    return HttpApiConfig.model_validate(
        {
            "url": URL,
            "api_key": "sample-key",
            "records_path": "DailyAverageAirQuality.row",
            "mapping": mapping,
            **extra,
        }
    )


def connector():
    return ConnectorRegistry().connector("http_api")


async def test_seoul_daily_air_quality_rows_become_observations() -> None:
    seen: list[httpx.Request] = []
    body = (PAYLOADS / "daily_average_air_quality_20191231.json").read_bytes()
    config = daily_config(
        [
            {"source": "PM10", "key": "강남구", "datastream_id": 1},
            {"source": "PM25", "key": "강남구", "datastream_id": 2},
            {"source": "NO2", "key": "종로구", "datastream_id": 3, "converter": "ppm_to_ppb"},
        ],
        mapping={"unmapped": "skip"},
    )
    batch = await collect(connector().run(config, run_context(client_for(body, seen=seen))))
    assert batch.rejected == []
    got = {(o.datastream_id, round(o.result, 6)) for o in batch.observations}
    assert got == {(1, 22.0), (2, 14.0), (3, 16.0)}  # 종로구 NO2 0.016 ppm
    assert {o.phenomenon_time for o in batch.observations} == {datetime(2019, 12, 31, tzinfo=SEOUL)}
    assert "sample-key" in str(seen[0].url)  # the key goes into the request...
    assert config.shown()["api_key"] == "********"  # ...and never back out


async def test_rows_of_unmapped_stations_are_rejected_not_dropped() -> None:
    body = (PAYLOADS / "daily_average_air_quality_20191231.json").read_bytes()
    config = daily_config([{"source": "PM10", "key": "강남구", "datastream_id": 1}])
    batch = await collect(connector().run(config, run_context(client_for(body))))
    assert len(batch.observations) == 1
    assert len(batch.rejected) == 24
    assert batch.rejected[0].reason == "no mapping for key '강동구'"


async def test_csv_body_with_bom_crlf_and_multiline_headers() -> None:
    body = b"\xef\xbb\xbf" + (PAYLOADS / "air_quality_head.csv").read_bytes()
    config = HttpApiConfig.model_validate(
        {
            "url": "https://data.seoul.go.kr/air_quality.csv",
            "mapping": {
                "time_field": "날짜",
                "key_fields": ["측정소명"],
                "unmapped": "skip",
                "fields": [
                    {"source": "이산화질소 NO2 (ppm)", "key": "강남구", "datastream_id": 7},
                    {"source": "미세먼지", "key": "평균", "datastream_id": 8},
                ],
            },
        }
    )
    batch = await collect(connector().run(config, run_context(client_for(body, ctype="text/csv"))))
    days = sorted(str(o.phenomenon_time) for o in batch.observations if o.datastream_id == 7)
    assert [(o.datastream_id, o.result) for o in batch.observations[:2]] == [(8, 26.0), (7, 0.014)]
    assert days == ["2019-12-30 00:00:00+09:00", "2019-12-31 00:00:00+09:00"]
    # The first data row is the file's "전체" (whole-year) summary: not a date, so it is quarantined.
    assert len(batch.rejected) == 1
    assert batch.rejected[0].reason.startswith("날짜: '전체' is not a time")
    assert batch.rejected[0].payload["_line"] == 5  # the header spans lines 1-4


@pytest.mark.parametrize(
    ("status", "body", "ctype", "message"),
    [
        (500, b"<html><body>Internal Server Error</body></html>", "text/html", "HTTP 500 from"),
        (401, b'{"RESULT":{"CODE":"INFO-100","MESSAGE":"bad key"}}', "application/json", "INFO-100"),
        (200, b'{"DailyAverageAirQuality": {"row": [', "application/json", "body is not JSON"),
        (200, (PAYLOADS / "no_data.json").read_bytes(), "application/json", "INFO-200"),
    ],
)
async def test_errors_become_connector_errors(status: int, body: bytes, ctype: str, message: str) -> None:
    config = daily_config([{"source": "PM10", "key": "강남구", "datastream_id": 1}])
    with pytest.raises(ConnectorError) as caught:
        await collect(connector().run(config, run_context(client_for(body, status=status, ctype=ctype))))
    assert message in caught.value.message
    assert "sample-key" not in caught.value.message


async def test_timeout_and_unreachable_hosts() -> None:
    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    def refused(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    config = daily_config([{"source": "PM10", "key": "강남구", "datastream_id": 1}], timeout_seconds=2)
    for handler, message in (
        (slow, "no answer from openapi.seoul.go.kr:8088 within 2 s"),
        (refused, "cannot reach"),
    ):
        http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
        with pytest.raises(ConnectorError, match=message):
            await connector().check(config, run_context(http))


async def test_check_refuses_a_mapping_that_fits_nothing() -> None:
    body = (PAYLOADS / "daily_average_air_quality_20191231.json").read_bytes()
    config = daily_config(
        [{"source": "PM10", "datastream_id": 1}], mapping={"key_fields": [], "time_field": "DATE"}
    )
    with pytest.raises(ConnectorError, match="fits none of the first 20 record"):
        await connector().check(config, run_context(client_for(body)))


async def test_stored_through_the_pipeline_once(app: App) -> None:
    ids = make_datastreams(app.engine, ["강남구 PM10", "강남구 PM2.5"])
    body = (PAYLOADS / "daily_average_air_quality_20191231.json").read_bytes()
    config = daily_config(
        [
            {"source": "PM10", "key": "강남구", "datastream_id": ids["강남구 PM10"]},
            {"source": "PM25", "key": "강남구", "datastream_id": ids["강남구 PM2.5"]},
        ],
        mapping={"unmapped": "skip"},
    )
    for _ in range(2):  # a re-poll of the same answer stores nothing new
        batch = await collect(connector().run(config, run_context(client_for(body))))
        app.ingest.ingest(batch.observations, channel="http_api", dedupe=True, rejected=batch.rejected)
    assert count_observations(app.engine, ids.values()) == 2


def test_recorded_payload_is_what_the_service_returns() -> None:
    doc = json.loads((PAYLOADS / "daily_average_air_quality_20191231.json").read_text())
    assert (
        doc["DailyAverageAirQuality"]["list_total_count"] == len(doc["DailyAverageAirQuality"]["row"]) == 25
    )
