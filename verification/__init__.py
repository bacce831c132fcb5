"""meteolens verification: pure metrics on xarray, station matching, Foehn diagnosis, radar quality."""
