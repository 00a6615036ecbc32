"""Tables of the live city status: alert rules, events with their status history, commands to
departments with theirs, and the dashboard layouts per perspective.

Status histories are append-only (Signalen's rule): the current status on ``events`` and
``commands`` is a convenience copy of the newest history row, written in the same transaction.
Events and commands carry a disclosure level like every datum; commands are internal by default.
"""

from __future__ import annotations

from sqlalchemy import Boolean, Column, Float, ForeignKey, Index, String, Table, Text, text

from citydesk.db.metadata import Id, Json, Timestamp, metadata

DISCLOSURE = String(16)

alert_rules = Table(
    "alert_rules",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", Text, nullable=False),
    Column("kind", String(32), nullable=False),
    # threshold | rate | nodata (the registry of rule kinds names them).
    Column("datastream_id", Id, ForeignKey("datastreams.id", ondelete="CASCADE"), index=True),
    Column("observed_property", Text),
    # Instead of one datastream: every datastream of this ObservedProperty name.
    Column("district_code", String(10)),
    Column("params", Json, nullable=False),
    Column("severity", String(16), nullable=False, server_default=text("'minor'")),
    Column("event_kind", String(32), nullable=False, server_default=text("'alert'")),
    Column("disclosure", DISCLOSURE, nullable=False, server_default=text("'internal'")),
    Column("enabled", Boolean, nullable=False, server_default=text("true")),
    Column("created_at", Timestamp, nullable=False),
    Column("updated_at", Timestamp, nullable=False),
)

events = Table(
    "events",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("kind", String(32), nullable=False),
    # disaster | fire | flood | earthquake | accident | alert | ...
    Column("title", Text, nullable=False),
    Column("description", Text, nullable=False, server_default=""),
    Column("severity", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("disclosure", DISCLOSURE, nullable=False, server_default=text("'internal'")),
    Column("lon", Float),
    Column("lat", Float),
    Column("district_code", String(10), index=True),
    Column("department", String(100)),
    Column("rule_id", Id, ForeignKey("alert_rules.id", ondelete="SET NULL"), index=True),
    Column("datastream_id", Id, ForeignKey("datastreams.id", ondelete="SET NULL"), index=True),
    Column("open_key", String(200)),
    # Set while the event is open (rule id + datastream): a unique index stops the same alert
    # from being raised twice; cleared when the event is resolved.
    Column("details", Json),
    Column("opened_at", Timestamp, nullable=False, index=True),
    Column("updated_at", Timestamp, nullable=False),
    Column("resolved_at", Timestamp),
)
Index("uq_events_open_key", events.c.open_key, unique=True)

event_history = Table(
    "event_history",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("event_id", Id, ForeignKey("events.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("at", Timestamp, nullable=False),
    Column("status", String(16), nullable=False),
    Column("note", Text, nullable=False, server_default=""),
    Column("user_id", Id, ForeignKey("users.id", ondelete="SET NULL")),
    Column("actor", String(100), nullable=False),
)

commands = Table(
    "commands",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("title", Text, nullable=False),
    Column("body", Text, nullable=False, server_default=""),
    Column("department", String(100), nullable=False, index=True),
    Column("status", String(16), nullable=False),
    Column("due_at", Timestamp, nullable=False, index=True),
    Column("subject_kind", String(32)),
    # What the command is about: event | project | figure | ... (nullable: a plain instruction).
    Column("subject_ref", Text),
    Column("event_id", Id, ForeignKey("events.id", ondelete="SET NULL"), index=True),
    Column("disclosure", DISCLOSURE, nullable=False, server_default=text("'internal'")),
    Column("created_by", Id, ForeignKey("users.id", ondelete="SET NULL")),
    Column("created_at", Timestamp, nullable=False),
    Column("updated_at", Timestamp, nullable=False),
    Column("closed_at", Timestamp),
)

command_history = Table(
    "command_history",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("command_id", Id, ForeignKey("commands.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("at", Timestamp, nullable=False),
    Column("status", String(16), nullable=False),
    Column("note", Text, nullable=False, server_default=""),
    Column("user_id", Id, ForeignKey("users.id", ondelete="SET NULL")),
    Column("actor", String(100), nullable=False),
)

layouts = Table(
    "status_layouts",
    metadata,
    Column("perspective", String(32), primary_key=True),
    # mayor | official | citizen | kiosk: a staff override of the packaged default layout.
    Column("layout", Json, nullable=False),
    Column("updated_at", Timestamp, nullable=False),
    Column("updated_by", Id, ForeignKey("users.id", ondelete="SET NULL")),
)
