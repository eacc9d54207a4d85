"""Write ``tests/data/root_written_jets.root`` with ROOT itself: one set of jets stored the two ways real ntuples do.

uproot writes variable-length arrays only as C-style arrays with an Int_t counter, so the layouts that only ROOT
writes are fixed here once and committed (40 events, ~20 kB):

- tree ``vectors``: ATLAS-style ``std::vector<float>`` / ``std::vector<int>`` branches and no count branch
  (``jet_pt``, ``jet_truthIdx``, ``truthjet_pt``, ...), the layout of most analysis ntuples;
- tree ``arrays``: NanoAOD v12 types, C-style arrays with ``UInt_t`` counters (``nJet``, ``nGenJet``), a ``Short_t``
  index (``Jet_genJetIdx``) and ``UChar_t`` ids (``Jet_jetId``).

Both hold the same values, with the edge values real files carry: events without jets, unmatched jets (index -1)
and indices past the stored truth jets (a skimmed collection), gen masses of 0 and -2.6e-7. ``tests/test_ingest_vectors.py``
ingests both and expects the same table.

Run with ROOT's Python bindings, which this project does not install (``pip install ROOT`` in a separate venv):
    python tools/write_root_fixture.py tests/data/root_written_jets.root
"""

from __future__ import annotations

import sys

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
    import ROOT

    rows = events(np.random.default_rng(SEED))
    out = ROOT.TFile(path, "RECREATE", "", 505)  # ZSTD level 5, ROOT's current default
    _vectors_tree(rows)
    _arrays_tree(rows)
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


if __name__ == "__main__":
    write(sys.argv[1])
