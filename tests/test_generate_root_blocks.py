"""The block-buffered ROOT writer: every branch read back with plain uproot equals what was passed in.

The expected branches are computed here from the input rows with pandas (group by event), not with
the writer's own helpers, so a wrong counter, a shifted event-level value or a lost dtype shows up
whatever the writer does inside. Blocks of several sizes (one extend per chunk, several chunks per
extend, a chunk larger than a block) must give the same branches, and the same rows the same bytes.
"""

import numpy as np
import pandas as pd
import pytest
import uproot

from pipeline_steps.common.errors import InputError
from pipeline_steps.generate.layout import layout_from_config
from pipeline_steps.generate.root_io import COMPRESSION, _Strings, read_generated_root, root_writer
from tests.conftest import JETS_TABLE

JETS_LAYOUT = layout_from_config("Events", ["run", "luminosityBlock", "event"], JETS_TABLE)
EVENT_COLUMNS = ["source_file", "entry", "run", "luminosityBlock", "event", "PV_npvs"]
JET_BRANCHES = {"Jet_pt": "pt", "Jet_area": "area", "Jet_nConstituents": "nConstituents",
                "Jet_object_index": "object_index", "GenJet_pt": "gen_pt", "GenJet_eta": "gen_eta"}


def _jet_rows(n_events=400, seed=1):
    """Ingest-style rows, one event's rows contiguous; three source files, some with non-ASCII names."""
    rng = np.random.default_rng(seed)
    counts = rng.integers(1, 5, n_events)
    event = np.repeat(np.arange(n_events), counts)
    n = len(event)
    files = np.array(["a.root", "b.root", "dé.root"])[np.minimum(event * 3 // n_events, 2)]
    return pd.DataFrame({
        "source_file": files, "entry": event.astype(np.int64),
        "object_index": np.concatenate([np.arange(c) for c in counts]).astype(np.int32),
        "run": np.full(n, 3, np.uint32), "luminosityBlock": (event // 50).astype(np.uint32),
        "event": (10_000 + event).astype(np.uint64),
        "PV_npvs": np.repeat(rng.integers(5, 40, n_events), counts).astype(np.int32),
        "gen_pt": rng.uniform(20, 200, n).astype(np.float32), "gen_eta": rng.normal(0, 2, n).astype(np.float32),
        "pt": rng.uniform(20, 200, n).astype(np.float32), "area": rng.uniform(0.3, 0.6, n),  # float64 kept
        "nConstituents": rng.integers(2, 40, n).astype(np.int32),
    })


def _chunks(rows, rows_per_chunk):
    """Event-aligned chunks of about ``rows_per_chunk`` rows, as the generate step hands them over."""
    new_event = np.r_[True, rows["entry"].to_numpy()[1:] != rows["entry"].to_numpy()[:-1]]
    starts = np.flatnonzero(new_event)
    cuts = [0]
    for start in starts:
        if start - cuts[-1] >= rows_per_chunk:
            cuts.append(int(start))
    cuts.append(len(rows))
    return [rows.iloc[a:b] for a, b in zip(cuts[:-1], cuts[1:])]


def _write(path, rows, rows_per_chunk, block_rows, layout=JETS_LAYOUT):
    with root_writer(path, layout, block_rows=block_rows) as write:
        for chunk in _chunks(rows, rows_per_chunk):
            write(chunk)


def _expected_jet_branches(rows):
    """{branch: (per-entry values, or a list of per-event arrays)} computed with pandas alone."""
    events = rows.groupby(["source_file", "entry"], sort=False)
    first = events.head(1)
    expected = {name: first[name].to_numpy() for name in EVENT_COLUMNS}
    counts = events.size().to_numpy()
    expected["nJet"] = expected["nGenJet"] = counts
    for branch, column in JET_BRANCHES.items():
        expected[branch] = [group[column].to_numpy() for _, group in events]
    expected["Jet_genJetIdx"] = [np.arange(c, dtype=np.int32) for c in counts]  # reco jet i <-> gen jet i
    return expected


@pytest.mark.parametrize("rows_per_chunk, block_rows", [(100, 1), (100, 350), (300, 120), (10_000, 200_000)])
def test_every_branch_reads_back_as_written(tmp_path, rows_per_chunk, block_rows):
    rows = _jet_rows()
    _write(tmp_path / "g.root", rows, rows_per_chunk, block_rows)
    tree = uproot.open(tmp_path / "g.root")["Events"]
    expected = _expected_jet_branches(rows)
    assert set(tree.keys()) == set(expected)
    assert tree.num_entries == len(expected["nJet"])
    for name, values in expected.items():
        if isinstance(values, list):  # jagged: per-event contents, value dtype as passed in
            got = tree[name].array(library="np")
            assert [len(g) for g in got] == [len(v) for v in values], name
            assert all(np.array_equal(g, v) for g, v in zip(got, values)), name
            assert got[0].dtype == values[0].dtype, name
        elif name == "source_file":
            assert tree[name].array(library="np").tolist() == values.tolist()
        else:
            got = tree[name].array(library="np")
            assert np.array_equal(got, values), name
            assert got.dtype == (np.int32 if name in ("nJet", "nGenJet") else values.dtype), name
    back = read_generated_root(tmp_path / "g.root", JETS_LAYOUT)
    for column in rows.columns:
        assert np.array_equal(back[column].to_numpy(), rows[column].to_numpy()), column


@pytest.mark.parametrize("rows_per_chunk, block_rows", [(100, 400), (100, 350), (300, 120)])
def test_blocks_are_whole_chunks_of_at_least_block_rows(tmp_path, rows_per_chunk, block_rows):
    """A block is written once it holds ``block_rows`` rows, so it is whole chunks and passes ``block_rows``
    by less than one chunk; a chunk as large as a block is a basket of its own.

    Chunks end at event boundaries and so hold a few rows more than asked (here ~100 -> 100-104): blocks
    that had to stay under ``block_rows`` were one chunk short of it (3 of the step's 50k chunks instead of
    4 at the default 200k), which the first case catches: 400 rows of ~100-row chunks are 4 chunks, not 3.
    """
    rows = _jet_rows()
    chunks = _chunks(rows, rows_per_chunk)
    assert max(len(chunk) for chunk in chunks) > rows_per_chunk  # the event-boundary slack this is about
    _write(tmp_path / "g.root", rows, rows_per_chunk, block_rows)
    branch = uproot.open(tmp_path / "g.root")["Events"]["Jet_pt"]
    rows_per_basket = [int(branch.basket(i).data.size // 4) for i in range(branch.num_baskets)]
    expected, held = [], 0
    for chunk in chunks:
        if held and len(chunk) >= block_rows:
            expected.append(held)
            held = 0
        held += len(chunk)
        if held >= block_rows:
            expected.append(held)
            held = 0
    assert rows_per_basket == expected + ([held] if held else [])
    assert sum(rows_per_basket) == len(rows)
    longest_chunk = max(len(chunk) for chunk in chunks)
    assert all(block_rows <= n < block_rows + longest_chunk for n in rows_per_basket[:-1])
    if (rows_per_chunk, block_rows) == (100, 400):
        assert len(rows_per_basket) == -(-len(chunks) // 4)  # 4 chunks per basket


def test_block_size_and_reruns_keep_the_data_and_the_bytes(tmp_path):
    rows = _jet_rows()
    for folder, block_rows in (("a", 1), ("b", 10**6), ("c", 10**6)):
        (tmp_path / folder).mkdir()
        _write(tmp_path / folder / "g.root", rows, 100, block_rows)
    trees = {folder: uproot.open(tmp_path / folder / "g.root")["Events"] for folder in "abc"}
    for name in trees["a"].keys():
        assert trees["a"][name].array().tolist() == trees["b"][name].array().tolist(), name
    # the file's UUID comes from its path: same path name, same rows, same blocks -> same bytes
    first = (tmp_path / "b" / "g.root").read_bytes()
    _write(tmp_path / "b" / "g.root", rows, 100, 10**6)
    assert (tmp_path / "b" / "g.root").read_bytes() == first
    assert uproot.open(tmp_path / "b" / "g.root").file.compression == COMPRESSION


def test_flat_layout_with_strings_over_several_blocks(tmp_path):
    layout = layout_from_config("Tracks", ["runNumber"], {"fields": ["x"]})
    n = 1000
    rows = pd.DataFrame({"source_file": np.where(np.arange(n) < 400, "t0.root", "t1.root"),
                         "entry": np.arange(n, dtype=np.int64), "object_index": np.zeros(n, np.int32),
                         "runNumber": np.arange(n, dtype=np.uint32), "x": np.linspace(0, 1, n, dtype=np.float32)})
    with root_writer(tmp_path / "t.root", layout, block_rows=300) as write:
        for start in range(0, n, 128):
            write(rows.iloc[start:start + 128])
    tree = uproot.open(tmp_path / "t.root")["Tracks"]
    assert tree["x"].num_baskets == 3  # 384 + 384 + 232 rows: three 128-row chunks reach 300
    for column in rows.columns:
        got = tree[column].array(library="np")
        assert got.tolist() == rows[column].tolist(), column
        if column != "source_file":
            assert got.dtype == rows[column].dtype, column


@pytest.mark.parametrize("values", [
    ["0A1B2C3D-4E5F-6789-ABCD-EF0123456789.root"] * 5,  # one name, a CMS GUID
    ["ab.root", "cd.root", "ab.root", "ef.root"],  # several names of one length
    ["a.root", "dé.root", None, "", "a.root"],  # lengths differ: utf-8, a missing value, an empty name
    ["", ""],
])
def test_strings_take_gives_each_value_s_utf8_bytes_in_order(values):
    """Both ways of ``_Strings.take`` (values of one length, of several) against the bytes joined in Python."""
    codes, uniques = pd.factorize(pd.Series(values, dtype=object), use_na_sentinel=False)
    positions = np.array([len(values) - 1, 0, 0])
    for picked, where in ((values, None), ([values[i] for i in positions], positions)):
        expected = [("nan" if v is None else v).encode("utf-8") for v in picked]
        strings = _Strings.take(codes, uniques, where)
        assert strings.lengths.tolist() == [len(v) for v in expected]
        assert strings.data.dtype == np.uint8 and strings.data.tobytes() == b"".join(expected)


def test_strings_inside_a_collection_are_refused_and_leave_no_file(tmp_path):
    rows = _jet_rows(5).assign(pt="high")
    with pytest.raises(InputError, match="not numeric"):
        _write(tmp_path / "g.root", rows, 100, 10)
    assert list(tmp_path.iterdir()) == []


def test_an_error_while_a_block_is_in_flight_leaves_no_file(tmp_path):
    """Blocks are written on a second thread; the caller failing mid-way must still leave nothing."""
    rows = _jet_rows()
    with pytest.raises(RuntimeError, match="sampler died"):
        with root_writer(tmp_path / "g.root", JETS_LAYOUT, block_rows=50) as write:
            for chunk in _chunks(rows, 40):
                write(chunk)
            raise RuntimeError("sampler died")
    assert list(tmp_path.iterdir()) == []


def test_an_error_on_the_writer_thread_reaches_the_caller_and_leaves_no_file(tmp_path):
    """A later block whose columns do not match the tree made from the first fails inside uproot's
    ``extend`` on the writer thread; the caller sees that error and no file is left."""
    rows = _jet_rows()
    chunks = _chunks(rows, 100)
    with pytest.raises(ValueError):
        with root_writer(tmp_path / "g.root", JETS_LAYOUT, block_rows=100) as write:
            write(chunks[0])
            for chunk in chunks[1:]:
                write(chunk.assign(PV_npvs=chunk["PV_npvs"].astype(np.float64), extra=1.0))
    assert list(tmp_path.iterdir()) == []


def test_branches_that_do_not_compress_are_written_raw_and_read_back_equal(tmp_path):
    """Full-mantissa float64 (what generation writes) keeps ~97 % of its bytes under ZSTD(1): written raw,
    while integers, identity and the strings stay compressed; every value reads back equal."""
    rows = _jet_rows(3000)
    rows["area"] = np.random.default_rng(5).normal(0, 2, len(rows))  # float64, random mantissas
    path = tmp_path / "g.root"
    with root_writer(path, JETS_LAYOUT, block_rows=2000) as write:
        write(rows)
    tree = uproot.open(path)["Events"]
    raw = {name for name in tree.keys() if tree[name].compressed_bytes == tree[name].uncompressed_bytes}
    assert "Jet_area" in raw
    assert not raw & {"Jet_nConstituents", "Jet_object_index", "entry", "event", "run", "PV_npvs", "nJet",
                      "source_file"}
    assert np.array_equal(read_generated_root(path, JETS_LAYOUT)["area"].to_numpy(), rows["area"].to_numpy())
    with root_writer(tmp_path / "none.root", JETS_LAYOUT, compression=None) as write:  # nothing to decide
        write(rows)
    plain = uproot.open(tmp_path / "none.root")["Events"]
    assert all(plain[name].compressed_bytes == plain[name].uncompressed_bytes for name in plain.keys())


def test_a_tiny_first_block_decides_nothing(tmp_path):
    """One event first: its few values, a ZSTD frame's fixed bytes around them, had made every branch look
    incompressible (12 raw, the file 1.7x the size of one written at once). Below 4096 values a branch
    keeps the compression."""
    rows = _jet_rows(3000)
    first = int((rows["entry"] == rows["entry"].iloc[0]).sum())
    with root_writer(tmp_path / "g.root", JETS_LAYOUT, block_rows=2000) as write:
        write(rows.iloc[:first])
        write(rows.iloc[first:])
    tree = uproot.open(tmp_path / "g.root")["Events"]
    assert all(tree[name].compressed_bytes < tree[name].uncompressed_bytes for name in tree.keys())
