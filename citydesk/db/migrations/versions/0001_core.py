"""core schema: sensorthings, rollups, sources, auth, geography

Revision ID: 0001
Revises:
Create Date: 2026-11-21

On PostgreSQL the observation table is partitioned: LIST by datastream family, then RANGE by
day of phenomenon time, so a family's retention drops whole partitions instead of deleting rows.
Partitions are created on demand by ``citydesk.hub.store``.
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


OBSERVATIONS_PG = """
CREATE SEQUENCE observations_id_seq AS bigint;
CREATE TABLE observations (
    id bigint NOT NULL DEFAULT nextval('observations_id_seq'),
    datastream_id bigint NOT NULL,
    family varchar(32) NOT NULL DEFAULT 'default',
    phenomenon_time timestamptz NOT NULL,
    phenomenon_time_end timestamptz,
    result_time timestamptz,
    valid_time_start timestamptz,
    valid_time_end timestamptz,
    result_number double precision,
    result_json jsonb,
    result_quality jsonb,
    parameters jsonb,
    foi_id bigint,
    district_code varchar(10),
    dedup_key bigint,
    CONSTRAINT pk_observations PRIMARY KEY (id, family, phenomenon_time)
) PARTITION BY LIST (family);
ALTER SEQUENCE observations_id_seq OWNED BY observations.id;
CREATE UNIQUE INDEX uq_observations_dedup
    ON observations (datastream_id, phenomenon_time, dedup_key, family);
"""


def _create_partitioned_observations() -> None:
    for statement in OBSERVATIONS_PG.split(";"):
        if statement.strip():
            op.execute(statement)


def upgrade() -> None:
    op.create_table(
        "districts",
        sa.Column("code", sa.String(length=10), nullable=False),
        sa.Column("name_ko", sa.Text(), nullable=False),
        sa.Column("name_en", sa.Text(), nullable=False),
        sa.Column("kostat_code", sa.String(length=10), nullable=True),
        sa.Column(
            "geometry",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_districts")),
    )
    op.create_table(
        "locations",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), server_default="", nullable=False),
        sa.Column(
            "encoding_type", sa.String(length=64), server_default="application/geo+json", nullable=False
        ),
        sa.Column(
            "location",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "properties",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("lon", sa.Float(), nullable=True),
        sa.Column("lat", sa.Float(), nullable=True),
        sa.Column("district_code", sa.String(length=10), nullable=True),
        sa.Column("h3_cell", sa.String(length=16), nullable=True),
        sa.Column("disclosure", sa.String(length=16), server_default=sa.text("'public'"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_locations")),
    )
    with op.batch_alter_table("locations", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_locations_district_code"), ["district_code"], unique=False)

    if op.get_bind().dialect.name == "postgresql":
        # PostGIS serves the spatial $filter functions; where it is not installed they answer 501.
        op.execute(
            "DO $$ BEGIN IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'postgis') "
            "THEN CREATE EXTENSION IF NOT EXISTS postgis; END IF; END $$"
        )
        _create_partitioned_observations()
    else:
        op.create_table(
            "observations",
            sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
            sa.Column("datastream_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
            sa.Column("family", sa.String(length=32), server_default="default", nullable=False),
            sa.Column("phenomenon_time", sa.DateTime(timezone=True), nullable=False),
            sa.Column("phenomenon_time_end", sa.DateTime(timezone=True), nullable=True),
            sa.Column("result_time", sa.DateTime(timezone=True), nullable=True),
            sa.Column("valid_time_start", sa.DateTime(timezone=True), nullable=True),
            sa.Column("valid_time_end", sa.DateTime(timezone=True), nullable=True),
            sa.Column("result_number", sa.Float(), nullable=True),
            sa.Column(
                "result_json",
                sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
                nullable=True,
            ),
            sa.Column(
                "result_quality",
                sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
                nullable=True,
            ),
            sa.Column(
                "parameters",
                sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
                nullable=True,
            ),
            sa.Column("foi_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
            sa.Column("district_code", sa.String(length=10), nullable=True),
            sa.Column("dedup_key", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
            sa.PrimaryKeyConstraint("id", name="pk_observations"),
        )
        with op.batch_alter_table("observations", schema=None) as batch_op:
            batch_op.create_index("ix_observations_family_time", ["family", "phenomenon_time"], unique=False)
            batch_op.create_index(
                "uq_observations_dedup", ["datastream_id", "phenomenon_time", "dedup_key"], unique=True
            )

    op.create_table(
        "observed_properties",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("definition", sa.Text(), server_default="", nullable=False),
        sa.Column("description", sa.Text(), server_default="", nullable=False),
        sa.Column(
            "properties",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("disclosure", sa.String(length=16), server_default=sa.text("'public'"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_observed_properties")),
    )
    op.create_table(
        "retention_policies",
        sa.Column("family", sa.String(length=32), nullable=False),
        sa.Column("raw_days", sa.Integer(), nullable=False),
        sa.Column("hourly_days", sa.Integer(), nullable=False),
        sa.Column("daily_days", sa.Integer(), nullable=True),
        sa.Column("description", sa.Text(), server_default="", nullable=False),
        sa.PrimaryKeyConstraint("family", name=op.f("pk_retention_policies")),
    )
    op.create_table(
        "sensors",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), server_default="", nullable=False),
        sa.Column("encoding_type", sa.String(length=128), nullable=False),
        sa.Column("metadata", sa.Text(), server_default="", nullable=False),
        sa.Column(
            "properties",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("disclosure", sa.String(length=16), server_default=sa.text("'public'"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sensors")),
    )
    op.create_table(
        "sources",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column(
            "config",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("interval_seconds", sa.Integer(), nullable=True),
        sa.Column("enabled", sa.Boolean(), server_default=sa.text("(true)"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("disclosure", sa.String(length=16), server_default=sa.text("'public'"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sources")),
        sa.UniqueConstraint("name", name=op.f("uq_sources_name")),
    )
    op.create_table(
        "things",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), server_default="", nullable=False),
        sa.Column(
            "properties",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("disclosure", sa.String(length=16), server_default=sa.text("'public'"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_things")),
    )
    op.create_table(
        "users",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("password_hash", sa.Text(), nullable=False),
        sa.Column("role", sa.String(length=32), nullable=False),
        sa.Column("department", sa.String(length=100), nullable=True),
        sa.Column("active", sa.Boolean(), server_default=sa.text("(true)"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("name", name=op.f("uq_users_name")),
    )
    op.create_table(
        "api_tokens",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("user_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("label", sa.String(length=200), server_default="", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked", sa.Boolean(), server_default=sa.text("(false)"), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_api_tokens_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_api_tokens_token_hash")),
    )
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_api_tokens_user_id"), ["user_id"], unique=False)

    op.create_table(
        "sessions",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_sessions_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sessions")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_sessions_token_hash")),
    )
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sessions_expires_at"), ["expires_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_sessions_user_id"), ["user_id"], unique=False)

    op.create_table(
        "audit_log",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("user_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("target", sa.Text(), nullable=False),
        sa.Column("detail", sa.Text(), server_default="", nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_audit_log_user_id_users"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_log_at"), ["at"], unique=False)

    op.create_table(
        "datastreams",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), server_default="", nullable=False),
        sa.Column(
            "unit_of_measurement",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("observation_type", sa.Text(), nullable=False),
        sa.Column(
            "observed_area",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column(
            "properties",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("thing_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("sensor_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "observed_property_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("family", sa.String(length=32), server_default="default", nullable=False),
        sa.Column("district_code", sa.String(length=10), nullable=True),
        sa.Column("disclosure", sa.String(length=16), server_default=sa.text("'public'"), nullable=False),
        sa.ForeignKeyConstraint(
            ["observed_property_id"],
            ["observed_properties.id"],
            name=op.f("fk_datastreams_observed_property_id_observed_properties"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["sensor_id"], ["sensors.id"], name=op.f("fk_datastreams_sensor_id_sensors"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["thing_id"], ["things.id"], name=op.f("fk_datastreams_thing_id_things"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_datastreams")),
    )
    with op.batch_alter_table("datastreams", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_datastreams_district_code"), ["district_code"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_datastreams_observed_property_id"), ["observed_property_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_datastreams_sensor_id"), ["sensor_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_datastreams_thing_id"), ["thing_id"], unique=False)

    op.create_table(
        "dongs",
        sa.Column("code", sa.String(length=12), nullable=False),
        sa.Column("name_ko", sa.Text(), nullable=False),
        sa.Column("name_en", sa.Text(), nullable=False),
        sa.Column("district_code", sa.String(length=10), nullable=True),
        sa.Column(
            "geometry",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["district_code"],
            ["districts.code"],
            name=op.f("fk_dongs_district_code_districts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_dongs")),
    )
    with op.batch_alter_table("dongs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_dongs_district_code"), ["district_code"], unique=False)

    op.create_table(
        "features_of_interest",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), server_default="", nullable=False),
        sa.Column(
            "encoding_type", sa.String(length=64), server_default="application/geo+json", nullable=False
        ),
        sa.Column(
            "feature",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "properties",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("location_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("feature_key", sa.String(length=32), nullable=True),
        sa.Column("lon", sa.Float(), nullable=True),
        sa.Column("lat", sa.Float(), nullable=True),
        sa.Column("district_code", sa.String(length=10), nullable=True),
        sa.Column("h3_cell", sa.String(length=16), nullable=True),
        sa.Column("disclosure", sa.String(length=16), server_default=sa.text("'public'"), nullable=False),
        sa.ForeignKeyConstraint(
            ["location_id"],
            ["locations.id"],
            name=op.f("fk_features_of_interest_location_id_locations"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_features_of_interest")),
        sa.UniqueConstraint("feature_key", name=op.f("uq_features_of_interest_feature_key")),
        sa.UniqueConstraint("location_id", name=op.f("uq_features_of_interest_location_id")),
    )
    with op.batch_alter_table("features_of_interest", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_features_of_interest_district_code"), ["district_code"], unique=False
        )

    op.create_table(
        "historical_locations",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("thing_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.ForeignKeyConstraint(
            ["thing_id"],
            ["things.id"],
            name=op.f("fk_historical_locations_thing_id_things"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_historical_locations")),
    )
    with op.batch_alter_table("historical_locations", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_historical_locations_thing_id"), ["thing_id"], unique=False)

    op.create_table(
        "quarantine",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("source_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["source_id"], ["sources.id"], name=op.f("fk_quarantine_source_id_sources"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_quarantine")),
    )
    with op.batch_alter_table("quarantine", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_quarantine_received_at"), ["received_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_quarantine_source_id"), ["source_id"], unique=False)

    op.create_table(
        "source_status",
        sa.Column("source_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("state", sa.String(length=16), server_default="idle", nullable=False),
        sa.Column("last_run_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_success_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_error_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("consecutive_failures", sa.Integer(), server_default="0", nullable=False),
        sa.Column(
            "records_in",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            server_default="0",
            nullable=False,
        ),
        sa.Column(
            "records_rejected",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            server_default="0",
            nullable=False,
        ),
        sa.Column("last_run_records", sa.Integer(), server_default="0", nullable=False),
        sa.Column("last_run_rejected", sa.Integer(), server_default="0", nullable=False),
        sa.Column(
            "cursor",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.ForeignKeyConstraint(
            ["source_id"], ["sources.id"], name=op.f("fk_source_status_source_id_sources"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("source_id", name=op.f("pk_source_status")),
    )
    op.create_table(
        "thing_locations",
        sa.Column("thing_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("location_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.ForeignKeyConstraint(
            ["location_id"],
            ["locations.id"],
            name=op.f("fk_thing_locations_location_id_locations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["thing_id"], ["things.id"], name=op.f("fk_thing_locations_thing_id_things"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("thing_id", "location_id", name=op.f("pk_thing_locations")),
    )
    with op.batch_alter_table("thing_locations", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_thing_locations_location_id"), ["location_id"], unique=False)

    op.create_table(
        "datastream_latest",
        sa.Column("datastream_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("observation_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("phenomenon_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("result_number", sa.Float(), nullable=True),
        sa.Column(
            "result_json",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("first_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["datastream_id"],
            ["datastreams.id"],
            name=op.f("fk_datastream_latest_datastream_id_datastreams"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("datastream_id", name=op.f("pk_datastream_latest")),
    )
    op.create_table(
        "historical_location_locations",
        sa.Column(
            "historical_location_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("location_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.ForeignKeyConstraint(
            ["historical_location_id"],
            ["historical_locations.id"],
            name=op.f("fk_historical_location_locations_historical_location_id_historical_locations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["location_id"],
            ["locations.id"],
            name=op.f("fk_historical_location_locations_location_id_locations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "historical_location_id", "location_id", name=op.f("pk_historical_location_locations")
        ),
    )
    with op.batch_alter_table("historical_location_locations", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_historical_location_locations_location_id"), ["location_id"], unique=False
        )

    op.create_table(
        "obs_rollup_daily",
        sa.Column("datastream_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("bucket", sa.DateTime(timezone=True), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("sum", sa.Float(), nullable=False),
        sa.Column("min", sa.Float(), nullable=False),
        sa.Column("max", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["datastream_id"],
            ["datastreams.id"],
            name=op.f("fk_obs_rollup_daily_datastream_id_datastreams"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("datastream_id", "bucket", name=op.f("pk_obs_rollup_daily")),
    )
    op.create_table(
        "obs_rollup_hourly",
        sa.Column("datastream_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("bucket", sa.DateTime(timezone=True), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("sum", sa.Float(), nullable=False),
        sa.Column("min", sa.Float(), nullable=False),
        sa.Column("max", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["datastream_id"],
            ["datastreams.id"],
            name=op.f("fk_obs_rollup_hourly_datastream_id_datastreams"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("datastream_id", "bucket", name=op.f("pk_obs_rollup_hourly")),
    )


def downgrade() -> None:
    op.drop_table("sessions")
    op.drop_table("obs_rollup_hourly")
    op.drop_table("obs_rollup_daily")
    with op.batch_alter_table("historical_location_locations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_historical_location_locations_location_id"))

    op.drop_table("historical_location_locations")
    op.drop_table("datastream_latest")
    with op.batch_alter_table("thing_locations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_thing_locations_location_id"))

    op.drop_table("thing_locations")
    op.drop_table("source_status")
    with op.batch_alter_table("quarantine", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_quarantine_source_id"))
        batch_op.drop_index(batch_op.f("ix_quarantine_received_at"))

    op.drop_table("quarantine")
    with op.batch_alter_table("historical_locations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_historical_locations_thing_id"))

    op.drop_table("historical_locations")
    with op.batch_alter_table("features_of_interest", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_features_of_interest_district_code"))

    op.drop_table("features_of_interest")
    with op.batch_alter_table("dongs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_dongs_district_code"))

    op.drop_table("dongs")
    with op.batch_alter_table("datastreams", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_datastreams_thing_id"))
        batch_op.drop_index(batch_op.f("ix_datastreams_sensor_id"))
        batch_op.drop_index(batch_op.f("ix_datastreams_observed_property_id"))
        batch_op.drop_index(batch_op.f("ix_datastreams_district_code"))

    op.drop_table("datastreams")
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_log_at"))

    op.drop_table("audit_log")
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_api_tokens_user_id"))

    op.drop_table("api_tokens")
    op.drop_table("users")
    op.drop_table("things")
    op.drop_table("sources")
    op.drop_table("sensors")
    op.drop_table("retention_policies")
    op.drop_table("observed_properties")
    if op.get_bind().dialect.name != "postgresql":
        with op.batch_alter_table("observations", schema=None) as batch_op:
            batch_op.drop_index("uq_observations_dedup")
            batch_op.drop_index("ix_observations_family_time")

    op.drop_table("observations")
    with op.batch_alter_table("locations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_locations_district_code"))

    op.drop_table("locations")
    op.drop_table("districts")
