"""Resolving `datasets.<name>.files`: every pattern names a readable file, each file is read once, and a
mistake is a planning error that names the config key, the path and what was expected."""

from __future__ import annotations

import pytest

from pipeline_steps.common.errors import ConfigError
from pipeline_steps.workflow_config import (
    check_raw_files,
    expand_file_patterns,
    files_by_stem,
    is_blacklisted,
    source_file_name,
)


@pytest.fixture
def raw(tmp_path, monkeypatch):
    """tmp_path/raw/{a,b}.root, with tmp_path as the working directory (relative paths resolve there)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "raw").mkdir()
    for stem in ("a", "b"):
        (tmp_path / "raw" / f"{stem}.root").write_bytes(b"")
    return tmp_path / "raw"


def test_a_glob_matching_nothing_is_an_error_naming_the_pattern(raw):
    with pytest.raises(ConfigError, match=r"datasets\.ship\.files: 'raw/\*\.ROOT' matched no file .*working directory"):
        expand_file_patterns("ship", ["raw/*.root", "raw/*.ROOT"])


def test_a_missing_plain_path_is_an_error_naming_it(raw):
    with pytest.raises(ConfigError, match=r"datasets\.ship\.files: '.*/raw/c\.root' does not exist"):
        expand_file_patterns("ship", [str(raw / "c.root")])


def test_a_directory_asks_for_a_glob(raw):
    with pytest.raises(ConfigError, match=r"'raw' is a directory; expected ROOT files, e\.g\. 'raw/\*\.root'"):
        check_raw_files("ship", expand_file_patterns("ship", ["raw"]))


def test_a_dangling_link_is_named(raw):
    (raw / "c.root").symlink_to(raw / "gone.root")
    with pytest.raises(ConfigError, match=r"'raw/c\.root' is a symbolic link to a file that does not exist"):
        check_raw_files("ship", expand_file_patterns("ship", ["raw/*.root"]))


def test_a_brace_in_a_path_is_refused_with_the_reason_unless_blacklisted(raw):
    (raw / "c{1}.root").write_bytes(b"")
    paths = expand_file_patterns("ship", ["raw/*.root"])
    with pytest.raises(ConfigError, match=r"'raw/c\{1\}\.root' has '\{' or '\}' in its path.*wildcard"):
        check_raw_files("ship", paths)
    kept = files_by_stem("ship", paths, ["c{1}.root"], "datasets.ship.files")
    check_raw_files("ship", list(kept.values()))
    assert sorted(kept) == ["a", "b"]


def test_the_same_file_by_relative_absolute_and_linked_path_is_read_once_under_the_first_name(raw):
    (raw.parent / "eos").symlink_to(raw)  # as /eos/user/... resolves to another mount on a cluster
    patterns = ["raw/a.root", str(raw / "*.root"), "eos/b.root"]
    paths = expand_file_patterns("ship", patterns)
    assert paths == sorted(["raw/a.root", str(raw / "b.root")])
    assert files_by_stem("ship", paths, [], "datasets.ship.files") == {"a": "raw/a.root", "b": str(raw / "b.root")}


def test_files_of_one_name_in_different_folders_are_told_apart_by_their_folders(raw):
    """Batch jobs that each write ``out.root`` in their own folder: the folders become part of the stem (and so
    of ``source_file``), as few as tell the files apart; a file whose name is unique keeps its plain stem."""
    for job in ("job_0", "job_1"):
        (raw / job).mkdir()
        (raw / job / "a.root").write_bytes(b"")
    paths = expand_file_patterns("ship", ["raw/*.root", "raw/*/a.root"])
    assert files_by_stem("ship", paths, [], "datasets.ship.files") == {
        "raw/a": "raw/a.root", "b": "raw/b.root", "job_0/a": "raw/job_0/a.root", "job_1/a": "raw/job_1/a.root"}
    assert source_file_name("job_0/a", "raw/job_0/a.root") == "job_0/a.root"
    kept = files_by_stem("ship", paths, ["job_1/a.root"], "datasets.ship.files")  # blacklisted by its source_file
    assert kept == {"raw/a": "raw/a.root", "b": "raw/b.root", "job_0/a": "raw/job_0/a.root"}
    assert not is_blacklisted("raw/xjob_1/a.root", ["job_1/a.root"])  # whole folder names only


def test_two_crab_tasks_are_told_apart_as_deep_as_their_folders_differ(raw):
    """Two CRAB tasks each write ``<date>/0000/output_1.root``: ``0000/output_1`` is still shared, so the date
    folder joins the stem."""
    for task in ("241201_1200", "241202_0900"):
        (raw / task / "0000").mkdir(parents=True)
        (raw / task / "0000" / "output_1.root").write_bytes(b"")
    paths = expand_file_patterns("ship", ["raw/*/0000/*.root"])
    assert list(files_by_stem("ship", paths, [], "datasets.ship.files")) == [
        "241201_1200/0000/output_1", "241202_0900/0000/output_1"]


def test_two_files_of_one_stem_in_one_folder_clash_unless_one_is_blacklisted(raw):
    """``a.root`` and ``a.ROOT``: no folder tells them apart."""
    (raw / "a.ROOT").write_bytes(b"")
    paths = expand_file_patterns("ship", ["raw/*"])
    with pytest.raises(ConfigError, match=r"raw/a\.ROOT and raw/a\.root are different files with the same file "
                                          r"stem 'a' in one folder"):
        files_by_stem("ship", paths, [], "datasets.ship.files")
    assert files_by_stem("ship", paths, ["a.ROOT"], "datasets.ship.files") == {"a": "raw/a.root", "b": "raw/b.root"}


def test_a_blacklist_that_empties_a_dataset_names_dataset_patterns_and_blacklist(raw):
    paths = expand_file_patterns("ship", ["raw/*.root"])
    origin = "datasets.ship.files ['raw/*.root']"
    with pytest.raises(ConfigError) as error:
        files_by_stem("ship", paths, ["a.root", "raw/b*"], origin)
    message = str(error.value)
    assert message.startswith("datasets.ship: every file is blacklisted")
    assert "['raw/*.root'] gives 2 file(s)" in message and "['a.root', 'raw/b*']" in message


def test_paths_keep_the_form_the_config_gives(raw, monkeypatch):
    """Relative stays relative (to the working directory): provenance and logs show what the user wrote."""
    monkeypatch.chdir(raw)
    assert expand_file_patterns("ship", ["*.root", "./a.root"]) == ["a.root", "b.root"]


@pytest.mark.parametrize("pattern", ["root://eosuser.cern.ch//eos/user/m/me/ttbar/*.root",
                                     "root://cmsxrootd.fnal.gov//store/mc/a.root", "file:///data/a.root"])
def test_a_url_is_refused_with_the_way_to_a_path(raw, pattern):
    """A remote or file URL is named as a URL, with the mount or a copy as the way out, instead of being
    reported as a relative path that does not exist."""
    with pytest.raises(ConfigError, match=r"datasets\.nanoaod\.files: '(root|file)://.*' is a URL.*mounted path.*xrdcp") as error:
        expand_file_patterns("nanoaod", ["raw/*.root", pattern])
    assert "working directory" not in str(error.value)
