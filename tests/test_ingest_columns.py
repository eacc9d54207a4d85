"""The ingest fast paths give what the general ones gave: Arrow columns over numpy buffers, output
columns gathered once for the kept rows, the schema from the first step's zero-entry slice."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import awkward as ak
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import uproot

from pipeline_steps.common.errors import ConfigError, InputError
from pipeline_steps.ingest.step import run
from pipeline_steps.ingest.writer import arrow_table

REPO = Path(__file__).resolve().parents[1]
NUMERIC = ["bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "float16", "float32", "float64"]


@pytest.mark.parametrize("dtype", NUMERIC)
def test_numpy_columns_become_the_arrays_pa_array_gives(dtype):
    values = (np.arange(-5, 12) % 7).astype(dtype)
    for variant in (values, values[::2], values.astype(values.dtype.newbyteorder(">"))):
        table = arrow_table({"x": variant})
        assert table.column("x").chunk(0).equals(pa.array(variant.astype(variant.dtype.newbyteorder("="))))
        assert table.column("x").to_numpy(zero_copy_only=False).tolist() == variant.tolist()


@pytest.mark.parametrize("name", ["0.root", "données_ß.root"])
def test_file_name_column_round_trips_utf8(tmp_path, name):
    raw = tmp_path / name
    with uproot.recreate(raw) as file:
        file.mktree("T", {"x": np.float32}).extend({"x": np.arange(4, dtype=np.float32)})
    run([str(raw)], str(tmp_path / "t.parquet"), str(tmp_path / "t.json"), {"tree": "T"}, {"fields": ["x"]}, "t")
    table = pq.read_table(tmp_path / "t.parquet")
    assert table.schema.field("source_file").type == pa.string()
    assert table.column("source_file").to_pylist() == [name] * 4


def _jets_file(path, gen_idx=((0, -1, 1), (3, 0), (0, 0, -1, 1)), trigger=True):
    """3 entries of jets matched to gen jets (indices -1, in range, and past the stored gen jets)."""
    gen_idx = ak.Array([list(indices) for indices in gen_idx])
    n = ak.num(gen_idx)
    with uproot.recreate(path) as file:
        data = {
            "run": np.array([1, 1, 2], np.uint32), "event": np.array([10, 11, 12], np.uint64),
            "PV_npvs": np.array([20, 30, 40], np.int32), "HLT_IsoMu24": np.array([True, False, True]),
            "Jet": ak.zip({"pt": ak.unflatten(np.arange(1, ak.sum(n) + 1, dtype=np.float32) * 10, n),
                           "genJetIdx": ak.values_astype(gen_idx, np.int32)}),
            "GenJet": ak.zip({"pt": ak.Array([[100.0, 200.0], [300.0], [400.0, 500.0]])}),
        }
        if not trigger:
            del data["HLT_IsoMu24"]
        file.mktree("Events", {k: v.type.content if isinstance(v, ak.Array) else v.dtype for k, v in data.items()}).extend(data)
    return path


def _jets_mapping(selection=None, unique=()):
    return {"collection": {"counter": "nJet", "prefix": "Jet_"}, "fields": ["pt"], "event_fields": ["PV_npvs"],
            "selection": selection, "unique": list(unique),
            "match": {"index": "genJetIdx", "collection": {"counter": "nGenJet", "prefix": "GenJet_"},
                      "fields": ["pt"], "output_prefix": "gen_", "keep_unmatched": True}}


def _ingest(tmp_path, raw, mapping, name, step_size=2):
    out = tmp_path / f"{name}.parquet"
    reading = {"tree": "Events", "identity": ["run", "event"], "step_size": step_size}
    [summary] = run([str(raw)], str(out), str(out.with_suffix(".json")), reading, mapping, "jets")
    return pq.read_table(out), summary


@pytest.mark.parametrize("selection", [
    "(PV_npvs > 25) | (object_index == 0)",  # event field, identity column
    "(event != 11) & (gen_pt > 150)",  # identity, matched field (NaN where unmatched)
    "matched & (entry >= 1)",  # matched flag, entry
])
def test_selection_on_any_column_equals_filtering_afterwards(tmp_path, selection):
    raw = _jets_file(tmp_path / "j.root")
    everything, _ = _ingest(tmp_path, raw, _jets_mapping(), "all")
    selected, summary = _ingest(tmp_path, raw, _jets_mapping(selection), "selected")
    frame = everything.to_pandas()
    expected = frame[frame.eval(selection.replace("&", " and ").replace("|", " or "))].reset_index(drop=True)
    assert selected.to_pandas().equals(expected)
    assert summary["rows_out"] == len(expected) and summary["failed_selection"] == len(frame) - len(expected)
    assert summary["selected"] == len(expected)  # unmatched rows are kept here: not subtracted twice
    assert selected.schema == everything.schema


def test_a_selection_on_an_event_level_branch_reads_it_without_making_it_a_column(tmp_path):
    """NanoAOD's trigger and filter bits (HLT_IsoMu24, Flag_goodVertices) select events; they had to be listed in
    event_fields first (the selection looked for Jet_HLT_IsoMu24) and then became a column of every row."""
    raw = _jets_file(tmp_path / "j.root")
    everything, _ = _ingest(tmp_path, raw, _jets_mapping(), "all")
    selected, summary = _ingest(tmp_path, raw, _jets_mapping("HLT_IsoMu24 & (pt > 20)"), "selected")
    frame = everything.to_pandas()
    expected = frame[frame["entry"].isin([0, 2]) & (frame["pt"] > 20)].reset_index(drop=True)
    assert len(expected) > 0 and selected.to_pandas().equals(expected)
    assert selected.schema == everything.schema and summary["failed_selection"] == len(frame) - len(expected)


def test_a_selection_name_is_read_from_one_branch_in_every_file_of_a_part(tmp_path):
    """The part's first file decides that HLT_IsoMu24 is the event-level branch; a later file without it is refused
    naming it and the other branch it could have been, not silently read from another (or reported as only
    Jet_HLT_IsoMu24)."""
    raws = [_jets_file(tmp_path / "a.root"), _jets_file(tmp_path / "b.root", trigger=False)]
    reading = {"tree": "Events", "identity": ["run", "event"]}
    with pytest.raises(InputError, match=r"b\.root:Events: missing branch 'HLT_IsoMu24' \(nor 'Jet_HLT_IsoMu24'; "):
        run([str(r) for r in raws], str(tmp_path / "p.parquet"), str(tmp_path / "p.json"), reading,
            _jets_mapping("HLT_IsoMu24 & (pt > 20)"), "jets")


def test_unique_on_an_event_field_keeps_the_first_object(tmp_path):
    raw = _jets_file(tmp_path / "j.root")
    table, summary = _ingest(tmp_path, raw, _jets_mapping(unique=["PV_npvs"]), "unique")
    assert table.column("object_index").to_pylist() == [0, 0, 0]
    assert table.column("entry").to_pylist() == [0, 1, 2] and summary["duplicates_removed"] == 6
    assert summary["selected"] == 9 and summary["unmatched_no_index"] == 2  # kept unmatched rows are selected


def test_a_nan_unique_key_is_never_a_duplicate(tmp_path):
    """NaN equals nothing, as in ROOT: unmatched jets (gen_pt NaN) are each kept, however many an event has,
    where treating NaN keys as equal (pandas' drop_duplicates) would keep one unmatched jet per event."""
    raw = _jets_file(tmp_path / "j.root", gen_idx=((0, -1, -1), (3, 0), (0, 0, -1, 1)))
    table, summary = _ingest(tmp_path, raw, _jets_mapping(unique=["gen_pt"]), "unique")
    assert table.column("entry").to_pylist() == [0, 0, 0, 1, 1, 2, 2, 2]
    assert table.column("object_index").to_pylist() == [0, 1, 2, 0, 1, 0, 2, 3]  # entry 2's second gen jet 0 goes
    assert summary["duplicates_removed"] == 1


def test_every_row_failing_keeps_the_schema_of_a_passing_run(tmp_path):
    raw = _jets_file(tmp_path / "j.root")
    passing, _ = _ingest(tmp_path, raw, _jets_mapping("pt > 0"), "pass", step_size=100)
    failing, summary = _ingest(tmp_path, raw, _jets_mapping("pt < 0"), "fail", step_size=100)
    assert failing.num_rows == 0 and summary["failed_selection"] == passing.num_rows == 9
    assert failing.schema == passing.schema
    assert failing.schema.field("gen_pt").type == pa.float64() and failing.schema.field("event").type == pa.uint64()


def test_ingestion_does_not_import_pandas(tmp_path):
    """pa.array / pa.table import pandas on first use (~45 MiB, 0.4-0.9 s per job); the writer avoids them."""
    raw = _jets_file(tmp_path / "j.root")
    script = (
        "import sys; from pipeline_steps.ingest.step import run; "
        f"run([{str(raw)!r}], {str(tmp_path / 'o.parquet')!r}, {str(tmp_path / 'o.json')!r}, "
        f"{{'tree': 'Events', 'identity': ['run', 'event']}}, {_jets_mapping('pt > 0')!r}, 'jets'); "
        "print(sorted(m for m in ('pandas', 'pyarrow.compute') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, check=True)
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_floats_are_plain_encoded_and_names_and_integers_use_dictionaries(tmp_path):
    """A step's row group never reaches Parquet's dictionary fallback limit, so dictionary-encoded
    float columns (unique values) made the file 1.5x larger than plain + zstd."""
    raw = _jets_file(tmp_path / "j.root")
    table, _ = _ingest(tmp_path, raw, _jets_mapping(), "encodings")
    row_group = pq.ParquetFile(tmp_path / "encodings.parquet").metadata.row_group(0)
    dictionary = {row_group.column(i).path_in_schema: "RLE_DICTIONARY" in row_group.column(i).encodings
                  for i in range(row_group.num_columns)}
    types = {name: table.schema.field(name).type for name in table.column_names}
    assert dictionary == {name: pa.types.is_integer(t) or pa.types.is_string(t) for name, t in types.items()}
    assert not dictionary["pt"] and not dictionary["gen_pt"] and dictionary["source_file"] and dictionary["event"]


def test_damaged_first_basket_is_an_input_error_naming_the_file(tmp_path):
    """The first step is read before the schema is fixed, so its damage is reported as such."""
    raw = tmp_path / "d.root"
    with uproot.recreate(raw) as file:
        file.mktree("T", {"x": np.float64}).extend({"x": np.random.default_rng(1).normal(size=20000)})
    seek = int(uproot.open(raw)["T"]["x"].member("fBasketSeek")[0])
    damaged = bytearray(raw.read_bytes())
    damaged[seek + 200:seek + 700] = b"\x55" * 500
    raw.write_bytes(bytes(damaged))
    with pytest.raises(InputError, match=r"d\.root:T: cannot read entries from 0 on; the file is damaged"):
        run([str(raw)], str(tmp_path / "d.parquet"), str(tmp_path / "d.json"), {"tree": "T"}, {"fields": ["x"]}, "t")
    assert not (tmp_path / "d.parquet").exists() and not (tmp_path / "d.json").exists()


def test_a_float_match_index_is_refused_naming_the_branch(tmp_path):
    """An index stored as float had been truncated (1.9 matched object 1) and NaN made -2**63."""
    raw = tmp_path / "f.root"
    with uproot.recreate(raw) as file:
        data = {"run": np.array([1], np.uint32), "event": np.array([10], np.uint64), "PV_npvs": np.array([20], np.int32),
                "Jet": ak.zip({"pt": ak.Array([[1.0, 2.0]]), "genJetIdx": ak.Array([[0.0, 1.9]])}),
                "GenJet": ak.zip({"pt": ak.Array([[10.0, 20.0]])})}
        file.mktree("Events", {k: v.type.content if isinstance(v, ak.Array) else v.dtype for k, v in data.items()}).extend(data)
    with pytest.raises(InputError, match=r"f\.root:Events: match index branch 'Jet_genJetIdx' must hold integers "
                                         r"\(positions in the collection counted by 'nGenJet', -1 for none\), found float64"):
        _ingest(tmp_path, raw, _jets_mapping(), "float_index")


def test_an_identity_branch_named_like_a_workflow_column_says_how_to_keep_it(tmp_path):
    """'entry' as an identity branch clashes with the TTree entry column; 'rename' cannot apply to identity,
    so the error points to event_fields + rename, which keeps the values (checked below)."""
    raw = tmp_path / "f.root"
    with uproot.recreate(raw) as file:
        file.mktree("T", {"entry": np.int64, "x": np.float64}).extend({"entry": np.array([7, 8]), "x": np.array([1.0, 2.0])})
    reading = {"tree": "T", "identity": ["entry"]}
    with pytest.raises(ConfigError, match=r"identity branches \['entry'\] have the names of the workflow's own columns"
                                          r".*list it in 'event_fields' with a 'rename'"):
        run([str(raw)], str(tmp_path / "a.parquet"), str(tmp_path / "a.json"), reading, {"fields": ["x"]}, "t")
    run([str(raw)], str(tmp_path / "b.parquet"), str(tmp_path / "b.json"), {"tree": "T"},
        {"fields": ["x"], "event_fields": ["entry"], "rename": {"entry": "raw_entry"}}, "t")
    table = pq.read_table(tmp_path / "b.parquet")
    assert table.column("raw_entry").to_pylist() == [7, 8] and table.column("entry").to_pylist() == [0, 1]
