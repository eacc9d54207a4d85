"""Toy files round-trip through uproot with the exact branch names, counters and indices."""

from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot
import yaml

from pipeline_steps.toy import lhcb_tracks
from pipeline_steps.toy.step import ToySettings, generate_file

CONFIG = yaml.safe_load((Path(__file__).parents[1] / "config" / "config.yaml").read_text())


def _write(tmp_path, dataset, index=0, entries=300, n_files=2, rogue_file=None):
    settings_config = CONFIG["datasets"][dataset]
    settings = ToySettings(settings_config["toy"]["layout"], n_files, entries, settings_config["tree"], 42, rogue_file)
    path = tmp_path / f"{dataset}_{index}.root"
    generate_file(path, dataset, index, settings)
    return uproot.open(path)[settings_config["tree"]]


def _expected_branches(dataset):
    """Every branch the config reads from the dataset (collections as counter + prefix)."""
    settings = CONFIG["datasets"][dataset]
    names = set(settings.get("identity", []))
    for table in settings["tables"].values():
        names.update(table.get("event_fields", []))
        collection = table.get("collection")
        if collection:
            names.add(collection["counter"])
            names.update(collection["prefix"] + f for f in table["fields"])
            if "match" in table:
                names.add(collection["prefix"] + table["match"]["index"])
        else:
            names.update(table["fields"])
        if "match" in table:
            match = table["match"]["collection"]
            names.add(match["counter"])
            names.update(match["prefix"] + f for f in table["match"]["fields"])
        for sequence in table.get("sequences", {}).values():
            names.add(sequence["counter"])
            names.update(sequence["prefix"] + f for f in sequence["fields"])
    return names


@pytest.mark.parametrize("dataset", ["ship", "nanoaod", "lhcb_tracks", "calratio_main", "calratio_cr"])
def test_branches_match_config(tmp_path, dataset):
    tree = _write(tmp_path, dataset)
    assert tree.num_entries == 300
    missing = _expected_branches(dataset) - set(tree.keys())
    assert not missing, f"{dataset}: config reads branches the toy file lacks: {sorted(missing)}"


@pytest.mark.parametrize(
    "dataset, counter, prefix",
    [("ship", "nMCTrack", "MCTrack_"), ("ship", "nvetoPoint", "vetoPoint_"), ("nanoaod", "nJet", "Jet_"),
     ("nanoaod", "nGenJet", "GenJet_"), ("nanoaod", "nMuon", "Muon_"), ("nanoaod", "nGenPart", "GenPart_"),
     ("calratio_main", "nClusters", "clus_"), ("calratio_main", "nTracks", "track_"), ("calratio_main", "nMSegs", "MSeg_")],
)
def test_counters_equal_jagged_lengths(tmp_path, dataset, counter, prefix):
    tree = _write(tmp_path, dataset)
    counts = tree[counter].array(library="np")
    jagged = [name for name in tree.keys() if name.startswith(prefix)]
    assert jagged
    for name in jagged:
        np.testing.assert_array_equal(ak.num(tree[name].array()).to_numpy(), counts, err_msg=name)


def test_nanoaod_indices_in_range_or_minus_one(tmp_path):
    events = _write(tmp_path, "nanoaod").arrays()
    for index, target in (("Muon_genPartIdx", "nGenPart"), ("GenPart_genPartIdxMother", "nGenPart")):
        idx = events[index]
        assert ak.all((idx == -1) | ((idx >= 0) & (idx < events[target]))), index
        assert ak.any(idx == -1) and ak.any(idx >= 0), index
    matched_muon = events.Muon_genPartIdx >= 0
    gen_pdg = events.GenPart_pdgId[ak.where(matched_muon, events.Muon_genPartIdx, 0)]
    assert ak.all(abs(gen_pdg[matched_muon]) == 13)
    # GenJet is skimmed after matching (as in real NanoAOD): some Jet_genJetIdx point past nGenJet
    jet_idx = events.Jet_genJetIdx
    in_range = (jet_idx >= 0) & (jet_idx < events.nGenJet)
    assert ak.all((jet_idx == -1) | (jet_idx >= 0))
    assert ak.any(jet_idx == -1) and ak.any(in_range) and ak.any(jet_idx >= events.nGenJet)
    flavour = events.GenJet_hadronFlavour[ak.where(in_range, jet_idx, 0)]
    assert ak.all((flavour == events.Jet_hadronFlavour)[in_range])
    assert ak.all(events.Jet_pt[:, :-1] >= events.Jet_pt[:, 1:])  # NanoAOD collections are pt-sorted


def test_nanoaod_toy_has_the_edge_values_of_real_nanoaod(tmp_path):
    """GenJet masses of exactly 0 and float-noise negatives, and heavy tails, at small rates."""
    events = _write(tmp_path, "nanoaod", entries=2000).arrays()
    gen_mass = ak.flatten(events.GenJet_mass).to_numpy()
    zero, negative = np.mean(gen_mass == 0), np.mean(gen_mass < 0)
    assert 0.001 < zero < 0.02 and 0.0003 < negative < 0.01, (zero, negative)
    assert -1e-5 < gen_mass.min() < 0  # float noise, not a physical negative mass
    past = ak.flatten(events.Jet_genJetIdx >= events.nGenJet).to_numpy()
    assert 0.0005 < past.mean() < 0.02, past.mean()
    in_range = (events.Jet_genJetIdx >= 0) & (events.Jet_genJetIdx < events.nGenJet)
    gen_pt = events.GenJet_pt[ak.where(in_range, events.Jet_genJetIdx, 0)][in_range]
    pt_ratio = ak.flatten(events.Jet_pt[in_range] / gen_pt).to_numpy()
    assert np.sum(pt_ratio > 3.0) >= 1 and np.mean(pt_ratio > 3.0) < 1e-3  # a few pile-up overlaps
    assert np.median(pt_ratio) == pytest.approx(1.0, abs=0.05)  # the bulk is unchanged
    ip3d = ak.flatten(events.Muon_ip3d).to_numpy()
    assert np.sum(ip3d > 1.0) >= 1 and np.median(ip3d) < 0.05  # Cauchy-tailed bad tracks, rare
    iso03, iso04 = (ak.flatten(events[f"Muon_pfRelIso0{r}_all"]).to_numpy() for r in (3, 4))
    assert 0.03 < np.mean(iso03 == 0) < 0.3 and 0.01 < np.mean(iso04 == 0) < np.mean(iso03 == 0)  # empty cones
    assert np.all(iso03 >= 0) and np.all(iso04[iso03 > 0] > 0)  # the larger cone is empty only if the smaller is


def test_nanoaod_event_numbers_unique_across_files(tmp_path):
    first = _write(tmp_path, "nanoaod", index=0)["event"].array(library="np")
    second = _write(tmp_path, "nanoaod", index=1)["event"].array(library="np")
    assert len(np.unique(np.concatenate([first, second]))) == len(first) + len(second)


def test_ship_track_ids_point_at_muon_tracks(tmp_path):
    events = _write(tmp_path, "ship").arrays()
    track_id = events.vetoPoint_TrackID
    assert ak.all((track_id >= 0) & (track_id < events.nMCTrack))
    assert ak.all(events.MCTrack_PdgCode[track_id] == events.vetoPoint_PdgCode)
    muon_hits = abs(events.vetoPoint_PdgCode) == 13
    assert ak.any(ak.sum(muon_hits, axis=1) > ak.sum(abs(events.MCTrack_PdgCode) == 13, axis=1))  # several hits per muon
    assert ak.any(abs(events.MCTrack_PdgCode) != 13)
    weights = ak.flatten(events.MCTrack_weight).to_numpy()
    assert weights.min() > 0 and weights.max() <= 768.75


def test_ship_rogue_file_has_unphysical_population(tmp_path):
    normal = _write(tmp_path, "ship", index=0, rogue_file=1).arrays()
    rogue = _write(tmp_path, "ship", index=1, rogue_file=1).arrays()
    assert ak.max(normal.MCTrack_Pz) < 400.0  # the beam is 400 GeV
    assert ak.max(rogue.MCTrack_Pz) > 400.0 and ak.max(rogue.MCTrack_weight) > 1e5


def test_lhcb_covariances_are_symmetric_positive_definite(tmp_path):
    tracks = _write(tmp_path, "lhcb_tracks", entries=2000).arrays(library="np")
    cov = np.zeros((2000, 5, 5))
    for name, (i, j) in zip(lhcb_tracks.COVARIANCE_BRANCHES, lhcb_tracks.UPPER_TRIANGLE):
        cov[:, i, j] = cov[:, j, i] = tracks[name]
    assert np.linalg.eigvalsh(cov).min(axis=1).min() > 0
    np.linalg.cholesky(cov)  # raises if any is not positive definite
    correlation_x_tx = cov[:, 0, 2] / np.sqrt(cov[:, 0, 0] * cov[:, 2, 2])
    assert np.all(correlation_x_tx < 0)
    small_p = tracks["p"] < np.quantile(tracks["p"], 0.2)
    assert np.median(cov[small_p, 0, 0]) > np.median(cov[~small_p, 0, 0])  # multiple scattering ~ 1/p


def test_check_spd_rejects_an_indefinite_matrix():
    bad = np.eye(5)[None].copy()
    bad[0, 0, 1] = bad[0, 1, 0] = 2.0
    with pytest.raises(RuntimeError, match="not positive definite"):
        lhcb_tracks.check_spd(bad)


def test_calratio_control_region_flags(tmp_path):
    cr = _write(tmp_path, "calratio_cr").arrays(["label", "is_data", "llp_Lxy"], library="np")
    main = _write(tmp_path, "calratio_main").arrays(["label", "is_data", "llp_Lxy"], library="np")
    np.testing.assert_array_equal(cr["is_data"], cr["label"])
    assert set(np.unique(cr["label"])) == {0, 1} and set(np.unique(main["label"])) == {0, 1, 2}
    assert np.all(main["is_data"] == 0)
    assert np.all((main["llp_Lxy"] > 0) == (main["label"] == 0))
