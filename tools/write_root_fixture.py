"""Write ``tests/data/root_written_*.root`` with ROOT itself: objects stored the ways real files store them.

uproot writes variable-length arrays only as C-style arrays with an Int_t counter, so the layouts that only ROOT
writes are fixed here once and committed (40 events each, 14 and 11 kB). ``root_written_jets.root``:

- tree ``vectors``: ATLAS-style ``std::vector<float>`` / ``std::vector<int>`` branches and no count branch
  (``jet_pt``, ``jet_truthIdx``, ``truthjet_pt``, ...), the layout of most analysis ntuples;
- tree ``arrays``: NanoAOD v12 types, C-style arrays with ``UInt_t`` counters (``nJet``, ``nGenJet``), a ``Short_t``
  index (``Jet_genJetIdx``) and ``UChar_t`` ids (``Jet_jetId``);
- tree ``structs``: per event a leaf-list branch ``pv`` of ``x/F:y/F:z/F:ndof/I`` (older ntuples' structs), one
  with an array leaf, ``seg`` of ``dir[3]/F:nhits/I``, a ``Float_t cov[3][3]`` (a fixed-size array, as LHCb's
  DecayTreeTuple covariances) and tracks ``trk_pt[nTrk]``.

Both hold the same values, with the edge values real files carry: events without jets, unmatched jets (index -1)
and indices past the stored truth jets (a skimmed collection), gen masses of 0 and -2.6e-7. ``tests/test_ingest_vectors.py``
ingests both and expects the same table.

``root_written_jets_rntuple.root``: trees ``arrays`` and ``structs`` converted by ROOT's ``RNTupleImporter`` to
RNTuples (ROOT's successor of TTree): projected fields keep the names (``Jet_pt``, ``nJet`` as the collection's
cardinality), the leaf-list ``pv`` becomes a record field (``pv.z``), ``cov`` an array field.

``root_written_ship.root``: FairShip's layout, tree ``cbmsim`` with ``TClonesArray`` branches of ``TObject``-derived
classes split into members (``vetoPoint.fX``, ``MCTrack.fW``, ``Double32_t`` as FairShip declares them, a
``Double_t fLpos[3]``: its ``X`` plus 0, 1000, 2000), counted by the array's own branch (``vetoPoint``); tree ``reference`` holds the same values as ``std::vector`` branches.

``root_written_unclosed.root``: what a job killed while writing leaves. Tree ``Events`` (``event``, ``x``) was
filled with 3000 entries, saved by ``AutoSave`` after 1000, and the process exited without closing the file: its
header still ends the file where the AutoSave left it, the baskets of the later entries lie beyond, and a reader
finds the 1000 entries of the AutoSave (ROOT reads the same, without a word).
``root_written_unclosed_nokeys.root``: the same without the AutoSave: the file has no list of keys (ROOT:
"probably not closed, trying to recover").

Run with ROOT's Python bindings, which this project does not install (``pip install ROOT`` in a separate venv), and
a C++ compiler (ACLiC compiles the two classes):
    python tools/write_root_fixture.py tests/data
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

N_EVENTS = 40
SEED = 20261205


def events(rng: np.random.Generator) -> list[dict]:
    """Per event: jets (pt, eta, mass, jetId, truth index) and truth jets (pt, mass), with edge values."""
    out = []
    for number in range(N_EVENTS):
        n_truth = int(rng.integers(0, 4))
        n_jets = 0 if number % 7 == 3 else int(rng.integers(0, 5))
        truth_mass = rng.exponential(8.0, n_truth).astype(np.float32)
        if n_truth and number % 5 == 0:
            truth_mass[0] = 0.0 if number % 10 == 0 else np.float32(-2.6e-7)
        index = rng.integers(-1, n_truth + 2, n_jets)  # -1 unmatched, >= n_truth: past the skimmed collection
        out.append({
            "event": 1000 + number,
            "jet_pt": rng.exponential(40.0, n_jets).astype(np.float32) + 15,
            "jet_eta": rng.normal(0.0, 1.8, n_jets).astype(np.float32),
            "jet_mass": rng.exponential(6.0, n_jets).astype(np.float32),
            "jet_jetId": rng.choice([0, 2, 6], n_jets).astype(np.uint8),
            "jet_truthIdx": index.astype(np.int16),
            "truth_pt": rng.exponential(40.0, n_truth).astype(np.float32) + 10,
            "truth_mass": truth_mass,
        })
    return out


def write(path: str) -> None:
    """The jets file: trees ``vectors`` and ``arrays``."""
    import ROOT

    rows = events(np.random.default_rng(SEED))
    out = ROOT.TFile(path, "RECREATE", "", 505)  # ZSTD level 5, ROOT's current default
    _vectors_tree(rows)
    _arrays_tree(rows)
    _structs_tree(np.random.default_rng(SEED + 2))
    out.Write()
    out.Close()


def _vectors_tree(rows: list[dict]) -> None:
    import ROOT

    tree = ROOT.TTree("vectors", "ATLAS-style ntuple: std::vector branches, no counters")
    event = np.zeros(1, np.uint64)
    tree.Branch("eventNumber", event, "eventNumber/l")
    element = {"jet_pt": "float", "jet_eta": "float", "jet_mass": "float", "jet_jetId": "int", "jet_truthIdx": "int",
               "truthjet_pt": "float", "truthjet_mass": "float"}
    vectors = {name: ROOT.std.vector(kind)() for name, kind in element.items()}
    for name, vector in vectors.items():
        tree.Branch(name, vector)
    source = {"truthjet_pt": "truth_pt", "truthjet_mass": "truth_mass"}
    for row in rows:
        event[0] = row["event"]
        for name, vector in vectors.items():
            vector.clear()
            for value in row[source.get(name, name)]:
                vector.push_back(value.item())
        tree.Fill()


def _arrays_tree(rows: list[dict]) -> None:
    import ROOT

    tree = ROOT.TTree("arrays", "NanoAOD v12 types: UInt_t counters, Short_t index, UChar_t id")
    limit = 16
    event = np.zeros(1, np.uint64)
    counts = {"nJet": np.zeros(1, np.uint32), "nGenJet": np.zeros(1, np.uint32)}
    columns = {  # branch: (row key, dtype, leaf type, counter)
        "Jet_pt": ("jet_pt", np.float32, "F", "nJet"), "Jet_eta": ("jet_eta", np.float32, "F", "nJet"),
        "Jet_mass": ("jet_mass", np.float32, "F", "nJet"), "Jet_jetId": ("jet_jetId", np.uint8, "b", "nJet"),
        "Jet_genJetIdx": ("jet_truthIdx", np.int16, "S", "nJet"),
        "GenJet_pt": ("truth_pt", np.float32, "F", "nGenJet"), "GenJet_mass": ("truth_mass", np.float32, "F", "nGenJet"),
    }
    tree.Branch("event", event, "event/l")
    for name, buffer in counts.items():
        tree.Branch(name, buffer, f"{name}/i")
    buffers = {name: np.zeros(limit, dtype) for name, (_, dtype, _, _) in columns.items()}
    for name, (_, _, leaf, counter) in columns.items():
        tree.Branch(name, buffers[name], f"{name}[{counter}]/{leaf}")
    for row in rows:
        event[0] = row["event"]
        counts["nJet"][0], counts["nGenJet"][0] = len(row["jet_pt"]), len(row["truth_pt"])
        for name, (key, _, _, _) in columns.items():
            buffers[name][:len(row[key])] = row[key]
        tree.Fill()


def _structs_tree(rng: np.random.Generator) -> None:
    import ROOT

    tree = ROOT.TTree("structs", "a leaf-list branch pv = x/F:y/F:z/F:ndof/I and a Float_t cov[3][3]")
    event = np.zeros(1, np.uint64)
    pv = np.zeros(1, dtype=[("x", np.float32), ("y", np.float32), ("z", np.float32), ("ndof", np.int32)])
    cov = np.zeros((3, 3), np.float32)
    n_trk, trk_pt = np.zeros(1, np.int32), np.zeros(8, np.float32)
    seg = np.zeros(1, dtype=[("dir", np.float32, (3,)), ("nhits", np.int32)])
    tree.Branch("event", event, "event/l")
    tree.Branch("pv", pv, "x/F:y/F:z/F:ndof/I")
    tree.Branch("seg", seg, "dir[3]/F:nhits/I")
    tree.Branch("cov", cov, "cov[3][3]/F")
    tree.Branch("nTrk", n_trk, "nTrk/I")
    tree.Branch("trk_pt", trk_pt, "trk_pt[nTrk]/F")
    for number in range(N_EVENTS):
        event[0] = 1000 + number
        pv[0] = (rng.normal(0, 0.01), rng.normal(0, 0.01), rng.normal(0, 40), rng.integers(0, 12))
        cov[:] = rng.normal(0, 1, (3, 3))
        seg[0] = (rng.normal(0, 1, 3), rng.integers(3, 20))
        n_trk[0] = rng.integers(0, 5)
        trk_pt[:n_trk[0]] = rng.exponential(5, n_trk[0])
        tree.Fill()


def write_rntuple(source: str, tree: str, path: str) -> None:
    """``tree`` of ``source`` as an RNTuple of the same name in ``path``, converted by ROOT itself."""
    import ROOT

    importer = getattr(ROOT.ROOT, "RNTupleImporter", None) or ROOT.ROOT.Experimental.RNTupleImporter
    converter = importer.Create(source, tree, path)
    converter.SetIsQuiet(True)
    converter.Import()


SHIP_CLASSES = r"""
#include "TObject.h"
// FairShip's vetoPoint (a FairMCPoint) and ShipMCTrack, reduced to the members the workflow reads and a few more.
class vetoPoint : public TObject {
public:
  Int_t fTrackID = -1; Double32_t fX = 0, fY = 0, fZ = 0, fPx = 0, fPy = 0, fPz = 0, fTime = 0; Int_t fPdgCode = 0;
  Double_t fLpos[3] = {0, 0, 0};  // the point in the detector's frame, a fixed-size array member
  ClassDef(vetoPoint, 1)
};
class ShipMCTrack : public TObject {
public:
  Int_t fPdgCode = 0; Int_t fMotherId = -1;
  Double32_t fPx = 0, fPy = 0, fPz = 0, fM = 0, fStartX = 0, fStartY = 0, fStartZ = 0, fW = 1;
  ClassDef(ShipMCTrack, 1)
};
"""
POINT_MEMBERS = ("TrackID", "X", "Y", "Z", "PdgCode")
TRACK_MEMBERS = ("PdgCode", "StartX", "StartY", "StartZ", "Px", "Py", "Pz", "W")


def ship_events(rng: np.random.Generator) -> list[dict]:
    """Per event: MC tracks and veto points pointing at them (TrackID -1: a point of no stored track).

    Floats are float32 values, which a ``Double32_t`` without a range stores exactly, so both trees hold one value."""
    out = []
    for number in range(N_EVENTS):
        n_tracks = int(rng.integers(1, 5))
        n_points = 0 if number % 6 == 2 else int(rng.integers(0, 4))
        track_id = rng.integers(-1, n_tracks, n_points)
        tracks = {"PdgCode": rng.choice([13, -13, 211, 22], n_tracks), "StartX": rng.normal(0, 5, n_tracks),
                  "StartY": rng.normal(0, 5, n_tracks), "StartZ": rng.normal(-7000, 10, n_tracks),
                  "Px": rng.normal(0, 1, n_tracks), "Py": rng.normal(0, 1, n_tracks), "Pz": rng.exponential(20, n_tracks),
                  "W": rng.uniform(1, 768.75, n_tracks)}
        points = {"TrackID": track_id, "X": rng.normal(0, 100, n_points), "Y": rng.normal(0, 100, n_points),
                  "Z": np.full(n_points, -2500.0), "PdgCode": tracks["PdgCode"][np.maximum(track_id, 0)]}
        floats = lambda values: {k: v.astype(np.float32) if v.dtype.kind == "f" else v for k, v in values.items()}
        out.append({"points": floats(points), "tracks": floats(tracks)})
    return out


def write_ship(path: str, build_dir: str) -> None:
    """The FairShip-like file: tree ``cbmsim`` (TClonesArrays) and tree ``reference`` (the same as vectors)."""
    import ROOT

    header = Path(build_dir) / "ShipPoints.h"
    header.write_text(SHIP_CLASSES)
    ROOT.gSystem.SetBuildDir(build_dir, True)
    if ROOT.gROOT.ProcessLine(f".L {header}+") != 0:
        raise RuntimeError(f"ACLiC could not compile {header}")
    rows = ship_events(np.random.default_rng(SEED + 1))
    out = ROOT.TFile(path, "RECREATE", "", 505)
    cbmsim = ROOT.TTree("cbmsim", "/cbmroot_0")
    points, tracks = ROOT.TClonesArray("vetoPoint"), ROOT.TClonesArray("ShipMCTrack")
    cbmsim.Branch("vetoPoint", points, 32000, 99)
    cbmsim.Branch("MCTrack", tracks, 32000, 99)
    reference = ROOT.TTree("reference", "the cbmsim values as std::vector branches")
    element = lambda member: "int" if member in ("TrackID", "PdgCode") else "double"
    vectors = {f"vetoPoint_{m}": ROOT.std.vector(element(m))() for m in POINT_MEMBERS}
    vectors.update({f"MCTrack_{m}": ROOT.std.vector(element(m))() for m in TRACK_MEMBERS})
    for name, vector in vectors.items():
        reference.Branch(name, vector)
    for row in rows:
        _fill_clones(points, row["points"], POINT_MEMBERS)
        for i in range(points.GetEntriesFast()):
            for k in range(3):
                points.At(i).fLpos[k] = row["points"]["X"][i].item() + 1000 * k
        _fill_clones(tracks, row["tracks"], TRACK_MEMBERS)
        cbmsim.Fill()
        for name, vector in vectors.items():
            group, member = name.split("_", 1)
            vector.clear()
            for value in row["points" if group == "vetoPoint" else "tracks"][member]:
                vector.push_back(value.item())
        reference.Fill()
    out.Write()
    out.Close()


UNCLOSED_ENTRIES, UNCLOSED_AUTOSAVED = 3000, 1000


def write_unclosed(path: str, autosave: bool) -> None:
    """Fill ``Events`` (AutoSave once if ``autosave``), and leave the file open: run in a process of its own, which
    this ends (``os._exit``, as a killed job ends, without ROOT's closing of open files at exit)."""
    import os

    import ROOT

    file = ROOT.TFile(path, "RECREATE", "", 505)
    tree = ROOT.TTree("Events", "a job killed after an AutoSave")
    event, x = np.zeros(1, np.uint64), np.zeros(1, np.float32)
    tree.Branch("event", event, "event/l")
    tree.Branch("x", x, "x/F")
    tree.SetBasketSize("*", 1000)  # small baskets, so the later entries reach the disk before the exit
    for number in range(UNCLOSED_ENTRIES):
        event[0], x[0] = number, 0.5 * number
        tree.Fill()
        if autosave and number + 1 == UNCLOSED_AUTOSAVED:
            tree.AutoSave("SaveSelf")
    tree.FlushBaskets()
    file.Flush()
    os._exit(0)


def _fill_clones(clones, values: dict, members: tuple[str, ...]) -> None:
    clones.Clear()
    for i in range(len(values[members[0]])):
        item = clones.ConstructedAt(i)
        for member in members:
            setattr(item, f"f{member}", values[member][i].item())


if __name__ == "__main__":
    if sys.argv[1] == "--unclosed":
        write_unclosed(sys.argv[2], autosave=sys.argv[3] == "autosave")
    folder = Path(sys.argv[1])
    for name, autosave in (("root_written_unclosed.root", "autosave"), ("root_written_unclosed_nokeys.root", "none")):
        subprocess.run([sys.executable, __file__, "--unclosed", str(folder / name), autosave], check=True)
    write(str(folder / "root_written_jets.root"))
    (folder / "root_written_jets_rntuple.root").unlink(missing_ok=True)  # the importer refuses to replace a key
    for tree in ("arrays", "structs"):
        write_rntuple(str(folder / "root_written_jets.root"), tree, str(folder / "root_written_jets_rntuple.root"))
    with tempfile.TemporaryDirectory() as build:
        write_ship(str(folder / "root_written_ship.root"), build)
