"""The folder an export goes into, and the promise that nothing of the user's in it is touched.

An export writes only into
- a folder that does not exist yet (it is created),
- an empty folder, or
- a folder an earlier PixRet export made: it holds the exporter's marker file (MARKER, which lists
  every file that export wrote) and nothing else but those files. Replacing it needs an explicit
  yes (`overwrite=True`, `pixret export --overwrite`, the GUI's confirmation).
Any other folder is refused, whatever `overwrite` says: a file the marker does not list (a user's
notes, photos, an older export without a file list) makes the folder the user's.

`check_export_destination(project, out)` says which case a folder is, without touching it, so the
GUI can ask before it starts (engine.formats.export calls it too, and again right before the swap).
The new export is staged in a hidden folder next to OUT (`new_stage`) and swapped in whole; the
earlier export is then removed file by file from its marker's list, so a file that appeared
meanwhile is kept. The hidden folders carry the exporting process's id: those of a process that
was killed (SIGKILL leaves them) are removed by the next export to the same OUT.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

from engine.base.atomic import atomic_write_text
from engine.base.errors import PixretError

__all__ = ["MARKER", "LEGACY_MANIFEST", "ExportDestination", "check_export_destination", "write_marker", "swap_in",
           "new_stage"]

MARKER = "pixret.json"      # not "*-export.json": datumaro (and CVAT) would take the folder for VoTT
LEGACY_MANIFEST = "pixret-export.json"   # PixRet 0.1's manifest (no file list: never trusted as a marker)
MARKER_VERSION = 2          # version 1 (before the file list) is not trusted
_SHOWN = 3                  # foreign files named in a message


@dataclass(frozen=True)
class ExportDestination:
    """What exporting into `path` would do.

    state: "new" (created), "empty" (used), "earlier_export" (replaced, with overwrite=True) or
    "refused" (never written to); `message` says it in words, for the user.
    """
    path: Path
    state: str
    message: str

    @property
    def allowed(self) -> bool:
        return self.state != "refused"

    @property
    def replaces(self) -> bool:
        """True when the export would replace an earlier export (ask the user first)."""
        return self.state == "earlier_export"


def _refused(path: Path, why: str) -> ExportDestination:
    return ExportDestination(path, "refused", f"{path}: {why}")


def _guarded(project, out_r: Path) -> str | None:
    if project is None:                    # an export of a run, not of a project
        return None
    folders = [("the project", Path(project.folder).resolve())]
    if project.root is not None:
        folders.append(("the collection", Path(project.root).resolve()))
    for what, g in folders:
        if out_r == g or out_r in g.parents:
            return f"this is {what} folder or holds it ({g}); choose another folder"
    if len(folders) > 1 and folders[1][1] in out_r.parents and folders[0][1] not in out_r.parents:
        return (f"inside the collection folder {folders[1][1]}: the exported images would be indexed "
                "as new photos. Choose a folder outside it")
    return None


def _marker_files(folder: Path) -> set[str] | None:
    """The files an earlier export's marker lists, or None when there is no usable marker."""
    path = folder / MARKER
    try:
        if path.is_symlink() or not path.is_file() or path.stat().st_size > 64 << 20:
            return None
        doc = json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, ValueError):
        return None
    files = doc.get("files") if isinstance(doc, dict) and doc.get("pixret_export") == MARKER_VERSION else None
    if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
        return None
    return set(files)


def _foreign(folder: Path, listed: set[str]) -> list[str]:
    """Entries under folder that are not the marker, a listed file or a folder holding one."""
    dirs_needed = {p for f in listed for p in _parents(f)}
    foreign: list[str] = []
    for dirpath, dirnames, filenames in os.walk(folder, onerror=_raise):
        rel_dir = Path(dirpath).relative_to(folder).as_posix()
        prefix = "" if rel_dir == "." else rel_dir + "/"
        for d in list(dirnames):
            rel = prefix + d
            if os.path.islink(os.path.join(dirpath, d)) or rel not in dirs_needed:
                foreign.append(rel + "/")
                dirnames.remove(d)
        for f in filenames:
            rel = prefix + f
            if (rel != MARKER and rel not in listed) or os.path.islink(os.path.join(dirpath, f)):
                foreign.append(rel)
    return sorted(foreign)


def _parents(rel: str) -> list[str]:
    parts = rel.split("/")[:-1]
    return ["/".join(parts[:k]) for k in range(1, len(parts) + 1)]


def _raise(e: OSError) -> None:
    raise e


def check_export_destination(project, out) -> ExportDestination:
    """Whether (and how) an export of `project` (None: not of a project) may write into the folder
    `out`; touches nothing."""
    out = Path(out)
    try:
        why = _guarded(project, out.resolve())
        if why:
            return _refused(out, why)
        if out.is_symlink():
            return _refused(out, "is a symbolic link; choose the folder it points to, or another")
        if not out.exists():
            return ExportDestination(out, "new", f"{out}: a new folder will be created")
        if not out.is_dir():
            return _refused(out, "exists and is not a folder")
        if not any(out.iterdir()):
            return ExportDestination(out, "empty", f"{out}: empty; the export goes into it")
        listed = _marker_files(out)
        if listed is None:
            return _refused(out, "not empty, and not a folder a PixRet export made: nothing in it is "
                                 "replaced. Choose a new or empty folder")
        foreign = _foreign(out, listed)
    except OSError as e:
        return _refused(out, f"cannot be read ({e.strerror or e}); choose another folder")
    if foreign:
        shown = ", ".join(foreign[:_SHOWN]) + (f" and {len(foreign) - _SHOWN} more" if len(foreign) > _SHOWN else "")
        return _refused(out, f"holds an earlier PixRet export and also files it did not write ({shown}); "
                             "nothing in it is replaced. Move those files, or choose a new or empty folder")
    return ExportDestination(out, "earlier_export",
                             f"{out}: holds an earlier PixRet export, which the new one would replace")


def ensure_export_allowed(project, out, overwrite: bool) -> None:
    """The exporters' own check before they write: a PixretError saying why when `out` may not be
    written (an earlier export is replaced only with `overwrite`)."""
    dest = check_export_destination(project, out)
    if not dest.allowed:
        raise PixretError(dest.message)
    if dest.replaces and not overwrite:
        raise PixretError(f"{dest.message}; pass overwrite (--overwrite) to replace it")


def write_marker(stage: Path, doc: dict) -> None:
    """The marker of a finished export in `stage`: `doc` plus the list of every file in it."""
    files = sorted(rel for p in stage.rglob("*") if p.is_file() and (rel := p.relative_to(stage).as_posix()) != MARKER)
    atomic_write_text(stage / MARKER, json.dumps({**doc, "pixret_export": MARKER_VERSION, "files": files}, indent=1))


def swap_in(project, stage: Path, out: Path, overwrite: bool) -> list[str]:
    """Put the finished export `stage` at `out` (checked again now). Returns warnings."""
    dest = check_export_destination(project, out)
    if not dest.allowed:
        raise PixretError(dest.message)
    if dest.replaces and not overwrite:
        raise PixretError(f"{dest.message}; pass overwrite (--overwrite) to replace it")
    if dest.state == "new":
        os.replace(stage, out)        # fails, rather than merging, if the folder appeared meanwhile
        return []
    listed = _marker_files(out) or set()
    old = out.with_name(f".{out.name}.old-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    os.replace(out, old)
    try:
        os.replace(stage, out)
    except BaseException:
        os.replace(old, out)
        raise
    return _remove_export(old, listed)


def new_stage(out: Path) -> Path:
    """A hidden folder next to OUT to build the export in; first removes the ones a killed export
    to the same OUT left (their process is gone): its staging folder, or the earlier export it had
    moved aside (removed by its marker, like any earlier export)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    pattern = re.compile(rf"^\.{re.escape(out.name)}\.(export|old)-(\d+)-")
    for p in out.parent.iterdir():
        m = pattern.match(p.name)
        if not m or not p.is_dir() or p.is_symlink() or _alive(int(m.group(2))):
            continue
        if m.group(1) == "export":
            shutil.rmtree(p, ignore_errors=True)
        else:
            _remove_export(p, _marker_files(p) or set())
    return Path(tempfile.mkdtemp(prefix=f".{out.name}.export-{os.getpid()}-", dir=out.parent))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def _remove_export(folder: Path, listed: set[str]) -> list[str]:
    """Delete the files an earlier export wrote, then its emptied folders; anything else stays."""
    for rel in sorted(listed | {MARKER}):
        p = folder / rel
        if not p.is_symlink() and p.is_file():
            p.unlink()
    for dirpath, _, _ in sorted(os.walk(folder), key=lambda t: -len(t[0])):
        try:
            os.rmdir(dirpath)
        except OSError:
            pass
    if folder.exists():
        return [f"files that appeared in the export folder during the export were kept in {folder}"]
    return []
