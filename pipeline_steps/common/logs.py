"""Route a step's logging and progress bars into the Snakemake rule's ``log:`` file.

Rules call steps from thin scripts; a physicist debugging a cluster job reads ``logs/<stage>/...``,
so everything (our messages, library warnings, tqdm bars) must land there, not on the terminal.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Iterator, TextIO

from pipeline_steps.common.errors import ConfigError, InputError

#: What bad input or config raises: its message names the file, branch or key and what was expected, so
#: the log holds that message once, without a traceback (it had held it twice, each after a traceback).
USER_ERRORS = (InputError, ConfigError)

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


@contextlib.contextmanager
def step_logging(log_path: str | Path | None, level: int = logging.INFO) -> Iterator[TextIO]:
    """Send ``logging`` and ``sys.stderr`` (where tqdm writes) to ``log_path`` for the block.

    With ``log_path=None`` (tests, interactive use) logging goes to stderr unchanged.
    An exception escaping the block is logged before it propagates, so the log file says why the job
    failed: bad input or config (``USER_ERRORS``) as its message, anything else with its traceback.
    """
    if log_path is None:
        logging.basicConfig(level=level, format=LOG_FORMAT)
        yield sys.stderr
        return
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger()
    previous_level = root.level
    with open(log_path, "a", buffering=1) as stream:
        handler = logging.StreamHandler(stream)
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        root.addHandler(handler)
        root.setLevel(level)
        old_stderr = sys.stderr
        sys.stderr = stream
        try:
            yield stream
        except USER_ERRORS as error:
            logging.getLogger("pipeline_steps").error("step failed: %s: %s", type(error).__name__, error)
            _mark_logged(error)
            raise
        except Stopped:
            logging.getLogger("pipeline_steps").error(
                "step stopped by SIGTERM (a batch time limit, scancel, condor_rm); its "
                "unfinished outputs' temporary files are removed")
            raise
        except BaseException as error:
            logging.getLogger("pipeline_steps").exception("step failed")
            _mark_logged(error)
            raise
        finally:
            sys.stderr = old_stderr
            root.removeHandler(handler)
            root.setLevel(previous_level)


def send_process_output_to_log(log_path: str | Path) -> None:
    """Point this process's file descriptors 1 and 2 at ``log_path`` for the rest of the job.

    ``step_logging`` only swaps Python's ``sys.stderr``; TensorFlow, CUDA, oneDNN and absl write
    from C++ straight to descriptor 2, at import time and at the first device query
    (``failed call to cuInit: UNKNOWN ERROR (303)`` on every machine without a GPU driver). On the
    terminal a physicist reads those as errors of the workflow, so each rule's script calls this
    first, before anything heavy is imported: the lines stay in ``logs/<stage>/<name>.log`` and the
    terminal shows Snakemake's progress, and a failed job's log through ``show-failed-logs``.
    The file is opened for appending, so ``step_logging`` (which also appends) interleaves with it.
    """
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    descriptor = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.dup2(descriptor, 1)
        os.dup2(descriptor, 2)
    finally:
        os.close(descriptor)


def start_job(log_path: str | Path) -> None:
    """What every rule's script does first: run with the fixed hash seed (re-executing the script if
    needed, ``reproducible.run_with_fixed_hash_seed``), then send its native output to its log, let
    SIGTERM unwind the job (:class:`Stopped`), and remove what an earlier, killed attempt of the job left
    beside its outputs, on whatever node it ran (``atomic.claim_sole_writer``)."""
    from pipeline_steps.common.atomic import claim_sole_writer
    from pipeline_steps.common.reproducible import run_with_fixed_hash_seed

    run_with_fixed_hash_seed()
    claim_sole_writer()
    send_process_output_to_log(log_path)
    sys.excepthook = _report_uncaught
    signal.signal(signal.SIGTERM, _raise_stopped)


class Stopped(SystemExit):
    """SIGTERM arrived: a batch system's time limit (SLURM sends SIGKILL 30 s later by default), ``scancel``,
    ``condor_rm`` (Snakemake's own head process, sent SIGTERM, lets its running jobs finish). Python's default
    ends the process at once, so no ``finally`` ran and every ``atomic_path`` under way left its hidden
    temporary beside the outputs until the job's rerun (``atomic.claim_sole_writer``). Raised in the main
    thread between two bytecodes (after the native call under way: a TensorFlow epoch, an ONNX Runtime call),
    it unwinds every ``with``; a SystemExit, so that no ``except Exception`` takes it for a failure to handle,
    and the job exits 143 as the signal would have made it."""


def _raise_stopped(number, frame) -> None:
    raise Stopped(128 + number)


def _mark_logged(error: BaseException) -> None:
    """Tell the job's exception hook that the log already holds ``error``."""
    with contextlib.suppress(AttributeError, TypeError):
        error.logged_by_step = True


def _report_uncaught(kind, error, traceback) -> None:
    """The job's exception hook: nothing for an error ``step_logging`` logged, bad input or config as one
    line, anything else with its traceback. The job still exits non-zero."""
    if getattr(error, "logged_by_step", False):
        return
    if isinstance(error, USER_ERRORS):
        print(f"{kind.__name__}: {error}", file=sys.stderr)
        return
    sys.__excepthook__(kind, error, traceback)
