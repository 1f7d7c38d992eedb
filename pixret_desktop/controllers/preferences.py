"""Settings, keys and About, a part of MainController: the settings dialog, key presets and a
person's own keys (a key another action has is refused), and the About box with the demo's credits.
"""
from __future__ import annotations

import json

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox

import engine.pipeline as pipeline
from pixret_desktop import keymap
from pixret_desktop.views.dialogs import SettingsDialog, ShortcutsDialog


def method_choices() -> dict[str, tuple[str, str]]:
    """Each method's plain name and its tooltip (what it is for, then the technical name and recipe)."""
    return {name: (pipeline.method_title(name),
                   f"{pipeline.METHOD_TITLES.get(name, ('', ''))[1]}\n\n{name}: {m.description}".strip())
            for name, m in pipeline.METHODS.items()}


class PreferenceActions:
    """Mixed into MainController (uses its window, settings, cache and review controller)."""

    def ask_settings(self) -> None:
        dlg = SettingsDialog(method_choices(), self.settings.values(), self.window, keymaps=keymap.preset_names())
        if dlg.exec():
            self.apply_settings(dlg.values())

    def apply_settings(self, values: dict) -> None:
        self.settings.update(values)
        self.review_ctl.author = self.settings.get("author")
        size = int(values.get("thumbnail_size", self.cache.size))
        if size != self.cache.size:
            self.cache.set_size(size)
            self.window.grid.set_thumb_size(size)
            self.window.results.set_thumb_size(size)
        i = self.window.method.findData(values.get("default_method"))
        if i >= 0:
            self.window.method.setCurrentIndex(i)
        if "keymap" in values:
            self.apply_keys()
        self.review_ctl.advance = self.settings.get("advance_after_decision")

    def show_shortcuts(self) -> ShortcutsDialog:
        dlg = ShortcutsDialog(self.window.shortcut_rows(), keymap.preset_names(), self.settings.get("keymap"),
                              self.window)
        dlg.setAttribute(Qt.WA_DeleteOnClose)
        dlg.preset_chosen.connect(lambda p: (self.apply_settings({"keymap": p}),
                                             dlg.set_rows(self.window.shortcut_rows())))
        dlg.key_chosen.connect(lambda a, k: (self.set_key(a, k), dlg.set_rows(self.window.shortcut_rows())))
        dlg.reset_requested.connect(lambda: (self.set_keys({}), dlg.set_rows(self.window.shortcut_rows())))
        dlg.show()
        return dlg


    def apply_keys(self) -> None:
        keymap.apply(self.window, self.settings.get("keymap"), keymap.custom_keys(self.settings.get("shortcuts")))
        self._update_header()  # its hint names the review keys

    def set_key(self, action: str, key: str) -> bool:
        """The person's own key for an action (the preset's keys for it give way). A key another action
        already has is refused, with a message naming it."""
        taken = next((name for name, a in self.window.keyed_actions().items()
                      if name != action and any(k.toString() == key for k in a.shortcuts())), None)
        if taken is not None:
            other = self.window.keyed_actions()[taken].text().replace("&", "").rstrip("…")
            self.show_error("Key already used", f"{key} is already the key of {other}. Give {other} another "
                            "key first.")
            return False
        custom = keymap.custom_keys(self.settings.get("shortcuts"))
        custom[action] = [key]
        self.set_keys(custom)
        return True

    def set_keys(self, custom: dict) -> None:
        self.settings.set("shortcuts", json.dumps(custom) if custom else "")
        self.apply_keys()

    def show_about(self) -> None:
        QMessageBox.about(self.window, "About PixRet",
                          "<p>PixRet Desktop: outline an object once, find and outline it across a photo "
                          "collection, review the results, export a dataset. Runs offline.</p>"
                          "<p><b>The demo's photos</b> (File ▸ Open Demo Project) come from the DreamBooth "
                          "dataset (Ruiz et al., CVPR 2023; CC-BY-4.0), whose can, alarm clock and backpack "
                          "photos are by Unsplash users @zn35pjqq and @laurachouette (Unsplash License) and "
                          "whose robot photos are by Varun Jampani, and from AliceVision's Buddha dataset "
                          "(CC-BY-4.0). Each photo's source is listed in resources/demo/CREDITS.md.</p>")
