"""`pixret-desktop`: the PixRet desktop application.

    pixret-desktop                  an empty window (File ▸ New / Open Project)
    pixret-desktop --project DIR    open a project folder
    pixret-desktop --demo           the built-in demo collection (made and indexed on first run)
    pixret-desktop --self-test      check this installation offscreen, print a report (pixret_desktop/selftest.py)
    pixret-desktop --version

Without a display (no DISPLAY or WAYLAND_DISPLAY on Linux and the like) Qt would abort (exit 134)
with a message about platform plugins; the app says so in its own words first and exits 2, as the
`pixret` command does for bad input. The window modules (Qt, the engine) are imported only once a
window can be opened, so --version and that message come at once.
"""
from __future__ import annotations

import argparse
import os
import sys

from pixret_desktop import __version__

NO_DISPLAY_EXIT = 2
_WHAT_TO_DO = (
    "Run it in a desktop session, or over SSH with X forwarding (ssh -X). Without a screen,\n"
    "`pixret-desktop --self-test` checks this installation, `xvfb-run pixret-desktop ...` runs the app on a\n"
    "virtual display, and the `pixret` command indexes, searches and exports without one."
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pixret-desktop",
                                     description="Outline an object once, find and outline it across a "
                                                 "photo collection, review, export.")
    group = parser.add_mutually_exclusive_group()  # more modes (e.g. --self-test) join this group
    group.add_argument("--demo", action="store_true", help="open the built-in demo collection")
    group.add_argument("--project", metavar="DIR", help="open this project folder")
    group.add_argument("--self-test", action="store_true",
                       help="check this installation offscreen (demo data, index, search, main window), print a "
                            "report, exit 0 when everything works")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return parser


def display_problem(environ=os.environ, platform: str = sys.platform) -> str | None:
    """Why no window can be opened here, in words, or None. Windows and macOS always have a screen;
    elsewhere Qt needs an X11 or Wayland display unless told a platform (QT_QPA_PLATFORM)."""
    if platform in ("win32", "darwin") or environ.get("QT_QPA_PLATFORM"):
        return None
    if environ.get("DISPLAY") or environ.get("WAYLAND_DISPLAY"):
        return None
    return ("pixret-desktop: there is no display to open the window on (neither DISPLAY nor WAYLAND_DISPLAY "
            f"is set).\n{_WHAT_TO_DO}")


def _open_qt():
    """The QApplication; if Qt cannot start a platform (a display it cannot reach, missing X11
    libraries), say so in words and exit 2 instead of Qt's abort."""
    from PySide6.QtCore import QtMsgType, qInstallMessageHandler

    from pixret_desktop.startup import make_application

    said: list[str] = []

    def on_qt_message(kind, _context, text):
        said.append(text)
        if kind == QtMsgType.QtFatalMsg:  # Qt aborts when this returns: say it first, and exit
            where = ", ".join(f"{k}={os.environ[k]}" for k in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")
                              if os.environ.get(k))
            qt = "\n".join(f"  Qt: {line}" for m in said for line in m.splitlines() if line.strip())
            sys.stderr.write(f"pixret-desktop: cannot open a window ({where}).\n{qt}\n"
                             "Check that the display is running and reachable. On a desktop, Qt's X11/Wayland "
                             "libraries may be missing: see 'Installing' in the README.\n"
                             f"{_WHAT_TO_DO}\n")
            sys.stderr.flush()
            os._exit(NO_DISPLAY_EXIT)

    previous = qInstallMessageHandler(on_qt_message)
    try:
        return make_application()
    finally:
        qInstallMessageHandler(previous)
        for text in said:  # Qt's warnings, as it would have printed them
            sys.stderr.write(text + "\n")


def start(args: argparse.Namespace, settings=None):
    """Show the window and begin what the command line asked for (the event loop is the caller's).
    Returns (MainWindow, MainController)."""
    from pixret_desktop.startup import create_window, make_application

    make_application()
    window, controller = create_window(settings)
    window.show()
    if args.demo:
        controller.open_demo()
    elif args.project:
        controller.open_project(args.project)
    return window, controller


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.self_test:
        from pixret_desktop.selftest import main as self_test

        return self_test()
    problem = display_problem()
    if problem:
        print(problem, file=sys.stderr)
        return NO_DISPLAY_EXIT
    app = _open_qt()
    window, controller = start(args)
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
