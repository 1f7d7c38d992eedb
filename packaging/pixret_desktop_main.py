"""Entry script of the frozen app (packaging/pixret-desktop.spec); `pixret-desktop` when installed by pip
runs pixret_desktop.app:main directly.

Two things only a frozen process needs done before anything else is imported:
- `--self-test` runs offscreen: QT_QPA_PLATFORM is set here, before Qt is imported (Qt reads it
  when the QApplication is made; setting it first also covers anything created earlier);
- multiprocessing.freeze_support(): a frozen executable re-launched as a multiprocessing child
  (by a library, not by PixRet today) must not start a second app.
"""
import multiprocessing
import os
import sys

if __name__ == "__main__":
    multiprocessing.freeze_support()
    if "--self-test" in sys.argv[1:]:
        os.environ["QT_QPA_PLATFORM"] = "offscreen"

    from pixret_desktop.app import main

    sys.exit(main())
