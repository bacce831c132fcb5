"""Mass-consistent wind adjustment: divergence, ridge speed-up, blocking, channelling, deflection, solver."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import xarray as xr

from engine.errors import CoordError
from engine.models.regional.downscale import downscale_dataset
from engine.models.regional.grid import LatLonGrid, target_grid
from engine.models.regional.wind import (
    FivePointOperator,
    LayerGeometry,
    MultigridPreconditioner,
    _faces_x,
    _gradient,
    adjust_winds,
    face_divergence,
    layer_depth,
    layer_rhs,
)

GRID = target_grid(46.0, 46.8, 10.0, 11.2, 0.01)  # 80 x 120 cells of about 0.8 x 1.1 km
NY, NX = GRID.shape
Y, X = np.meshgrid(np.arange(NY), np.arange(NX), indexing="ij")


def _adjust(z: np.ndarray, alpha: float, u: float = 5.0, v: float = 0.0) -> tuple[np.ndarray, np.ndarray, dict]:
    h = torch.from_numpy(layer_depth(z, alpha))
    u0 = torch.full((1, NY, NX), u, dtype=torch.float64)
    uu, vv, info = adjust_winds(u0, torch.full_like(u0, v), h, LayerGeometry.of(GRID))
    return uu[0].numpy(), vv[0].numpy(), info


def test_divergence_is_removed_by_orders_of_magnitude() -> None:
    rng = np.random.default_rng(0)
    z = np.zeros((NY, NX))
    for _ in range(8):
        z += rng.uniform(300, 1200) * np.exp(-((Y - rng.uniform(0, NY)) ** 2 + (X - rng.uniform(0, NX)) ** 2) / 150.0)
    # A rotating, converging first guess on rough terrain: strongly divergent w.r.t. the layer.
    u0 = torch.from_numpy(5.0 + 2.0 * np.sin(X / 9.0))[None]
    v0 = torch.from_numpy(1.0 + 2.0 * np.cos(Y / 7.0))[None]
    h = torch.from_numpy(layer_depth(z, 1.0))
    u, v, info = adjust_winds(u0, v0, h, LayerGeometry.of(GRID))
    assert info["reduction"] < 1e-6
    assert info["divergence_after"] < 1e-6 * info["divergence_before"]
    assert u.shape == v.shape == (1, NY, NX)
    # The multiplier is zero on the open boundary, so the boundary cells keep the first guess closely.
    assert torch.isfinite(u).all() and torch.isfinite(v).all()


def test_flat_terrain_and_uniform_wind_are_left_alone() -> None:
    # A uniform zonal wind is non-divergent on the sphere: nothing to adjust.
    u, v, _ = _adjust(np.full((NY, NX), 400.0), alpha=1.0, u=4.0, v=0.0)
    np.testing.assert_allclose(u, 4.0, atol=1e-6)
    np.testing.assert_allclose(v, 0.0, atol=1e-6)
    # A uniform meridional wind is slightly divergent (meridians converge), so it changes by
    # a fraction of a percent only.
    u, v, _ = _adjust(np.full((NY, NX), 400.0), alpha=1.0, u=0.0, v=-3.0)
    np.testing.assert_allclose(v, -3.0, rtol=0.01)


def test_speed_up_over_a_ridge_decreases_with_alpha() -> None:
    ridge = 1200.0 * np.exp(-(((X - NX / 2) / 8.0) ** 2))  # north-south ridge across the flow
    crest = {}
    for alpha in (0.3, 1.0, 3.0):
        u, v, _ = _adjust(ridge, alpha)
        crest[alpha] = u[NY // 2, NX // 2]
        assert crest[alpha] > 5.0 * 1.1  # speed-up over the crest
    # Deeper (more neutral) layers feel the ridge less.
    assert crest[0.3] > crest[1.0] > crest[3.0]


def test_stable_flow_is_blocked_and_goes_around_a_hill() -> None:
    hill = 2000.0 * np.exp(-(((X - NX / 2) / 10.0) ** 2 + ((Y - NY / 2) / 10.0) ** 2))
    u, v, _ = _adjust(hill, alpha=0.1)
    cy, cx = NY // 2, NX // 2
    assert u[cy, cx - 15] < 0.85 * 5.0  # decelerated upstream (blocking)
    assert u[cy - 15, cx] > 5.0 * 1.1  # accelerated round the flanks
    # Diverted away from the centre line upstream: northward north of it, southward south of it
    # (row index grows southward on this north-up grid).
    assert v[cy - 6, cx - 12] > 0.3 and v[cy + 6, cx - 12] < -0.3
    # A more neutral layer deflects less.
    _, v_neutral, _ = _adjust(hill, alpha=3.0)
    assert abs(v_neutral[cy - 6, cx - 12]) < abs(v[cy - 6, cx - 12])


def test_channelling_through_a_gap() -> None:
    # A north-south wall across the flow with a gap in the middle.
    wall = 1500.0 * np.exp(-(((X - NX / 2) / 4.0) ** 2))
    wall[np.abs(Y - NY / 2) < 6] = 0.0
    u, v, _ = _adjust(wall, alpha=0.1)
    gap = u[NY // 2, NX // 2]
    assert gap > 1.3 * 5.0
    # The flux through the wall (h u) is far smaller than through the gap.
    h = layer_depth(wall, 0.1)
    assert h[NY // 2, NX // 2] * gap > 3 * h[NY // 4, NX // 2] * u[NY // 4, NX // 2]


def test_flow_turns_along_a_barrier() -> None:
    # East-west barrier along the domain with south-westerly flow: the component across the
    # barrier is reduced upstream, so the wind turns to blow along it.
    barrier = 1800.0 * np.exp(-(((Y - NY / 2) / 4.0) ** 2))
    u, v, _ = _adjust(barrier, alpha=0.1, u=5.0, v=5.0)
    j = NY // 2 + 8  # south of the barrier (upstream)
    angle_before = np.degrees(np.arctan2(5.0, 5.0))
    angle_after = np.degrees(np.arctan2(v[j, NX // 2], u[j, NX // 2]))
    assert angle_after < angle_before - 10  # closer to the barrier's east-west axis


def test_face_divergence_of_a_uniform_flux_is_zero() -> None:
    geom = LayerGeometry.of(GRID)
    fx = torch.ones(NY, NX + 1, dtype=torch.float64)
    fy = torch.zeros(NY + 1, NX, dtype=torch.float64)
    assert float(face_divergence(fx, fy, geom).abs().max()) < 1e-15


def test_dataset_path_and_bad_inputs() -> None:
    coarse = LatLonGrid(np.array([46.7, 46.5, 46.3, 46.1]), np.array([10.1, 10.4, 10.7, 11.0]))
    ds = xr.Dataset(
        {"u10": (("time", "lat", "lon"), np.full((2, 4, 4), 3.0)), "v10": (("time", "lat", "lon"), np.full((2, 4, 4), 1.0))},
        coords={"time": np.arange(2).astype("datetime64[h]"), "lat": coarse.lat, "lon": coarse.lon},
    )
    z = 1000.0 * np.exp(-(((X - NX / 2) / 8.0) ** 2))
    dem = xr.Dataset({"orography": (("lat", "lon"), z)}, coords={"lat": GRID.lat, "lon": GRID.lon})
    out = downscale_dataset(ds, "u10", resolution=0.01, dem=dem, domain=(46.0, 46.8, 10.0, 11.2))
    assert set(out.data_vars) >= {"u10", "v10", "orography"}
    assert out["u10"].shape == (2, NY, NX)
    assert out.attrs["solver_reduction"] < 1e-6
    assert float(out["u10"].isel(time=0).sel(lat=46.4, lon=10.6, method="nearest")) > 3.0
    with pytest.raises(CoordError, match="alpha"):
        layer_depth(z, alpha=0.0)
    with pytest.raises(Exception, match="needs 'v10'"):
        downscale_dataset(ds.drop_vars("v10"), "u10", resolution=0.01, dem=dem)


def _oetztal(data_root) -> tuple[np.ndarray, LatLonGrid]:
    """SRTM terrain of the Oetztal Alps (387-3727 m) at every second point: 222 x 291 cells of about 180 m."""
    from engine.datasets import open_dataset

    dem = open_dataset("srtm-oetztal", data_root).isel(lat=slice(None, None, 2), lon=slice(None, None, 2))
    return dem["orography"].values.astype("float64"), LatLonGrid(dem["lat"].values, dem["lon"].values)


def test_operator_is_the_discrete_divergence_of_the_layer_flux() -> None:
    # The 5-point operator must be exactly -cos(phi) div(h^2 grad lambda) of the C-grid operators,
    # or the adjusted wind would not be divergence-free.
    rng = np.random.default_rng(1)
    h = torch.from_numpy(layer_depth(rng.uniform(0, 2500, (NY, NX)), 0.3))
    geom = LayerGeometry.of(GRID)
    lam = torch.from_numpy(rng.standard_normal((3, NY, NX)))
    gx, gy = _gradient(lam, geom)
    hx2 = torch.cat([h[:, :1], 0.5 * (h[:, 1:] + h[:, :-1]), h[:, -1:]], dim=1) ** 2
    hy2 = torch.cat([h[:1], 0.5 * (h[1:] + h[:-1]), h[-1:]], dim=0) ** 2
    expected = -geom.cos_c * face_divergence(hx2 * gx, hy2 * gy, geom)
    got = FivePointOperator.of_layer(h, geom)(lam)
    assert float((got - expected).abs().max()) < 1e-12 * float(expected.abs().max())


def test_multigrid_is_symmetric_positive_and_matches_a_direct_solve(data_root) -> None:
    import scipy.sparse.linalg as spla

    z, grid = _oetztal(data_root)
    op = FivePointOperator.of_layer(torch.from_numpy(layer_depth(z, 0.1)), LayerGeometry.of(grid))
    mg = MultigridPreconditioner(op)
    assert [lvl.shape for lvl in mg.levels][:3] == [(222, 291), (111, 146), (56, 73)]  # odd sizes coarsen
    rng = np.random.default_rng(2)
    r1, r2 = (torch.from_numpy(rng.standard_normal(grid.shape)) for _ in range(2))
    a, b = float((r1 * mg(r2)).sum()), float((r2 * mg(r1)).sum())
    assert abs(a - b) < 1e-10 * abs(a)  # symmetric: CG's requirement of a preconditioner
    assert float((r1 * mg(r1)).sum()) > 0
    # The preconditioned CG solution of adjust_winds against scipy's sparse direct solver.
    geom = LayerGeometry.of(grid)
    h = torch.from_numpy(layer_depth(z, 0.1))
    u0 = torch.full((1, *grid.shape), 6.0, dtype=torch.float64)
    v0 = torch.full_like(u0, -2.0)
    u, v, info = adjust_winds(u0, v0, h, geom)
    assert info["reduction"] < 1e-6
    rhs = layer_rhs(u0, v0, h, geom)
    lam = torch.from_numpy(spla.spsolve(op.to_scipy().tocsc(), rhs[0].numpy().ravel()).reshape(grid.shape))
    gx, _ = _gradient(lam[None], geom)
    u_ref = u0 + 0.25 * (_faces_x(h) * gx)[..., 1:] + 0.25 * (_faces_x(h) * gx)[..., :-1]
    assert float((u - u_ref).abs().max()) < 1e-5 * float(u_ref.abs().max())


def test_multigrid_needs_a_fraction_of_the_jacobi_iterations(data_root) -> None:
    # Real alpine terrain, stable (h^2 spans 4 orders of magnitude) and neutral layers.
    z, grid = _oetztal(data_root)
    geom = LayerGeometry.of(grid)
    yy, xx = np.meshgrid(np.arange(grid.shape[0]), np.arange(grid.shape[1]), indexing="ij")
    u0 = torch.from_numpy(5.0 + np.sin(xx / 17.0))[None]
    v0 = torch.from_numpy(2.0 + np.cos(yy / 23.0))[None]
    for alpha in (0.1, 3.0):
        h = torch.from_numpy(layer_depth(z, alpha))
        *_, mg = adjust_winds(u0, v0, h, geom)
        *_, jac = adjust_winds(u0, v0, h, geom, preconditioner="jacobi")
        assert mg["reduction"] < 1e-6 and jac["reduction"] < 1e-6
        assert mg["iterations"] <= 30
        assert jac["iterations"] > 10 * mg["iterations"]


@pytest.mark.parametrize("shape", [(2, 40), (3, 2), (37, 53), (300, 17)])
def test_multigrid_handles_thin_and_odd_grids(shape: tuple[int, int]) -> None:
    grid = LatLonGrid(46.5 - 0.01 * np.arange(shape[0]), 10.0 + 0.01 * np.arange(shape[1]))
    rng = np.random.default_rng(3)
    h = torch.from_numpy(layer_depth(rng.uniform(0, 1500, shape), 0.3))
    u0 = torch.from_numpy(rng.normal(5.0, 2.0, (2, *shape)))
    _, _, info = adjust_winds(u0, torch.zeros_like(u0), h, LayerGeometry.of(grid))
    assert info["reduction"] < 1e-6


def test_unknown_preconditioner_is_refused() -> None:
    h = torch.full((4, 4), 100.0, dtype=torch.float64)
    u0 = torch.ones((1, 4, 4), dtype=torch.float64)
    with pytest.raises(CoordError, match="preconditioner='ilu'"):
        adjust_winds(u0, u0, h, LayerGeometry.of(target_grid(46.0, 46.04, 10.0, 10.04, 0.01)), preconditioner="ilu")  # type: ignore[arg-type]


@pytest.mark.gpu
def test_cuda_matches_cpu() -> None:
    hill = 1500.0 * np.exp(-(((X - NX / 2) / 10.0) ** 2 + ((Y - NY / 2) / 10.0) ** 2))
    h = torch.from_numpy(layer_depth(hill, 0.3))
    u0 = torch.full((2, NY, NX), 5.0, dtype=torch.float64)
    v0 = torch.full_like(u0, 2.0)
    u_cpu, v_cpu, _ = adjust_winds(u0, v0, h, LayerGeometry.of(GRID))
    dev = torch.device("cuda")
    u_gpu, v_gpu, info = adjust_winds(u0.to(dev), v0.to(dev), h.to(dev), LayerGeometry.of(GRID, dev))
    # Same float64 algorithm; differences come from reduction order only (solver rtol 1e-8).
    np.testing.assert_allclose(u_gpu.cpu().numpy(), u_cpu.numpy(), atol=1e-5)
    np.testing.assert_allclose(v_gpu.cpu().numpy(), v_cpu.numpy(), atol=1e-5)
    assert info["reduction"] < 1e-6
