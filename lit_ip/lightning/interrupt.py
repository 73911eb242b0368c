"""SIGTERM / SIGINT during ``lit-ip predict``: abandon the sample in flight, exit non-zero.

``scancel``, ``docker stop``, a pre-emption or SLURM's end-of-time warning send SIGTERM;
Ctrl-C sends SIGINT. While the prediction loop runs, :class:`StopOnSignal` turns either into
:class:`RunInterrupted` raised at once in the main thread: the batch being sampled is
abandoned (its keys have no ``metrics/KEY.json``, so a rerun redoes them), a file being
written is never left half-written (every write is a temporary file plus rename, and the
temporary file is removed on the way out), and the CLI exits with status ``128 + signal``
(143 for SIGTERM, 130 for SIGINT). Rerunning the same command resumes. Handlers are
restored when the loop ends. Lightning's own SIGTERM handler (which only sets
``trainer.received_sigterm``, not checked by the predict loop) is still called first.
"""
from __future__ import annotations

import os
import signal
import threading
from typing import Any

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class RunInterrupted(Exception):
    """The run was stopped by a signal; finished outputs are kept, rerun to resume."""

    def __init__(self, signum: int):
        self.signum = int(signum)
        name = signal.Signals(signum).name
        super().__init__(f"stopped by {name}: finished samples are kept, the sample in flight was "
                         f"abandoned; rerun the same command to resume")

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


class StopOnSignal:
    """Install (:meth:`install`) and restore (:meth:`restore`) the stopping handlers."""

    def __init__(self) -> None:
        self.previous: dict[int, Any] = {}
        self.received: int = 0
        self.pid = os.getpid()

    def _handler(self, signum, frame) -> None:
        if os.getpid() != self.pid:
            return  # a forked DataLoader worker: the main process stops it
        prev = self.previous.get(signum)
        if callable(prev) and prev is not signal.default_int_handler:
            prev(signum, frame)  # e.g. Lightning's notifier
        if self.received:
            return  # already stopping: a second signal must not interrupt the clean-up
        self.received = signum
        raise RunInterrupted(signum)

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread() or self.previous:
            return  # signal handlers can only be set from the main thread
        self.received, self.pid = 0, os.getpid()
        for s in SIGNALS:
            self.previous[s] = signal.getsignal(s)
            signal.signal(s, self._handler)

    def restore(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for s, h in self.previous.items():
            signal.signal(s, h if h is not None else signal.SIG_DFL)
        self.previous = {}
