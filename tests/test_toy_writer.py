"""Same seed -> byte-identical files; chunked streaming; atomic output; the Snakemake adapter."""

import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import uproot

from pipeline_steps.common.errors import ConfigError
from pipeline_steps.toy import writer
from pipeline_steps.toy.step import ToySettings, file_seed_sequence, generate_file, run


REPO = Path(__file__).resolve().parents[1]


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("layout, dataset, tree", [("nanoaod", "nanoaod", "Events"), ("calratio_main", "calratio_main", "CalRatio")])
def test_same_seed_gives_identical_bytes(tmp_path, layout, dataset, tree):
    settings = ToySettings(layout, 2, 200, tree, 7)
    first, second = tmp_path / "a" / "0.root", tmp_path / "b" / "other_name.root"
    generate_file(first, dataset, 0, settings)
    time.sleep(1.1)  # TDatime has 1 s resolution: a clock leak would show
    generate_file(second, dataset, 0, settings)
    assert _sha(first) == _sha(second)
    other_seed = tmp_path / "c.root"
    generate_file(other_seed, dataset, 0, ToySettings(layout, 2, 200, tree, 8))
    assert _sha(first) != _sha(other_seed)


def _numpy_blas() -> str:
    return np.show_config(mode="dicts")["Build Dependencies"]["blas"]["name"]


def _numpy_runs_avx512() -> bool:
    return bool(np._core._multiarray_umath.__cpu_features__.get("X86_V4"))


# Each a way the CPU had moved the LHCb toy's bytes, the setting that makes this machine compute as another CPU,
# and when this machine cannot show it.
CPU_DEPENDENCES = {
    # the covariances' A A^T had been a matmul: OpenBLAS picks its kernel (FMA or not, its summation order) by CPU
    "blas_kernel": ({"OPENBLAS_CORETYPE": "Nehalem"},
                    lambda: "openblas" not in _numpy_blas() and f"numpy's BLAS here is {_numpy_blas()}, not OpenBLAS"),
    # exp, tan, arctan and 10**x had been numpy's, which has its own AVX-512 code for them (toy/libm.py)
    "numpy_simd": ({"NPY_DISABLE_CPU_FEATURES": "X86_V4 AVX512_ICL AVX512_SPR"},
                   lambda: not _numpy_runs_avx512() and "numpy runs no AVX-512 code here (none on this CPU, or "
                                                         "NPY_DISABLE_CPU_FEATURES): nothing to turn off"),
}


@pytest.mark.parametrize("dependence", sorted(CPU_DEPENDENCES))
def test_lhcb_toy_bytes_do_not_follow_the_cpu(tmp_path, dependence):
    """The same file whether this CPU's kernels run or another CPU's (Nehalem's OpenBLAS, numpy without AVX-512).
    The toy's values are float64, written as they are, so a last-bit difference in one function changed the file."""
    setting, cannot_show = CPU_DEPENDENCES[dependence]
    reason = cannot_show()
    if reason:
        pytest.skip(reason)
    script = ("import sys; from pipeline_steps.toy.step import ToySettings, generate_file; "
              "generate_file(sys.argv[1], 'lhcb_tracks', 0, ToySettings('lhcb_tracks', 1, 3000, 'Tracks', 42))")
    files = {}
    for name, changes in (("native", {}), ("other", setting)):
        env = {key: value for key, value in os.environ.items() if key not in setting}
        env.update(changes)
        files[name] = tmp_path / f"{name}.root"
        subprocess.run([sys.executable, "-c", script, str(files[name])], env=env, check=True, cwd=REPO)
    assert _sha(files["native"]) == _sha(files["other"])


def test_seed_streams_differ_by_dataset_and_index():
    states = {tuple(file_seed_sequence(42, d, i).generate_state(4)) for d in ("ship", "nanoaod") for i in (0, 1)}
    assert len(states) == 4


def test_streams_in_chunks(tmp_path, monkeypatch):
    monkeypatch.setattr(writer, "CHUNK_ENTRIES", 100)
    monkeypatch.setattr("pipeline_steps.toy.step.CHUNK_ENTRIES", 100)
    path = tmp_path / "x.root"
    generate_file(path, "lhcb_tracks", 0, ToySettings("lhcb_tracks", 1, 350, "Tracks", 1))
    tree = uproot.open(path)["Tracks"]
    assert tree.num_entries == 350
    assert tree["p"].num_baskets == 4  # one basket per chunk: memory bounded by the chunk


def test_failed_write_leaves_no_file(tmp_path):
    def chunks():
        yield {"a": np.arange(3)}
        raise RuntimeError("generator failed")

    with pytest.raises(RuntimeError, match="generator failed"):
        writer.write_tree(tmp_path / "x.root", "T", chunks(), writer.uuid_from_seed(np.random.SeedSequence(1)))
    assert os.listdir(tmp_path) == []


def test_datetime_patch_is_restored(tmp_path):
    original = uproot._util.datetime_to_code
    generate_file(tmp_path / "x.root", "ship", 0, ToySettings("ship", 1, 10, "cbmsim", 1))
    assert uproot._util.datetime_to_code is original


def test_run_writes_every_file_of_the_dataset_as_alone_and_a_log(tmp_path):
    """Each output gets the stream of the index in its name, whatever the order Snakemake lists them in."""
    outputs, log = [tmp_path / "data" / f"{index}.root" for index in (1, 0)], tmp_path / "logs" / "ship.log"
    params = {"toy": {"layout": "ship", "n_files": 2, "entries_per_file": 50, "rogue_file": 1}, "tree": "cbmsim", "seed": 1}
    run([str(o) for o in outputs], "ship", params, str(log))
    alone = tmp_path / "alone" / "1.root"
    alone.parent.mkdir()
    generate_file(alone, "ship", 1, ToySettings.from_params(params["toy"], "cbmsim", 1))
    assert uproot.open(outputs[1])["cbmsim"].num_entries == 50
    assert outputs[0].read_bytes() == alone.read_bytes() and outputs[1].read_bytes() != alone.read_bytes()
    assert log.read_text().count("wrote") == 2


def test_index_beyond_n_files_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="n_files = 2"):
        generate_file(tmp_path / "5.root", "ship", 5, ToySettings("ship", 2, 10, "cbmsim", 1))


def test_unknown_layout_is_a_config_error():
    with pytest.raises(ConfigError, match="layout"):
        ToySettings.from_params({"layout": "atlas", "n_files": 1, "entries_per_file": 1}, "T", 1)
