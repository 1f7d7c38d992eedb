"""PixRet Desktop: the PySide6 application (views, controllers, models); no algorithms.

The engine (engine/) does all the work; this package runs it in workers and shows the results.
"""
__version__ = "0.1.0"
