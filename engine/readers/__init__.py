"""Readers for every supported format; importing this package registers them all.

Public API: ``open_any``, ``open_many``, ``concat_opened``, ``detect``, ``readers``.
"""

from engine.readers.base import concat_opened, detect, open_any, open_many, readers

__all__ = ["concat_opened", "detect", "open_any", "open_many", "readers"]

# Radar readers (register themselves on import). They come before the generic GRIB/netCDF readers
# because detection takes the first reader that claims a file, and these recognise specific
# products (MRMS discipline 209, BoM Rainfields, KNMI/ODIM HDF5 layouts) that a generic reader
# would also accept, but without the product's units and georeferencing.
import engine.readers.radar_bom  # noqa: E402, F401
import engine.readers.radar_fmi  # noqa: E402, F401
import engine.readers.radar_knmi  # noqa: E402, F401
import engine.readers.radar_mch  # noqa: E402, F401
import engine.readers.radar_mrms  # noqa: E402, F401
import engine.readers.radar_odim  # noqa: E402, F401

# Non-radar readers. The content checks of each are specific (a layout's variables, a header line),
# so their order only matters against the radar readers above.
from engine.readers import boundaries, grib, netcdf, stations, terrain  # noqa: E402, F401
