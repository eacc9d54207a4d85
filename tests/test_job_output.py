"""A job's library start-up lines (TensorFlow, CUDA, oneDNN) land in its log file, not on the terminal."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from tests.conftest import REPO

#: What C++ libraries print at start-up, written below the Python layer (descriptor 2 directly).
NATIVE_LINE = "E0000 00:00:1 cuda_platform.cc:52] failed call to cuInit: UNKNOWN ERROR (303)"


def test_native_writes_to_stdout_and_stderr_go_to_the_log_only(tmp_path):
    log = tmp_path / "logs" / "train" / "model.log"
    script = textwrap.dedent(f"""
        import os, sys
        from pipeline_steps.common.logs import send_process_output_to_log, step_logging
        print("before redirect")
        send_process_output_to_log({str(log)!r})
        os.write(2, b{NATIVE_LINE!r} + b"\\n")
        os.write(1, b"native stdout\\n")
        print("python stdout")
        import logging
        with step_logging({str(log)!r}):
            logging.getLogger("pipeline_steps").info("step message")
        raise SystemExit("real error")
    """)
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stdout == "before redirect\n"
    assert result.stderr == ""
    text = log.read_text()
    for expected in (NATIVE_LINE, "native stdout", "python stdout", "step message", "real error"):
        assert expected in text, f"{expected!r} missing from the log:\n{text}"


def test_every_rule_script_redirects_before_importing_the_step():
    """The redirect must come first: TensorFlow prints while its module is imported."""
    for script in sorted((REPO / "workflow" / "scripts").glob("*.py")):
        statements = [line for line in script.read_text().splitlines() if line.strip() and not line.startswith("#")]
        assert statements[:2] == ["from pipeline_steps.common.logs import send_process_output_to_log",
                                  "send_process_output_to_log(snakemake.log[0])  # library start-up noise "
                                  "goes to the log, not the terminal"], script.name
