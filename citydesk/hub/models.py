"""Tables of the data hub: the SensorThings model, rollups, sources and quarantine.

Every entity a citizen could reach carries a ``disclosure`` level (public, internal, restricted);
Observations inherit theirs from their Datastream. On PostgreSQL the ``observations`` table is
partitioned by family and day (see the migration); the definition here is the portable shape.
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    text,
)

from citydesk.db.metadata import Id, Json, Timestamp, metadata

DISCLOSURE = String(16)


def _disclosure() -> Column[str]:
    return Column("disclosure", DISCLOSURE, nullable=False, server_default=text("'public'"))


things = Table(
    "things",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", Text, nullable=False),
    Column("description", Text, nullable=False, server_default=""),
    Column("properties", Json),
    _disclosure(),
)

locations = Table(
    "locations",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", Text, nullable=False),
    Column("description", Text, nullable=False, server_default=""),
    Column("encoding_type", String(64), nullable=False, server_default="application/geo+json"),
    Column("location", Json, nullable=False),
    Column("properties", Json),
    Column("lon", Float),
    Column("lat", Float),
    Column("district_code", String(10), index=True),
    Column("h3_cell", String(16)),
    _disclosure(),
)

thing_locations = Table(
    "thing_locations",
    metadata,
    Column("thing_id", Id, ForeignKey("things.id", ondelete="CASCADE"), nullable=False),
    Column("location_id", Id, ForeignKey("locations.id", ondelete="CASCADE"), nullable=False, index=True),
    PrimaryKeyConstraint("thing_id", "location_id"),
)

historical_locations = Table(
    "historical_locations",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("time", Timestamp, nullable=False),
    Column("thing_id", Id, ForeignKey("things.id", ondelete="CASCADE"), nullable=False, index=True),
)

historical_location_locations = Table(
    "historical_location_locations",
    metadata,
    Column(
        "historical_location_id",
        Id,
        ForeignKey("historical_locations.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("location_id", Id, ForeignKey("locations.id", ondelete="CASCADE"), nullable=False, index=True),
    PrimaryKeyConstraint("historical_location_id", "location_id"),
)

sensors = Table(
    "sensors",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", Text, nullable=False),
    Column("description", Text, nullable=False, server_default=""),
    Column("encoding_type", String(128), nullable=False),
    Column("metadata", Text, nullable=False, server_default=""),
    Column("properties", Json),
    _disclosure(),
)

observed_properties = Table(
    "observed_properties",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", Text, nullable=False),
    Column("definition", Text, nullable=False, server_default=""),
    Column("description", Text, nullable=False, server_default=""),
    Column("properties", Json),
    _disclosure(),
)

datastreams = Table(
    "datastreams",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", Text, nullable=False),
    Column("description", Text, nullable=False, server_default=""),
    Column("unit_of_measurement", Json, nullable=False),
    Column("observation_type", Text, nullable=False),
    Column("observed_area", Json),
    Column("properties", Json),
    Column("thing_id", Id, ForeignKey("things.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("sensor_id", Id, ForeignKey("sensors.id", ondelete="CASCADE"), nullable=False, index=True),
    Column(
        "observed_property_id",
        Id,
        ForeignKey("observed_properties.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("family", String(32), nullable=False, server_default="default"),
    Column("district_code", String(10), index=True),
    _disclosure(),
)

features_of_interest = Table(
    "features_of_interest",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", Text, nullable=False),
    Column("description", Text, nullable=False, server_default=""),
    Column("encoding_type", String(64), nullable=False, server_default="application/geo+json"),
    Column("feature", Json, nullable=False),
    Column("properties", Json),
    Column("location_id", Id, ForeignKey("locations.id", ondelete="SET NULL"), unique=True),
    Column("feature_key", String(32), unique=True),
    Column("lon", Float),
    Column("lat", Float),
    Column("district_code", String(10), index=True),
    Column("h3_cell", String(16)),
    _disclosure(),
)

# Portable shape of the observation store. No foreign keys: on PostgreSQL it is a partitioned
# table written with COPY, and datastream deletion removes its rows explicitly.
observations = Table(
    "observations",
    metadata,
    Column("id", Id, nullable=False),
    Column("datastream_id", Id, nullable=False),
    Column("family", String(32), nullable=False, server_default="default"),
    Column("phenomenon_time", Timestamp, nullable=False),
    Column("phenomenon_time_end", Timestamp),
    Column("result_time", Timestamp),
    Column("valid_time_start", Timestamp),
    Column("valid_time_end", Timestamp),
    Column("result_number", Float),
    Column("result_json", Json),
    Column("result_quality", Json),
    Column("parameters", Json),
    Column("foi_id", Id),
    Column("district_code", String(10)),
    Column("dedup_key", Id),
    PrimaryKeyConstraint("id", name="pk_observations"),
)
Index(
    "uq_observations_dedup",
    observations.c.datastream_id,
    observations.c.phenomenon_time,
    observations.c.dedup_key,
    unique=True,
)
Index("ix_observations_family_time", observations.c.family, observations.c.phenomenon_time)

# One narrow row per datastream, rewritten by every batch: the latest value (what a map shows)
# and the time extent of all its observations (the Datastream's phenomenonTime). Keeping the
# extent here rather than on ``datastreams`` keeps the hot update off the wide, indexed table.
datastream_latest = Table(
    "datastream_latest",
    metadata,
    Column("datastream_id", Id, ForeignKey("datastreams.id", ondelete="CASCADE"), primary_key=True),
    Column("observation_id", Id, nullable=False),
    Column("phenomenon_time", Timestamp, nullable=False),
    Column("result_number", Float),
    Column("result_json", Json),
    Column("first_time", Timestamp, nullable=False),
    Column("last_time", Timestamp, nullable=False),
    Column("updated_at", Timestamp, nullable=False),
)


def _rollup(name: str) -> Table:
    return Table(
        name,
        metadata,
        Column("datastream_id", Id, ForeignKey("datastreams.id", ondelete="CASCADE"), nullable=False),
        Column("bucket", Timestamp, nullable=False),
        Column("count", Integer, nullable=False),
        Column("sum", Float, nullable=False),
        Column("min", Float, nullable=False),
        Column("max", Float, nullable=False),
        PrimaryKeyConstraint("datastream_id", "bucket"),
    )


rollup_hourly = _rollup("obs_rollup_hourly")
rollup_daily = _rollup("obs_rollup_daily")

retention_policies = Table(
    "retention_policies",
    metadata,
    Column("family", String(32), primary_key=True),
    Column("raw_days", Integer, nullable=False),
    Column("hourly_days", Integer, nullable=False),
    Column("daily_days", Integer),
    Column("description", Text, nullable=False, server_default=""),
)

sources = Table(
    "sources",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("kind", String(32), nullable=False),
    Column("config", Json, nullable=False),
    Column("interval_seconds", Integer),
    Column("enabled", Boolean, nullable=False, server_default=text("true")),
    Column("created_at", Timestamp, nullable=False),
    _disclosure(),
)

source_status = Table(
    "source_status",
    metadata,
    Column("source_id", Id, ForeignKey("sources.id", ondelete="CASCADE"), primary_key=True),
    Column("state", String(16), nullable=False, server_default="idle"),
    Column("last_run_at", Timestamp),
    Column("last_success_at", Timestamp),
    Column("last_error", Text),
    Column("last_error_at", Timestamp),
    Column("consecutive_failures", Integer, nullable=False, server_default="0"),
    Column("records_in", Id, nullable=False, server_default="0"),
    Column("records_rejected", Id, nullable=False, server_default="0"),
    Column("last_run_records", Integer, nullable=False, server_default="0"),
    Column("last_run_rejected", Integer, nullable=False, server_default="0"),
    # The connector's persisted position (e.g. the last row id a SQL source took), as JSON; it is
    # advanced only after the batch it covers is committed, so a crash re-reads rather than skips.
    Column("cursor", Json),
)

quarantine = Table(
    "quarantine",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("source_id", Id, ForeignKey("sources.id", ondelete="SET NULL"), index=True),
    Column("channel", String(32), nullable=False),
    Column("received_at", Timestamp, nullable=False, index=True),
    Column("payload", Text, nullable=False),
    Column("reason", Text, nullable=False),
)
