"""Application settings (QSettings): recent projects, default method, feature long side,
thumbnail size, window layout."""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSettings

MAX_RECENT = 10
DEFAULTS = {"default_method": "sv", "feature_long_side": 1024, "thumbnail_size": 128, "top_k": 100}


class AppSettings:
    def __init__(self, qsettings: QSettings | None = None):
        self.q = qsettings or QSettings("PixRet", "PixRet Desktop")

    def get(self, key: str):
        default = DEFAULTS.get(key)
        value = self.q.value(key, default)
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
