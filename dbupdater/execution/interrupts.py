"""Ctrl-C and SIGTERM during a run: first stop starting scripts, then cancel them on the servers, then leave.

Killing the controller never stops a client on a runner (sshd keeps it running), so the steps are explicit:

1. the first Ctrl-C starts nothing new; running scripts finish and are recorded;
2. the second sends SIGINT to the running clients on their runners; mysql and psql then cancel the
   statement on the server and exit, and the script is recorded as failed (in doubt, or rolled back when it
   ran in a single transaction);
3. the third leaves at once: what still runs may go on on the runner and is in doubt next time.

SIGTERM (a CI job being cancelled) goes straight to step 2 and waits at most `TERM_GRACE` seconds for the
clients to stop, because a SIGKILL usually follows.
"""

from __future__ import annotations

import contextlib
import math
import signal
import threading
from collections.abc import Callable, Iterator
from types import FrameType

from ..model.outcome import InterruptStep

TERM_GRACE = 3.0  # seconds a SIGTERM waits for cancelled clients before leaving
LEAVE_GRACE = 2.0  # seconds leaving spends releasing locks and removing private directories, at most


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread the way Python raises KeyboardInterrupt for SIGINT."""


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """While the body runs, SIGTERM unwinds like Ctrl-C, so locks are released and private directories
    removed on the way out (Python's default for SIGTERM is to die on the spot)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def raise_terminated(signum: int, frame: FrameType | None) -> None:
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class Escalation:
    """One run's interrupts: each call says how long to keep waiting for running scripts (None: leave)."""

    def __init__(self, cancel: Callable[[], None], announce: Callable[[InterruptStep, int], None],
                 leave: Callable[[], None]) -> None:
        self._cancel = cancel
        self._announce = announce
        self._leave = leave
        self.step: InterruptStep | None = None

    @property
    def interrupted(self) -> bool:
        return self.step is not None

    def __call__(self, running: int, cause: BaseException | None) -> float | None:
        """cause: the KeyboardInterrupt (or Terminated) received, None when a grace period ran out."""
        if cause is None:
            step = InterruptStep.LEAVE
        elif isinstance(cause, Terminated):
            step = InterruptStep.CANCEL if self.step in (None, InterruptStep.WAIT) else InterruptStep.LEAVE
        else:
            step = {None: InterruptStep.WAIT, InterruptStep.WAIT: InterruptStep.CANCEL}.get(self.step,
                                                                                  InterruptStep.LEAVE)
        self.step = step
        self._announce(step, running)
        if step is InterruptStep.WAIT:
            return math.inf
        if step is InterruptStep.CANCEL:
            self._cancel()
            return TERM_GRACE if isinstance(cause, Terminated) else math.inf
        self._leave()
        return None
