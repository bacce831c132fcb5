"""Type aliases shared across packages."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable, Sequence
from os import PathLike
from typing import TypeAlias

import numpy as np
import xarray as xr

XarrayLike: TypeAlias = xr.DataArray | xr.Dataset
Dims: TypeAlias = str | Sequence[Hashable]
Coords: TypeAlias = "OrderedDict[str, np.ndarray]"
PathLikeStr: TypeAlias = str | PathLike[str]
