"""Object memory: named objects, and the searches that belong to each.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22

An object is what the reviewed searches of one thing have in common: its views are the accepted and
corrected regions of its searches, its negatives the rejected images (engine.annotate.objects). The queries
table gains a nullable object_id; SQLite cannot add a foreign key to an existing table, so that
change runs in batch mode (the table is rebuilt, its named constraints kept).
"""
from __future__ import annotations

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: Union[str, None] = "0001"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table(
        "objects",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_objects"),
        sa.UniqueConstraint("name", name="uq_objects_name"),
    )
    with op.batch_alter_table("queries") as batch:
        batch.add_column(sa.Column("object_id", sa.Integer(), nullable=True))
        batch.create_foreign_key("fk_queries_object_id_objects", "objects", ["object_id"], ["id"],
                                 ondelete="SET NULL")
        batch.create_index("ix_queries_object_id", ["object_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("queries") as batch:
        batch.drop_index("ix_queries_object_id")
        batch.drop_constraint("fk_queries_object_id_objects", type_="foreignkey")
        batch.drop_column("object_id")
    op.drop_table("objects")
