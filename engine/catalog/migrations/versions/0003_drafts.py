"""Drafts: a hit's outline edited in review but not yet accepted.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24

One row per (search, image): the edited outline, replaced on each edit and deleted when the hit is
decided (engine.annotate.review). A new table only, so no batch rebuild of an existing one.
"""
from __future__ import annotations

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: Union[str, None] = "0002"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table(
        "drafts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("query_id", sa.Integer(), nullable=False),
        sa.Column("image_id", sa.Integer(), nullable=False),
        sa.Column("region", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["query_id"], ["queries.id"], name="fk_drafts_query_id_queries", ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["image_id"], ["images.id"], name="fk_drafts_image_id_images", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name="pk_drafts"),
        sa.UniqueConstraint("query_id", "image_id", name="uq_drafts_query_id_image_id"),
    )


def downgrade() -> None:
    op.drop_table("drafts")
