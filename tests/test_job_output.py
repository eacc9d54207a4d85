"""A job's library start-up lines (TensorFlow, CUDA, oneDNN) land in its log file, not on the terminal."""

from __future__ import annotations

import os
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


def test_every_rule_script_starts_the_job_before_importing_the_step():
    """start_job must come first: its re-execution restarts the script, TensorFlow prints while imported."""
    for script in sorted((REPO / "workflow" / "scripts").glob("*.py")):
        statements = [line.split("#")[0].strip() for line in script.read_text().splitlines()
                      if line.strip() and not line.startswith("#")]
        assert statements[:2] == ["from pipeline_steps.common.logs import start_job",
                                  "start_job(snakemake.log[0])"], script.name


def test_start_job_pins_the_hash_seed_and_redirects(tmp_path):
    log = tmp_path / "job.log"
    script = tmp_path / "job.py"
    script.write_text("import os\n"
                      "from pipeline_steps.common.logs import start_job\n"
                      f"start_job({str(log)!r})\n"
                      "os.write(2, ('seed ' + os.environ['PYTHONHASHSEED'] + '\\n').encode())\n")
    result = subprocess.run([sys.executable, str(script)], cwd=REPO, capture_output=True, text=True, check=True,
                            env={**os.environ, "PYTHONHASHSEED": "7"})
    assert result.stderr == "" and log.read_text() == "seed 0\n"


def test_a_job_reexecutes_itself_with_the_fixed_hash_seed(tmp_path):
    """Whatever PYTHONHASHSEED the shell has, the job's code runs with hash seed 0 (set order with it)."""
    script = tmp_path / "job.py"
    script.write_text("import os, sys\n"
                      "print('start', os.environ.get('PYTHONHASHSEED'), flush=True)\n"
                      "from pipeline_steps.common.reproducible import run_with_fixed_hash_seed\n"
                      "run_with_fixed_hash_seed()\n"
                      "print('job', os.environ['PYTHONHASHSEED'], hash('jets'), sys.argv[1:])\n")
    outputs = set()
    for seed in ("1", "random", "0"):
        result = subprocess.run([sys.executable, "-u", str(script), "arg"], cwd=REPO, capture_output=True, text=True,
                                env={**os.environ, "PYTHONHASHSEED": seed}, check=True)
        lines = result.stdout.splitlines()
        assert lines[0] == f"start {seed}" and lines[-1].startswith("job 0 ") and lines[-1].endswith("['arg']")
        outputs.add(lines[-1])
    assert len(outputs) == 1  # the same hash of a string in every job, whatever the shell's seed


def test_jobs_of_the_workflow_start_with_the_fixed_hash_seed_and_run_once(tmp_path, monkeypatch):
    """The Snakefile sets the seed in Snakemake's process; a job inheriting it starts only once (no re-exec)."""
    assert "\ngive_jobs_the_fixed_hash_seed()\n" in (REPO / "workflow" / "rules" / "common.smk").read_text()
    from pipeline_steps.common.reproducible import JOB_HASH_SEED, give_jobs_the_fixed_hash_seed
    monkeypatch.setenv("PYTHONHASHSEED", "random")
    give_jobs_the_fixed_hash_seed()
    script = tmp_path / "job.py"
    script.write_text("print('start', flush=True)\n"
                      "from pipeline_steps.common.reproducible import run_with_fixed_hash_seed\n"
                      "run_with_fixed_hash_seed()\n")
    result = subprocess.run([sys.executable, str(script)], cwd=REPO, capture_output=True, text=True, check=True)
    assert os.environ["PYTHONHASHSEED"] == JOB_HASH_SEED and result.stdout == "start\n"


def test_bad_input_fails_a_job_with_its_message_once_and_no_traceback(tmp_path):
    """An ingest error had been in the log twice, each after a full traceback; anything else keeps its
    traceback (once)."""
    script = tmp_path / "job.py"
    script.write_text(
        "import sys\n"
        f"sys.path.insert(0, {str(REPO)!r})\n"
        "from pipeline_steps.common.logs import start_job, step_logging\n"
        "from pipeline_steps.common.errors import InputError\n"
        "start_job(sys.argv[1])\n"
        "with step_logging(sys.argv[1]):\n"
        "    raise InputError(\"data/x.root:Events: missing branch 'Jet_pt'\") if sys.argv[2] == 'input' else 1 / 0\n")
    for case in ("input", "bug"):
        log = tmp_path / f"{case}.log"
        result = subprocess.run([sys.executable, str(script), str(log), case], capture_output=True, text=True)
        text = log.read_text()
        assert result.returncode == 1, case
        if case == "input":
            assert text.count("missing branch 'Jet_pt'") == 1 and "Traceback" not in text
        else:
            assert text.count("Traceback") == 1 and "ZeroDivisionError" in text
