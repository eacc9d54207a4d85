"""Collections stored as ``std::vector`` branches without counters (ATLAS-style ntuples) and ROOT's own leaf types.

``tests/data/root_written_jets.root`` was written by ROOT (``tools/write_root_fixture.py``): the same jets once as
``std::vector`` branches without count branches (tree ``vectors``) and once as NanoAOD v12 C-style arrays with
``UInt_t`` counters, a ``Short_t`` index and ``UChar_t`` ids (tree ``arrays``). Without ``counter`` a collection
is counted by its first field's branch; both trees must give the same table. ``root_written_jets_rntuple.root``
holds tree ``arrays`` converted by ROOT to an RNTuple, TTree's successor; tree ``structs`` a leaf-list branch and a
fixed-size array per event.
"""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np
import pyarrow.parquet as pq
import pytest
import uproot

from pipeline_steps.common.errors import ConfigError, InputError
from pipeline_steps.generate.layout import layout_from_config, output_counter
from pipeline_steps.generate.root_io import read_generated_root, root_writer
from pipeline_steps.ingest.mapping import table_from_config
from pipeline_steps.ingest.step import run, run_summary

FIXTURE = Path(__file__).parent / "data" / "root_written_jets.root"
FIELDS = ["pt", "eta", "mass", "jetId"]


def _vector_table(keep_unmatched=True, **match):
    return {"collection": {"counter": None, "prefix": "jet_"}, "fields": FIELDS,
            "match": {"index": "truthIdx", "collection": {"prefix": "truthjet_"}, "fields": ["pt", "mass"],
                      "output_prefix": "gen_", "keep_unmatched": keep_unmatched, **match}}


def _array_table(keep_unmatched=True):
    return {"collection": {"counter": "nJet", "prefix": "Jet_"}, "fields": FIELDS,
            "match": {"index": "genJetIdx", "collection": {"counter": "nGenJet", "prefix": "GenJet_"},
                      "fields": ["pt", "mass"], "output_prefix": "gen_", "keep_unmatched": keep_unmatched}}


def _ingest(tmp_path, tree, table, identity, raw=FIXTURE, step_size=7):
    out = tmp_path / f"{Path(raw).stem}_{tree}.parquet"
    reading = {"tree": tree, "identity": identity, "step_size": step_size}
    [summary] = run([str(raw)], str(out), str(out.with_suffix(".json")), reading, table, "jets")
    return pq.read_table(out).to_pandas(), summary


@pytest.mark.parametrize("keep_unmatched", [True, False])
def test_vector_branches_without_counters_give_the_table_of_counted_arrays(tmp_path, keep_unmatched):
    vectors, vector_summary = _ingest(tmp_path, "vectors", _vector_table(keep_unmatched), ["eventNumber"])
    arrays, array_summary = _ingest(tmp_path, "arrays", _array_table(keep_unmatched), ["event"])
    # the fixture carries what real files carry, or the comparison would prove little
    assert array_summary["unmatched_no_index"] > 0 and array_summary["unmatched_index_out_of_range"] > 0
    assert (uproot.open(FIXTURE)["arrays"]["nJet"].array(library="np") == 0).any()
    for name in ["rows_in", "rows_out", "unmatched_no_index", "unmatched_index_out_of_range"]:
        assert vector_summary[name] == array_summary[name], name
    assert len(vectors) == array_summary["rows_out"] > 0
    for column in ["entry", "object_index", *FIELDS, "gen_pt", "gen_mass"]:
        np.testing.assert_array_equal(vectors[column].to_numpy(), arrays[column].to_numpy(), err_msg=column)
    np.testing.assert_array_equal(vectors["eventNumber"].to_numpy(), arrays["event"].to_numpy())
    assert arrays["jetId"].dtype == np.uint8  # ROOT's UChar_t kept


def test_an_rntuple_converted_by_root_gives_the_table_of_its_ttree(tmp_path):
    """RNTupleImporter keeps NanoAOD's names as projected fields (``nJet`` becomes the collection's cardinality);
    it had been refused as "a ROOT::RNTuple, not a TTree"."""
    from_ttree, summary = _ingest(tmp_path, "arrays", _array_table(), ["event"])
    from_rntuple, rntuple_summary = _ingest(tmp_path, "arrays", _array_table(), ["event"],
                                            raw=FIXTURE.with_name("root_written_jets_rntuple.root"))
    assert summary["rows_out"] > 0 and {k: v for k, v in summary.items() if k not in ("source_file", "rows_digest")} == {
        k: v for k, v in rntuple_summary.items() if k not in ("source_file", "rows_digest")}
    frame = lambda table: table.drop(columns="source_file")
    assert frame(from_rntuple).equals(frame(from_ttree))  # values and types


def test_a_sequence_without_counter_is_read_like_one_with_it(tmp_path):
    sequence = {"fields": ["eventNumber"], "sequences": {"jets": {"counter": None, "prefix": "jet_", "fields": ["pt", "eta"]}}}
    counted = {"fields": ["event"], "sequences": {"jets": {"counter": "nJet", "prefix": "Jet_", "fields": ["pt", "eta"]}}}
    vectors, _ = _ingest(tmp_path, "vectors", sequence, [])
    arrays, _ = _ingest(tmp_path, "arrays", counted, [])
    for field in ["pt", "eta"]:
        assert [list(v) for v in vectors[f"jet_{field}"]] == [list(v) for v in arrays[f"Jet_{field}"]]
    assert sum(len(v) for v in vectors["jet_pt"]) == int(uproot.open(FIXTURE)["arrays"]["nJet"].array(library="np").sum())


def test_vector_branches_of_unequal_lengths_name_both(tmp_path):
    raw = tmp_path / "unequal.root"
    pt, eta = ak.Array([[1.0, 2.0], [3.0, 4.0], []]), ak.Array([[0.1, 0.2], [0.3], []])
    with uproot.recreate(raw) as file:  # each branch its own counter (njet_pt, njet_eta): their lengths may differ
        file.mktree("T", {"jet_pt": pt.type.content, "jet_eta": eta.type.content}).extend({"jet_pt": pt, "jet_eta": eta})
    table = {"collection": {"prefix": "jet_"}, "fields": ["pt", "eta"]}
    with pytest.raises(InputError, match=r"branch 'jet_eta' has 1 values in entry 1, but 'jet_pt' has 2 \(without a "
                                         r"counter, the collection's branches must have the same lengths\)"):
        _ingest(tmp_path, "T", table, [], raw=raw)


def test_a_counterless_match_without_fields_is_refused_naming_it():
    table = _vector_table(fields=[])
    with pytest.raises(ConfigError, match=r"tables.jets.match.collection: without a counter, the objects are counted "
                                          r"by the first field's branch, but 'fields' is empty"):
        table_from_config("jets", table)


def test_generated_file_writes_a_counter_for_a_counterless_collection(tmp_path):
    rows, _ = _ingest(tmp_path, "vectors", _vector_table(keep_unmatched=False), ["eventNumber"])
    table = _vector_table()
    assert output_counter(table["collection"]) == "njet" and output_counter(table["match"]["collection"]) == "ntruthjet"
    assert output_counter({"counter": "nJet", "prefix": "Jet_"}) == "nJet"
    layout = layout_from_config("vectors", ["eventNumber"], table)
    path = tmp_path / "generated.root"
    with root_writer(path, layout) as write:
        write(rows)
    tree = uproot.open(path)["vectors"]
    assert tree["jet_pt"].count_branch.name == "njet" and tree["truthjet_pt"].count_branch.name == "ntruthjet"
    back = read_generated_root(path, layout)
    for column in ["eventNumber", "entry", *FIELDS, "gen_pt", "gen_mass"]:
        np.testing.assert_array_equal(back[column].to_numpy(), rows[column].to_numpy(), err_msg=column)


SHIP_FIXTURE = Path(__file__).parent / "data" / "root_written_ship.root"


def _ship_table(points: dict, tracks: dict):
    """The default SHiP muons table (config/config.yaml) on the given point and track collections."""
    return {"collection": points, "fields": ["TrackID", "X", "Y", "Z"], "output_prefix": "veto_",
            "selection": "abs(PdgCode) == 13", "unique": ["TrackID"],
            "match": {"index": "TrackID", "collection": tracks,
                      "fields": ["PdgCode", "StartX", "StartY", "StartZ", "Px", "Py", "Pz", "W"], "output_prefix": ""}}


def test_fairship_tclonesarrays_read_as_their_values_in_vectors(tmp_path):
    """FairShip stores points and tracks in split TClonesArrays (``vetoPoint.fX``, Double32_t members), counted by
    the array's own branch; the same values as plain vectors must give the same muons."""
    clones = _ship_table({"counter": "vetoPoint", "prefix": "vetoPoint.f"}, {"counter": "MCTrack", "prefix": "MCTrack.f"})
    vectors = _ship_table({"prefix": "vetoPoint_"}, {"prefix": "MCTrack_"})
    from_clones, summary = _ingest(tmp_path, "cbmsim", clones, [], raw=SHIP_FIXTURE)
    from_vectors, _ = _ingest(tmp_path, "reference", vectors, [], raw=SHIP_FIXTURE)
    assert summary["unmatched_no_index"] > 0 and summary["failed_selection"] > 0 and summary["rows_out"] > 5
    assert list(from_clones.columns) == list(from_vectors.columns)
    for column in from_clones.columns:
        np.testing.assert_array_equal(from_clones[column].to_numpy(), from_vectors[column].to_numpy(), err_msg=column)


def test_a_misnamed_tclonesarray_counter_is_named_from_the_file(tmp_path):
    """The count leaf of ``vetoPoint.fX`` is ``vetoPoint_``, owned by the branch ``vetoPoint``: that is the hint."""
    table = _ship_table({"counter": "nvetoPoint", "prefix": "vetoPoint.f"}, {"counter": "MCTrack", "prefix": "MCTrack.f"})
    with pytest.raises(InputError, match=r"missing branch 'nvetoPoint' .*; 'vetoPoint\.fTrackID' is counted by "
                                         r"'vetoPoint', which the config does not name"):
        _ingest(tmp_path, "cbmsim", table, [], raw=SHIP_FIXTURE)


def test_a_leaf_list_branch_is_read_leaf_by_leaf_as_root_names_them(tmp_path):
    """``pv`` = ``x/F:y/F:z/F:ndof/I`` is one branch of four leaves; ``pv.z`` names one, as in TTree::Draw."""
    table = {"fields": ["event", "pv.z", "pv.ndof"], "selection": "pv.ndof > 4"}
    rows, summary = _ingest(tmp_path, "structs", table, [])
    pv = uproot.open(FIXTURE)["structs"]["pv"].array(library="np")
    keep = pv["ndof"] > 4
    assert 0 < keep.sum() < len(pv) and summary["failed_selection"] == (~keep).sum()
    np.testing.assert_array_equal(rows["pv.z"].to_numpy(), pv["z"][keep])
    np.testing.assert_array_equal(rows["pv.ndof"].to_numpy(), pv["ndof"][keep])
    assert rows["pv.z"].dtype == np.float32 and rows["pv.ndof"].dtype == np.int32


def test_a_leaf_list_branch_named_whole_is_refused_naming_its_leaves(tmp_path):
    """Its structured values had stopped the Parquet write with "Unsupported numpy type 20"."""
    with pytest.raises(InputError, match=r"branch 'pv' holds several leaves \['x', 'y', 'z', 'ndof'\]; name one as "
                                         r"ROOT does, 'pv\.x'"):
        _ingest(tmp_path, "structs", {"fields": ["event", "pv"]}, [])
    assert not list(tmp_path.glob("*.parquet"))


def test_fixed_size_array_elements_are_read_as_root_names_them(tmp_path):
    """``cov[0][1]`` of a ``Float_t cov[3][3]`` per entry; per object, ``vetoPoint.fLpos[][2]`` is component 2 of every
    point's ``Double_t fLpos[3]`` (uproot names that branch ``vetoPoint.fLpos[3]``), as in ``TTree::Draw``, where
    ``fLpos[2]`` is the third point's array. Columns take plain names (``cov_0_1``, ``Lpos_2``)."""
    rows, _ = _ingest(tmp_path, "structs", {"fields": ["event", "cov[0][1]", "cov[2][0]"]}, [])
    cov = uproot.open(FIXTURE)["structs"]["cov"].array(library="np")
    np.testing.assert_array_equal(rows["cov_0_1"].to_numpy(), cov[:, 0, 1])
    np.testing.assert_array_equal(rows["cov_2_0"].to_numpy(), cov[:, 2, 0])
    points = {"collection": {"counter": "vetoPoint", "prefix": "vetoPoint.f"}, "fields": ["X", "Lpos[][0]", "Lpos[][2]"]}
    hits, _ = _ingest(tmp_path, "cbmsim", points, [], raw=SHIP_FIXTURE)
    assert len(hits) > 5 and (hits["X"] != 0).all()
    np.testing.assert_array_equal(hits["Lpos_0"].to_numpy(), hits["X"].to_numpy())  # the fixture's fLpos: X + 1000 k
    np.testing.assert_array_equal(hits["Lpos_2"].to_numpy(), hits["X"].to_numpy() + 2000)


@pytest.mark.parametrize("tree, table, message", [
    ("structs", {"fields": ["event", "cov"]},
     r"branch 'cov' holds a fixed-size array of 3 x 3 values per entry; name one element as ROOT does, 'cov\[0\]\[0\]'"),
    ("structs", {"fields": ["event", "cov[3][0]"]},
     r"'cov\[3\]\[0\]' names no element of branch 'cov', which holds a fixed-size array of 3 x 3 values per entry; "
     r"'cov\[0\]\[0\]' is its first"),
    ("structs", {"fields": ["event", "cov[1]"]}, r"'cov\[1\]' names no element of branch 'cov'"),
    ("structs", {"fields": ["event", "cov[][1][1]"]}, r"'cov\[\]\[1\]\[1\]' names no element of branch 'cov'"),
    # ROOT's fLpos[1] is the second point's array, not component 1 of each point
    ("cbmsim", {"collection": {"counter": "vetoPoint", "prefix": "vetoPoint.f"}, "fields": ["X", "Lpos[1]"]},
     r"'vetoPoint\.fLpos\[1\]' names no element of branch 'vetoPoint\.fLpos\[3\]', which holds a fixed-size array "
     r"of 3 values per object; 'vetoPoint\.fLpos\[\]\[0\]' is its first"),
])
def test_a_fixed_size_array_named_whole_or_past_its_end_is_refused(tmp_path, tree, table, message):
    raw = SHIP_FIXTURE if tree == "cbmsim" else FIXTURE
    with pytest.raises(InputError, match=message):
        _ingest(tmp_path, tree, table, [], raw=raw)


def test_rntuple_record_and_array_fields_give_the_ttree_leaves_and_elements(tmp_path):
    """RNTupleImporter makes the leaf-list ``pv`` a record field (``pv.z`` a subfield, read nested under ``pv``) and
    ``cov[3][3]`` an array of 9; a subfield had passed the name check and then stopped flattening."""
    table = {"fields": ["event", "pv.z", "cov[4]", "seg.dir[1]"], "selection": "pv.ndof > 4"}
    rntuple, _ = _ingest(tmp_path, "structs", table, [], raw=FIXTURE.with_name("root_written_jets_rntuple.root"))
    ttree, _ = _ingest(tmp_path, "structs", {**table, "fields": ["event", "pv.z", "cov[1][1]", "seg.dir[1]"]}, [])
    assert len(ttree) > 0
    np.testing.assert_array_equal(rntuple["pv.z"].to_numpy(), ttree["pv.z"].to_numpy())
    np.testing.assert_array_equal(rntuple["cov_4"].to_numpy(), ttree["cov_1_1"].to_numpy())
    np.testing.assert_array_equal(rntuple["seg.dir_1"].to_numpy(), ttree["seg.dir_1"].to_numpy())


def test_an_element_of_an_array_leaf_of_a_leaf_list(tmp_path):
    """``seg`` = ``dir[3]/F:nhits/I``: ``seg.dir[1]`` is element 1 of the leaf ``dir``; ``seg.dir`` whole is refused
    naming that spelling (the hint had pointed at a name that was then reported missing)."""
    rows, _ = _ingest(tmp_path, "structs", {"fields": ["event", "seg.dir[1]", "seg.nhits"]}, [])
    seg = uproot.open(FIXTURE)["structs"]["seg"].array(library="np")
    np.testing.assert_array_equal(rows["seg.dir_1"].to_numpy(), seg["dir"][:, 1])
    np.testing.assert_array_equal(rows["seg.nhits"].to_numpy(), seg["nhits"])
    with pytest.raises(InputError, match=r"branch 'seg\.dir' holds a fixed-size array of 3 values per entry; name one "
                                         r"element as ROOT does, 'seg\.dir\[0\]'"):
        _ingest(tmp_path, "structs", {"fields": ["event", "seg.dir"]}, [])


def test_a_selection_on_a_leaf_of_an_event_level_branch_in_a_collection_table(tmp_path):
    tracks = {"collection": {"counter": "nTrk", "prefix": "trk_"}, "fields": ["pt"], "selection": "pv.ndof > 4"}
    rows, _ = _ingest(tmp_path, "structs", tracks, [])
    arrays = uproot.open(FIXTURE)["structs"].arrays(["trk_pt", "pv"])
    expected = ak.flatten(arrays["trk_pt"][arrays["pv"]["ndof"] > 4])
    assert 0 < len(expected) < len(ak.flatten(arrays["trk_pt"]))
    np.testing.assert_array_equal(rows["pt"].to_numpy(), ak.to_numpy(expected))
    assert "pv.ndof" not in rows.columns


def test_parts_of_event_level_branches_as_event_fields_of_a_collection(tmp_path):
    """A vertex leaf and a covariance element carried onto every track, under plain column names."""
    tracks = {"collection": {"counter": "nTrk", "prefix": "trk_"}, "fields": ["pt"], "event_fields": ["pv.z", "cov[0][1]"]}
    rows, _ = _ingest(tmp_path, "structs", tracks, [])
    arrays = uproot.open(FIXTURE)["structs"].arrays(["nTrk", "pv", "cov"])
    per_track = lambda values: np.repeat(ak.to_numpy(values), ak.to_numpy(arrays["nTrk"]))
    assert list(rows.columns[-3:]) == ["pv.z", "cov_0_1", "pt"] and len(rows) > 0
    np.testing.assert_array_equal(rows["pv.z"].to_numpy(), per_track(arrays["pv"]["z"]))
    np.testing.assert_array_equal(rows["cov_0_1"].to_numpy(), per_track(arrays["cov"][:, 0, 1]))


@pytest.mark.parametrize("share", [0.1, 0.5, 0.9, 0.999])
def test_a_root_written_file_cut_anywhere_is_named_truncated(tmp_path, share):
    """ROOT writes the keys and streamers at a file's end, so a cut had failed in uproot.open as "expected
    Chunk of length 381, received 0 bytes" wherever it fell before the last tenth, never saying "truncated"."""
    data = FIXTURE.read_bytes()
    cut = tmp_path / "cut.root"
    cut.write_bytes(data[: int(len(data) * share)])
    with pytest.raises(InputError, match=rf"cut.root: truncated ROOT file: the header says {len(data)} bytes, "
                                         rf"the file has {int(len(data) * share)}"):
        _ingest(tmp_path, "arrays", _array_table(), ["event"], raw=cut)


def test_a_cut_file_past_2_gb_is_named_truncated_from_its_64_bit_header(tmp_path):
    """From fVersion 1000000 on (files past 2 GB) fEND is 8 bytes; read as 4 it would be 1, never a cut."""
    cut = tmp_path / "big.root"
    cut.write_bytes(b"root" + (1_063_000).to_bytes(4, "big") + (100).to_bytes(4, "big")
                    + (5_000_000_000).to_bytes(8, "big") + bytes(200))
    with pytest.raises(InputError, match="big.root: truncated ROOT file: the header says 5000000000 bytes, the file has 220"):
        _ingest(tmp_path, "arrays", _array_table(), ["event"], raw=cut)


UNCLOSED = Path(__file__).parent / "data" / "root_written_unclosed.root"


def test_a_file_never_closed_is_refused_without_keys_and_named_after_an_autosave(tmp_path, caplog):
    """Files ROOT left open by a killed job: without keys ingestion had said "no tree 'Events'; the file has
    trees []"; after an AutoSave the 1000 saved of 3000 filled entries were read without a word."""
    table = {"fields": ["x"]}
    with pytest.raises(InputError, match=r"unclosed_nokeys.root: ROOT file not closed by its writer \(no list of keys"):
        _ingest(tmp_path, "Events", table, ["event"], raw=UNCLOSED.with_name("root_written_unclosed_nokeys.root"))
    rows, summary = _ingest(tmp_path, "Events", table, ["event"], raw=UNCLOSED, step_size=400)
    assert summary["rows_out"] == len(rows) == 1000 and rows["event"].tolist() == list(range(1000))
    past_end = UNCLOSED.stat().st_size - int.from_bytes(UNCLOSED.read_bytes()[12:16], "big")
    assert past_end > 0 and f"root_written_unclosed.root: {past_end} bytes lie past the end its header" in caplog.text
    assert summary["bytes_past_end"] == past_end
    gathered = run_summary([str(tmp_path / "root_written_unclosed_Events.json")], str(tmp_path / "summary.json"), "d")
    assert gathered["tables"]["jets"]["bytes_past_end"] == ["root_written_unclosed.root"]
    assert "the files ['root_written_unclosed.root'] have bytes past the end" in caplog.text
    caplog.clear()
    assert _ingest(tmp_path, "arrays", _array_table(), ["event"])[1]["bytes_past_end"] == 0  # closed: nothing to say
    assert "past the end" not in caplog.text


def test_zeroed_bytes_are_named_damaged_on_one_line(tmp_path):
    """A basket overwritten with zeros had escaped as cramjam's DecompressionError with a traceback; a file cut and
    padded with zeros to its length said "the file has trees []", as if the name were wrong."""
    data = FIXTURE.read_bytes()
    hole = tmp_path / "hole.root"
    start, stop = len(data) // 10, len(data) // 5
    hole.write_bytes(data[:start] + bytes(stop - start) + data[stop:])
    with pytest.raises(InputError, match=r"hole.root:vectors: cannot read entries from 0 on; the file is damaged "
                                         r"\(DecompressionError") as caught:
        _ingest(tmp_path, "vectors", _vector_table(), ["eventNumber"], raw=hole)
    assert "\n" not in str(caught.value)
    padded = tmp_path / "padded.root"
    padded.write_bytes(data[: len(data) // 2] + bytes(len(data) - len(data) // 2))
    with pytest.raises(InputError, match=r"padded.root: no tree 'arrays': the file holds no objects at all"):
        _ingest(tmp_path, "arrays", _array_table(), ["event"], raw=padded)
