"""manual: typed values are read by the datastream's observation type; a source narrows the choices."""

from __future__ import annotations

import pytest

from citydesk.auth import Principal
from citydesk.errors import NotFound, Unauthorized
from citydesk.hub.connectors.manual.config import ManualEntry
from citydesk.hub.connectors.manual.connector import choices, submit
from citydesk.hub.connectors.testing import make_datastreams
from citydesk.hub.models import sources
from citydesk.web.app import App

OGC = "http://www.opengis.net/def/observationType/OGC-OM/2.0/"
STAFF = Principal.for_user(1, "lee", "department_staff")


def test_values_follow_the_observation_type(app: App) -> None:
    count = make_datastreams(app.engine, ["민원 접수 건수"], observation_type=OGC + "OM_CountObservation")
    truth = make_datastreams(app.engine, ["배수펌프 가동"], observation_type=OGC + "OM_TruthObservation")
    result = submit(
        app,
        STAFF,
        [
            ManualEntry(datastream_id=count["민원 접수 건수"], value="1,204"),
            ManualEntry(datastream_id=truth["배수펌프 가동"], value="예"),
            ManualEntry(datastream_id=count["민원 접수 건수"], value="12.5"),
        ],
    )
    assert sorted(o.result_number or o.result_json for o in result.stored) == [True, 1204.0]
    assert [r.reason for r in result.rejected] == ["'12.5' is not a whole number"]
    assert result.stored[0].parameters == {"entered_by": "lee"}


def test_a_manual_source_narrows_the_form_and_the_permission_is_checked(app: App) -> None:
    ids = make_datastreams(app.engine, ["한강 수위", "청계천 수위"])
    with app.engine.begin() as conn:
        source_id = conn.execute(
            sources.insert()
            .values(
                name="수위 수기 입력",
                kind="manual",
                config={"datastream_ids": [ids["한강 수위"]]},
                created_at=app.now(),
            )
            .returning(sources.c.id)
        ).scalar_one()
    assert [c.name for c in choices(app, STAFF, source_id=source_id)] == ["한강 수위"]
    with pytest.raises(NotFound):
        submit(app, STAFF, [ManualEntry(datastream_id=ids["청계천 수위"], value=1.2, source_id=source_id)])
    with pytest.raises(Unauthorized):
        choices(app, Principal.public())
