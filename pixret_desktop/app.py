"""`pixret-desktop`: the PixRet desktop application.

    pixret-desktop                  an empty window (File ▸ New / Open Project)
    pixret-desktop --project DIR    open a project folder
    pixret-desktop --demo           the built-in demo collection (made and indexed on first run)
    pixret-desktop --self-test      check this installation offscreen, print a report (pixret_desktop/selftest.py)
    pixret-desktop --version
"""
from __future__ import annotations

import argparse
import sys

from pixret_desktop import __version__
from pixret_desktop.controllers.main import MainController
from pixret_desktop.settings import AppSettings
from pixret_desktop.startup import create_window, make_application
from pixret_desktop.views.main_window import MainWindow


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


def start(args: argparse.Namespace, settings: AppSettings | None = None) -> tuple[MainWindow, MainController]:
    """Show the window and begin what the command line asked for (the event loop is the caller's)."""
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
    app = make_application()
    window, controller = start(args)
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
