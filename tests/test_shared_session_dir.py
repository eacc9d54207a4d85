"""The helper that lets pytest-xdist workers share one build per session (tests/conftest.py)."""

from __future__ import annotations

import uuid

import pytest

from tests.conftest import shared_session_dir, start_background_run, wait_for_run


def test_a_folder_is_built_once_and_a_failed_build_is_not_retried(tmp_path_factory):
    calls = []

    def build(folder):
        calls.append(folder)
        (folder / "made.txt").write_text("once")

    name = f"shared-{uuid.uuid4().hex}"
    first = shared_session_dir(tmp_path_factory, name, build)
    second = shared_session_dir(tmp_path_factory, name, build)
    assert first == second and len(calls) == 1 and (first / "made.txt").read_text() == "once"

    def broken(folder):
        calls.append(folder)
        raise RuntimeError("snakemake failed: rule train_flow")

    name = f"shared-{uuid.uuid4().hex}"
    with pytest.raises(RuntimeError, match="rule train_flow"):
        shared_session_dir(tmp_path_factory, name, broken)
    with pytest.raises(AssertionError, match="built by another worker, failed:\nsnakemake failed: rule train_flow"):
        shared_session_dir(tmp_path_factory, name, broken)
    assert len(calls) == 2  # the second request raised the recorded error without building again


def _workflow(folder, shell_command: str):
    """A one-rule Snakefile with a ci profile (what :func:`snakemake_command` expects beside it)."""
    (folder / "profiles" / "ci").mkdir(parents=True)
    (folder / "profiles" / "ci" / "config.yaml").write_text("cores: 1\n")
    snakefile = folder / "Snakefile"
    snakefile.write_text(f'rule all:\n    output: "out.txt"\n    shell: "{shell_command}"\n')
    return snakefile


def test_a_background_run_starts_once_and_its_status_reaches_every_waiter(tmp_path):
    """The shared tiny runs' mechanism: one start per session, the result read from the status file."""
    snakefile = _workflow(tmp_path / "good", "echo made > {output}")
    root = tmp_path / "session"
    root.mkdir()
    run = start_background_run(root, "good", (), "0", snakefile)
    assert run is not None and start_background_run(root, "good", (), "0", snakefile) is None
    folder = wait_for_run(root, "good")
    run.finish(stop=False)
    assert (folder / "out.txt").read_text() == "made\n" and (root / "good.rc").read_text() == "0"


def test_a_failed_background_run_fails_its_waiters_with_the_terminal_tail(tmp_path):
    snakefile = _workflow(tmp_path / "bad", "echo rule-all-broke >&2; exit 3")
    root = tmp_path / "session"
    root.mkdir()
    start_background_run(root, "bad", (), "0", snakefile)
    with pytest.raises(AssertionError, match=r"(?s)the bad tiny run \(snakemake\) failed with status 1.*rule-all-broke"):
        wait_for_run(root, "bad")
    assert not (root / "bad" / "out.txt").exists()
