"""A command line's `main(argv)` run in the test process, read as its `python -m` run would be.

Starting Python, importing torch and loading VGG-19 for each run costs seconds a run on 2 cores;
in the process the model's weights load in well under one. What a subprocess shows is kept: the
exit code (argparse's SystemExit included), everything written to stderr (file descriptor 2 as
well as sys.stderr), and the Python warnings a fresh interpreter would print there (recorded here,
since pytest would otherwise swallow them). One subprocess smoke test per entry point stays
(test_cli's example run in the quick tier, the paint and animate ones in the slow tier).
"""

from __future__ import annotations

import signal
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import pytest

# What a fresh interpreter's default filters hide from code outside __main__.
HIDDEN_WARNINGS = (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning)


@dataclass(frozen=True)
class Done:
    """subprocess.CompletedProcess's fields that the CLI tests read."""

    returncode: int
    stderr: str


def run_main(main: Callable[[list[str]], int], args: Iterable[str | Path],
             capfd: pytest.CaptureFixture[str]) -> Done:
    capfd.readouterr()  # only this run's output
    # run_guarded turns SIGTERM into KeyboardInterrupt for the CLI's lifetime; not for pytest's.
    previous = signal.getsignal(signal.SIGTERM)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            code = main([str(arg) for arg in args])
        except SystemExit as exit_:  # argparse's errors, as `python -m` would end
            code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
        finally:
            signal.signal(signal.SIGTERM, previous)
    stderr = capfd.readouterr().err
    for warning in caught:
        if not issubclass(warning.category, HIDDEN_WARNINGS):
            stderr += warnings.formatwarning(warning.message, warning.category, warning.filename,
                                             warning.lineno)
    return Done(code, stderr)
