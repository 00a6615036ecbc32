"""What a client sends to the commands API, validated at the edge (pydantic).

Rules that need the clock or the database (a due time in the future, a known department, an
existing event) are the service's: these models only say what a well-formed request looks like.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

SubjectKind = Literal["project", "figure", "district"]
"""What else a command may be about; an event is named by ``event_id``."""


class CommandIn(BaseModel):
    """A new command. Give the due time either as ``due_at`` or as ``due_in`` from now."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    title: str = Field(min_length=1, max_length=200, description="the instruction in one line")
    body: str = Field(default="", max_length=4000, description="details")
    department: str = Field(min_length=1, max_length=100, description="see /api/status/commands/departments")
    due_at: AwareDatetime | None = Field(
        default=None, description="when it must be done (with a zone), in the future"
    )
    due_in: timedelta | None = Field(
        default=None, description="or: how long from now, ISO 8601 (PT2H) or seconds"
    )
    event_id: int | None = Field(default=None, description="the event this command is about")
    subject_kind: SubjectKind | None = Field(
        default=None, description="or: a project, a figure or a district"
    )
    subject_ref: str | None = Field(
        default=None, min_length=1, max_length=200, description="which one (district code...)"
    )

    @model_validator(mode="after")
    def _consistent(self) -> CommandIn:
        if (self.due_at is None) == (self.due_in is None):
            raise ValueError("give exactly one of due_at and due_in")
        if self.event_id is not None and self.subject_kind is not None:
            raise ValueError("a command is about an event or another subject, not both")
        if (self.subject_kind is None) != (self.subject_ref is None):
            raise ValueError("subject_kind and subject_ref go together")
        return self

    def due(self, now: datetime) -> datetime:
        """The due time this request asks for, counted from ``now`` if given as a duration."""
        return self.due_at if self.due_at is not None else now + (self.due_in or timedelta())


class StatusIn(BaseModel):
    """A status change: ``acknowledged``, ``in_progress``, ``done``, ``returned``, ``cancelled``
    (or ``ack``, ``start``, ``return``, ``cancel``); done, returned and cancelled need a note."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    status: str = Field(min_length=1, max_length=32)
    note: str = Field(default="", max_length=4000)


class ProgressIn(BaseModel):
    """A progress report on a command in progress."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    note: str = Field(min_length=1, max_length=4000)
