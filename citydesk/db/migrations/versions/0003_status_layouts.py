"""status: dashboard layouts per perspective, as staff rearranged them

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TIME = sa.DateTime(timezone=True)

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "status_layouts",
        sa.Column("perspective", sa.String(length=32), nullable=False),
        sa.Column("layout", JSON, nullable=False),
        sa.Column("updated_at", TIME, nullable=False),
        sa.Column("updated_by", ID, nullable=True),
        sa.ForeignKeyConstraint(
            ["updated_by"], ["users.id"], name=op.f("fk_status_layouts_updated_by_users"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("perspective", name=op.f("pk_status_layouts")),
    )


def downgrade() -> None:
    op.drop_table("status_layouts")
