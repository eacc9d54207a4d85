"""Ingestion on tiny hand-built ROOT files (written with uproot in tmp_path) and on ROOT-written files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import awkward as ak
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import uproot
import yaml

from pipeline_steps.common.errors import ConfigError, InputError
from pipeline_steps.ingest.step import run, run_summary
from tests.real_files import REAL, needs_real_files

CONFIG = yaml.safe_load((Path(__file__).parents[1] / "config" / "config.yaml").read_text())


def _write_tree(file, name, data):
    """A real TTree (uproot 5.7 writes an RNTuple for ``file[name] = data``)."""
    types = {k: (v.type.content if isinstance(v, ak.Array) else v.dtype) for k, v in data.items()}
    file.mktree(name, types).extend(data)


def _reading(dataset, **overrides):
    settings = CONFIG["datasets"][dataset]
    reading = {k: settings[k] for k in ("tree", "step_size", "empty_tree", "identity")}
    return {**reading, **overrides}


def _ingest(tmp_path, raw, dataset, table, mapping=None, **reading):
    mapping = mapping or CONFIG["datasets"][dataset]["tables"][table]
    out = tmp_path / "out" / f"{table}.parquet"
    [summary] = run([str(raw)], str(out), str(out.with_suffix(".json")), _reading(dataset, **reading), mapping, table, dataset)
    return pq.read_table(out).to_pandas(), summary


def _ship_file(path, n_entries=3):
    """3 events; event 0: two muon tracks, track 0 with 3 veto hits; event 1: an electron; event 2: none."""
    veto = ak.Array([
        {"TrackID": [0, 0, 1, 0], "X": [1.0, 2.0, 3.0, 4.0], "Y": [0.0] * 4, "Z": [5.0] * 4},
        {"TrackID": [0], "X": [9.0], "Y": [9.0], "Z": [9.0]},
        {"TrackID": [], "X": [], "Y": [], "Z": []},
    ])
    track = ak.Array([
        {"PdgCode": [13, -13], "StartX": [0.1, 0.2], "StartY": [0.0, 0.0], "StartZ": [1.0, 2.0],
         "Px": [1.0, 2.0], "Py": [0.0, 0.0], "Pz": [10.0, 20.0], "weight": [1.0, 2.0]},
        {"PdgCode": [11], "StartX": [0.0], "StartY": [0.0], "StartZ": [0.0], "Px": [0.0], "Py": [0.0],
         "Pz": [1.0], "weight": [1.0]},
        {k: [] for k in ("PdgCode", "StartX", "StartY", "StartZ", "Px", "Py", "Pz", "weight")},
    ])
    veto = ak.zip({k: ak.values_astype(veto[k], np.int32 if k == "TrackID" else np.float64) for k in veto.fields})
    track = ak.zip({k: ak.values_astype(track[k], np.int32 if k == "PdgCode" else np.float64) for k in track.fields})
    with uproot.recreate(path) as file:
        _write_tree(file, "cbmsim", {"vetoPoint": veto[:n_entries], "MCTrack": track[:n_entries]})
    return path


def _nano_file(path, genjet_idx=None):
    """2 events with reco jets matched to gen jets by Jet_genJetIdx (including -1) and muons to GenPart."""
    genjet_idx = genjet_idx or [[1, -1, 0], [0]]
    n = [len(x) for x in genjet_idx]
    jets = {f: ak.values_astype(ak.Array([np.arange(k) + 10 * i for i, k in enumerate(n)]), np.float32)
            for f in CONFIG["datasets"]["nanoaod"]["tables"]["jets"]["fields"]}
    jets["genJetIdx"] = ak.values_astype(ak.Array(genjet_idx), np.int32)
    gen = {f: ak.Array([[100.0, 200.0], [300.0]]) for f in ["pt", "eta", "phi", "mass", "hadronFlavour", "partonFlavour"]}
    muons = {f: ak.Array([[1.0, 2.0], [3.0]]) for f in CONFIG["datasets"]["nanoaod"]["tables"]["muons"]["fields"]}
    muons["genPartIdx"] = ak.Array([[0, 1], [0]])
    genpart = {f: ak.Array([[50.0, 60.0], [70.0]]) for f in ["pt", "eta", "phi", "mass"]}
    genpart["pdgId"] = ak.Array([[13, 13], [-13]])
    genpart["status"] = ak.Array([[1, 2], [1]])
    with uproot.recreate(path) as file:
        _write_tree(file, "Events", {
            "run": np.array([1, 1], np.uint32), "luminosityBlock": np.array([7, 7], np.uint32),
            "event": np.array([100, 101], np.uint64), "fixedGridRhoFastjetAll": np.array([5.0, 6.0], np.float32),
            "PV_npvs": np.array([20, 30], np.int32),
            "Jet": ak.zip(jets), "GenJet": ak.zip(gen), "Muon": ak.zip(muons), "GenPart": ak.zip(genpart),
        })
    return path


def test_ship_unique_match_and_selection(tmp_path):
    df, summary = _ingest(tmp_path, _ship_file(tmp_path / "0.root"), "ship", "muons")
    # event 0: tracks 0 (3 hits -> 1 row) and 1; event 1: electron fails abs(PdgCode) == 13
    assert list(df["entry"]) == [0, 0]
    assert list(df["veto_TrackID"]) == [0, 1]
    assert list(df["veto_X"]) == [1.0, 3.0]  # first hit of track 0 kept
    assert list(df["PdgCode"]) == [13, -13] and list(df["weight"]) == [1.0, 2.0]
    assert list(df.columns[:3]) == ["source_file", "entry", "object_index"] and set(df["source_file"]) == {"0.root"}
    assert summary["rows_in"] == 5 and summary["failed_selection"] == 1 and summary["duplicates_removed"] == 2
    assert summary["rows_out"] == 2


def test_nanoaod_matching_with_minus_one_and_match_selection(tmp_path):
    raw = _nano_file(tmp_path / "n.root")
    jets, summary = _ingest(tmp_path, raw, "nanoaod", "jets")
    assert list(jets.columns[:8]) == ["source_file", "entry", "object_index", "run", "luminosityBlock", "event",
                                      "fixedGridRhoFastjetAll", "PV_npvs"]
    assert list(zip(jets["entry"], jets["object_index"])) == [(0, 0), (0, 2), (1, 0)]
    assert list(jets["gen_pt"]) == [200.0, 100.0, 300.0]
    assert jets["pt"].dtype == np.float32 and summary["unmatched_no_index"] == 1
    muons, msummary = _ingest(tmp_path, raw, "nanoaod", "muons")
    # muon 1 of event 0 points to a status-2 particle: fails the match selection
    assert list(muons["gen_pt"]) == [50.0, 70.0] and list(muons["gen_pdgId"]) == [13, -13]
    assert msummary["unmatched_failed_match_selection"] == 1


def test_keep_unmatched_fills_nan_and_flags(tmp_path):
    mapping = {**CONFIG["datasets"]["nanoaod"]["tables"]["jets"]}
    mapping["match"] = {**mapping["match"], "keep_unmatched": True}
    jets, _ = _ingest(tmp_path, _nano_file(tmp_path / "n.root"), "nanoaod", "jets", mapping)
    assert list(jets["matched"]) == [True, False, True, True]
    assert np.isnan(jets["gen_pt"][1]) and jets["gen_pt"][0] == 200.0


def test_index_past_a_skimmed_collection_is_unmatched_and_counted(tmp_path):
    """Real NanoAOD drops GenJets below threshold, so Jet_genJetIdx can point past nGenJet: unmatched,
    counted apart from -1 (any negative index is "no index"), in the file and the dataset summary."""
    # event 0: jets -> GenJet 0, past nGenJet = 2, -1; event 1: past nGenJet = 1, -7 (negative, not -1), 0
    raw = _nano_file(tmp_path / "skimmed.root", genjet_idx=[[0, 5, -1], [1, -7, 0]])
    jets, summary = _ingest(tmp_path, raw, "nanoaod", "jets", step_size=1)
    assert list(zip(jets["entry"], jets["object_index"])) == [(0, 0), (1, 2)]
    assert list(jets["gen_pt"]) == [100.0, 300.0]
    assert summary["unmatched_index_out_of_range"] == 2 and summary["unmatched_no_index"] == 2
    assert summary["rows_in"] == 6 and summary["rows_out"] == 2 and summary["selected"] == 2
    dataset = run_summary([str(tmp_path / "out" / "jets.json")], str(tmp_path / "summary.json"), "nanoaod")
    on_disk = json.loads((tmp_path / "summary.json").read_text())
    assert on_disk == dataset and on_disk["tables"]["jets"]["totals"]["unmatched_index_out_of_range"] == 2
    assert on_disk["tables"]["jets"]["totals"]["unmatched_no_index"] == 2


def test_chunked_equals_one_shot_and_bytes_deterministic(tmp_path):
    raw = _ship_file(tmp_path / "0.root")
    mapping = CONFIG["datasets"]["ship"]["tables"]["muons"]
    reading = _reading("ship")
    paths = []
    for name, step in [("a", 1), ("b", 1), ("c", 1000)]:
        out = tmp_path / f"{name}.parquet"
        run([str(raw)], str(out), str(tmp_path / f"{name}.json"), {**reading, "step_size": step}, mapping, "muons")
        paths.append(out)
    assert paths[0].read_bytes() == paths[1].read_bytes()
    assert pq.read_table(paths[0]).equals(pq.read_table(paths[2]))


@needs_real_files
def test_real_root_written_file_matches_uproot(tmp_path):
    raw = REAL / "uproot-HZZ.root"
    mapping = {"collection": {"counter": "NMuon", "prefix": "Muon_"}, "fields": ["Px", "Py", "Charge"],
               "event_fields": ["EventWeight"], "output_prefix": "mu_"}
    df, _ = _ingest(tmp_path, raw, "nanoaod", "muons", mapping, tree="events", identity=[], step_size=700)
    direct = uproot.open(raw)["events"].arrays(["Muon_Px", "Muon_Charge", "EventWeight", "NMuon"])
    np.testing.assert_array_equal(df["mu_Px"].to_numpy(), ak.to_numpy(ak.flatten(direct["Muon_Px"])))
    np.testing.assert_array_equal(df["mu_Charge"].to_numpy(), ak.to_numpy(ak.flatten(direct["Muon_Charge"])))
    np.testing.assert_array_equal(df["EventWeight"], np.repeat(ak.to_numpy(direct["EventWeight"]), direct["NMuon"]))
    assert df["mu_Px"].dtype == np.float32


@needs_real_files
def test_each_file_of_a_part_carries_the_source_file_the_plan_gives_it(tmp_path):
    """Two files of one name (``job_0/out.root``, ``job_1/out.root``): their rows and summaries keep them apart."""
    raws = []
    for job in ("job_0", "job_1"):
        (tmp_path / job).mkdir()
        raws.append(str(shutil.copy(REAL / "uproot-Zmumu.root", tmp_path / job / "out.root")))
    mapping = {"fields": ["pt1", "M"]}
    out = tmp_path / "pairs.parquet"
    summaries = run(raws, str(out), str(out.with_suffix(".json")), _reading("lhcb_tracks", tree="events", identity=[]),
                    mapping, "pairs", "zmumu", source_files=["job_0/out.root", "job_1/out.root"])
    column = pq.read_table(out).column("source_file").to_pylist()
    assert column == ["job_0/out.root"] * 2304 + ["job_1/out.root"] * 2304
    assert [s["source_file"] for s in summaries] == ["job_0/out.root", "job_1/out.root"]
    with pytest.raises(ValueError, match="zip"):
        run(raws, str(out), str(out.with_suffix(".json")), _reading("lhcb_tracks", tree="events", identity=[]),
            mapping, "pairs", "zmumu", source_files=["out.root"])


@needs_real_files
def test_a_trigger_bit_selects_events_of_a_root_written_file(tmp_path):
    """``triggerIsoMu24`` is an event-level bool: named in a muon selection it is read for it, not made a column."""
    raw = REAL / "uproot-HZZ.root"
    mapping = {"collection": {"counter": "NMuon", "prefix": "Muon_"}, "fields": ["Px"],
               "selection": "triggerIsoMu24 & (Px > 0)"}
    df, summary = _ingest(tmp_path, raw, "nanoaod", "muons", mapping, tree="events", identity=[], step_size=700)
    direct = uproot.open(raw)["events"].arrays(["Muon_Px", "triggerIsoMu24"])
    expected = ak.flatten(direct["Muon_Px"][direct["triggerIsoMu24"] & (direct["Muon_Px"] > 0)])
    assert 0 < len(expected) < summary["rows_in"] // 2 and "triggerIsoMu24" not in df.columns
    np.testing.assert_array_equal(df["Px"].to_numpy(), ak.to_numpy(expected))


@needs_real_files
def test_a_counter_that_does_not_look_like_its_name_is_found_from_the_file(tmp_path):
    """Delphes' ``Jet_size`` against the HZZ sample's ``NJet``: the close matches are other jet branches
    (``Jet_Pz``), while ``Jet_Px[NJet]`` says which branch counts the jets."""
    mapping = {"collection": {"counter": "Jet_size", "prefix": "Jet_"}, "fields": ["Px", "Py"]}
    with pytest.raises(InputError, match=r"missing branch 'Jet_size' .*; 'Jet_Px' is counted by "
                                         r"'NJet', which the config does not name"):
        _ingest(tmp_path, REAL / "uproot-HZZ.root", "nanoaod", "jets", mapping, tree="events", identity=[])


def test_flat_table_with_sequences(tmp_path):
    raw = tmp_path / "c.root"
    with uproot.recreate(raw) as file:
        _write_tree(file, "CalRatio", {"jet_pt": np.array([10.0, 20.0, 30.0]), "eventNumber": np.array([1, 2, 3]),
                                       "clus": ak.zip({"pt": ak.Array([[1.0, 2.0], [], [3.0]])})})
    mapping = {"fields": ["jet_pt"], "selection": "jet_pt > 15",
               "sequences": {"clusters": {"counter": "nclus", "prefix": "clus_", "fields": ["pt"]}}}
    df, _ = _ingest(tmp_path, raw, "calratio_main", "jets", mapping, identity=["eventNumber"])
    assert list(df.columns) == ["source_file", "entry", "object_index", "eventNumber", "jet_pt", "clus_pt"]
    assert list(df["entry"]) == [1, 2] and [list(x) for x in df["clus_pt"]] == [[], [3.0]]
    assert set(df["object_index"]) == {0}


def _bad_cases(tmp_path):
    good = _ship_file(tmp_path / "good.root")
    not_root = tmp_path / "text.root"
    not_root.write_text("hello, not ROOT\n" * 20)
    truncated = tmp_path / "trunc.root"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    empty = _ship_file(tmp_path / "empty.root", n_entries=0)
    nested = tmp_path / "nested.root"
    with uproot.recreate(nested) as file:
        file.mktree("sim/cbmsim", {"x": np.float32}).extend({"x": np.zeros(2, np.float32)})
    return {
        "missing": (tmp_path / "nope.root", {}, "does not exist"),
        "not_root": (not_root, {}, "cannot be opened as a ROOT file"),
        "truncated": (truncated, {}, "truncated"),
        "tree": (good, {"tree": "Events"}, r"no tree 'Events'; the file has trees \['cbmsim'\]"),
        "empty": (empty, {}, "the tree is empty"),
        "directory": (nested, {"tree": "sim"}, r"'sim' is a directory, not a TTree; the file has trees \['sim/cbmsim'\]"),
    }


@pytest.mark.parametrize("case", ["missing", "not_root", "truncated", "tree", "empty", "directory"])
def test_bad_input_gives_clear_error_and_no_output(tmp_path, case):
    raw, reading, message = _bad_cases(tmp_path)[case]
    with pytest.raises(InputError, match=message):
        _ingest(tmp_path, raw, "ship", "muons", **reading)
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_missing_branch_names_close_matches(tmp_path):
    mapping = {**CONFIG["datasets"]["ship"]["tables"]["muons"], "fields": ["TrackId", "X"]}
    with pytest.raises(InputError, match=r"'vetoPoint_TrackId' \(close: \['vetoPoint_TrackID'"):
        _ingest(tmp_path, _ship_file(tmp_path / "0.root"), "ship", "muons", mapping)


def test_a_flat_tree_of_dotted_branch_names_is_selected_by_those_names(tmp_path):
    """Split objects name their branches ``trk.pt``; ``selection`` spells them so, fields or not."""
    raw = tmp_path / "dotted.root"
    with uproot.recreate(raw) as file:
        _write_tree(file, "T", {"trk.pt": np.array([0.5, 2.0, 3.0, 4.0], np.float32),
                                "trk.eta": np.array([0.1, 2.5, -1.0, 0.0], np.float32),
                                "evt.n": np.array([1, 2, 3, 4], np.int32)})
    mapping = {"fields": ["trk.pt", "trk.eta"], "rename": {"trk.pt": "pt", "trk.eta": "eta"},
               "selection": "(trk.pt > 1) & (abs(trk.eta) < 2) & (evt.n > 3)"}
    run([str(raw)], str(tmp_path / "t.parquet"), str(tmp_path / "t.json"), {"tree": "T", "identity": []}, mapping, "tracks")
    table = pq.read_table(tmp_path / "t.parquet").to_pandas()
    assert table["entry"].tolist() == [3] and table["pt"].tolist() == [4.0] and "evt.n" not in table


def test_files_that_hold_the_same_rows_are_named_in_the_summary(tmp_path, caplog):
    """A copy under another name (the HZZ sample in three compressions) counted its events twice, silently."""
    import shutil

    from tests.test_ingest_columns import _jets_file, _jets_mapping

    first = _jets_file(tmp_path / "0.root")
    shutil.copy(first, tmp_path / "0_copy.root")
    other = _jets_file(tmp_path / "1.root", gen_idx=((0, -1, 1), (3, 0), (0, 1, -1, 1)))  # one index differs
    reading = {"tree": "Events", "identity": ["run", "event"]}
    for name, raws in (("a", [first, other]), ("b", [tmp_path / "0_copy.root"])):
        run([str(r) for r in raws], str(tmp_path / f"{name}.parquet"), str(tmp_path / f"{name}.json"), reading,
            _jets_mapping(), "jets", "nano")
    gathered = run_summary([str(tmp_path / "a.json"), str(tmp_path / "b.json")], str(tmp_path / "summary.json"), "nano")
    assert gathered["tables"]["jets"]["same_rows"] == [["0.root", "0_copy.root"]]
    assert "the files ['0.root', '0_copy.root'] hold the same rows (copies?)" in caplog.text
    digests = {f["source_file"]: f["rows_digest"] for f in gathered["tables"]["jets"]["files"]}
    assert digests["0.root"] == digests["0_copy.root"] != digests["1.root"] and len(digests["1.root"]) == 32


def test_empty_tree_as_empty_table_keeps_schema(tmp_path):
    raw = tmp_path / "e.root"
    with uproot.recreate(raw) as file:
        file.mktree("Tracks", {"x": np.float32, "runNumber": np.int32, "eventNumber": np.int64})
    mapping = {"fields": ["x"]}
    run([str(raw)], str(tmp_path / "e.parquet"), str(tmp_path / "e.json"),
        {"tree": "Tracks", "empty_tree": "empty_table", "identity": ["runNumber", "eventNumber"]}, mapping, "tracks")
    table = pq.read_table(tmp_path / "e.parquet")
    assert table.num_rows == 0 and table.schema.names == ["source_file", "entry", "object_index", "runNumber",
                                                           "eventNumber", "x"]
    assert str(table.schema.field("x").type) == "float"
    assert json.loads((tmp_path / "e.json").read_text())["files"][0]["rows_out"] == 0


# --- a part: several raw files in one job (pipeline_steps/ingest/parts.py) ---------------------------

def _ingest_part(tmp_path, raws, dataset="ship", table="muons", name="part"):
    out = tmp_path / f"{name}.parquet"
    summaries = run([str(r) for r in raws], str(out), str(tmp_path / f"{name}.json"), _reading(dataset),
                    CONFIG["datasets"][dataset]["tables"][table], table, dataset)
    return out, summaries


def test_a_part_holds_each_files_rows_in_order_with_per_file_summaries(tmp_path):
    first, second = _ship_file(tmp_path / "0.root"), _ship_file(tmp_path / "1.root", n_entries=1)
    part, summaries = _ingest_part(tmp_path, [first, second])
    alone = [pq.read_table(_ingest_part(tmp_path, [raw], name=raw.stem)[0]) for raw in (first, second)]
    assert pq.read_table(part).equals(pa.concat_tables(alone))
    assert [s["source_file"] for s in summaries] == ["0.root", "1.root"]
    assert [s["rows_out"] for s in summaries] == [t.num_rows for t in alone] and alone[1].num_rows > 0
    gathered = run_summary([str(tmp_path / "part.json")], str(tmp_path / "summary.json"), "ship")
    assert gathered["n_files"] == 2 and gathered["tables"]["muons"]["totals"]["rows_out"] == pq.read_table(part).num_rows


@needs_real_files
def test_root_written_files_of_three_codecs_in_one_part(tmp_path):
    """ROOT's own zlib, LZ4 and LZMA copies of one tree: one part holds each file's rows once, in order."""
    raws = [str(REAL / f"uproot-HZZ{suffix}.root") for suffix in ("", "-lz4", "-lzma")]
    mapping = {"collection": {"counter": "NMuon", "prefix": "Muon_"}, "fields": ["Px", "Charge"],
               "event_fields": ["EventWeight"], "output_prefix": "mu_"}
    reading = {"tree": "events", "step_size": 700}
    summaries = run(raws, str(tmp_path / "p.parquet"), str(tmp_path / "p.json"), reading, mapping, "muons")
    table = pq.read_table(tmp_path / "p.parquet").to_pandas()
    n_muons = int(uproot.open(raws[0])["events"]["NMuon"].array(library="np").sum())
    assert [s["rows_out"] for s in summaries] == [n_muons] * 3 and len(table) == 3 * n_muons
    assert list(table["source_file"].drop_duplicates()) == [Path(r).name for r in raws]
    first = table[table["source_file"] == "uproot-HZZ.root"].drop(columns="source_file").reset_index(drop=True)
    for name in ("uproot-HZZ-lz4.root", "uproot-HZZ-lzma.root"):
        other = table[table["source_file"] == name].drop(columns="source_file").reset_index(drop=True)
        assert other.equals(first), name


@needs_real_files
def test_decompressing_on_threads_writes_the_same_bytes(tmp_path):
    """read_threads decompresses baskets at once (LZMA-9 NanoAOD: 0.71 s on one thread, 0.41 s on two); the
    bytes written must not depend on it, since it is no param and changing it reruns nothing."""
    raws = [str(REAL / f"uproot-HZZ{suffix}.root") for suffix in ("", "-lz4", "-lzma")]
    mapping = {"collection": {"counter": "NMuon", "prefix": "Muon_"}, "fields": ["Px", "Py", "Charge"],
               "event_fields": ["EventWeight"]}
    written = {}
    for threads in (1, 3):
        parquet = tmp_path / f"{threads}.parquet"
        run(raws, str(parquet), str(tmp_path / f"{threads}.json"), {"tree": "events", "step_size": 300}, mapping,
            "muons", threads=threads)
        written[threads] = parquet.read_bytes()
    assert written[1] == written[3] and len(written[1]) > 10_000


def test_a_bad_file_fails_its_whole_part_naming_it_and_the_later_files_that_fail_too(tmp_path):
    """The part's job stops at its first bad file; the files after it are opened and checked, so that one run
    names every file of the part a blacklist needs (one a run had cost a cluster queue wait each)."""
    good, truncated = _ship_file(tmp_path / "0.root"), tmp_path / "1.root"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    also_good, not_root, other_tree = (_ship_file(tmp_path / "2.root"), tmp_path / "3.root", tmp_path / "4.root")
    not_root.write_text("not a ROOT file\n" * 20)
    with uproot.recreate(other_tree) as file:
        _write_tree(file, "Events", {"x": np.zeros(2, np.float32)})
    with pytest.raises(InputError) as raised:
        _ingest_part(tmp_path, [good, truncated, also_good, not_root, other_tree])
    message = str(raised.value)
    assert message.startswith(f"{truncated}: truncated ROOT file"), message
    assert "and 2 of the part's later files (3)" in message and f"{not_root}: cannot be opened" in message
    assert f"{other_tree}: no tree 'cbmsim'" in message and f"{also_good}" not in message
    assert not (tmp_path / "part.parquet").exists() and not (tmp_path / "part.json").exists()
    with pytest.raises(InputError, match=r"1\.root: truncated .* \(the part's later files \(1\) open and hold"):
        _ingest_part(tmp_path, [good, truncated, also_good])
    others = [tmp_path / f"{index}.root" for index in range(5, 10)]
    for other in others:
        shutil.copyfile(other_tree, other)
    with pytest.raises(InputError) as raised:  # one reason of many files (a wrong tree name) is said once
        _ingest_part(tmp_path, [good, truncated, *others])
    message = str(raised.value)
    assert message.count("no tree 'cbmsim'") == 1 and "and 5 of the part's later files (5)" in message, message
    assert f"{others[0]}: no tree 'cbmsim'; the file has trees ['Events'] (the same for 4 more: 6.root, 7.root, " \
        f"8.root, ...)" in message, message


def test_a_config_error_found_in_a_later_file_is_said_after_the_bad_files_error(tmp_path):
    """A part whose first file is cut short never resolved the selection's names: the later files' check meets the
    bad selection, and says it after the first file's error instead of raising it in its place."""
    good = _ship_file(tmp_path / "1.root")
    truncated = tmp_path / "0.root"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    mapping = {**CONFIG["datasets"]["ship"]["tables"]["muons"], "selection": "__import__('os') == 1"}
    with pytest.raises(InputError, match=r"0\.root: truncated .*\(and 1 of the part's later files \(1\).*selection"):
        run([str(truncated), str(good)], str(tmp_path / "p.parquet"), str(tmp_path / "p.json"), _reading("ship"),
            mapping, "muons", "ship")


def test_a_later_file_is_cast_to_the_first_files_types_or_named(tmp_path):
    """Productions differ in float precision: cast, as per-file tables read together would be. A float
    branch where the first file had integers would lose its fractions: refused, naming the file."""
    def flat(path, values):
        with uproot.recreate(path) as file:
            _write_tree(file, "T", {"x": values})
        return path

    reading, mapping = {"tree": "T"}, {"fields": ["x"]}
    raws = [flat(tmp_path / "a.root", np.array([1.5], np.float32)), flat(tmp_path / "b.root", np.array([2.25]))]
    run([str(r) for r in raws], str(tmp_path / "p.parquet"), str(tmp_path / "p.json"), reading, mapping, "t")
    table = pq.read_table(tmp_path / "p.parquet")
    assert str(table.schema.field("x").type) == "float" and table.column("x").to_pylist() == [1.5, 2.25]
    integers = flat(tmp_path / "i.root", np.array([1], np.int32))
    with pytest.raises(InputError, match=r"b\.root:T: column types \['x: double \(first file: int32\)'\] cannot be "
                                         r"converted to those of the part's first"):
        run([str(integers), str(raws[1])], str(tmp_path / "q.parquet"), str(tmp_path / "q.json"), reading, mapping, "t")
    assert not (tmp_path / "q.parquet").exists()
    huge = flat(tmp_path / "h.root", np.array([2.25, 1e300, -np.inf, np.nan]))  # only 1e300 is lost to float32
    with pytest.raises(InputError, match=r"h\.root:T: .*column 'x': 1 finite double values lie beyond the float range"):
        run([str(raws[0]), str(huge)], str(tmp_path / "r.parquet"), str(tmp_path / "r.json"), reading, mapping, "t")
    assert not (tmp_path / "r.parquet").exists()


def test_unsafe_selection_is_config_error(tmp_path):
    mapping = {**CONFIG["datasets"]["ship"]["tables"]["muons"], "selection": "__import__('os').system('true')"}
    with pytest.raises(ConfigError, match="only calls of"):
        _ingest(tmp_path, _ship_file(tmp_path / "0.root"), "ship", "muons", mapping)


def test_a_jagged_branch_where_one_value_per_entry_is_expected_names_its_shape(tmp_path):
    """The message had printed the type of a zero-length slice ('found 0 * var * float64')."""
    raw = tmp_path / "j.root"
    with uproot.recreate(raw) as file:
        file.mktree("T", {"x": "var * float64"}).extend({"x": ak.Array([[1.0, 2.0], [3.0]])})
    with pytest.raises(InputError, match=r"j\.root:T: branch 'x' was expected to hold one value per entry, "
                                         r"found var \* float64 per entry$"):
        run([str(raw)], str(tmp_path / "j.parquet"), str(tmp_path / "j.json"), {"tree": "T"}, {"fields": ["x"]}, "t")
