"""Tables of the city's geography: districts (gu) and administrative dongs.

Districts are keyed by the MOIS ``SIG_CD`` code; the KOSTAT census code is kept beside it only
for joining older statistics, never as a key (the two systems reuse numbers for other districts).
"""

from __future__ import annotations

from sqlalchemy import Column, ForeignKey, String, Table, Text

from citydesk.db.metadata import Json, metadata

districts = Table(
    "districts",
    metadata,
    Column("code", String(10), primary_key=True),
    Column("name_ko", Text, nullable=False),
    Column("name_en", Text, nullable=False),
    Column("kostat_code", String(10)),
    Column("geometry", Json, nullable=False),
)

dongs = Table(
    "dongs",
    metadata,
    Column("code", String(12), primary_key=True),
    Column("name_ko", Text, nullable=False),
    Column("name_en", Text, nullable=False),
    Column("district_code", String(10), ForeignKey("districts.code", ondelete="CASCADE"), index=True),
    Column("geometry", Json, nullable=False),
)
