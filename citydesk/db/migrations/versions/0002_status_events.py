"""status: alert rules, events and commands with append-only status histories

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TIME = sa.DateTime(timezone=True)

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "alert_rules",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("datastream_id", ID, nullable=True),
        sa.Column("observed_property", sa.Text(), nullable=True),
        sa.Column("district_code", sa.String(length=10), nullable=True),
        sa.Column("params", JSON, nullable=False),
        sa.Column("severity", sa.String(length=16), server_default=sa.text("'minor'"), nullable=False),
        sa.Column("event_kind", sa.String(length=32), server_default=sa.text("'alert'"), nullable=False),
        sa.Column("disclosure", sa.String(length=16), server_default=sa.text("'internal'"), nullable=False),
        sa.Column("enabled", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("updated_at", TIME, nullable=False),
        sa.ForeignKeyConstraint(
            ["datastream_id"],
            ["datastreams.id"],
            name=op.f("fk_alert_rules_datastream_id_datastreams"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_rules")),
    )
    op.create_index(op.f("ix_alert_rules_datastream_id"), "alert_rules", ["datastream_id"], unique=False)
    op.create_table(
        "events",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), server_default="", nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("disclosure", sa.String(length=16), server_default=sa.text("'internal'"), nullable=False),
        sa.Column("lon", sa.Float(), nullable=True),
        sa.Column("lat", sa.Float(), nullable=True),
        sa.Column("district_code", sa.String(length=10), nullable=True),
        sa.Column("department", sa.String(length=100), nullable=True),
        sa.Column("rule_id", ID, nullable=True),
        sa.Column("datastream_id", ID, nullable=True),
        sa.Column("open_key", sa.String(length=200), nullable=True),
        sa.Column("details", JSON, nullable=True),
        sa.Column("opened_at", TIME, nullable=False),
        sa.Column("updated_at", TIME, nullable=False),
        sa.Column("resolved_at", TIME, nullable=True),
        sa.ForeignKeyConstraint(
            ["datastream_id"],
            ["datastreams.id"],
            name=op.f("fk_events_datastream_id_datastreams"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["rule_id"], ["alert_rules.id"], name=op.f("fk_events_rule_id_alert_rules"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_events")),
    )
    op.create_index(op.f("ix_events_datastream_id"), "events", ["datastream_id"], unique=False)
    op.create_index(op.f("ix_events_district_code"), "events", ["district_code"], unique=False)
    op.create_index(op.f("ix_events_opened_at"), "events", ["opened_at"], unique=False)
    op.create_index(op.f("ix_events_rule_id"), "events", ["rule_id"], unique=False)
    op.create_index("uq_events_open_key", "events", ["open_key"], unique=True)
    op.create_table(
        "commands",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("body", sa.Text(), server_default="", nullable=False),
        sa.Column("department", sa.String(length=100), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("due_at", TIME, nullable=False),
        sa.Column("subject_kind", sa.String(length=32), nullable=True),
        sa.Column("subject_ref", sa.Text(), nullable=True),
        sa.Column("event_id", ID, nullable=True),
        sa.Column("disclosure", sa.String(length=16), server_default=sa.text("'internal'"), nullable=False),
        sa.Column("created_by", ID, nullable=True),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("updated_at", TIME, nullable=False),
        sa.Column("closed_at", TIME, nullable=True),
        sa.ForeignKeyConstraint(
            ["created_by"], ["users.id"], name=op.f("fk_commands_created_by_users"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["event_id"], ["events.id"], name=op.f("fk_commands_event_id_events"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_commands")),
    )
    op.create_index(op.f("ix_commands_department"), "commands", ["department"], unique=False)
    op.create_index(op.f("ix_commands_due_at"), "commands", ["due_at"], unique=False)
    op.create_index(op.f("ix_commands_event_id"), "commands", ["event_id"], unique=False)
    op.create_table(
        "event_history",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("event_id", ID, nullable=False),
        sa.Column("at", TIME, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("note", sa.Text(), server_default="", nullable=False),
        sa.Column("user_id", ID, nullable=True),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.ForeignKeyConstraint(
            ["event_id"], ["events.id"], name=op.f("fk_event_history_event_id_events"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_event_history_user_id_users"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_event_history")),
    )
    op.create_index(op.f("ix_event_history_event_id"), "event_history", ["event_id"], unique=False)
    op.create_table(
        "command_history",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("command_id", ID, nullable=False),
        sa.Column("at", TIME, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("note", sa.Text(), server_default="", nullable=False),
        sa.Column("user_id", ID, nullable=True),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.ForeignKeyConstraint(
            ["command_id"],
            ["commands.id"],
            name=op.f("fk_command_history_command_id_commands"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_command_history_user_id_users"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_command_history")),
    )
    op.create_index(op.f("ix_command_history_command_id"), "command_history", ["command_id"], unique=False)


def downgrade() -> None:
    op.drop_table("command_history")
    op.drop_table("event_history")
    op.drop_table("commands")
    op.drop_table("events")
    op.drop_table("alert_rules")
