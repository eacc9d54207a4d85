"""LHCb-like reconstructed tracks with their state covariance: flat tree ``Tracks``, one entry per track.

Each track has its generator-level state at the first measurement (x, y, z in mm; slopes tx, ty;
momentum p in MeV; charge), track type and hit counts, and the 5x5 covariance of the
reconstructed state (x, y, tx, ty, q/p) stored as its 15 upper-triangle elements ``cov_ij``
(i <= j). The covariance comes from a resolution model: hit resolution (better with more VELO
hits) added in quadrature to multiple scattering ~ 1/p; position and slope are anti-correlated
(extrapolation to the first hit), slope and q/p are correlated by the bending (sign = charge).
It is built as D R D with R = A A^T + diag(psi), psi > 0: symmetric positive definite by
construction, and checked with an eigenvalue decomposition before writing.
"""

from __future__ import annotations

import numpy as np

from pipeline_steps.toy import libm

COUNTERS: dict[str, str] = {}

#: LHCb track types: 3 Long (VELO+UT+SciFi), 4 Upstream (VELO+UT), 5 Downstream (UT+SciFi).
TRACK_TYPES = np.array([3, 4, 5])
TRACK_TYPE_P = np.array([0.7, 0.1, 0.2])
STATE = ("x", "y", "tx", "ty", "qop")
UPPER_TRIANGLE = [(i, j) for i in range(5) for j in range(i, 5)]
COVARIANCE_BRANCHES = [f"cov_{i}{j}" for i, j in UPPER_TRIANGLE]
TRACKS_PER_EVENT = 25.0


def generate_chunk(rng: np.random.Generator, n_tracks: int, context) -> tuple[dict, int]:
    event_local = _event_of_tracks(rng, n_tracks)
    n_events = int(event_local[-1]) + 1 if n_tracks else 0
    pv = np.column_stack([rng.normal(0.8, 0.015, n_events), rng.normal(-0.2, 0.015, n_events), rng.normal(0.0, 45.0, n_events)])
    tracks = _track_kinematics(rng, n_tracks, pv[event_local])
    covariance = track_covariance(rng, tracks)
    check_spd(covariance)
    branches = {
        "runNumber": np.full(n_tracks, 250000 + context.index, dtype=np.uint32),
        "eventNumber": (context.first_event + event_local + 1).astype(np.uint64),
        **tracks,
        **{name: covariance[:, i, j] for name, (i, j) in zip(COVARIANCE_BRANCHES, UPPER_TRIANGLE)},
    }
    return branches, context.first_event + n_events


def track_covariance(rng: np.random.Generator, tracks: dict[str, np.ndarray]) -> np.ndarray:
    """[n, 5, 5] covariance of (x [mm], y [mm], tx, ty, q/p [1/MeV]) from the resolution model."""
    n = len(tracks["p"])
    p_gev = tracks["p"] / 1000.0
    track_type = tracks["track_type"]
    has_velo = track_type != 5
    hit_factor = np.sqrt(12.0 / np.maximum(tracks["n_velo_hits"], 3))
    jitter = rng.lognormal(0.0, 0.1, (n, 4))
    sigma_x_hit = np.where(has_velo, 0.010 * hit_factor, 0.8)
    sigma_x_ms = np.where(has_velo, 0.030, 0.5) * 10.0 / p_gev
    sigma_t_hit = np.where(has_velo, 0.0004 * hit_factor, 0.002)
    sigma_t_ms = np.where(has_velo, 0.0005, 0.0015) * 10.0 / p_gev
    sigma_x = np.hypot(sigma_x_hit, sigma_x_ms) * jitter[:, 0]
    sigma_y = np.hypot(sigma_x_hit, sigma_x_ms) * jitter[:, 1] * 1.05
    sigma_tx = np.hypot(sigma_t_hit, sigma_t_ms) * jitter[:, 2]
    sigma_ty = np.hypot(sigma_t_hit, sigma_t_ms) * jitter[:, 2] * 1.05
    dp_over_p = np.select([track_type == 3, track_type == 4], [0.004 + 0.00002 * p_gev, 0.15], 0.008) * jitter[:, 3]
    sigma_qop = dp_over_p / tracks["p"]
    ms_share = sigma_x_ms**2 / (sigma_x_hit**2 + sigma_x_ms**2)
    correlation = _correlation(ms_share, tracks["charge"], track_type, np.sign(tracks["tx"] * tracks["ty"]) + (tracks["tx"] * tracks["ty"] == 0))
    sigma = np.column_stack([sigma_x, sigma_y, sigma_tx, sigma_ty, sigma_qop])
    covariance = correlation * sigma[:, :, None] * sigma[:, None, :]
    return 0.5 * (covariance + np.swapaxes(covariance, 1, 2))  # exact symmetry despite rounding


def check_spd(covariance: np.ndarray) -> None:
    """Raise if any matrix is not symmetric positive definite (the model guarantees it: a bug check)."""
    if not np.allclose(covariance, np.swapaxes(covariance, 1, 2), rtol=0.0, atol=0.0):
        raise RuntimeError("lhcb_tracks toy: covariance matrix not symmetric")
    scale = np.sqrt(np.einsum("nii->ni", covariance))
    eigenvalues = np.linalg.eigvalsh(covariance / scale[:, :, None] / scale[:, None, :])
    if not np.all(eigenvalues > 1e-6):
        raise RuntimeError(f"lhcb_tracks toy: {int(np.sum(eigenvalues.min(axis=1) <= 1e-6))} covariances not positive definite")


def _correlation(ms_share: np.ndarray, charge: np.ndarray, track_type: np.ndarray, stereo: np.ndarray) -> np.ndarray:
    """Correlation matrices R = A A^T + diag(1 - rowsum(A^2)) (unit diagonal, psi >= 0.02).

    Factors (columns of A): 0 scattering in the x-z plane (x vs tx), 1 the same in y-z, 2 the
    magnet bending (tx vs q/p, sign = charge), 3 the stereo-layer x-y coupling (sign of tx*ty),
    4 a small y-slope/momentum coupling. Every element is therefore non-zero, as in real tracks.
    """
    n = len(ms_share)
    loading = np.zeros((n, 5, 5))
    slope = -(0.5 + 0.3 * ms_share)
    bend = np.where(track_type == 3, 0.4, 0.55) * charge
    loading[:, 0, [0, 2, 3]] = np.column_stack([np.full(n, 0.95), 0.1 * charge, 0.2 * stereo])
    loading[:, 1, [1, 3]] = np.column_stack([np.full(n, 0.95), 0.2 * stereo])
    loading[:, 2, [0, 2, 3]] = np.column_stack([slope, bend, 0.08 * stereo])
    loading[:, 3, [1, 3, 4]] = np.column_stack([slope, 0.08 * stereo, 0.1 * charge])
    loading[:, 4, [0, 2, 3, 4]] = np.column_stack([0.15 * charge, np.full(n, 0.85), np.full(n, 0.05), np.full(n, 0.1)])
    # A A^T as products summed over the factors in a fixed order, not `loading @ loading^T`: numpy hands a matmul
    # to OpenBLAS, whose kernel is picked for the CPU (with or without FMA, its own summation order), and the toy
    # file's bytes followed it (OPENBLAS_CORETYPE=Nehalem against Haswell, the same seed). Each product and sum
    # here is one correctly rounded IEEE operation, the same on every CPU.
    correlation = sum(loading[:, :, None, k] * loading[:, None, :, k] for k in range(loading.shape[2]))
    unique = 1.0 - np.einsum("nii->ni", correlation)
    if not np.all(unique >= 0.02):
        raise RuntimeError("lhcb_tracks toy: correlation loadings leave no idiosyncratic variance")
    return correlation + unique[:, :, None] * np.eye(5)


def _event_of_tracks(rng: np.random.Generator, n_tracks: int) -> np.ndarray:
    """Local event index of each track: Poisson multiplicities until the chunk is full."""
    multiplicity = 1 + rng.poisson(TRACKS_PER_EVENT, n_tracks // 10 + 10)
    while multiplicity.sum() < n_tracks:
        multiplicity = np.concatenate([multiplicity, 1 + rng.poisson(TRACKS_PER_EVENT, 10)])
    return np.repeat(np.arange(len(multiplicity)), multiplicity)[:n_tracks]


def _track_kinematics(rng: np.random.Generator, n: int, pv: np.ndarray) -> dict[str, np.ndarray]:
    """Generator-level state at the first measurement, track type and hit counts."""
    track_type = rng.choice(TRACK_TYPES, size=n, p=TRACK_TYPE_P)
    log10_p = np.select([track_type == 3, track_type == 4], [rng.normal(4.0, 0.35, n), rng.normal(3.3, 0.2, n)], rng.normal(3.8, 0.3, n))
    p = np.maximum(libm.power(10.0, log10_p), np.select([track_type == 3, track_type == 4], [2000.0, 800.0], 1500.0))
    eta = np.clip(rng.normal(3.2, 0.7, n), 1.9, 5.1)
    phi = rng.uniform(-np.pi, np.pi, n)
    # glibc's functions, not numpy's: on an AVX-512 CPU numpy's own differ in the last bit (toy/libm.py)
    tan_theta = libm.tan(2.0 * libm.arctan(libm.exp(-eta)))
    tx, ty = tan_theta * libm.cos(phi), tan_theta * libm.sin(phi)
    downstream = track_type == 5
    z = np.where(downstream, 2330.0 + rng.uniform(0.0, 350.0, n), pv[:, 2] + 15.0 + rng.exponential(60.0, n))
    decay_offset = np.where(downstream, 1.0, 0.0)[:, None] * rng.normal(0.0, 20.0, (n, 2))
    x = pv[:, 0] + tx * (z - pv[:, 2]) + decay_offset[:, 0]
    y = pv[:, 1] + ty * (z - pv[:, 2]) + decay_offset[:, 1]
    return {
        "x": x, "y": y, "z": z, "tx": tx, "ty": ty, "p": p,
        "charge": rng.choice(np.array([-1, 1], dtype=np.int32), n),
        "track_type": track_type.astype(np.int32),
        "n_velo_hits": np.where(downstream, 0, 3 + rng.binomial(22, 0.4, n)).astype(np.int32),
        "n_ut_hits": rng.binomial(4, 0.92, n).astype(np.int32),
        "n_scifi_hits": np.where(track_type == 4, 0, 9 + rng.binomial(3, 0.8, n)).astype(np.int32),
    }
