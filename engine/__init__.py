"""meteolens engine: readers, models (global, regional, nowcast), storage and jobs.

The engine never imports :mod:`app` or :mod:`verification`.
"""

# pyproj must be loaded before ecCodes: the ecCodes wheels (eccodeslib/eckitlib >= 2.37) bundle
# shared libraries that clash with the PROJ/SQLite copies inside pyproj's wheel when pyproj is
# loaded second ("unable to set PROJ database path", then a double free at exit). Loading pyproj
# first makes its own libraries win, so every entry point (CLI, app, tests) imports it here.
import pyproj  # noqa: F401

__version__ = "0.1.0"
