"""The bundle's run_bundle.py, run in a subprocess that can import only the standard library and
site-packages (no pipeline_steps, and a guard that torch/tensorflow/keras were never imported),
reproduces the framework's output from a ROOT file."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import awkward as ak
import pytest
import uproot

from tests.conftest import REPO
from tests.test_export_bundle import (
    CALRATIO_HYPER,
    EXPORT,
    FLOW_CONDITIONS,
    export_flow,
    physical_rows,
    raw_checksums,
    tiny_calratio,
    tiny_flow,
)

GUARD = textwrap.dedent("""
    import os, runpy, sys
    sys.path[:] = [p for p in sys.path if p and ("site-packages" in p or p.startswith(sys.base_prefix))
                   and not os.path.isdir(os.path.join(p, "pipeline_steps"))]
    runner, *arguments = sys.argv[1:]
    sys.argv = [runner, *arguments]
    try:
        runpy.run_path(runner, run_name="__main__")
        code = 0
    except SystemExit as stop:
        code = stop.code
    forbidden = sorted(m for m in ("pipeline_steps", "torch", "tensorflow", "keras") if m in sys.modules)
    if forbidden:
        print("FORBIDDEN IMPORTS", forbidden)
        sys.exit(3)
    sys.exit(code)
""")



def write_tree(path, name: str, columns: dict) -> None:
    """A TTree as physicists' files hold (uproot 5.7 writes an RNTuple for ``file[name] = columns``)."""
    with uproot.recreate(path) as sink:
        sink.mktree(name, {key: getattr(values, "type", None) if not hasattr(values, "dtype") else values.dtype
                           for key, values in columns.items()})
        sink[name].extend(columns)

def run_guarded(tmp_path: Path, bundle: Path, *arguments) -> subprocess.CompletedProcess:
    """The bundle's runner on ``arguments``, in a subprocess that can import nothing of the project (GUARD)."""
    guard = tmp_path / "guard.py"
    guard.write_text(GUARD)
    return subprocess.run([sys.executable, "-I", str(guard), str(bundle / "run_bundle.py"), str(bundle),
                           *map(str, arguments)], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})


def run_standalone(tmp_path: Path, bundle: Path, source: Path, output: Path, *extra: str,
                   expect_error: bool = False) -> subprocess.CompletedProcess:
    result = run_guarded(tmp_path, bundle, source, output, *extra)
    if expect_error:  # one line, no traceback, no output file
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stdout + result.stderr
        assert not Path(output).exists() or output == source or Path(output).as_uri() == source  # the input, kept
        return result
    assert result.returncode == 0, result.stdout + result.stderr
    with uproot.open(output) as produced:  # a TTree, as it says: `file[tree] = columns` had written an RNTuple
        assert set(produced.classnames().values()) - {"TDirectory"} == {"TTree"}, produced.classnames()
        assert produced.file.compression == uproot.ZSTD(1)  # as the workflow's files; zlib took 4x the time
    return result


def input_key(bundle_dir: Path, source: Path, tree: str = "Events") -> int:
    """The key of a file's values that seeds the runner's streams for it (run_bundle.InputKey)."""
    from pipeline_steps.export import run_bundle

    bundle = run_bundle.Bundle(bundle_dir)
    with uproot.open(source) as opened:
        return run_bundle.check_input(bundle, opened[tree], f"{source}:{tree}", run_bundle.default_step_rows(bundle))


def runner_draws(bundle_dir: Path, source: Path, rows: pd.DataFrame, seed: int, transforms, dim: int):
    """The model's conditions (dequantised) and noise that the runner draws for ``source`` with ``--seed seed``,
    computed by the project's own transforms: each seed keyed by the file's values (run_bundle.keyed_seed)."""
    from pipeline_steps.export.batch import standard_normal
    from pipeline_steps.export.run_bundle import keyed_seed

    key = input_key(bundle_dir, source)
    return (transforms.conditions.forward(rows, seed=keyed_seed(transforms.conditions.seed, key)),
            standard_normal(len(rows), dim, keyed_seed(seed, key)))


def test_an_rntuple_that_the_installed_uproot_cannot_read_is_named_as_such():
    """uproot 5.0 reads the RNTuple that uproot 5.7 (or ROOT 6.34) writes as an unknown object, without
    ``num_entries``: the runner had stopped with an AttributeError's traceback (checked with uproot 5.0.0)."""
    from pipeline_steps.export.run_bundle import _not_rows

    class OldUproot:
        def classname_of(self, name):
            return "ROOT::RNTuple"

    assert _not_rows(OldUproot(), "Events", "in.root:Events").startswith(
        f"in.root:Events is an RNTuple, which this uproot ({uproot.__version__}) cannot read: install a newer uproot")


def test_a_run_names_a_file_of_values_it_has_seen_but_not_empty_files():
    """Two empty files of a skim share their (empty) key and write no rows: nothing repeats, nothing to warn of."""
    from pipeline_steps.export.run_bundle import RunSoFar

    so_far = RunSoFar()
    assert so_far.same_values("a.root", 7, 10) is None and so_far.same_values("b.root", 8, 10) is None
    assert so_far.same_values("c.root", 7, 10) == "a.root"
    assert so_far.same_values("empty1.root", 0, 0) is None and so_far.same_values("empty2.root", 0, 0) is None


def test_input_key_follows_the_values_in_entry_order_not_the_steps_they_are_read_in():
    """The key seeds a file's streams: read in other steps the same file must get the same rows, and values that
    differ only in which entry holds them (a cluster moved to the next jet) are another input."""
    from pipeline_steps.export.run_bundle import InputKey

    jets = {"jet_pt": ak.Array(np.array([50.0, 60.0, 70.0, 80.0, 90.0], np.float32)),
            "cluster_e": ak.Array([[1.0, 2.0], [3.0], [], [4.0, 5.0, 6.0], [7.0]])}

    def key(columns, steps):
        digest = InputKey(list(columns))
        for start, stop in zip(steps[:-1], steps[1:]):
            digest.update({name: values[start:stop] for name, values in columns.items()})
        return digest.value()

    whole = key(jets, [0, 5])
    assert key(jets, [0, 2, 3, 5]) == whole == key(jets, [0, 1, 2, 3, 4, 5])
    moved = {**jets, "cluster_e": ak.Array([[1.0, 2.0, 3.0], [], [], [4.0, 5.0, 6.0], [7.0]])}
    assert key(moved, [0, 5]) != whole
    assert key({**jets, "jet_pt": jets["jet_pt"][::-1]}, [0, 5]) != whole  # the same values in another order


def test_standalone_runner_reproduces_the_flow(tmp_path):
    from pipeline_steps.export.batch import physical_targets
    from pipeline_steps.export.torch_export import load_flow, reference_targets
    from pipeline_steps.preprocess.model_transforms import load_transforms

    bundle = export_flow(tmp_path)
    rows = physical_rows(60, seed=11)[FLOW_CONDITIONS]
    source, output = tmp_path / "in.root", tmp_path / "out.root"
    write_tree(source, "Events", {name: rows[name].to_numpy() for name in FLOW_CONDITIONS})
    one_step = run_standalone(tmp_path, bundle, source, output, "--seed", "7").stderr
    assert "written (" not in one_step  # one step: no progress line before the run's last

    transforms = load_transforms(bundle / "transforms.json")
    conditions, noise = runner_draws(bundle, source, rows, 7, transforms, 3)  # nhits is dequantised
    expected = physical_targets(transforms, reference_targets(load_flow(bundle), conditions, noise), rows, None)
    with uproot.open(output) as produced:
        found = produced["Events"].arrays(library="np")
    assert set(expected) == {"pt", "dz", "charge"}
    for name, values in expected.items():
        if np.issubdtype(values.dtype, np.integer):
            assert np.mean(found[name] != values) <= 0.02, name
        else:
            np.testing.assert_allclose(found[name], values, rtol=1e-4, atol=1e-6, err_msg=name)
    np.testing.assert_array_equal(found["gen_pt"], rows["gen_pt"].to_numpy())
    small_calls = tmp_path / "small_calls.root"  # 4 calls of 15 rows: the same values as one call of 60
    run_standalone(tmp_path, bundle, source, small_calls, "--seed", "7", "--batch-rows", "16")
    steps = tmp_path / "steps.root"  # 9 steps, the last of 4 rows: noise and nhits' dequantisation carry on
    in_steps = run_standalone(tmp_path, bundle, source, steps, "--seed", "7", "--step-rows", "7").stderr
    assert re.search(r"entries 0-6 of 60 written \(12 %\), \d+ rows/s, about \d+ s left", in_steps), in_steps
    by_url = tmp_path / "by_url.root"  # a URL goes to uproot as it is (root:// on EOS, here file://); a file://
    run_standalone(tmp_path, bundle, source.as_uri(), by_url.as_uri(), "--seed", "7")  # output names its path
    nested, in_directory = tmp_path / "nested.root", tmp_path / "in_directory.root"  # a tree in a TDirectory, in steps
    write_tree(nested, "sub/Events", {name: rows[name].to_numpy() for name in FLOW_CONDITIONS})
    run_standalone(tmp_path, bundle, nested, in_directory, "--seed", "7", "--tree", "sub/Events", "--step-rows", "7")
    for again, tree in ((small_calls, "Events"), (steps, "Events"), (by_url, "Events"), (in_directory, "sub/Events")):
        with uproot.open(again) as produced:
            values = produced[tree].arrays(library="np")
        assert set(values) == set(found) and all(np.array_equal(values[name], found[name]) for name in found), again


def test_standalone_runner_runs_many_files_in_one_process_each_as_it_runs_alone(tmp_path):
    """The imports and the ONNX session cost ~0.55 s a file, the jets-size flow's time for ~20,000 rows, so a loop
    over a dataset's small files spent half its time starting. ``--output-dir`` runs a list in one process: each
    file's output is the one it gets alone (its streams are keyed by its own values), a bad file stops the run
    after the files before it are written, and a missing input or two inputs of one name stop it before any runs."""
    from pipeline_steps.export.run_bundle import output_name

    bundle = export_flow(tmp_path)
    rows = physical_rows(55, seed=6)[FLOW_CONDITIONS]
    inputs = {"f1": tmp_path / "a" / "f1.root", "f2": tmp_path / "a" / "f2.root", "f3": tmp_path / "b" / "f3.root"}
    for (name, path), (start, stop) in zip(inputs.items(), [(0, 30), (30, 30), (30, 55)]):
        path.parent.mkdir(exist_ok=True)
        write_tree(path, "Events", {n: rows[n].to_numpy()[start:stop] for n in FLOW_CONDITIONS})
        run_standalone(tmp_path, bundle, path, tmp_path / f"alone_{name}.root", "--seed", "4", "--empty-tree",
                       "empty_output")
    again = tmp_path / "b" / "f3_again.root"  # the same values (a SHiP category list written twice): warned
    shutil.copyfile(inputs["f3"], again)
    listing = tmp_path / "files.txt"  # as `ls` or a dataset query writes it, with a blank line and a comment
    listing.write_text(f"{inputs['f1']}\n\n# the skim's empty file\n{inputs['f2']}\n{inputs['f3']}\n{again}\n")
    (tmp_path / "out").mkdir()
    run = run_guarded(tmp_path, bundle, f"@{listing}", "--output-dir", tmp_path / "out", "--seed", "4",
                      "--empty-tree", "empty_output")
    assert run.returncode == 0 and f"wrote 25 rows to {tmp_path / 'out' / 'f3.root'} (3 of 4)" in run.stderr, run.stderr
    assert f"{again} holds the values of {inputs['f3']}, every branch the bundle reads" in run.stderr
    assert run.stderr.count("holds the values of") == 1  # not the empty file, nor a file of other values
    shutil.copyfile(tmp_path / "alone_f3.root", tmp_path / "alone_f3_again.root")  # its rows: f3's, repeated
    for name in [*inputs, "f3_again"]:
        with uproot.open(tmp_path / "out" / f"{name}.root") as together, \
                uproot.open(tmp_path / f"alone_{name}.root") as alone:
            first, second = together["Events"].arrays(library="np"), alone["Events"].arrays(library="np")
        assert set(first) == set(second) and all(np.array_equal(first[n], second[n]) for n in first), name

    def refused(*arguments) -> str:
        result = run_guarded(tmp_path, bundle, *arguments)
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
        return result.stderr

    bad = tmp_path / "b" / "bad.root"
    write_tree(bad, "Events", {n: np.full(3, np.nan if n == "gen_eta" else 1.0) for n in FLOW_CONDITIONS})
    (tmp_path / "stopped").mkdir()
    error = refused(inputs["f1"], bad, inputs["f3"], "--output-dir", tmp_path / "stopped")
    assert f"(stopped at file 2 of 3, {bad}: the 1 before it are written, it and the 1 after it are not)" in error
    assert sorted(path.name for path in (tmp_path / "stopped").iterdir()) == ["f1.root"]  # whole, no temporary
    (tmp_path / "c").mkdir()
    shutil.copyfile(inputs["f1"], tmp_path / "c" / "f1.root")
    (tmp_path / "none").mkdir()
    assert f"both {inputs['f1']} and {tmp_path / 'c' / 'f1.root'} would write it" in refused(
        inputs["f1"], inputs["f3"], tmp_path / "c" / "f1.root", "--output-dir", tmp_path / "none")
    assert f"{tmp_path / 'a' / 'f4.root'}: no such file" in refused(
        inputs["f1"], tmp_path / "a" / "f4.root", "--output-dir", tmp_path / "none")  # before f1 runs
    assert not list((tmp_path / "none").iterdir())
    assert "expected INPUT OUTPUT, or inputs and --output-dir DIR; got 3 files" in refused(
        inputs["f1"], inputs["f3"], tmp_path / "x.root")
    assert output_name("root://eosuser.cern.ch//eos/user/p/physicist/nano_1.root?svcClass=default") == "nano_1.root"


def test_standalone_runner_runs_a_file_listed_again_for_the_same_output_once(tmp_path):
    """Two lists merged, or one file under a relative and an absolute path: the file had run twice to one output,
    or the run had stopped as two files writing one output. A file run to two outputs still runs twice."""
    bundle = export_flow(tmp_path)
    rows = physical_rows(20, seed=5)[FLOW_CONDITIONS]
    (tmp_path / "a").mkdir()
    for name, (start, stop) in (("f1", (0, 12)), ("f2", (12, 20))):
        write_tree(tmp_path / "a" / f"{name}.root", "Events",
                   {n: rows[n].to_numpy()[start:stop] for n in FLOW_CONDITIONS})
    f1, f2 = tmp_path / "a" / "f1.root", tmp_path / "a" / "f2.root"
    (tmp_path / "list_1.txt").write_text(f"{f1}\n{f2}\n")
    (tmp_path / "list_2.txt").write_text(f"a/../a/f1.root\n{f1}\n")  # read from tmp_path, the runner's folder
    (tmp_path / "out").mkdir()
    run = run_guarded(tmp_path, bundle, "@list_1.txt", "@list_2.txt", "--output-dir", "out")
    assert run.returncode == 0, run.stderr
    assert run.stderr.count("is listed again") == 2 and f"a/../a/f1.root is listed again (as {f1}): run once, to " \
        f"out/f1.root" in run.stderr, run.stderr
    assert run.stderr.count("wrote ") == 2 and "(2 of 2)" in run.stderr and "holds the values of" not in run.stderr
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == ["f1.root", "f2.root"]
    twice = run_guarded(tmp_path, bundle, f1, tmp_path / "out" / "again.root")
    assert twice.returncode == 0 and "listed again" not in twice.stderr, twice.stderr


def test_standalone_runner_skip_existing_goes_on_where_a_stopped_list_stopped(tmp_path):
    """A job array task cut by its time limit had to run its whole list again. ``--skip-existing`` leaves out a file
    whose output exists (outputs appear only once whole) and is newer than the file and the bundle; the files it
    runs give the outputs they give alone. A file made newer, or a bundle exported again, runs again."""
    bundle = export_flow(tmp_path)
    rows = physical_rows(30, seed=8)[FLOW_CONDITIONS]
    (tmp_path / "in").mkdir()
    (tmp_path / "out").mkdir()
    names = ["f1", "f2", "f3"]
    for index, name in enumerate(names):
        write_tree(tmp_path / "in" / f"{name}.root", "Events",
                   {n: rows[n].to_numpy()[10 * index:10 * index + 10] for n in FLOW_CONDITIONS})
    (tmp_path / "list.txt").write_text("".join(f"in/{name}.root\n" for name in names))
    earlier = time.time_ns() - 100 * 10**9  # inputs and bundle well before any output, whatever the clock's step
    for made in [bundle / "bundle.json", *(tmp_path / "in").iterdir()]:
        os.utime(made, ns=(earlier, earlier))

    def run(*extra) -> str:
        result = run_guarded(tmp_path, bundle, "@list.txt", "--output-dir", "out", "--seed", "3", *extra)
        assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
        return result.stderr

    def outputs() -> dict:
        found = {}
        for name in names:
            with uproot.open(tmp_path / "out" / f"{name}.root") as produced:
                found[name] = produced["Events"].arrays(library="np")
        return found

    run()
    first, times = outputs(), {name: (tmp_path / "out" / f"{name}.root").stat().st_mtime_ns for name in names}
    again = run("--skip-existing")  # everything is done: nothing runs, nothing is rewritten
    assert "--skip-existing: kept 3 of 3 outputs" in again and "wrote" not in again, again
    assert {name: (tmp_path / "out" / f"{name}.root").stat().st_mtime_ns for name in names} == times
    (tmp_path / "out" / "f2.root").unlink()  # stopped before f2 was whole: no output
    later = times["f3"] + 10 * 10**9
    os.utime(tmp_path / "in" / "f3.root", ns=(later, later))  # f3 copied again since its output was written
    resumed = run("--skip-existing")
    assert "kept 1 of 3 outputs, each newer than its input and the bundle (out/f1.root); 2 to run" in resumed
    assert "wrote 10 rows to out/f2.root (1 of 2)" in resumed and "(2 of 2)" in resumed, resumed
    assert (tmp_path / "out" / "f1.root").stat().st_mtime_ns == times["f1"]
    rerun = outputs()
    assert all(np.array_equal(rerun[name][column], first[name][column]) for name in names for column in first[name])
    os.utime(bundle / "bundle.json")  # the bundle exported again: every output is older than it
    assert "kept" not in run("--skip-existing")


def test_standalone_runner_logs_the_call_size_it_measures_on_a_large_file_and_the_values_do_not_move(tmp_path):
    from pipeline_steps.export.run_bundle import CALL_ROWS_TRIED, MEASURE_FROM_ROWS

    bundle = export_flow(tmp_path)
    rows = physical_rows(MEASURE_FROM_ROWS + 5, seed=12)[FLOW_CONDITIONS]
    source, measured, fixed = tmp_path / "in.root", tmp_path / "measured.root", tmp_path / "fixed.root"
    write_tree(source, "Events", {name: rows[name].to_numpy() for name in FLOW_CONDITIONS})
    log = run_standalone(tmp_path, bundle, source, measured, "--seed", "3").stderr
    chosen = re.search(r"ONNX Runtime calls of (\d+) rows, the fastest measured here \(rows/s (.*)\)", log)
    assert chosen and int(chosen[1]) in CALL_ROWS_TRIED, log
    assert [int(part.split(":")[0]) for part in chosen[2].split(", ")] == list(CALL_ROWS_TRIED)
    quiet = run_standalone(tmp_path, bundle, source, fixed, "--seed", "3", "--batch-rows", "1000").stderr
    assert "fastest measured" not in quiet  # a fixed size measures nothing
    with uproot.open(measured) as a, uproot.open(fixed) as b:
        first, second = a["Events"].arrays(library="np"), b["Events"].arrays(library="np")
    assert len(first["pt"]) == len(rows) and all(np.array_equal(first[name], second[name]) for name in first)


def test_standalone_runner_measures_the_call_size_over_a_list_of_small_files(tmp_path):
    """Each file below MEASURE_FROM_ROWS, the list above it: the run measures the call size from the file that
    brings its rows there (a list of small files had kept the default 2048 rows a call), and the values are the
    files' own."""
    from pipeline_steps.export.run_bundle import MEASURE_FROM_ROWS

    bundle = export_flow(tmp_path)
    half = MEASURE_FROM_ROWS // 2 + 1
    rows = physical_rows(2 * half, seed=13)[FLOW_CONDITIONS]
    sources = [tmp_path / "first.root", tmp_path / "second.root"]
    for index, source in enumerate(sources):
        write_tree(source, "Events", {n: rows[n].to_numpy()[index * half:(index + 1) * half] for n in FLOW_CONDITIONS})
    (tmp_path / "out").mkdir()
    run = run_guarded(tmp_path, bundle, *sources, "--output-dir", tmp_path / "out", "--seed", "2")
    assert run.returncode == 0 and run.stderr.count("the fastest measured here") == 1, run.stderr
    assert run.stderr.index("second.root (2 of 2)") > run.stderr.index("the fastest measured here")
    for source in sources:
        alone = run_standalone(tmp_path, bundle, source, tmp_path / f"alone_{source.name}", "--seed", "2").stderr
        assert "fastest measured" not in alone  # below MEASURE_FROM_ROWS alone
        with uproot.open(tmp_path / "out" / source.name) as a, uproot.open(tmp_path / f"alone_{source.name}") as b:
            first, second = a["Events"].arrays(library="np"), b["Events"].arrays(library="np")
        assert all(np.array_equal(first[name], second[name]) for name in first), source


@pytest.mark.slow
def test_standalone_runner_reads_an_rntuple_as_a_ttree(tmp_path):
    """The same conditions in an RNTuple (TTree's successor; uproot writes one for ``file[name] = columns``) give
    the same generated rows."""
    bundle = export_flow(tmp_path)
    rows = physical_rows(40, seed=5)[FLOW_CONDITIONS]
    columns = {name: rows[name].to_numpy() for name in FLOW_CONDITIONS}
    ttree, rntuple = tmp_path / "ttree.root", tmp_path / "rntuple.root"
    write_tree(ttree, "Events", columns)
    with uproot.recreate(rntuple) as sink:
        sink["Events"] = columns
    with uproot.open(rntuple) as check:
        assert set(check.classnames().values()) == {"ROOT::RNTuple"}
    outputs = []
    for source in (ttree, rntuple):
        run_standalone(tmp_path, bundle, source, tmp_path / f"out_{source.name}", "--seed", "3")
        with uproot.open(tmp_path / f"out_{source.name}") as produced:
            outputs.append(produced["Events"].arrays(library="np"))
    assert set(outputs[0]) == set(outputs[1]) and len(outputs[0]["pt"]) == 40
    for name in outputs[0]:
        np.testing.assert_array_equal(outputs[1][name], outputs[0][name], err_msg=name)


def test_standalone_runner_reproduces_the_calratio_classifier(tmp_path):
    from pipeline_steps.export.keras_export import keras_predict, load_keras
    from pipeline_steps.export.step import run
    from pipeline_steps.preprocess.calratio_inputs import load_split

    files, transforms, jets, jagged = tiny_calratio(tmp_path / "cr")
    bundle = tmp_path / "export" / "calratio"
    model = {"kind": "calratio_rnn", "conditions": ["jet_pt", "jet_eta"], "hyperparameters": CALRATIO_HYPER}
    run(files, str(transforms), str(tmp_path / "cr" / "test.parquet"), str(bundle),
        {"model_name": "calratio", "model": model, "tree": "CalRatio", "export": EXPORT}, [raw_checksums(tmp_path)])
    source, output = tmp_path / "jets.root", tmp_path / "scores.root"
    import awkward as ak

    write_tree(source, "CalRatio", {**{c: jets[c].to_numpy() for c in jets.columns},
                                    **{name: ak.Array([list(r) for r in rows]) for name, rows in jagged.items()}})
    run_standalone(tmp_path, bundle, source, output)
    sample = load_split(tmp_path / "cr", "test")
    classifier = load_keras(bundle / "model.keras")
    expected = keras_predict(classifier, {k: sample[k] for k in ("jets", "clusters", "tracks", "muon_segments")})
    with uproot.open(output) as produced:
        found = produced["CalRatio"].arrays(library="np")  # io.tree: the dataset's tree
    found = np.stack([found[f"prob_{c}"] for c in ("signal", "qcd", "bib")], axis=1)
    np.testing.assert_allclose(found, expected, atol=1e-5)
    run_standalone(tmp_path, bundle, source, tmp_path / "steps.root", "--step-rows", "7")
    with uproot.open(tmp_path / "steps.root") as produced:
        in_steps = produced["CalRatio"].arrays(library="np")
    assert np.array_equal(np.stack([in_steps[f"prob_{c}"] for c in ("signal", "qcd", "bib")], axis=1), found)


def test_standalone_runner_names_a_bad_calratio_sequence(tmp_path):
    """A NaN inside a jet's clusters, a field with one cluster more than the others and a flat branch where the
    runner reads a list per jet: each named in one line with the file's entry, before any inference."""
    from pipeline_steps.export.step import run

    files, transforms, jets, jagged = tiny_calratio(tmp_path / "cr")
    bundle = tmp_path / "export" / "calratio"
    model = {"kind": "calratio_rnn", "conditions": ["jet_pt", "jet_eta"], "hyperparameters": CALRATIO_HYPER}
    run(files, str(transforms), str(tmp_path / "cr" / "test.parquet"), str(bundle),
        {"model_name": "calratio", "model": model, "tree": "CalRatio", "export": EXPORT}, [raw_checksums(tmp_path)])
    flat = {c: jets[c].to_numpy() for c in jets.columns}
    lists = {name: [list(row) for row in rows] for name, rows in jagged.items()}
    busy = next(i for i, row in enumerate(lists["clus_pt"]) if i > 10 and len(row) > 1)

    def refused(changes: dict) -> str:
        source = tmp_path / "bad.root"
        write_tree(source, "CalRatio", {**flat, **{n: ak.Array(rows) for n, rows in {**lists, **changes}.items()}})
        error = run_standalone(tmp_path, bundle, source, tmp_path / "out.root", "--step-rows", "10",
                               expect_error=True).stderr
        assert len(error.strip().splitlines()) == 1, error
        return error

    nan = [row if i != busy else [row[0], float("nan"), *row[2:]] for i, row in enumerate(lists["clus_pt"])]
    assert (f"branch 'clus_pt' entry {busy} holds a non-finite value; the model needs finite values (1 of entries "
            f"{busy // 10 * 10}-{busy // 10 * 10 + 9} do)") in refused({"clus_pt": nan})
    longer = [row if i != busy else [*row, 0.5] for i, row in enumerate(lists["clus_eta"])]
    assert (f"entry {busy} has {len(longer[busy])} values in 'clus_eta' and {len(longer[busy]) - 1} in 'clus_pt'"
            in refused({"clus_eta": longer}))
    flat_field = refused({"track_pt": np.zeros(len(flat["jet_pt"]), np.float32)})
    assert "branch 'track_pt' holds float32 per entry; this bundle reads one list of numbers per jet" in flat_field


# ---------------------------------------------------------------- log offsets, clips and ratio floors
JETS_DERIVED = {"ptRatio": {"op": "ratio", "of": ["pt", "gen_pt"]},
                "massRatio": {"op": "ratio", "of": ["mass", "gen_mass"], "floor": 1.0}}


def real_jet_rows(n: int, seed: int) -> pd.DataFrame:
    """Jets as real NanoAOD has them: GenJet masses of exactly 0 and -2.6e-7 (float noise) and a few
    below -0.5, responses far beyond the saturations (ptRatio > 3, massRatio > 7, negative masses)."""
    rng = np.random.default_rng(seed)
    gen_pt = rng.exponential(30.0, n) + 15.0
    gen_mass = rng.exponential(6.0, n)
    gen_mass[::7], gen_mass[1::7], gen_mass[2::23] = 0.0, -2.6e-7, -0.7
    pt = gen_pt * rng.normal(1.0, 0.15, n)
    pt[::31] *= 5.0  # pile-up overlaps: ptRatio ~ 5
    mass = np.maximum(gen_mass, 0.5) * rng.lognormal(0.0, 0.5, n)
    mass[3::17] = 20.0  # massRatio up to 20 / 1 GeV floor, beyond the 7 clip
    mass[4::29] = -0.3  # reco mass float noise: below the clip low 0
    area = rng.uniform(0.3, 0.6, n)
    area[::11] = 0.0  # log10(area + 0.001)
    return pd.DataFrame({"gen_pt": gen_pt, "gen_mass": gen_mass, "gen_eta": rng.normal(0.0, 1.5, n),
                         "pt": pt, "mass": mass, "area": area})


def jets_transforms():
    """ModelTransforms fitted as the ``jets`` model's preprocessing does, with every new parameter:
    offsets on both log kinds, clips on conditions and targets, a floored ratio."""
    from pipeline_steps.preprocess.derived import parse_derived
    from pipeline_steps.preprocess.model_transforms import ModelTransforms, model_space_targets
    from pipeline_steps.preprocess.transforms import fit_variable_transforms

    train = real_jet_rows(3000, seed=1)
    derived = parse_derived(JETS_DERIVED)
    targets = ["ptRatio", "massRatio", "area"]
    model_space = model_space_targets(train, targets, derived)
    conditions = fit_variable_transforms(
        train, {"gen_pt": "log10_quantile_normal", "gen_mass": "log_standard", "gen_eta": "standard"}, seed=3,
        offsets={"gen_pt": 0.5, "gen_mass": 1.0}, clips={"gen_pt": (None, 150.0), "gen_mass": (0.0, None)})
    target_transforms = fit_variable_transforms(
        model_space, {"ptRatio": "quantile_normal", "massRatio": "log_standard", "area": "log10_quantile_normal"},
        seed=4, offsets={"massRatio": 0.5, "area": 0.001},
        clips={"ptRatio": (0.0, 3.0), "massRatio": (0.0, 7.0), "area": (0.0, None)},
        point_mass_share=0.01)  # area 0 (9%) and ptRatio at its clip 3 (3%): edge point masses
    return ModelTransforms(conditions, target_transforms, derived, model="jets")


def test_standalone_transforms_apply_offsets_clips_and_ratio_floors_as_the_package(tmp_path):
    """run_bundle's numpy copy of the transforms equals pipeline_steps' on the rows where offset, clip
    and floor act: forward of conditions and model-space targets, inverse, physical outputs."""
    from types import SimpleNamespace

    from pipeline_steps.export import run_bundle
    from pipeline_steps.export.batch import physical_targets
    from pipeline_steps.preprocess.model_transforms import load_transforms, save_transforms

    save_transforms(jets_transforms(), tmp_path / "transforms.json")
    transforms = load_transforms(tmp_path / "transforms.json")
    document = run_bundle.load_json_with_arrays(tmp_path / "transforms.json")
    variables = {v["name"]: v["params"] for s in ("conditions", "targets") for v in document[s]["variables"]}
    assert variables["gen_mass"]["offset"] == 1.0 and variables["massRatio"]["clip_high"] == 7.0
    assert "clip_high" not in variables["gen_mass"] and document["derived"]["massRatio"]["floor"] == 1.0
    assert variables["area"]["point_mass_low"] == 0.0 and variables["ptRatio"]["point_mass_high"] == 3.0

    rows = real_jet_rows(500, seed=2)
    assert (rows["gen_mass"] <= 0).sum() > 100 and (rows["gen_pt"] > 150).sum() > 0
    conditions = {name: rows[name].to_numpy() for name in transforms.condition_names}
    np.testing.assert_array_equal(run_bundle.set_forward(document["conditions"], conditions),
                                  transforms.conditions.forward(rows))
    model_space = transforms.physical_to_targets(rows)
    assert (model_space["ptRatio"] > 3).sum() > 0 and (model_space["massRatio"] > 7).sum() > 0
    targets = run_bundle.set_forward(document["targets"], {n: model_space[n].to_numpy() for n in model_space})
    np.testing.assert_array_equal(targets, transforms.targets.forward(model_space))

    # generated values anywhere, including beyond the training quantiles
    generated = (targets + np.random.default_rng(5).normal(0.0, 0.7, targets.shape)).astype(np.float32)
    found_model_space = run_bundle.set_inverse(document["targets"], generated)
    expected_model_space = transforms.targets.inverse(generated)
    for name in transforms.target_names:
        np.testing.assert_allclose(found_model_space[name], expected_model_space[name], rtol=1e-15, err_msg=name)
    found = run_bundle.physical_outputs(SimpleNamespace(transforms=document, categories=None), generated, conditions)
    expected = physical_targets(transforms, generated, rows, None)
    assert set(found) == set(expected) == {"pt", "mass", "area"}
    for name in expected:
        np.testing.assert_allclose(found[name], expected[name], rtol=1e-15, atol=0, err_msg=name)
    x = transforms.conditions.forward(rows, dtype=np.float64)
    found_conditions = run_bundle.set_inverse(document["conditions"], x)
    expected_conditions = transforms.conditions.inverse(x)
    for name in transforms.condition_names:
        np.testing.assert_allclose(found_conditions[name], expected_conditions[name], rtol=1e-15, err_msg=name)
    # the inverse of a clipped forward is the bound: masses 0, -2.6e-7 and -0.7 come back as 0
    np.testing.assert_allclose(expected_conditions["gen_mass"], np.maximum(rows["gen_mass"], 0.0), atol=1e-12)


def test_standalone_runner_reproduces_a_flow_with_offsets_clips_and_ratio_floors(tmp_path):
    """The whole bundle path (export, its verification, run_bundle.py on a ROOT file without the project)
    on jets with zero/negative gen masses: the physical mass uses max(gen_mass, 1 GeV) as the package."""
    from pipeline_steps.export.batch import physical_targets
    from pipeline_steps.export.step import run
    from pipeline_steps.export.torch_export import load_flow, reference_targets
    from pipeline_steps.preprocess.model_transforms import load_transforms, save_transforms

    transforms = jets_transforms()
    pre = tmp_path / "pre"
    pre.mkdir()
    save_transforms(transforms, pre / "transforms.json")
    rows = real_jet_rows(80, seed=2)[transforms.condition_names]
    test = rows.assign(**{f"cond__{c}": x for c, x in zip(rows.columns, transforms.conditions.forward(rows).T)})
    test.to_parquet(pre / "test.parquet")
    files = tiny_flow(tmp_path / "train", transforms.condition_names, transforms.target_names)
    model = {"kind": "flow", "conditions": transforms.condition_names, "targets": transforms.target_names,
             "derived": JETS_DERIVED}
    bundle = tmp_path / "export" / "jets"
    run(files, str(pre / "transforms.json"), str(pre / "test.parquet"), str(bundle),
        {"model_name": "jets", "model": model, "tree": "Events", "export": EXPORT}, [raw_checksums(tmp_path)])

    source, output = tmp_path / "in.root", tmp_path / "out.root"
    write_tree(source, "Events", {name: rows[name].to_numpy() for name in rows.columns})
    run_standalone(tmp_path, bundle, source, output, "--seed", "7")
    loaded = load_transforms(bundle / "transforms.json")
    generated = reference_targets(load_flow(bundle), *runner_draws(bundle, source, rows, 7, loaded,
                                                                   len(loaded.target_names)))
    expected = physical_targets(loaded, generated, rows, None)
    with uproot.open(output) as produced:
        found = produced["Events"].arrays(library="np")
    assert set(expected) == {"pt", "mass", "area"} and (rows["gen_mass"] < 1.0).sum() > 10
    for name, values in expected.items():
        np.testing.assert_allclose(found[name], values, rtol=1e-4, atol=1e-6 * np.std(values), err_msg=name)


def test_standalone_runner_reads_and_writes_renamed_columns_under_their_branches(tmp_path):
    """bundle.json named renamed columns only: run_bundle.py looked for jet_pt in an ntuple with jet_pT."""
    bundle = export_flow(tmp_path)
    manifest = json.loads((bundle / "bundle.json").read_text())
    manifest["io"]["branches"] = {"gen_pt": "GenJet_pT", "pt": "Jet_pT"}
    (bundle / "bundle.json").write_text(json.dumps(manifest))
    rows = physical_rows(60, seed=11)[FLOW_CONDITIONS]
    source, output = tmp_path / "in.root", tmp_path / "out.root"
    write_tree(source, "Events", {("GenJet_pT" if name == "gen_pt" else name): rows[name].to_numpy()
                                  for name in FLOW_CONDITIONS})
    run_standalone(tmp_path, bundle, source, output, "--seed", "7")
    with uproot.open(output) as produced:
        found = produced["Events"].arrays(library="np")
    assert {"GenJet_pT", "Jet_pT"} <= set(found) and not {"gen_pt", "pt"} & set(found)
    np.testing.assert_array_equal(found["GenJet_pT"], rows["gen_pt"].to_numpy())


def test_standalone_runner_refuses_bad_input_and_changed_bundles_with_one_line_each(tmp_path):
    """A NaN condition had written NaN targets with status 0, a jagged branch failed after inference without
    its name, the output could replace the input, and an edited transforms.json ran without a word."""
    bundle = export_flow(tmp_path)
    rows = physical_rows(40, seed=3)[FLOW_CONDITIONS]
    flat = {name: rows[name].to_numpy() for name in FLOW_CONDITIONS}

    def refused(columns: dict, *, source_name: str = "in.root", output_name: str = "out.root", folder=bundle) -> str:
        source = tmp_path / source_name
        write_tree(source, "Events", columns)
        return run_standalone(tmp_path, folder, source, tmp_path / output_name, expect_error=True).stderr

    nan = {**flat, "gen_eta": np.where(np.arange(40) == 17, np.nan, flat["gen_eta"])}
    assert "branch 'gen_eta' entry 17 is nan; the model needs finite values (1 of entries 0-39 are not)" in refused(nan)
    in_steps = run_standalone(tmp_path, bundle, tmp_path / "in.root", tmp_path / "out.root", "--step-rows", "10",
                              expect_error=True).stderr  # the file's entry, and the step that holds it
    assert "branch 'gen_eta' entry 17 is nan; the model needs finite values (1 of entries 10-19 are not)" in in_steps
    zero_pt = {**flat, "gen_pt": np.where(np.arange(40) >= 23, 0.0, flat["gen_pt"]).astype(flat["gen_pt"].dtype)}
    assert ("branch 'gen_pt' entry 23 is 0.0; this bundle's log_standard transform of 'gen_pt' takes values above 0 "
            "only (its training had no other; 17 of entries 0-39 are not)") in refused(zero_pt)  # had been a traceback
    jagged = {**flat, "gen_pt": ak.Array([[value] for value in flat["gen_pt"]])}
    assert "branch 'gen_pt' holds a list per entry; this bundle reads one number per entry, one row per object" in refused(
        jagged)
    missing = {name: values for name, values in flat.items() if name != "nhits"}
    assert "no branch ['nhits']; this bundle reads ['gen_pt', 'gen_eta', 'nhits']" in refused(missing)
    assert "the output would replace the input file" in refused(flat, output_name="in.root")
    as_url = run_standalone(tmp_path, bundle, (tmp_path / "in.root").as_uri(), tmp_path / "in.root", expect_error=True)
    assert "the output would replace the input file" in as_url.stderr
    to_eos = run_standalone(tmp_path, bundle, tmp_path / "in.root", "root://eos.invalid//user/out.root",
                            expect_error=True).stderr  # had read "no folder <cwd>/root:/eos.invalid/user"
    assert "root://eos.invalid//user/out.root: the output must be a path on this machine, not a URL" in to_eos
    too_small = run_standalone(tmp_path, bundle, tmp_path / "in.root", tmp_path / "out.root", "--batch-rows", "8",
                               expect_error=True).stderr
    assert "--batch-rows 8: at least 16 rows a call" in too_small
    histogram, directory = tmp_path / "histogram.root", tmp_path / "directory.root"
    with uproot.recreate(histogram) as sink:  # --tree naming another object had ended in an AttributeError
        sink["Events"] = np.histogram(flat["gen_pt"], bins=4)
    with uproot.recreate(directory) as sink:
        sink.mkdir("Events")
        sink["Tracks"] = {"x": np.arange(3.0)}
    for source, kind in ((histogram, "TH1D"), (directory, "TDirectory")):
        error = run_standalone(tmp_path, bundle, source, tmp_path / "out.root", expect_error=True).stderr
        assert f"{source}:Events is a {kind}, not a TTree or an RNTuple" in error, error
    assert "the file has trees ['Tracks']" in error
    negative_seed = run_standalone(tmp_path, bundle, tmp_path / "in.root", tmp_path / "out.root", "--seed", "-1",
                                   expect_error=True).stderr  # had been numpy's traceback
    assert "--seed -1: expected a whole number from 0 to 2**64 - 1" in negative_seed
    edited = tmp_path / "edited"
    shutil.copytree(bundle, edited)
    document = json.loads((edited / "transforms.json").read_text())
    document["conditions"]["variables"][1]["params"]["mean"] += 1.0
    (edited / "transforms.json").write_text(json.dumps(document))
    assert "transforms.json: sha256" in refused(flat, folder=edited) and "changed after export" in refused(
        flat, folder=edited)


def test_standalone_runner_names_a_missing_cut_or_foreign_input_and_leaves_no_output(tmp_path):
    """A file ROOT wrote, cut by an interrupted copy, had stopped with a traceback ending in "expected Chunk of
    length 381, received 0 bytes"; a missing file with FileNotFoundError's traceback."""
    bundle = export_flow(tmp_path)
    cut = tmp_path / "cut.root"
    data = (Path(__file__).parent / "data" / "root_written_jets.root").read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    text = tmp_path / "notes.root"
    text.write_text("not ROOT\n" * 50)
    garbage = tmp_path / "garbage.root"  # a ROOT header, then noise: uproot's DeserializationError had escaped
    garbage.write_bytes(data[:64] + np.random.default_rng(1).integers(0, 256, len(data) - 64, dtype=np.uint8).tobytes())
    expected = {tmp_path / "nope.root": "nope.root: no such file",
                cut: f"cut.root: truncated ROOT file: the header says {len(data)} bytes, the file has {len(data) // 2}",
                text: "notes.root: cannot be opened as a ROOT file",
                garbage: "garbage.root: cannot be opened as a ROOT file",
                "root://eos.invalid//x.root": "root://eos.invalid//x.root: cannot be opened as a ROOT file"}
    for source, message in expected.items():
        error = run_standalone(tmp_path, bundle, source, tmp_path / "out.root", expect_error=True).stderr
        assert message in error and len(error.strip().splitlines()) == 1, error
    assert not list(tmp_path.glob("*out.root*"))  # neither the output nor its temporary


def test_standalone_runner_names_a_folder_that_is_not_a_bundle_and_an_output_it_cannot_write(tmp_path):
    """A mistyped bundle folder had stopped with FileNotFoundError's traceback, and a missing output folder
    with another, after the whole model had run."""
    from pipeline_steps.export.manifest import FORMAT_VERSION
    from pipeline_steps.export.run_bundle import BUNDLE_FORMAT, BundleError, OutputTree

    assert BUNDLE_FORMAT == FORMAT_VERSION  # the runner reads the format the export writes
    source = tmp_path / "in.root"
    write_tree(source, "Events", {"gen_pt": np.arange(3.0)})
    folder = tmp_path / "bundle"
    folder.mkdir()
    shutil.copy(REPO / "pipeline_steps/export/run_bundle.py", folder)

    def refused(output: str = "out.root") -> str:
        error = run_standalone(tmp_path, folder, source, tmp_path / output, expect_error=True).stderr
        assert len(error.strip().splitlines()) == 1, error
        return error

    assert f"{folder}: no bundle.json; name a bundle folder" in refused()
    (folder / "bundle.json").write_text("{")
    assert "bundle.json: not a bundle manifest (JSONDecodeError" in refused()
    (folder / "bundle.json").write_text('{"format": 1}')
    assert f"bundle format 1; this runner reads format {BUNDLE_FORMAT}: run the run_bundle.py inside" in refused()
    assert f"missing/out.root: no folder {tmp_path / 'missing'} to write the output into" in refused("missing/out.root")
    (tmp_path / "a_file").write_text("")
    with pytest.raises(BundleError, match="a_file/out.root: cannot be written"):
        with OutputTree(tmp_path / "a_file" / "out.root", "Events"):
            pass


def test_standalone_runner_writes_its_output_whole_or_not_at_all(tmp_path):
    """The output had been written in place: a run stopped while writing left a half-written file. Written a
    step at a time, a run stopped after its first step leaves nothing either."""
    from pipeline_steps.export.run_bundle import OutputTree

    with pytest.raises(TypeError, match="cannot write NumPy dtype object"):  # fails inside uproot's write
        with OutputTree(tmp_path / "out.root", "Events") as output:
            output.write({"x": np.arange(3.0), "name": np.array(["a", None, 1])})
    assert not list(tmp_path.iterdir())  # the temporary went with the failure
    with pytest.raises(RuntimeError, match="between two steps"):
        with OutputTree(tmp_path / "out.root", "Events") as output:
            output.write({"x": np.arange(3.0)})
            raise RuntimeError("stopped between two steps")
    assert not list(tmp_path.iterdir())
    with OutputTree(tmp_path / "out.root", "Events") as output:
        output.write({"x": np.arange(3.0)})
        output.write({"x": np.arange(3.0, 5.0)})
    assert [path.name for path in tmp_path.iterdir()] == ["out.root"]
    assert b".tmp" not in (tmp_path / "out.root").read_bytes()  # the file does not record the temporary name
    assert uproot.open(tmp_path / "out.root")["Events"]["x"].array(library="np").tolist() == [0, 1, 2, 3, 4]


def test_standalone_runner_writes_the_real_branch_types_and_the_same_values_for_one_row(tmp_path):
    """Every target had been written as double (charge int8 in the real table); a one-row file had got other
    values than the same row inside a larger file (another ONNX Runtime kernel below 8 rows)."""
    from pipeline_steps.export.run_bundle import Bundle, set_forward

    bundle = export_flow(tmp_path)
    assert json.loads((bundle / "bundle.json").read_text())["io"]["dtypes"] == {
        "pt": "float32", "dz": "float32", "charge": "int8"}
    rows = physical_rows(30, seed=5)[FLOW_CONDITIONS]
    source, output = tmp_path / "in.root", tmp_path / "out.root"
    write_tree(source, "Events", {name: rows[name].to_numpy() for name in FLOW_CONDITIONS})
    run_standalone(tmp_path, bundle, source, output, "--seed", "7")
    with uproot.open(output) as produced:
        found = produced["Events"].arrays(library="np")
    assert found["charge"].dtype == np.int8 and found["pt"].dtype == np.float32
    runner = Bundle(bundle)  # one row, alone in its call, gets the values it gets among 30 (the same noise)
    feeds = {"conditions": set_forward(runner.transforms["conditions"], {n: rows[n].to_numpy() for n in rows}),
             "noise": np.random.default_rng(7).standard_normal((30, 3)).astype(np.float32)}
    assert np.array_equal(runner.run_onnx({name: value[:1] for name, value in feeds.items()}),
                          runner.run_onnx(feeds)[:1])


def test_standalone_runner_files_run_with_one_seed_do_not_share_noise_and_the_same_values_give_the_same_rows(
        tmp_path):
    """Seeded by ``--seed`` alone, every file had drawn the same noise: row i of two files got the same noise
    vector (the jets' response of row i in two files of independent jets had a rank correlation of 0.84), so a
    sample merged from a loop over files, one seed, repeated its fluctuations. Each file's streams are now keyed
    by its values: a file differing in one value of its first row shares no other row's values; the same values
    rewritten in another file (another UUID, other baskets, an RNTuple) give the same rows."""
    bundle = export_flow(tmp_path)
    rows = physical_rows(200, seed=8)[FLOW_CONDITIONS]
    columns = {name: rows[name].to_numpy() for name in FLOW_CONDITIONS}
    changed = {**columns, "gen_pt": columns["gen_pt"].copy()}
    changed["gen_pt"][0] *= 1.01
    write_tree(tmp_path / "a.root", "Events", columns)
    write_tree(tmp_path / "changed.root", "Events", changed)
    with uproot.recreate(tmp_path / "copy.root", compression=uproot.LZMA(5)) as sink:  # the values, other bytes
        sink.mktree("Events", {name: values.dtype for name, values in columns.items()})
        for start in range(0, 200, 64):
            sink["Events"].extend({name: values[start:start + 64] for name, values in columns.items()})
    with uproot.recreate(tmp_path / "rntuple.root") as sink:
        sink["Events"] = columns
    found = {}
    for name in ("a", "changed", "copy", "rntuple"):
        run_standalone(tmp_path, bundle, tmp_path / f"{name}.root", tmp_path / f"out_{name}.root", "--seed", "7")
        with uproot.open(tmp_path / f"out_{name}.root") as produced:
            found[name] = produced["Events"].arrays(library="np")
    for again in ("copy", "rntuple"):
        assert all(np.array_equal(found[again][name], found["a"][name]) for name in found["a"]), again
    for name in ("pt", "dz"):  # the same conditions in rows 1-199, other noise: (almost) every value moves
        assert np.mean(found["changed"][name][1:] == found["a"][name][1:]) < 0.05, name
    assert np.array_equal(found["changed"]["gen_eta"], found["a"]["gen_eta"])


def test_standalone_runner_refuses_an_empty_tree_or_writes_it_empty_when_asked(tmp_path):
    """A tree without entries (a skim's empty file) had stopped inside ONNX Runtime's first Reshape with a
    traceback. It is refused in one line by default; ``--empty-tree empty_output`` writes the tree every other
    file gets, with no entries, so that a loop over files gives one output per input."""
    bundle = export_flow(tmp_path)
    rows = physical_rows(3, seed=5)[FLOW_CONDITIONS]
    outputs = {}
    for n in (3, 0):
        source = tmp_path / f"in{n}.root"
        write_tree(source, "Events", {name: rows[name].to_numpy()[:n] for name in FLOW_CONDITIONS})
        if n == 0:
            error = run_standalone(tmp_path, bundle, source, tmp_path / "out0.root", expect_error=True).stderr
            assert f"{source}:Events: the tree has no entries" in error and len(error.strip().splitlines()) == 1
        run_standalone(tmp_path, bundle, source, tmp_path / f"out{n}.root", "--empty-tree", "empty_output")
        with uproot.open(tmp_path / f"out{n}.root") as produced:
            outputs[n] = (produced["Events"].num_entries, produced["Events"].typenames())
    assert outputs[3][0] == 3 and outputs[0][0] == 0
    assert outputs[0][1] == outputs[3][1] and outputs[0][1]["charge"] == "int8_t"  # the same branches and types


def test_two_writers_of_one_output_never_share_a_temporary(tmp_path):
    """The same file in two SLURM array tasks' lists: two writers of one output. Its temporary had been named by
    the pid alone, so two hosts whose pids matched wrote one temporary, the second truncating the first's (here
    one process plays both). Each writer now has its own, and the last to finish leaves a whole file."""

    from pipeline_steps.export.run_bundle import OutputTree, this_process_place

    with OutputTree(tmp_path / "out.root", "Events") as first, OutputTree(tmp_path / "out.root", "Events") as second:
        assert first.temporary != second.temporary and this_process_place()[0] in first.temporary.name
        first.write({"x": np.arange(3.0)})
        second.write({"x": np.arange(5.0)})
    with uproot.open(tmp_path / "out.root") as produced:  # first finished last
        assert produced["Events"]["x"].array(library="np").tolist() == [0.0, 1.0, 2.0]
    assert [path.name for path in tmp_path.iterdir()] == ["out.root"]


def test_standalone_runner_writes_zlib_where_its_uproot_cannot_write_zstd(monkeypatch):
    """uproot before 5.4 compresses ZSTD only with the zstandard package, which pip does not bring with it."""
    from pipeline_steps.export.run_bundle import output_compression

    assert output_compression() == uproot.ZSTD(1)

    def missing(self, data):
        raise ModuleNotFoundError("install the 'zstandard' package")

    monkeypatch.setattr(uproot.ZSTD, "compress", missing)
    assert output_compression() == uproot.ZLIB(1)


def run_slowly_until_it_writes(tmp_path: Path, stderr) -> tuple:
    """(bundle, input, output, process): a runner of 200,000 rows in calls of 16, seconds long, returned once its
    temporary output appears (every entry checked, the first step not yet written), to be stopped there."""
    bundle = export_flow(tmp_path)
    rows = physical_rows(200_000, seed=4)[FLOW_CONDITIONS]
    source, output = tmp_path / "in.root", tmp_path / "out.root"
    write_tree(source, "Events", {name: rows[name].to_numpy() for name in FLOW_CONDITIONS})
    run = subprocess.Popen([sys.executable, str(bundle / "run_bundle.py"), str(bundle), str(source), str(output),
                            "--batch-rows", "16", "--step-rows", "20000"], cwd=tmp_path, stderr=stderr, text=True,
                           env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob(".out.root.*.tmp.root")) and run.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    assert run.poll() is None, "the run ended before it could be stopped: give it more rows"
    return bundle, source, output, run


def test_standalone_runner_stopped_by_sigterm_leaves_neither_output_nor_temporary(tmp_path):
    """A batch job at its time limit gets SIGTERM: Python's default had ended the runner at once and left its
    hidden temporary output (up to the whole output's size) beside the user's files."""
    import signal

    _, _, output, run = run_slowly_until_it_writes(tmp_path, stderr=subprocess.PIPE)
    run.send_signal(signal.SIGTERM)
    _, stderr = run.communicate(timeout=60)
    assert run.returncode == 128 + signal.SIGTERM and "stopped by SIGTERM; no output written" in stderr, stderr
    assert not output.exists() and not list(tmp_path.glob(".out.root.*")), sorted(p.name for p in tmp_path.iterdir())


def test_a_rerun_removes_the_temporaries_of_its_output_that_a_hard_kill_left_on_its_host_and_names_the_rest(
        tmp_path):
    """SIGKILL (the OOM killer, SLURM 30 s after a time limit) runs no ``finally``: the killed run's hidden
    temporary had stayed beside the outputs for good, each rerun adding one. A rerun removes those of this host
    whose process is gone, keeps a live process's (the same file in two array tasks' lists), and names another
    host's, which it cannot check. Other outputs' temporaries are not its own."""
    import signal

    from pipeline_steps.export.run_bundle import TEMPORARY_END, this_process_place

    bundle, source, output, killed = run_slowly_until_it_writes(tmp_path, stderr=subprocess.DEVNULL)
    killed.send_signal(signal.SIGKILL)
    killed.wait(timeout=60)
    [left] = tmp_path.glob(f".out.root.*{TEMPORARY_END}")  # what the OOM killer leaves
    host, namespace = this_process_place()
    kept = {"alive": f".out.root.{host}_{namespace}_{os.getpid()}_0a1b2c3d{TEMPORARY_END}",
            "elsewhere": f".out.root.node-b17_4026531836_{killed.pid}_0a1b2c3d{TEMPORARY_END}",
            "other output": f".out.root.x.root.{host}_{namespace}_{killed.pid}_0a1b2c3d{TEMPORARY_END}"}
    for name in kept.values():
        (tmp_path / name).write_bytes(b"half a ROOT file")
    run = run_standalone(tmp_path, bundle, source, output, "--seed", "1", "--step-rows", "100000")
    assert not left.exists()
    assert f"removed {left}, left by process {killed.pid} of this host, which is gone" in run.stderr, run.stderr
    assert all((tmp_path / name).exists() for name in kept.values())
    assert (f"{tmp_path / kept['elsewhere']}: a temporary of {output} written on node-b17 (process {killed.pid}): "
            f"a run there writes it, or was killed outright") in run.stderr
    assert run.stderr.count(TEMPORARY_END) == 2, run.stderr  # the removed one and the other host's, nothing else


def test_the_runner_makes_a_missing_output_dir_and_names_one_it_cannot_make(tmp_path):
    """The jobs of an array given a new ``--output-dir`` had each stopped with "no folder ... to write the output
    into": the folder and its parents are made, as ``mkdir -p``, and said; a file in the way is one line."""
    bundle = export_flow(tmp_path)
    rows = physical_rows(30, seed=8)[FLOW_CONDITIONS]
    source = tmp_path / "in.root"
    write_tree(source, "Events", {name: rows[name].to_numpy() for name in FLOW_CONDITIONS})
    run = run_guarded(tmp_path, bundle, source, "--output-dir", "run3/outputs", "--seed", "2")
    assert run.returncode == 0 and "made the output folder run3/outputs" in run.stderr, run.stderr
    with uproot.open(tmp_path / "run3" / "outputs" / "in.root") as produced:
        assert produced["Events"].num_entries == 30
    again = run_guarded(tmp_path, bundle, source, "--output-dir", "run3/outputs", "--seed", "2")
    assert again.returncode == 0 and "made the output folder" not in again.stderr, again.stderr
    (tmp_path / "taken").write_text("a file, not a folder")
    refused = run_guarded(tmp_path, bundle, source, "--output-dir", "taken/outputs")
    assert refused.returncode == 2 and "Traceback" not in refused.stderr, refused.stderr
    assert "run_bundle.py: error: --output-dir taken/outputs: cannot be made a folder (" in refused.stderr


def test_the_runners_domain_check_takes_what_the_forward_transform_takes():
    """A value is refused exactly where the forward transform would stop: a dequantised count of 0 becomes
    0.001-0.999 (taken), -1 cannot; a stored clip and offset take any value; each refusal names the entry."""
    from pipeline_steps.export.run_bundle import BundleError, check_transform_domain, set_forward

    section = {"variables": [
        {"name": "nhits", "kind": "log_standard", "dequantize": True, "params": {"mean": 1.0, "std": 1.0}},
        {"name": "mass", "kind": "log_standard", "params": {"mean": 1.0, "std": 1.0, "offset": 1.0, "clip_low": 0.0}},
    ], "seed": 3}
    branches = {"nhits": "Muon_nhits", "mass": "GenJet_mass"}
    taken = {"nhits": np.array([0.0, 3.0, 0.0]), "mass": np.array([-7.0, 0.0, 1e30])}
    check_transform_domain(section, taken, branches, "in.root:Events", 0)
    assert np.isfinite(set_forward(section, taken)).all()  # and the transform takes them
    refused = {"nhits": np.array([0.0, 3.0, -1.0]), "mass": np.zeros(3)}
    with pytest.raises(BundleError, match=r"in.root:Events: branch 'Muon_nhits' entry 102 is -1.0; .* takes values above "
                                          r"0 only \(its training had no other; 1 of entries 100-102 are not\)"):
        check_transform_domain(section, refused, branches, "in.root:Events", 100)
    with pytest.raises(ValueError):  # the forward transform itself stops there, which the check now names first
        set_forward(section, refused)


def test_a_sigterm_while_the_input_opens_is_not_reported_as_a_bad_input(monkeypatch):
    """Opening the input turns uproot's errors into "cannot be opened as a ROOT file"; the runner's Stopped had
    been an Exception too, so a SIGTERM there read as a bad file with status 2."""
    import uproot

    from pipeline_steps.export import run_bundle

    def stopped(*args, **kwargs):
        run_bundle._stop(15, None)

    monkeypatch.setattr(uproot, "open", stopped)
    with pytest.raises(run_bundle.Stopped):
        run_bundle.open_input("root://eos.invalid//x.root")


def test_standalone_runner_logs_progress_after_the_first_step_then_at_most_every_interval(capsys):
    from pipeline_steps.export.run_bundle import Progress

    now = [0.0]
    progress = Progress(1000, clock=lambda: now[0], every_s=30.0)
    for stop, at in ((100, 10.0), (200, 20.0), (300, 39.0), (400, 41.0), (1000, 100.0)):
        now[0] = at
        progress.step_written(stop)
    lines = capsys.readouterr().err.splitlines()
    # the first step at once; 300 is 29 s after it, 400 the first past 30 s; the last step is the run's own line
    assert lines == ["entries 0-99 of 1000 written (10 %), 10 rows/s, about 90 s left",
                     "entries 0-399 of 1000 written (40 %), 10 rows/s, about 62 s left"], lines
    single = Progress(50, clock=lambda: now[0])
    single.step_written(50)
    assert capsys.readouterr().err == ""


def test_standalone_runner_parses_on_the_oldest_python_its_onnxruntime_installs_on_and_the_readme_says_which():
    """The runner goes to other machines' Pythons; the oldest that can install the onnxruntime it accepts is
    MIN_ONNXRUNTIME_PYTHON (the README had said 3.9, where pip finds no onnxruntime 1.20.1). Syntax newer than
    that (``except*``, PEP 695 generics) would stop it there before its first line ran."""
    import ast

    from pipeline_steps.export.run_bundle import MIN_ONNXRUNTIME_PYTHON

    runner = REPO / "pipeline_steps" / "export" / "run_bundle.py"
    ast.parse(runner.read_text(), filename=str(runner), feature_version=MIN_ONNXRUNTIME_PYTHON)
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("## Using a bundle elsewhere"):readme.index("## Running on a cluster")]
    assert f"Python {'.'.join(map(str, MIN_ONNXRUNTIME_PYTHON))} or later" in section


def test_standalone_runner_refuses_an_onnxruntime_that_rounds_by_batch_and_a_category_it_does_not_know():
    """onnxruntime 1.20.0 gave 191 of 293 jets another pt; a SHiP category of 7 or 2.5 came out in the
    model's normalised units (Pz -0.925, a negative momentum) with status 0."""
    from pipeline_steps.export.run_bundle import BundleError, check_categories, check_onnxruntime_version

    with pytest.raises(BundleError, match=r"onnxruntime 1.20.0 rounds .* install onnxruntime>=1.20.1"):
        check_onnxruntime_version("1.20.0")
    for version in ("1.20.1", "1.22.0", "1.23.0.dev20251201"):
        check_onnxruntime_version(version)
    with pytest.raises(BundleError, match=r"1.19.2 rounds .*>=1.20.1 \(its wheels need Python 3.10 or later; this is "
                                          r"Python 3.9\)"):  # pip finds nothing newer there
        check_onnxruntime_version("1.19.2", python=(3, 9))
    categories = {"categories": {str(c): {} for c in (1, 2, 3, 4)}}
    check_categories(categories, np.array([1, 4, 2, 3], dtype=np.int8), "in.root:cbmsim")
    for bad in (np.array([1, 7, 0, 4]), np.array([1.0, 2.5])):
        with pytest.raises(BundleError, match=r"in.root:cbmsim: entry 1 has category .* expected one of \[1, 2, 3, 4\]"):
            check_categories(categories, bad, "in.root:cbmsim")


def test_the_readmes_examples_flatten_a_nanoaod_file_for_the_jets_bundle_and_its_output_back_per_event(
        tmp_path, monkeypatch):
    """The README's "Using a bundle elsewhere" flattens a NanoAOD file for the jets bundle: run it as written on a
    toy NanoAOD file, and its branches must be the jets model's conditions, one row per generator-level jet. Its
    second example puts the runner's flat output back into the file's events: each event's generated jets must
    be the rows of its own generator-level jets, in their order."""
    import re

    import yaml

    from pipeline_steps.toy.step import ToySettings, generate_file

    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("## Using a bundle elsewhere"):readme.index("## Running on a cluster")]
    flatten, per_event = re.findall(r"```python\n(.*?)```", section, re.S)
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    dataset = config["datasets"]["nanoaod"]
    generate_file(tmp_path / "nano.root", "nanoaod", 0,
                  ToySettings(dataset["toy"]["layout"], 1, 200, dataset["tree"], 42, None))
    monkeypatch.chdir(tmp_path)
    namespace = {}
    exec(compile(textwrap.dedent(flatten), "README.md", "exec"), namespace)
    flat = uproot.open(tmp_path / "gen_jets.root")["Events"]
    assert sorted(flat.keys()) == sorted(config["models"]["jets"]["conditions"])
    nano = uproot.open(tmp_path / "nano.root")["Events"]
    assert flat.num_entries == int(nano["nGenJet"].array(library="np").sum())

    # the runner's output as it comes: one row per input row, in order (here pt a function of the row's gen_pt)
    outputs = ["pt", "jetId"]
    (tmp_path / "jets").mkdir()
    (tmp_path / "jets" / "bundle.json").write_text(json.dumps({"variables": {"outputs": outputs}}))
    gen_pt = flat["gen_pt"].array(library="np")
    write_tree(tmp_path / "fast_jets.root", "Events", {"pt": 1.1 * gen_pt, "jetId": np.arange(len(gen_pt)) % 7,
                                                      "gen_pt": gen_pt})
    exec(compile(textwrap.dedent(per_event), "README.md", "exec"), namespace)
    fast, real = uproot.open(tmp_path / "fast_events.root")["Events"].arrays(), nano.arrays(["GenJet_pt"])
    assert len(fast) == nano.num_entries and ak.all(fast["nFastJet"] == ak.num(real["GenJet_pt"]))
    assert ak.all(fast["FastJet_pt"] == 1.1 * real["GenJet_pt"]) and not set(fast.fields) & set(nano.keys())
