"""Application settings (QSettings): recent projects, default method, feature long side,
thumbnail size, review keys, window layout, each project's view state, the last folders chosen,
the author's name on decisions, whether searches guess outlines, recent team projects (database URL without its password:
pixret_desktop/credentials.py)."""
from __future__ import annotations

import getpass
import hashlib
from pathlib import Path

from PySide6.QtCore import QSettings, QStandardPaths

from engine.verify.thorough import ThoroughConfig
from pixret_desktop.credentials import without_password

MAX_RECENT = 10


def os_user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no user name in this environment
        return ""


# `full` by default: it finds more of a 3D object than sv (image mAP dev3d 39.3 -> 46.9, a hold-out
# set 42.5 -> 51.1, dev 59.8 -> 62.3) and stays interactive (BENCHMARKS.md, issue 14)
DEFAULTS = {"default_method": "full", "feature_long_side": 1024, "thumbnail_size": 128, "top_k": 100,
            "author": os_user(), "keymap": "pixret", "advance_after_decision": True,
            "shortcuts": "", "cluster_mode": "local", "cluster_workers": 2,
            "cluster_scheduler": "", "thorough_budget": int(ThoroughConfig().budget_s), "outline_guesses": True}


class AppSettings:
    def __init__(self, qsettings: QSettings | None = None):
        self.q = qsettings or QSettings("PixRet", "PixRet Desktop")

    def get(self, key: str):
        default = DEFAULTS.get(key)
        value = self.q.value(key, default)
        if isinstance(default, bool):  # (before int: a bool is an int) INI files store "true" / "false"
            return value if isinstance(value, bool) else str(value).lower() in ("true", "1", "yes")
        if isinstance(default, int):
            try:
                return int(value)
            except (TypeError, ValueError):
                return default
        return value

    def set(self, key: str, value) -> None:
        self.q.setValue(key, value)
        self.q.sync()

    def values(self) -> dict:
        return {k: self.get(k) for k in DEFAULTS}

    def update(self, values: dict) -> None:
        for k, v in values.items():
            self.q.setValue(k, v)
        self.q.sync()

    # -- recent projects ------------------------------------------------------------------------

    def recent_projects(self) -> list[str]:
        value = self.q.value("recent_projects", [])
        if isinstance(value, str):
            value = [value]
        return [str(v) for v in (value or []) if v]

    def add_recent(self, folder) -> None:
        folder = str(Path(folder).resolve())
        items = [folder] + [p for p in self.recent_projects() if p != folder]
        self.q.setValue("recent_projects", items[:MAX_RECENT])
        self.q.sync()

    def remove_recent(self, folder) -> None:
        folder = str(Path(folder).resolve())
        self.q.setValue("recent_projects", [p for p in self.recent_projects() if p != folder])
        self.q.sync()

    def clear_recent(self) -> None:
        self.q.setValue("recent_projects", [])
        self.q.sync()

    # -- team projects ---------------------------------------------------------------------------

    def recent_team_projects(self) -> list[tuple[str, str]]:
        """(database URL without password, shared folder), most recent first."""
        value = self.q.value("recent_team_projects", [])
        if isinstance(value, str):
            value = [value]
        out = []
        for item in value or []:
            url, _, folder = str(item).partition("\n")
            if url and folder:
                out.append((url, folder))
        return out

    def add_recent_team(self, url: str, folder) -> None:
        item = f"{without_password(url)}\n{Path(folder).resolve()}"
        items = [item] + [f"{u}\n{f}" for u, f in self.recent_team_projects() if f"{u}\n{f}" != item]
        self.q.setValue("recent_team_projects", items[:MAX_RECENT])
        self.q.sync()

    def password_file(self) -> Path:
        """Where remembered database passwords are kept (0600, beside the settings)."""
        folder = Path(self.q.fileName()).parent if self.q.format() == QSettings.IniFormat else \
            Path(QStandardPaths.writableLocation(QStandardPaths.AppConfigLocation))
        return folder / "pixret-pgpass"

    # -- per-project view state (the collection's filters, the results' order) -------------------

    def _project_key(self, folder) -> str:
        return "projects/" + hashlib.sha1(str(Path(folder).resolve()).encode("utf-8", "surrogateescape")).hexdigest()[:16]

    def view_state(self, folder) -> dict:
        self.q.beginGroup(self._project_key(folder))
        try:
            return {k: self.q.value(k) for k in self.q.childKeys()}
        finally:
            self.q.endGroup()

    def set_view_state(self, folder, **values) -> None:
        self.q.beginGroup(self._project_key(folder))
        try:
            for k, v in values.items():
                self.q.setValue(k, v)
        finally:
            self.q.endGroup()

    # -- folders chosen in folder dialogs --------------------------------------------------------

    def last_folder(self, purpose: str) -> Path:
        """The folder last chosen for this purpose (else for any), if it still exists; else home."""
        for key in (f"last_folder/{purpose}", "last_folder/any"):
            value = self.q.value(key)
            if value and Path(str(value)).is_dir():
                return Path(str(value))
        return Path.home()

    def set_last_folder(self, purpose: str, folder) -> None:
        self.q.setValue(f"last_folder/{purpose}", str(folder))
        self.q.setValue("last_folder/any", str(folder))
        self.q.sync()
