"""SHiP muon background in the FairShip layout: tree ``cbmsim``, ``MCTrack`` + ``vetoPoint``.

One entry is one simulated proton-on-target interaction that sent at least one muon to the end of
the hadron absorber. ``MCTrack`` holds the muon(s) and a few other particles of the event;
``vetoPoint`` holds the hits in the veto station, each pointing at its track by ``TrackID`` (index
into the same event's ``MCTrack``). Units as FairShip: cm, GeV.
"""

from __future__ import annotations

import awkward as ak
import numpy as np

COUNTERS: dict[str, str] = {}

#: Upstream face of the target (cm, FairShip coordinates) and the veto station.
TARGET_Z0 = -7084.5
VETO_Z = -1968.0
#: Target slabs (thickness, cm): TZM/tungsten blocks separated by 0.5 cm water gaps.
SLAB_THICKNESS = np.array([8.0, 2.5, 2.5, 2.5, 2.5, 2.5, 2.5, 2.5, 5.0, 5.0, 6.5, 8.0, 8.0, 10.0, 20.0, 35.0])
SLAB_GAP = 0.5
#: Nuclear interaction length of the target material (cm): primary interactions fall off with it.
INTERACTION_LENGTH = 11.0
#: Production weights of the sub-samples (vector mesons, charm, beauty enhanced), largest 768.75.
WEIGHT_VALUES = np.array([1.0, 2.5, 12.5, 96.0, 768.75])
WEIGHT_PROBABILITIES = np.array([0.55, 0.25, 0.12, 0.06, 0.02])
#: Transverse kick of the muon shield magnets (GeV): bends muons according to their charge.
SHIELD_KICK = 1.5
OTHER_PDG = np.array([22, 11, -11, 211, -211, 2112, 2212])
OTHER_PDG_P = np.array([0.35, 0.2, 0.15, 0.1, 0.08, 0.07, 0.05])


def generate_chunk(rng: np.random.Generator, n_events: int, context) -> tuple[dict, int]:
    """``n_events`` events; the rogue file adds an unphysical population (see README)."""
    n_muons = 1 + (rng.random(n_events) < 0.25).astype(np.int64)
    n_other = rng.poisson(1.2, n_events)
    event_weight = rng.choice(WEIGHT_VALUES, size=n_events, p=WEIGHT_PROBABILITIES)

    muons = _muons(rng, int(n_muons.sum()), np.repeat(event_weight, n_muons))
    if context.rogue:
        _make_rogue(rng, muons)
    others = _other_tracks(rng, int(n_other.sum()), np.repeat(event_weight, n_other))
    tracks = _interleave(n_muons, muons, n_other, others)
    veto = _veto_hits(rng, tracks, n_muons, n_other)
    return {"MCTrack": tracks, "vetoPoint": veto}, context.first_event + n_events


def _target_z(rng: np.random.Generator, n: int, extra_depth: float = 0.0) -> np.ndarray:
    """StartZ with the target's fine structure: exponential depth, only inside the slabs."""
    depth_in_material = rng.exponential(INTERACTION_LENGTH, n) + extra_depth
    edges = np.concatenate([[0.0], np.cumsum(SLAB_THICKNESS)])
    depth_in_material = np.minimum(depth_in_material, edges[-1] - 1e-3)
    slab = np.searchsorted(edges, depth_in_material, side="right") - 1
    return TARGET_Z0 + depth_in_material + slab * SLAB_GAP


def _muons(rng: np.random.Generator, n: int, weight: np.ndarray) -> dict[str, np.ndarray]:
    """Muons reaching the absorber end: 70 % from the target spot, 30 % from secondary decays."""
    from_target = rng.random(n) < 0.7
    start_x = np.where(from_target, 0.0, rng.laplace(0.0, 0.15, n) + rng.normal(0.0, 0.02, n))
    start_y = np.where(from_target, 0.0, rng.laplace(0.0, 0.15, n) + rng.normal(0.0, 0.02, n))
    start_z = np.where(from_target, _target_z(rng, n), _target_z(rng, n, 2.0) + rng.exponential(25.0, n))
    pz = 3.0 + rng.pareto(2.6, n) * 9.0
    pz = np.minimum(pz, 350.0)
    pt = rng.gamma(2.0, 0.35, n) * (1.0 + 0.3 * ~from_target)
    phi = rng.uniform(-np.pi, np.pi, n)
    pdg = np.where(rng.random(n) < 0.55, -13, 13)  # mu+ (-13) favoured by the positive beam
    return {
        "PdgCode": pdg.astype(np.int32),
        "StartX": start_x.astype(np.float32),
        "StartY": start_y.astype(np.float32),
        "StartZ": start_z.astype(np.float32),
        "Px": (pt * np.cos(phi)).astype(np.float32),
        "Py": (pt * np.sin(phi)).astype(np.float32),
        "Pz": pz.astype(np.float32),
        "weight": weight.astype(np.float32),
    }


def _make_rogue(rng: np.random.Generator, muons: dict[str, np.ndarray]) -> None:
    """A spike of 5 % muons with Pz of 2-3 TeV (beam is 400 GeV) and weights of 10^6."""
    n = len(muons["Pz"])
    spike = rng.random(n) < 0.05
    muons["Pz"][spike] = rng.uniform(2000.0, 3000.0, int(spike.sum())).astype(np.float32)
    muons["weight"][spike] = np.float32(1.0e6)


def _other_tracks(rng: np.random.Generator, n: int, weight: np.ndarray) -> dict[str, np.ndarray]:
    """Photons, electrons, hadrons of the same event: soft, produced along the absorber."""
    p = rng.exponential(1.5, n) + 0.05
    theta = rng.exponential(0.05, n)
    phi = rng.uniform(-np.pi, np.pi, n)
    return {
        "PdgCode": rng.choice(OTHER_PDG, size=n, p=OTHER_PDG_P).astype(np.int32),
        "StartX": rng.normal(0.0, 20.0, n).astype(np.float32),
        "StartY": rng.normal(0.0, 20.0, n).astype(np.float32),
        "StartZ": (TARGET_Z0 + rng.uniform(0.0, 5000.0, n)).astype(np.float32),
        "Px": (p * np.sin(theta) * np.cos(phi)).astype(np.float32),
        "Py": (p * np.sin(theta) * np.sin(phi)).astype(np.float32),
        "Pz": (p * np.cos(theta)).astype(np.float32),
        "weight": weight.astype(np.float32),
    }


def _interleave(n_muons, muons, n_other, others) -> ak.Array:
    """Per event: muons first, then the other tracks (TrackID of a muon = its position)."""
    counts = n_muons + n_other
    event_of_muon = np.repeat(np.arange(len(counts)), n_muons)
    event_of_other = np.repeat(np.arange(len(counts)), n_other)
    order = np.argsort(np.concatenate([event_of_muon, event_of_other]), kind="stable")
    columns = {name: np.concatenate([muons[name], others[name]])[order] for name in muons}
    return ak.unflatten(ak.zip(columns), counts)


def _veto_hits(rng: np.random.Generator, tracks: ak.Array, n_muons, n_other) -> ak.Array:
    """1-3 hits per muon (three veto layers), one hit for 10 % of the other tracks.

    Hit position: straight line from the start point with the muon-shield kick (sign = charge)
    averaged over the path, plus multiple scattering ~ 1/p; Pz at the veto is reduced by the
    energy lost in the absorber.
    """
    counts = (n_muons + n_other).astype(np.int64)
    flat = ak.flatten(tracks)
    pdg = flat.PdgCode.to_numpy()
    is_muon = np.abs(pdg) == 13
    n_tracks = len(pdg)
    hits_per_track = np.where(is_muon, 1 + np.minimum(rng.poisson(0.6, n_tracks), 2), rng.random(n_tracks) < 0.1)
    track_id = np.arange(n_tracks) - np.repeat(np.cumsum(counts) - counts, counts)
    source = np.repeat(np.arange(n_tracks), hits_per_track)
    n_hits = len(source)
    start = {name: flat[name].to_numpy()[source].astype(np.float64) for name in ("StartX", "StartY", "StartZ", "Px", "Py", "Pz")}
    charge = np.where(is_muon[source], np.where(pdg[source] == 13, -1.0, 1.0), 0.0)
    z = VETO_Z + 5.0 * rng.integers(0, 3, n_hits) + rng.normal(0.0, 0.3, n_hits)
    px_veto = start["Px"] + charge * SHIELD_KICK * rng.normal(1.0, 0.1, n_hits)
    py_veto = start["Py"] + rng.normal(0.0, 0.05, n_hits)
    pz_veto = np.maximum(start["Pz"] - rng.gamma(4.0, 0.6, n_hits), 0.3)
    lever = z - start["StartZ"]
    scattering = 30.0 / np.maximum(start["Pz"], 1.0)
    x = start["StartX"] + 0.5 * (start["Px"] + px_veto) / start["Pz"] * lever + rng.normal(0.0, 1.0, n_hits) * scattering
    y = start["StartY"] + 0.5 * (start["Py"] + py_veto) / start["Pz"] * lever + rng.normal(0.0, 1.0, n_hits) * scattering
    hits = ak.zip({
        "PdgCode": pdg[source].astype(np.int32),
        "TrackID": track_id[source].astype(np.int32),
        "X": np.clip(x, -500.0, 500.0).astype(np.float32),
        "Y": np.clip(y, -500.0, 500.0).astype(np.float32),
        "Z": z.astype(np.float32),
        "Px": px_veto.astype(np.float32),
        "Py": py_veto.astype(np.float32),
        "Pz": pz_veto.astype(np.float32),
    })
    event_of_track = np.repeat(np.arange(len(counts)), counts)
    hits_per_event = np.bincount(event_of_track, weights=hits_per_track, minlength=len(counts)).astype(np.int64)
    return ak.unflatten(hits, hits_per_event)
