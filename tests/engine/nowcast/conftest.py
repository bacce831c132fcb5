"""Fixtures for the nowcast tests: real MeteoSwiss radar frames, cropped to stay fast."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from nowcast_helpers import mch_files


@pytest.fixture(scope="session")
def mch_full(data_root: Path) -> np.ndarray:
    """Four consecutive 5-minute MeteoSwiss frames (2015-05-15 17:25-17:40), (4, 640, 710) mm/h, NaN outside radar range."""
    from engine.readers import open_many

    ds = open_many(mch_files(data_root, 20, 4), variables=["precip_rate"])
    return ds["precip_rate"].values.astype(np.float32)


@pytest.fixture(scope="session")
def mch_crop(mch_full: np.ndarray) -> torch.Tensor:
    """A 256x256 rainy window of the frames, (4, 256, 256) mm/h, NaN-free."""
    crop = mch_full[:, 200:456, 250:506]
    assert np.isfinite(crop).all() and (crop[-1] > 1.0).mean() > 0.02
    return torch.from_numpy(np.ascontiguousarray(crop))
