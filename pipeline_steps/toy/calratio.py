"""ATLAS CalRatio-like jets: flat tree ``CalRatio``, one entry per jet, with jagged constituents.

Main region (``label``): 0 signal = jet from a long-lived scalar decaying in the calorimeter
(mH -> s s), 1 QCD multijet, 2 beam-induced background (BIB). Control region (``label`` =
``is_data``): 0 multijet MC, 1 data = multijet with a small, known mismodelling (used by the
adversary). Physics knobs (see README.md): signal has a high log10(E_had/E_EM), few tracks,
delayed and compact clusters; BIB has early clusters, a narrow eta spread, phi near 0/pi and many
muon segments parallel to the beam; QCD passing a CalRatio-like selection has low track activity
but EM-rich, prompt, wider clusters. Units: GeV, mm, ns.
"""

from __future__ import annotations

import dataclasses

import awkward as ak
import numpy as np

SIGNAL, QCD, BIB = 0, 1, 2
COUNTERS = {"clus": "nClusters", "track": "nTracks", "MSeg": "nMSegs"}
MAX_CLUSTERS, MAX_TRACKS, MAX_SEGMENTS = 30, 20, 70
#: (mH, mS) benchmark points of the signal grid (GeV), mS < mH / 2.
MASS_POINTS = np.array([(mh, ms) for mh in (125, 200, 400, 600, 1000) for ms in (5, 10, 25, 40, 55, 150) if ms < mh / 2], dtype=float)
MC_RUN_NUMBER = 284500
#: Control-region data vs multijet MC: the known mismodelling (shift of log ratio, wider cluster
#: timing, more tracks in data).
DATA_LOGRATIO_SHIFT = 0.05
DATA_TIME_WIDTH = 1.15
DATA_TRACK_SCALE = 1.1


@dataclasses.dataclass(frozen=True)
class _Region:
    """One of the two CalRatio files: main (three classes) or control region (MC vs data)."""

    control: bool
    COUNTERS = COUNTERS

    def generate_chunk(self, rng: np.random.Generator, n_jets: int, context) -> tuple[dict, int]:
        if self.control:
            label = (rng.random(n_jets) < 0.5).astype(np.int32)
            physics_class = np.full(n_jets, QCD)
            is_data = label.copy()
        else:
            label = rng.choice([SIGNAL, QCD, BIB], size=n_jets, p=[0.34, 0.33, 0.33]).astype(np.int32)
            physics_class = label
            is_data = np.zeros(n_jets, dtype=np.int32)
        event_local = _event_of_jets(rng, n_jets)
        jets = jet_features(rng, physics_class, is_data.astype(bool))
        branches = {
            "runNumber": np.where(is_data == 1, 350000 + context.index, MC_RUN_NUMBER).astype(np.uint32),
            "eventNumber": (context.first_event + event_local + 1).astype(np.uint64),
            "label": label,
            "is_data": is_data,
            **{k: v.astype(np.float32) for k, v in jets.items()},
            "clus": clusters(rng, physics_class, is_data.astype(bool), jets),
            "track": tracks(rng, physics_class, is_data.astype(bool), jets),
            "MSeg": muon_segments(rng, physics_class, jets),
        }
        n_events = int(event_local[-1]) + 1 if n_jets else 0
        return branches, context.first_event + n_events


main_region = _Region(control=False)
control_region = _Region(control=True)


def jet_features(rng: np.random.Generator, cls: np.ndarray, is_data: np.ndarray) -> dict[str, np.ndarray]:
    """Jet kinematics, CalRatio, event weight and LLP truth (zero for non-signal jets)."""
    n = len(cls)
    signal, bib = cls == SIGNAL, cls == BIB
    mass_point = MASS_POINTS[rng.integers(0, len(MASS_POINTS), n)]
    llp_mH = np.where(signal, mass_point[:, 0], 0.0)
    llp_mS = np.where(signal, mass_point[:, 1], 0.0)
    pt = np.select([signal, bib], [40.0 + rng.gamma(3.0, np.maximum(llp_mH, 1.0) / 12.0), 40.0 + rng.exponential(45.0, n)],
                   40.0 + rng.pareto(2.5, n) * 50.0)
    eta = np.where(signal, np.clip(rng.normal(0.0, 1.0, n), -2.5, 2.5), rng.uniform(-2.5, 2.5, n))
    bib_phi = np.where(rng.random(n) < 0.5, 0.0, np.pi) + rng.vonmises(0.0, 6.0, n)
    phi = _wrap(np.where(bib & (rng.random(n) < 0.6), bib_phi, rng.uniform(-np.pi, np.pi, n)))
    lxy = np.where(signal, rng.uniform(1200.0, 4000.0, n), 0.0)
    depth = (lxy - 1200.0) / 2800.0
    log_ratio = np.select([signal, bib], [0.0 + 1.0 * depth + rng.normal(0.0, 0.55, n), rng.normal(0.35, 0.7, n)],
                          rng.normal(-0.2, 0.5, n))
    log_ratio = log_ratio + DATA_LOGRATIO_SHIFT * is_data
    weight = np.select([is_data | bib, signal], [1.0, rng.lognormal(0.0, 0.1, n)], rng.lognormal(0.0, 0.5, n))
    return {
        "mcEventWeight": weight, "jet_pt": pt, "jet_eta": eta, "jet_phi": phi, "jet_E": pt * np.cosh(eta),
        "jet_logRatio": log_ratio, "llp_mS": llp_mS, "llp_mH": llp_mH, "llp_Lxy": lxy,
        "llp_Lz": np.where(signal, lxy * np.sinh(eta), 0.0),
    }


def clusters(rng: np.random.Generator, cls: np.ndarray, is_data: np.ndarray, jets: dict) -> ak.Array:
    """Calorimeter clusters: energy sharing, eta/phi spread, timing and per-layer energy fractions."""
    growth = np.log1p(jets["jet_pt"] / 50.0)
    mean = np.select([cls == SIGNAL, cls == BIB], [4.0 + 1.5 * growth, 3.0], 6.0 + 3.0 * growth)
    counts = np.clip(rng.poisson(mean), 1, MAX_CLUSTERS)
    parent = np.repeat(np.arange(len(cls)), counts)
    c, n = cls[parent], len(parent)
    share = rng.gamma(1.0, 1.0, n)
    share = share / np.bincount(parent, share, len(cls))[parent]
    # Per-jet shower widths fluctuate (lognormal) around class means: BIB narrowest in eta.
    jet_width = rng.lognormal(0.0, 0.5, (len(cls), 2))[parent]
    eta_width = np.select([c == SIGNAL, c == BIB], [0.07, 0.045], 0.10) * jet_width[:, 0]
    phi_width = np.select([c == SIGNAL, c == BIB], [0.07, 0.06], 0.10) * jet_width[:, 1]
    early = (c == BIB) & (rng.random(n) < 0.7)
    time = np.select([c == SIGNAL, early], [rng.exponential(1.2, n) + rng.normal(0.0, 0.4, n), rng.normal(-3.0, 1.5, n)],
                     rng.normal(0.0, 0.5, n))
    time = np.where(is_data[parent], time * DATA_TIME_WIDTH, time)
    log_ratio = jets["jet_logRatio"][parent] + rng.normal(0.0, 0.3, n)
    ecal_share = 1.0 / (1.0 + 10.0**log_ratio)
    ecal = rng.dirichlet([3.0, 4.0, 2.0, 0.3], n) * ecal_share[:, None]
    hcal_alpha = np.where((c == SIGNAL)[:, None], [1.5, 2.5, 2.5, 1.5], [3.0, 2.5, 1.5, 0.5])
    hcal = _dirichlet_rows(rng, hcal_alpha) * (1.0 - ecal_share)[:, None]
    fields = {
        "pt": jets["jet_pt"][parent] * share,
        "eta": jets["jet_eta"][parent] + rng.normal(0.0, 1.0, n) * eta_width,
        "phi": _wrap(jets["jet_phi"][parent] + rng.normal(0.0, 1.0, n) * phi_width),
        "time": time,
        **{f"l{i + 1}ecal": ecal[:, i] for i in range(4)},
        **{f"l{i + 1}hcal": hcal[:, i] for i in range(4)},
    }
    return _jagged(fields, counts, order_by="pt")


def tracks(rng: np.random.Generator, cls: np.ndarray, is_data: np.ndarray, jets: dict) -> ak.Array:
    """Inner-detector tracks near the jet: few for signal/BIB (nothing from the IP), more for QCD."""
    mean = np.select([cls == SIGNAL, cls == BIB], [0.8, 0.5], 1.0 + 2.5 * np.log1p(jets["jet_pt"] / 60.0))
    mean = np.where(is_data, mean * DATA_TRACK_SCALE, mean)
    counts = np.clip(rng.poisson(mean), 0, MAX_TRACKS)
    parent = np.repeat(np.arange(len(cls)), counts)
    c, n = cls[parent], len(parent)
    displaced = (c == SIGNAL) | (rng.random(n) < 0.1)
    d0 = np.where(c == BIB, rng.normal(0.0, 10.0, n), np.where(displaced, rng.laplace(0.0, 3.0, n), rng.normal(0.0, 0.05, n)))
    pixel_hits = 3 + rng.binomial(2, np.where(displaced, 0.4, 0.9), n)
    fields = {
        "pt": 0.5 + rng.exponential(np.where(c == QCD, 2.5, 1.0), n),
        "eta": jets["jet_eta"][parent] + rng.normal(0.0, 0.15, n),
        "phi": _wrap(jets["jet_phi"][parent] + rng.normal(0.0, 0.15, n)),
        "d0": d0,
        "z0": rng.normal(0.0, 50.0, n),
        "chiSquared": rng.chisquare(10.0, n) * np.where(displaced, 1.3, 1.0),
        "vertex_nParticles": rng.poisson(25.0, n).astype(float),
        "PixelShared": rng.binomial(1, 0.05, n).astype(float),
        "SCTShared": rng.binomial(2, 0.05, n).astype(float),
        "PixelHoles": rng.binomial(1, 0.05, n).astype(float),
        "SCTHoles": rng.binomial(2, 0.05, n).astype(float),
        "PixelHits": pixel_hits.astype(float),
        "SCTHits": (6 + rng.binomial(4, 0.85, n)).astype(float),
    }
    return _jagged(fields, counts, order_by="pt")


def muon_segments(rng: np.random.Generator, cls: np.ndarray, jets: dict) -> ak.Array:
    """Muon-spectrometer segments: many, parallel to the beam and early for BIB; punch-through otherwise."""
    halo = (cls == BIB) & (rng.random(len(cls)) < 0.7)
    mean = np.select([halo, cls == SIGNAL], [12.0, 0.5], 0.3 + jets["jet_pt"] / 400.0)
    counts = np.clip(rng.poisson(mean), 0, MAX_SEGMENTS)
    parent = np.repeat(np.arange(len(cls)), counts)
    beam_parallel, n = halo[parent], len(parent)
    eta_pos = np.where(beam_parallel, rng.uniform(-2.5, 2.5, n), jets["jet_eta"][parent] + rng.normal(0.0, 0.1, n))
    phi_pos = _wrap(jets["jet_phi"][parent] + rng.normal(0.0, np.where(beam_parallel, 0.05, 0.1), n))
    eta_dir = np.where(beam_parallel, rng.choice([-1.0, 1.0], n) * (3.0 + rng.exponential(1.0, n)), eta_pos + rng.normal(0.0, 0.05, n))
    t0 = np.where(beam_parallel, rng.normal(-10.0, 5.0, n), rng.normal(0.0, 3.0, n))
    radius = rng.uniform(5000.0, 10000.0, n)
    precision_hits = 3 + rng.binomial(5, 0.8, n)
    fields = {
        "etaPos": eta_pos, "phiPos": phi_pos, "etaDir": eta_dir,
        "phiDir": _wrap(phi_pos + rng.normal(0.0, 0.05, n)),
        "t0": t0, "t0error": 1.0 + rng.exponential(1.0, n),
        "time": t0 + radius * np.cosh(eta_pos) / 299.792458 + rng.normal(0.0, 1.0, n),
        "x": radius * np.cos(phi_pos), "y": radius * np.sin(phi_pos), "z": radius * np.sinh(eta_pos),
        "chiSquared": rng.chisquare(np.maximum(precision_hits - 2, 1)),
        "numberDoF": (precision_hits - 2).astype(float),
        "sector": (1 + np.floor((phi_pos + np.pi) / (2 * np.pi) * 16) % 16).astype(float),
        "chamberIndex": np.clip(np.floor(np.abs(eta_pos) * 6.0), 0, 15),
        "nPrecisionHits": precision_hits.astype(float),
        "nPhiLayers": rng.binomial(3, 0.7, n).astype(float),
    }
    return _jagged(fields, counts, order_by=None)


def _jagged(fields: dict[str, np.ndarray], counts: np.ndarray, order_by: str | None) -> ak.Array:
    """float32 jagged records, optionally sorted (descending) within each jet by one field."""
    if order_by is not None and len(counts):
        parent = np.repeat(np.arange(len(counts)), counts)
        order = np.lexsort((-fields[order_by], parent))
        fields = {k: v[order] for k, v in fields.items()}
    return ak.unflatten(ak.zip({k: np.asarray(v, dtype=np.float32) for k, v in fields.items()}), counts)


def _dirichlet_rows(rng: np.random.Generator, alpha: np.ndarray) -> np.ndarray:
    """Dirichlet with per-row concentrations (numpy's takes one alpha): normalised gammas."""
    draws = rng.gamma(alpha)
    return draws / draws.sum(axis=1, keepdims=True)


def _event_of_jets(rng: np.random.Generator, n_jets: int) -> np.ndarray:
    multiplicity = 1 + rng.binomial(1, 0.3, n_jets)
    return np.repeat(np.arange(n_jets), multiplicity)[:n_jets]


def _wrap(phi):
    return (phi + np.pi) % (2.0 * np.pi) - np.pi
