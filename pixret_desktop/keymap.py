"""Keyboard shortcuts: presets, and the person's own keys on top.

Each preset is consistent in itself: under "PixRet", A accepts and the arrows step through the
results; under "labelme / X-AnyLabeling", A and D step back and forth as in those tools (S
accepts, X rejects), the arrows still step. A preset lists only what differs from the keys the
window's actions are built with (views/main_window.py); the person's own keys (Help ▸ Keyboard
Shortcuts, double-click a key) override both and are kept in the settings.
"""
from __future__ import annotations

import json

from PySide6.QtGui import QKeySequence

PRESETS: dict[str, tuple[str, dict[str, list[str]]]] = {
    "pixret": ("PixRet", {}),
    "labelme": ("labelme / X-AnyLabeling", {
        "prev_hit": ["A", "Left", "PgUp"],
        "next_hit": ["D", "Right", "PgDown"],
        "accept": ["S"],
        "reject": ["X"],
    }),
}
DEFAULT_PRESET = "pixret"


def preset_names() -> dict[str, str]:
    return {key: title for key, (title, _) in PRESETS.items()}


def custom_keys(text) -> dict[str, list[str]]:
    """The person's own keys as stored in the settings (JSON {action: [keys]}); bad values are ignored."""
    try:
        value = json.loads(text) if text else {}
    except (TypeError, ValueError):
        return {}
    if not isinstance(value, dict):
        return {}
    return {str(k): [str(s) for s in v] for k, v in value.items() if isinstance(v, list)}


def keys_for(action: str, defaults: dict[str, list[QKeySequence]], preset: str,
             custom: dict[str, list[str]]) -> list[QKeySequence]:
    if action in custom:
        return [QKeySequence(k) for k in custom[action] if k]
    chosen = PRESETS.get(preset, PRESETS[DEFAULT_PRESET])[1]
    if action in chosen:
        return [QKeySequence(k) for k in chosen[action]]
    return list(defaults.get(action, []))


def apply(window, preset: str, custom: dict[str, list[str]]) -> None:
    """Give every action of the window its keys under this preset and the person's own keys; an
    action's tooltip says its first key (menus show them anyway)."""
    for name, action in window.keyed_actions().items():
        keys = keys_for(name, window.default_shortcuts, preset, custom)
        action.setShortcuts(keys)
        tip = window.base_tips.get(name) or action.text().replace("&", "").rstrip("…")
        first = keys[0].toString(QKeySequence.NativeText) if keys else ""
        action.setToolTip(f"{tip} ({first})" if first else tip)


def conflicts(window) -> list[tuple[str, str, str]]:
    """Keys bound to two actions: (key, action, other action)."""
    seen: dict[str, str] = {}
    out = []
    for name, action in window.keyed_actions().items():
        for k in action.shortcuts():
            text = k.toString()
            if text in seen and seen[text] != name:
                out.append((text, seen[text], name))
            seen.setdefault(text, name)
    return out
