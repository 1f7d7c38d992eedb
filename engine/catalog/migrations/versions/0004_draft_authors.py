"""Drafts per annotator: who made a draft, and on which decision.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03

In a team project two annotators may edit the same hit; each keeps a draft of their own, so the
unique constraint becomes (search, image, author). base_id is the id of the hit's decision the
outline was edited from (0: none; NULL: not recorded, as for drafts made before this revision): a
draft accepted later is checked against it like any decision (engine.annotate.review). Drafts made
before have the author '' and count as anybody's. Batch mode: SQLite changes a constraint by
rebuilding the table.
"""
from __future__ import annotations

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: Union[str, None] = "0003"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table("drafts") as batch:
        batch.add_column(sa.Column("author", sa.String(length=100), nullable=False, server_default=""))
        batch.add_column(sa.Column("base_id", sa.Integer(), nullable=True))
        batch.drop_constraint("uq_drafts_query_id_image_id", type_="unique")
        batch.create_unique_constraint("uq_drafts_query_id_image_id_author", ["query_id", "image_id", "author"])
    with op.batch_alter_table("drafts") as batch:  # the default only filled the rows already there
        batch.alter_column("author", existing_type=sa.String(length=100), server_default=None)


def downgrade() -> None:
    # one draft per hit again: the most recent of each hit's drafts stays
    op.execute("DELETE FROM drafts WHERE id NOT IN (SELECT max(id) FROM drafts GROUP BY query_id, image_id)")
    with op.batch_alter_table("drafts") as batch:
        batch.drop_constraint("uq_drafts_query_id_image_id_author", type_="unique")
        batch.create_unique_constraint("uq_drafts_query_id_image_id", ["query_id", "image_id"])
        batch.drop_column("base_id")
        batch.drop_column("author")
