"""The application object and the main window with its controllers, built the same way by the app,
its self-test, the tests and the benchmarks."""
from __future__ import annotations

import gc
import sys

from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QApplication


def make_application(argv: list[str] | None = None) -> QApplication:
    # Workers run Python too: hand the GIL back to the GUI thread every 2 ms instead of 5 ms, so
    # a busy worker delays a repaint or a click by less (benchmarks/gui_stall.py measures it).
    sys.setswitchinterval(0.002)
    app = QApplication.instance()
    if app is None:
        QGuiApplication.setHighDpiScaleFactorRoundingPolicy(Qt.HighDpiScaleFactorRoundingPolicy.PassThrough)
        app = QApplication(argv if argv is not None else sys.argv[:1])
    app.setOrganizationName("PixRet")
    app.setApplicationName("PixRet Desktop")
    return app


def create_window(settings=None):
    """The main window with its controllers, (MainWindow, MainController); tests build it this way too.
    (Imported here: the application object can be made, or fail to, before the engine is loaded.)"""
    from pixret_desktop.controllers.main import MainController
    from pixret_desktop.settings import AppSettings
    from pixret_desktop.views.main_window import MainWindow

    settings = settings or AppSettings()
    window = MainWindow(thumb_size=settings.get("thumbnail_size"))
    controller = MainController(window, settings, parent=window)
    window.controller = controller
    geometry = settings.q.value("window/geometry")
    if geometry is not None:
        window.restoreGeometry(geometry)
    # A full (generation 2) garbage collection pauses every thread, the GUI thread included, while
    # it walks all objects: ~100 ms once Qt, numpy and SQLAlchemy are loaded (seen mid-indexing by
    # benchmarks/gui_stall.py). Objects that live as long as the app need not be walked again.
    gc.freeze()
    return window, controller
