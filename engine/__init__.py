"""PixRet engine: the Qt-free core (catalog, features, search, verification, regions, formats, metrics).

Nothing in this package may import Qt; tests/test_engine_is_qt_free.py enforces it.
"""

__version__ = "0.1.0"
