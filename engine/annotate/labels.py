"""Labels (classes): the project's list of label names and colours, and each object's label.

A dataset has classes: "poster", "statue", "sneaker". The project keeps one list of them (table
`labels`, migration 0005); each remembered object (engine.annotate.objects) points at one of them
(`objects.label_id`), or at none, and then its label is its own name: renaming an object renames
what is exported for it until someone picks a label from the list. Exporters write an object's
label (engine.formats.export.object_label); importers put a dataset's classes into the list and
label the objects they make with them, so a round trip keeps them.

Every call commits before it returns, like the rest of engine.annotate.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from engine.base.errors import PixretError
from engine.catalog.tables import LabelRow, ObjectRow

# distinct colours for new labels, in order (Okabe-Ito's colour-blind-safe set, then a few more)
PALETTE = ("#e69f00", "#56b4e9", "#009e73", "#f0e442", "#0072b2", "#d55e00", "#cc79a7", "#7f7f7f",
           "#8c564b", "#17becf", "#bcbd22", "#9467bd")
_COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")


@dataclass(frozen=True)
class Label:
    id: int
    name: str
    color: str  # "#rrggbb"
    n_objects: int  # objects labelled with it


def valid_label_name(name: str) -> str:
    name = " ".join(str(name or "").split())
    if not name:
        raise PixretError("a label cannot be empty")
    if len(name) > 200:
        raise PixretError(f"label {name[:40]!r}...: longer than 200 characters")
    return name


def _valid_color(color: str) -> str:
    if not _COLOR.match(color or ""):
        raise PixretError(f"colour {color!r}: expected #rrggbb")
    return color.lower()


def _next_color(s) -> str:
    n = s.scalar(select(func.count()).select_from(LabelRow)) or 0
    return PALETTE[n % len(PALETTE)]


def ensure_label(s, name: str, color: str | None = None) -> LabelRow:
    """The label row with this name, added to the list when new (inside the caller's transaction).
    Two annotators adding the same new label at once get the same row: the insert runs in a
    savepoint, and the one that loses the race for uq_labels_name (on PostgreSQL it waits for the
    winner's commit) reads the winner's row instead."""
    name = valid_label_name(name)
    by_name = select(LabelRow).where(LabelRow.name == name)
    row = s.scalars(by_name).first()
    if row is None:
        try:
            with s.begin_nested():
                row = LabelRow(name=name, color=_valid_color(color) if color else _next_color(s))
                s.add(row)
                s.flush()
        except IntegrityError:
            row = s.scalars(by_name).one()
    return row


def _label_row(s, project, key: int | str) -> LabelRow:
    row = s.get(LabelRow, key) if isinstance(key, int) else \
        s.scalars(select(LabelRow).where(LabelRow.name == str(key))).first()
    if row is None:
        raise PixretError(f"{project.folder}: no label {key!r}")
    return row


def list_labels(project) -> list[Label]:
    """The project's labels, by name."""
    with project.catalog.session() as s:
        counts = dict(s.execute(select(ObjectRow.label_id, func.count()).where(ObjectRow.label_id.is_not(None))
                                .group_by(ObjectRow.label_id)).all())
        return [Label(r.id, r.name, r.color, int(counts.get(r.id, 0)))
                for r in s.scalars(select(LabelRow).order_by(func.lower(LabelRow.name), LabelRow.id))]


def add_label(project, name: str, color: str | None = None) -> Label:
    """Add a label to the list (the existing one when the name is taken)."""
    with project.catalog.session() as s:
        row = ensure_label(s, name, color)
        return Label(row.id, row.name, row.color, 0)


def rename_label(project, key: int | str, name: str) -> None:
    """Rename a label: every object labelled with it follows."""
    name = valid_label_name(name)
    with project.catalog.session() as s:
        row = _label_row(s, project, key)
        other = s.scalars(select(LabelRow).where(LabelRow.name == name)).first()
        if other is not None and other.id != row.id:
            raise PixretError(f"a label named {name!r} already exists")
        row.name = name


def set_label_color(project, key: int | str, color: str) -> None:
    with project.catalog.session() as s:
        _label_row(s, project, key).color = _valid_color(color)


def remove_label(project, key: int | str) -> None:
    """Take a label off the list; its objects go back to their own names."""
    with project.catalog.session() as s:
        row = _label_row(s, project, key)
        for obj in s.scalars(select(ObjectRow).where(ObjectRow.label_id == row.id)):
            obj.label_id = None
        s.delete(row)


def set_object_label(project, object_id: int, label: str | None) -> None:
    """Label an object: a name from the list (added to it when new), or None for the object's own name."""
    with project.catalog.session() as s:
        obj = s.get(ObjectRow, int(object_id))
        if obj is None:
            raise PixretError(f"{project.folder}: no object with id {object_id}")
        obj.label_id = None if label is None else ensure_label(s, label).id


def object_labels(s) -> dict[int, tuple[str, str | None]]:
    """Every object's label and colour: {object id: (label, "#rrggbb" or None when it is the object's name)}."""
    rows = s.execute(select(ObjectRow.id, ObjectRow.name, LabelRow.name, LabelRow.color)
                     .join(LabelRow, LabelRow.id == ObjectRow.label_id, isouter=True)).all()
    return {oid: (label or name, color) for oid, name, label, color in rows}
