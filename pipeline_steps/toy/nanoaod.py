"""CMS NanoAOD-like ttbar events: tree ``Events`` with GenPart, GenJet, Jet, Muon collections.

Generator level is a ttbar-like cascade (t -> W b, W -> l nu or q q', semileptonic b decays)
plus initial-state gluon jets; reconstruction is the generator level through a detector
response: pt- and eta-dependent resolution with non-Gaussian tails, inefficiency
(``genJetIdx``/``genPartIdx`` -1 only on fakes; lost gen objects stay unmatched), pile-up fakes,
flavour-dependent b-tag scores and NanoAOD's quantised/bounded/reduced-precision fields.
Units: GeV, cm. Collections are sorted by pt, as NanoAOD is.

Edge values real NanoAOD has, at small rates (``EDGE_RATES``), so every consumer of the toy meets
them: GenJet masses of exactly 0 (single-particle jets) and tiny negatives (float noise); a GenJet
collection skimmed at ``STORED_GEN_JET_PT`` after reco jets were matched, so some ``Jet_genJetIdx``
point past ``nGenJet``; a few heavy-tail values (reco jets overlapping a pile-up jet; muons with a
badly measured or decay-in-flight track: Cauchy-tailed impact parameters, inflated ptErr); and muons
whose isolation cone is empty (relative isolation exactly 0, ``EMPTY_CONE_CORE``).
"""

from __future__ import annotations

import awkward as ak
import numpy as np

COUNTERS: dict[str, str] = {}

MUON_MASS = 0.10566
#: GenPart slots of one event: t, tbar, W+, W-, b, bbar, W+ daughters, W- daughters, b->mu, bbar->mu.
N_SLOTS = 12
MOTHER_SLOT = np.array([-1, -1, 0, 1, 0, 1, 2, 2, 3, 3, 4, 5], dtype=np.int32)
#: GenPart statusFlags bits: isPrompt 0, isHardProcess 7, fromHardProcess 8, isFirstCopy 12, isLastCopy 13.
PROMPT_HARD_FLAGS = (1 << 0) | (1 << 7) | (1 << 8) | (1 << 12) | (1 << 13)
HADRON_DECAY_FLAGS = (1 << 6) | (1 << 12) | (1 << 13)  # isDirectHadronDecayProduct
#: W decay modes (d1, d2) for W+; W- uses the charge conjugates. Hadronic ~ 2/3.
W_PLUS_MODES = np.array([[-11, 12], [-13, 14], [-15, 16], [2, -1], [4, -3]], dtype=np.int32)
W_MODE_P = np.array([0.108, 0.108, 0.108, 0.338, 0.338])
#: GenJets are clustered (and matched to reco jets) above GEN_JET_PT but stored only above
#: STORED_GEN_JET_PT, as NanoAOD's GenJet table is skimmed: a reco jet matched to a dropped GenJet
#: keeps an index >= nGenJet. Soft GenJets below GEN_JET_PT are not simulated; a pile-up jet that
#: contains one (``fake_jet_soft_gen_match``) also gets an index past the stored collection.
GEN_JET_PT = 8.0
STORED_GEN_JET_PT = 10.0
#: Per-object rates of the edge values real NanoAOD has (see the module docstring).
EDGE_RATES = {
    "gen_jet_mass_zero": 0.005,        # GenJet_mass == 0 exactly
    "gen_jet_mass_negative": 0.002,    # GenJet_mass in -[1e-7, 3e-6] (float noise)
    "jet_pileup_overlap": 0.003,       # reco jet pt/mass gain a pile-up jet's
    "fake_jet_soft_gen_match": 0.05,   # of pile-up jets: matched to an unstored soft GenJet
    "muon_bad_track": 0.002,           # Cauchy-tailed dxy/dz, ptErr x 10
}
#: A prompt muon's own isolation draw below this (and a small pile-up draw) means an empty cone: isolation 0.
EMPTY_CONE_CORE = 0.02
MASS_OF = {1: 0.0, 2: 0.0, 3: 0.0, 4: 1.27, 5: 4.18, 6: 172.5, 11: 0.000511, 12: 0.0, 13: MUON_MASS,
           14: 0.0, 15: 1.777, 16: 0.0, 21: 0.0, 24: 80.4}


def generate_chunk(rng: np.random.Generator, n_events: int, context) -> tuple[dict, int]:
    event = context.first_event + np.arange(n_events, dtype=np.uint64) + 1
    npv = rng.poisson(np.clip(rng.normal(30.0, 7.0, n_events), 5.0, None)).astype(np.int32)
    rho = np.clip(0.55 * npv + rng.normal(1.0, 0.8, n_events), 0.0, None)
    gen_parts = _gen_particles(rng, n_events)
    gen_jets = _gen_jets(rng, gen_parts)
    jets = _reco_jets(rng, gen_jets, npv, rho)
    gen_jets = gen_jets[gen_jets.pt > STORED_GEN_JET_PT]  # pt-sorted: the kept jets keep their indices
    muons = _reco_muons(rng, gen_parts, npv)
    branches = {
        "run": np.ones(n_events, dtype=np.uint32),
        "luminosityBlock": (1 + (event - 1) // 1000).astype(np.uint32),
        "event": event,
        "fixedGridRhoFastjetAll": _reduced(rho, 10),
        "PV_npvs": npv,
        "GenPart": _gen_part_record(gen_parts),
        "GenJet": _gen_jet_record(gen_jets),
        "Jet": jets,
        "Muon": muons,
    }
    return branches, context.first_event + n_events


# --------------------------------------------------------------------------- generator level
def _gen_particles(rng: np.random.Generator, n: int) -> ak.Array:
    """The ttbar cascade in fixed slots, absent b->mu slots removed: jagged GenPart records."""
    pt, eta, phi = (np.zeros((n, N_SLOTS)) for _ in range(3))
    pdg = np.zeros((n, N_SLOTS), dtype=np.int32)
    pt[:, 0], pt[:, 1] = rng.gamma(2.0, 55.0, n), rng.gamma(2.0, 55.0, n)
    eta[:, 0], eta[:, 1] = rng.normal(0.0, 1.3, n), rng.normal(0.0, 1.3, n)
    phi[:, 0] = rng.uniform(-np.pi, np.pi, n)
    phi[:, 1] = phi[:, 0] + np.pi + rng.normal(0.0, 0.7, n)
    pdg[:, :6] = [6, -6, 24, -24, 5, -5]
    for child, parent, share, extra in ((2, 0, 0.6, 12.0), (3, 1, 0.6, 12.0), (4, 0, 0.4, 18.0), (5, 1, 0.4, 18.0)):
        _daughter(rng, pt, eta, phi, child, parent, share * pt[:, parent] + rng.gamma(2.0, extra, n), 0.6)
    modes = rng.choice(len(W_PLUS_MODES), size=(n, 2), p=W_MODE_P)
    pdg[:, 6:8] = W_PLUS_MODES[modes[:, 0]]
    pdg[:, 8:10] = -W_PLUS_MODES[modes[:, 1]]
    for w, first in ((2, 6), (3, 8)):
        share = rng.uniform(0.2, 0.8, n)
        _daughter(rng, pt, eta, phi, first, w, share * pt[:, w] + rng.gamma(2.0, 10.0, n), 0.8)
        _daughter(rng, pt, eta, phi, first + 1, w, (1 - share) * pt[:, w] + rng.gamma(2.0, 10.0, n), 0.8)
    pdg[:, 10:12] = [13, -13]  # b -> c mu- nu, bbar -> mu+
    for slot, b in ((10, 4), (11, 5)):
        _daughter(rng, pt, eta, phi, slot, b, pt[:, b] * rng.beta(2.0, 5.0, n), 0.1)
    present = np.ones((n, N_SLOTS), dtype=bool)
    present[:, 10:12] = rng.random((n, 2)) < 0.2
    status = np.select([np.abs(pdg) == 6, np.abs(pdg) == 24, np.isin(np.abs(pdg), (11, 12, 13, 14, 16)), np.abs(pdg) == 15],
                       [62, 22, 1, 2], 23)
    flags = np.full((n, N_SLOTS), PROMPT_HARD_FLAGS, dtype=np.int32)
    flags[:, 10:12] = HADRON_DECAY_FLAGS
    mass = np.vectorize(MASS_OF.get, otypes=[float])(np.abs(pdg))
    mass[:, 0:2] += rng.normal(0.0, 1.4, (n, 2))
    mass[:, 2:4] += rng.normal(0.0, 2.1, (n, 2))
    new_index = np.cumsum(present, axis=1) - 1
    mother = np.where(MOTHER_SLOT >= 0, new_index[:, np.maximum(MOTHER_SLOT, 0)], -1)
    columns = {"pt": pt, "eta": np.clip(eta, -6.0, 6.0), "phi": _wrap(phi), "mass": mass, "pdgId": pdg,
               "status": status, "statusFlags": flags, "genPartIdxMother": mother}
    counts = present.sum(axis=1)
    return ak.unflatten(ak.zip({k: v[present] for k, v in columns.items()}), counts)


def _daughter(rng, pt, eta, phi, child, parent, child_pt, spread) -> None:
    pt[:, child] = child_pt
    eta[:, child] = eta[:, parent] + rng.normal(0.0, spread, len(child_pt))
    phi[:, child] = phi[:, parent] + rng.normal(0.0, spread, len(child_pt))


def _gen_jets(rng: np.random.Generator, gen_parts: ak.Array) -> ak.Array:
    """Jets from b quarks, hadronic W daughters and ISR gluons; pt > GEN_JET_PT, |eta| < 5, pt-sorted."""
    quarks = gen_parts[(abs(gen_parts.pdgId) <= 5) & (gen_parts.status == 23)]
    n_quarks = ak.num(quarks).to_numpy()
    q = ak.flatten(quarks)
    n_q = len(q)
    is_b = np.abs(q.pdgId.to_numpy()) == 5
    scale = np.where(is_b, rng.normal(0.88, 0.10, n_q), rng.normal(0.94, 0.08, n_q))
    parton_flavour = q.pdgId.to_numpy().astype(np.int32)
    from_quarks = {
        "pt": q.pt.to_numpy() * scale,
        "eta": q.eta.to_numpy() + rng.normal(0.0, 0.03, n_q),
        "phi": q.phi.to_numpy() + rng.normal(0.0, 0.03, n_q),
        "hadronFlavour": np.select([np.abs(parton_flavour) == 5, np.abs(parton_flavour) == 4], [5, 4], 0),
        "partonFlavour": parton_flavour,
    }
    n_events = len(gen_parts)
    n_isr = rng.poisson(1.5, n_events)
    m = int(n_isr.sum())
    g_to_bb = rng.random(m) < 0.03
    from_gluons = {
        "pt": 12.0 + rng.exponential(25.0, m),
        "eta": rng.normal(0.0, 2.0, m),
        "phi": rng.uniform(-np.pi, np.pi, m),
        "hadronFlavour": np.where(g_to_bb, 5, 0),
        "partonFlavour": np.full(m, 21),
    }
    counts = n_quarks + n_isr
    order = np.argsort(np.concatenate([np.repeat(np.arange(n_events), n_quarks), np.repeat(np.arange(n_events), n_isr)]), kind="stable")
    flat = {k: np.concatenate([from_quarks[k], from_gluons[k]])[order] for k in from_quarks}
    flat["phi"] = _wrap(flat["phi"])
    flat["mass"] = _gen_jet_mass(rng, flat["pt"])
    jets = ak.unflatten(ak.zip(flat), counts)
    jets = jets[(jets.pt > GEN_JET_PT) & (abs(jets.eta) < 5.0)]
    return jets[ak.argsort(jets.pt, ascending=False)]


def _gen_jet_mass(rng: np.random.Generator, pt: np.ndarray) -> np.ndarray:
    """m/pt ~ 0.12 log-normal, with NanoAOD's exact zeros and float-noise negatives (``EDGE_RATES``)."""
    mass = pt * rng.lognormal(np.log(0.12), 0.35, len(pt))
    u = rng.random(len(pt))
    zero = u < EDGE_RATES["gen_jet_mass_zero"]
    negative = ~zero & (u < EDGE_RATES["gen_jet_mass_zero"] + EDGE_RATES["gen_jet_mass_negative"])
    mass[zero] = 0.0
    mass[negative] = -(10.0 ** rng.uniform(-7.0, np.log10(3e-6), int(negative.sum())))
    return mass


def _gen_jet_record(gen_jets: ak.Array) -> ak.Array:
    return ak.zip({
        "pt": _f32(gen_jets.pt), "eta": _reduced(gen_jets.eta, 10), "phi": _reduced(gen_jets.phi, 10),
        "mass": _reduced(gen_jets.mass, 10),
        "hadronFlavour": ak.values_astype(gen_jets.hadronFlavour, np.uint8),
        "partonFlavour": ak.values_astype(gen_jets.partonFlavour, np.int32),
    })


def _gen_part_record(gen_parts: ak.Array) -> ak.Array:
    return ak.zip({
        "pt": _reduced(gen_parts.pt, 12), "eta": _reduced(gen_parts.eta, 12), "phi": _reduced(gen_parts.phi, 12),
        "mass": _reduced(gen_parts.mass, 8), "pdgId": ak.values_astype(gen_parts.pdgId, np.int32),
        "status": ak.values_astype(gen_parts.status, np.int32),
        "statusFlags": ak.values_astype(gen_parts.statusFlags, np.int32),
        "genPartIdxMother": ak.values_astype(gen_parts.genPartIdxMother, np.int32),
    })


# --------------------------------------------------------------------------- reconstruction
def _reco_jets(rng: np.random.Generator, gen_jets: ak.Array, npv: np.ndarray, rho: np.ndarray) -> ak.Array:
    """Detector response for gen jets, plus pile-up fakes; reco pt > 15 GeV, pt-sorted."""
    counts = ak.num(gen_jets).to_numpy()
    g = ak.flatten(gen_jets)
    gen_idx = ak.flatten(ak.local_index(gen_jets)).to_numpy()
    event_of = np.repeat(np.arange(len(counts)), counts)
    gen_pt, gen_eta = g.pt.to_numpy(), g.eta.to_numpy()
    n = len(gen_pt)
    efficiency = 0.98 * np.clip(1.0 - np.exp(-(gen_pt - 8.0) / 10.0), 0.0, 1.0) * (np.abs(gen_eta) < 4.7)
    found = rng.random(n) < efficiency
    flavour = g.hadronFlavour.to_numpy()
    response = _jet_response(rng, gen_pt, gen_eta, npv[event_of], flavour)
    overlap = rng.random(n) < EDGE_RATES["jet_pileup_overlap"]  # heavy tail: a pile-up jet on top
    matched = {
        "pt": gen_pt * response + rng.normal(0.0, 0.05, n) * rho[event_of] * 0.5 + overlap * rng.exponential(20.0, n),
        "eta": gen_eta + rng.normal(0.0, 1.0, n) * (0.01 + 0.3 / gen_pt),
        "phi": g.phi.to_numpy() + rng.normal(0.0, 1.0, n) * (0.01 + 0.3 / gen_pt),
        "mass": _reco_jet_mass(rng, g.mass.to_numpy(), gen_pt) + overlap * rng.exponential(6.0, n),
        "genJetIdx": gen_idx, "hadronFlavour": flavour, "partonFlavour": g.partonFlavour.to_numpy(),
        "is_fake": np.zeros(n, dtype=bool),
    }
    matched = {k: v[found] for k, v in matched.items()}
    event_matched = event_of[found]
    n_fakes = rng.poisson(0.1 + 0.015 * npv)
    m = int(n_fakes.sum())
    fake_pt = 15.0 + rng.exponential(6.0, m)
    fakes = {
        "pt": fake_pt, "eta": rng.uniform(-4.7, 4.7, m), "phi": rng.uniform(-np.pi, np.pi, m),
        "mass": fake_pt * 0.1 * rng.lognormal(0.0, 0.4, m), "genJetIdx": _fake_gen_jet_index(rng, counts, n_fakes),
        "hadronFlavour": np.zeros(m, dtype=int), "partonFlavour": np.zeros(m, dtype=int), "is_fake": np.ones(m, dtype=bool),
    }
    event_all = np.concatenate([event_matched, np.repeat(np.arange(len(counts)), n_fakes)])
    order = np.argsort(event_all, kind="stable")
    flat = {k: np.concatenate([matched[k], fakes[k]])[order] for k in matched}
    flat = _jet_features(rng, flat)
    jets = ak.unflatten(ak.zip(flat), np.bincount(event_all, minlength=len(counts)))
    jets = jets[jets.pt > 15.0]
    return jets[ak.argsort(jets.pt, ascending=False)]


def _fake_gen_jet_index(rng: np.random.Generator, counts: np.ndarray, n_fakes: np.ndarray) -> np.ndarray:
    """-1, or for a pile-up jet containing a soft (never stored) GenJet an index past every GenJet of
    its event (the full collection's index of that soft jet), as real skimmed NanoAOD has."""
    m = int(n_fakes.sum())
    soft = rng.random(m) < EDGE_RATES["fake_jet_soft_gen_match"]
    past = np.repeat(counts, n_fakes) + rng.integers(0, 3, m)
    return np.where(soft, past, -1)


def _reco_jet_mass(rng: np.random.Generator, gen_mass: np.ndarray, gen_pt: np.ndarray) -> np.ndarray:
    """Reco mass ~ gen mass x log-normal(0, 0.15); a massless GenJet still gets a small reco mass
    (granularity, pile-up: ~2 % of pt), as real jets matched to single-particle GenJets do."""
    smeared = gen_mass * rng.lognormal(0.0, 0.15, len(gen_mass))
    massless = gen_pt * 0.02 * rng.lognormal(0.0, 0.5, len(gen_mass))
    return np.where(gen_mass > 0.0, smeared, massless)


def _jet_response(rng, gen_pt, gen_eta, npv, flavour) -> np.ndarray:
    """pT response: Gaussian core sqrt((N/pt)^2 + S^2/pt + C^2) and low-side tails (b: neutrinos)."""
    noise = 2.5 + 0.08 * npv
    stochastic = np.where(np.abs(gen_eta) > 2.5, 1.2, 0.9)
    sigma = np.sqrt((noise / gen_pt) ** 2 + stochastic**2 / gen_pt + 0.04**2)
    response = 1.0 + sigma * rng.normal(0.0, 1.0, len(gen_pt))
    tail = rng.random(len(gen_pt)) < np.where(flavour == 5, 0.2, 0.06)
    response = np.where(tail, response * (1.0 - rng.gamma(1.5, 0.1, len(gen_pt))), response)
    return np.clip(response, 0.2, 2.5)


def _jet_features(rng: np.random.Generator, jets: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Jet_* substructure, flavour tagging, identification and energy fractions."""
    n = len(jets["pt"])
    pt, eta, flavour, fake = jets["pt"], jets["eta"], jets["hadronFlavour"], jets["is_fake"]
    in_tracker = np.abs(eta) < 2.5
    tag_mean = np.select([flavour == 5, flavour == 4], [3.0, -0.5], -3.5)
    tag = rng.normal(tag_mean, 1.5)
    gluon = (jets["partonFlavour"] == 21) | fake
    # chHEF, neHEF, chEmEF, neEmEF share what a muon inside the jet (b/c semileptonic) leaves.
    has_muon = rng.random(n) < np.select([flavour == 5, flavour == 4], [0.15, 0.08], 0.01)
    mu_fraction = np.where(has_muon, 0.5 * rng.beta(1.0, 4.0, n), 0.0)
    fractions = rng.dirichlet([6.0, 2.0, 1.0, 3.0], n)
    fractions[~in_tracker, 0] = 0.0
    fractions[~in_tracker, 2] = 0.0
    fractions *= ((1.0 - mu_fraction) / fractions.sum(axis=1))[:, None]
    fractions = np.column_stack([fractions, mu_fraction])
    jet_id = np.where(fake, rng.choice([0, 2, 6], n, p=[0.2, 0.3, 0.5]), rng.choice([0, 2, 6], n, p=[0.02, 0.08, 0.9]))
    pu_id = np.where(fake, rng.choice([0, 4, 6, 7], n, p=[0.6, 0.25, 0.1, 0.05]), rng.choice([0, 4, 6, 7], n, p=[0.03, 0.04, 0.08, 0.85]))
    return {
        "pt": _f32(pt), "eta": _reduced(eta, 10), "phi": _reduced(_wrap(jets["phi"]), 10),
        "mass": _reduced(np.maximum(jets["mass"], 0.0), 10),
        "area": _reduced(np.where(fake, rng.normal(0.45, 0.08, n), rng.normal(0.50, 0.025, n)).clip(0.2, 0.8), 10),
        "btagDeepB": _reduced(np.where(in_tracker, _sigmoid(tag + rng.normal(0.0, 0.6, n)), -1.0), 10),
        "btagDeepFlavB": _reduced(np.where(in_tracker, _sigmoid(1.1 * tag + rng.normal(0.0, 0.5, n)), -1.0), 10),
        "btagCSVV2": _reduced(np.where(in_tracker, _sigmoid(0.8 * tag + rng.normal(0.0, 0.8, n)), -1.0), 10),
        "qgl": _reduced(np.where(gluon, rng.beta(1.8, 3.2, n), rng.beta(3.5, 1.6, n)), 10),
        "nConstituents": np.clip(rng.poisson(4.0 + 1.8 * np.sqrt(pt) * np.where(gluon, 1.4, 1.0)), 1, 255).astype(np.uint8),
        "jetId": jet_id.astype(np.int32),
        "puId": np.where(pt >= 50.0, 7, pu_id).astype(np.int32),
        "chHEF": _reduced(fractions[:, 0], 6), "neHEF": _reduced(fractions[:, 1], 6),
        "chEmEF": _reduced(fractions[:, 2], 6), "neEmEF": _reduced(fractions[:, 3], 6), "muEF": _reduced(fractions[:, 4], 6),
        "genJetIdx": jets["genJetIdx"].astype(np.int32),
        "hadronFlavour": flavour.astype(np.int32),
    }


def _reco_muons(rng: np.random.Generator, gen_parts: ak.Array, npv: np.ndarray) -> ak.Array:
    """Muon reconstruction of status-1 gen muons in |eta| < 2.4, pt > 3 GeV, plus punch-through fakes."""
    index = ak.local_index(gen_parts)
    is_muon = (abs(gen_parts.pdgId) == 13) & (gen_parts.status == 1) & (abs(gen_parts.eta) < 2.4) & (gen_parts.pt > 3.0)
    counts = ak.sum(is_muon, axis=1).to_numpy()
    gen = ak.flatten(gen_parts[is_muon])
    event_of = np.repeat(np.arange(len(counts)), counts)
    n = len(gen)
    found = rng.random(n) < 0.96
    prompt = (gen.statusFlags.to_numpy() & 1) == 1
    gen_pt, gen_eta = gen.pt.to_numpy(), gen.eta.to_numpy()
    sigma_rel = (0.01 + 0.0002 * gen_pt) * np.where(np.abs(gen_eta) > 1.2, 1.6, 1.0)
    pt = gen_pt * (1.0 + sigma_rel * 0.8 * rng.standard_t(4, n))
    misid = rng.random(n) < 0.001 + 1e-5 * gen_pt
    matched = {
        "pt": pt, "eta": gen_eta + rng.normal(0.0, 0.001, n), "phi": gen.phi.to_numpy() + rng.normal(0.0, 0.001, n),
        "charge": -np.sign(gen.pdgId.to_numpy()) * np.where(misid, -1, 1),
        "sigma_rel": sigma_rel, "prompt": prompt, "fake": np.zeros(n, dtype=bool),
        "genPartIdx": ak.flatten(index[is_muon]).to_numpy(),
    }
    matched = {k: v[found] for k, v in matched.items()}
    n_fakes = rng.poisson(0.03, len(counts))
    m = int(n_fakes.sum())
    fakes = {
        "pt": 3.0 + rng.exponential(4.0, m), "eta": rng.uniform(-2.4, 2.4, m), "phi": rng.uniform(-np.pi, np.pi, m),
        "charge": rng.choice([-1, 1], m), "sigma_rel": np.full(m, 0.03), "prompt": np.zeros(m, dtype=bool),
        "fake": np.ones(m, dtype=bool), "genPartIdx": np.full(m, -1),
    }
    event_all = np.concatenate([event_of[found], np.repeat(np.arange(len(counts)), n_fakes)])
    order = np.argsort(event_all, kind="stable")
    flat = {k: np.concatenate([matched[k], fakes[k]])[order] for k in matched}
    flat = _muon_features(rng, flat, npv[event_all[order]])
    muons = ak.unflatten(ak.zip(flat), np.bincount(event_all, minlength=len(counts)))
    return muons[ak.argsort(muons.pt, ascending=False)]


def _muon_features(rng: np.random.Generator, mu: dict[str, np.ndarray], npv: np.ndarray) -> dict[str, np.ndarray]:
    """Impact parameters (cm), isolation, quality and identification bits of reco muons."""
    n = len(mu["pt"])
    pt, prompt, fake = mu["pt"], mu["prompt"], mu["fake"]
    sigma_dxy, sigma_dz = 0.0015 + 0.01 / pt, 0.003 + 0.02 / pt
    decay_dxy = np.where(prompt, 0.0, rng.exponential(0.04, n) * rng.choice([-1, 1], n))
    decay_dz = np.where(prompt, 0.0, rng.exponential(0.06, n) * rng.choice([-1, 1], n))
    bad_track = rng.random(n) < EDGE_RATES["muon_bad_track"]  # heavy tails: Cauchy impact parameters
    decay_dxy = np.where(bad_track, 0.3 * rng.standard_cauchy(n), decay_dxy)
    decay_dz = np.where(bad_track, 0.5 * rng.standard_cauchy(n), decay_dz)
    dxy, dz = decay_dxy + rng.normal(0.0, sigma_dxy), decay_dz + rng.normal(0.0, sigma_dz)
    ip3d = np.hypot(dxy, dz)
    core = np.where(prompt, rng.exponential(0.02, n), rng.gamma(1.5, 0.3, n))
    pileup = rng.exponential(1.0, n)
    # No PF candidate in the cone: a relative isolation of exactly 0, as for many real prompt muons (~13 % of
    # the toy's muons at 0.3, ~3 % at 0.4). Decided on the draws above, so the generator's stream, and with it every
    # other branch of the file, stays as it was.
    empty03 = prompt & (core < EMPTY_CONE_CORE) & (pileup < 1.0)
    iso03 = np.where(empty03, 0.0, core + 0.002 * npv * pileup)
    ring, ring_extra = rng.uniform(1.1, 1.8, n), rng.exponential(0.01, n)
    iso04 = np.where(empty03 & (ring_extra < 0.003), 0.0, iso03 * ring + ring_extra)
    n_stations = np.where(fake, 1 + rng.binomial(1, 0.3, n), 1 + rng.binomial(3, 0.85, n))
    is_global = rng.random(n) < np.where(fake, 0.5, 0.97)
    medium = rng.random(n) < np.where(fake, 0.3, np.where(prompt, 0.96, 0.9))
    tight = medium & is_global & (n_stations >= 2) & (np.abs(dxy) < 0.2) & (np.abs(dz) < 0.5) & (rng.random(n) < 0.97)
    return {
        "pt": _f32(pt), "eta": _reduced(mu["eta"], 12), "phi": _reduced(_wrap(mu["phi"]), 12),
        "mass": np.full(n, MUON_MASS, dtype=np.float32), "charge": mu["charge"].astype(np.int32),
        "dxy": _reduced(dxy, 10), "dz": _reduced(dz, 10), "ip3d": _reduced(ip3d, 10),
        "sip3d": _reduced(ip3d / np.hypot(sigma_dxy, sigma_dz), 10),
        "pfRelIso03_all": _reduced(iso03, 6), "pfRelIso04_all": _reduced(iso04, 6),
        "ptErr": _reduced(pt * mu["sigma_rel"] * rng.lognormal(0.0, 0.2, n) * np.where(bad_track, 10.0, 1.0), 6),
        "nStations": n_stations.astype(np.int32),
        "nTrackerLayers": np.minimum(8 + rng.binomial(10, 0.6, n), 18).astype(np.int32),
        "looseId": np.ones(n, dtype=bool), "mediumId": medium, "tightId": tight, "isGlobal": is_global,
        "genPartIdx": mu["genPartIdx"].astype(np.int32),
    }


# --------------------------------------------------------------------------- helpers
def _wrap(phi):
    return (phi + np.pi) % (2.0 * np.pi) - np.pi


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _f32(values) -> np.ndarray | ak.Array:
    if isinstance(values, ak.Array):
        return ak.values_astype(values, np.float32)
    return np.asarray(values, dtype=np.float32)


def _reduced(values, mantissa_bits: int):
    """float32 with the mantissa truncated to ``mantissa_bits``, as NanoAOD stores most floats."""
    if isinstance(values, ak.Array):
        counts = ak.num(values).to_numpy()
        return ak.unflatten(_reduced(ak.flatten(values).to_numpy(), mantissa_bits), counts)
    as_float = np.ascontiguousarray(values, dtype=np.float32)
    mask = np.uint32((0xFFFFFFFF << (23 - mantissa_bits)) & 0xFFFFFFFF)
    return (as_float.view(np.uint32) & mask).view(np.float32)
