"""PixRet Desktop: the PySide6 application (views, controllers, models); no algorithms.

The engine (engine/) does all the work; this package runs it in workers and shows the results.
"""
from pixret_desktop import pyside_fix

pyside_fix.apply()  # before anything else calls into Qt (see pyside_fix.py)

__version__ = "0.1.0"
