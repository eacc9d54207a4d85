"""The helper that lets pytest-xdist workers share one build per session (tests/conftest.py)."""

from __future__ import annotations

import uuid

import pytest

from tests.conftest import shared_session_dir


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
