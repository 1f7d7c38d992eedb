"""Labels: the project's list of classes (name, colour), and each object's label.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27

A new table `labels`, and a nullable objects.label_id (no label: the object's own name is its
label, engine.annotate.labels). SQLite cannot add a foreign key to an existing table, so that
change runs in batch mode (the table is rebuilt, its named constraints kept).
"""
from __future__ import annotations

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: Union[str, None] = "0004"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table(
        "labels",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("color", sa.String(length=7), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_labels"),
        sa.UniqueConstraint("name", name="uq_labels_name"),
    )
    with op.batch_alter_table("objects") as batch:
        batch.add_column(sa.Column("label_id", sa.Integer(), nullable=True))
        batch.create_foreign_key("fk_objects_label_id_labels", "labels", ["label_id"], ["id"], ondelete="SET NULL")


def downgrade() -> None:
    with op.batch_alter_table("objects") as batch:
        batch.drop_constraint("fk_objects_label_id_labels", type_="foreignkey")
        batch.drop_column("label_id")
    op.drop_table("labels")
