"""What the SDK finishes when the interpreter exits, in a fixed order.

The tracker and the remote backend both register here, so neither imports the other for it:
closing a tracker may put its last progress into a remote backend's buffer, so every tracker is
closed before any buffer is sent.

A ``multiprocessing`` worker started by fork never runs ``atexit`` hooks: it leaves through
``os._exit()`` after its own exit functions. So the hooks also run there, from
multiprocessing's exit functions, registered again in each forked worker (its start clears
what the parent registered). They run once per process, whichever way comes first.

SIGTERM (what systemd, Kubernetes, ``kill`` and ``Pool.terminate()`` send) kills a Python
process without running either. So the first tracker makes SIGTERM leave through them instead,
as ``sys.exit(143)`` raised in the main thread (locks are released as it unwinds, then the hooks
flush), unless the program set a SIGTERM handler of its own, or MIGRATRACK_FLUSH_ON_SIGTERM=0.
A second SIGTERM during the flush kills at once.
"""

from __future__ import annotations

import atexit
import os
import signal
import threading
from collections.abc import Callable
from typing import TypeVar

#: close the open trackers (their final flush)
TRACKERS = 0
#: then send what remote backends still buffer
TRANSPORTS = 1

F = TypeVar("F", bound=Callable[[], None])

_hooks: list[tuple[int, Callable[[], None]]] = []


def at_exit(stage: int) -> Callable[[F], F]:
    """Register the decorated function to run at exit in ``stage`` (TRACKERS, then TRANSPORTS)."""

    def register(fn: F) -> F:
        _hooks.append((stage, fn))
        return fn

    return register


#: the process whose hooks have run (a forked child inherits the parent's value: not its own)
_ran_in: int | None = None


class _Anchor:
    """What multiprocessing's after-fork registry holds (it keeps a weak reference)."""


_anchor = _Anchor()
_watching = False
#: the process in which _run is registered with multiprocessing's exit functions
_registered_in: int | None = None


def watch_children() -> None:
    """Make the hooks run at the end of this process if it is a ``multiprocessing`` worker, and
    in the workers forked from it from now on (idempotent)."""
    global _watching
    from multiprocessing import parent_process, util  # only for a process that has trackers

    if not _watching:
        _watching = True
        util.register_after_fork(_anchor, _in_forked_worker)
    if _registered_in != os.getpid() and parent_process() is not None:
        _register_here()  # a worker started before the SDK was imported (forkserver, spawn)


def exit_on_sigterm() -> None:
    """Make SIGTERM exit through the hooks (idempotent; only from the main thread, and only while
    SIGTERM has its default action: a program's own handler is left alone)."""
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _on_sigterm)


def _on_sigterm(signum: int, _frame: object) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second one kills at once
    raise SystemExit(128 + signum)


def _in_forked_worker(_: object) -> None:
    # runs in the worker after its start cleared the finalizer registry: register ours again
    _register_here()


def _register_here() -> None:
    global _registered_in
    from multiprocessing import util

    _registered_in = os.getpid()
    util.Finalize(None, _run, exitpriority=100)


@atexit.register
def _run() -> None:
    global _ran_in
    if _ran_in == os.getpid():
        return
    _ran_in = os.getpid()
    error: Exception | None = None
    for _, hook in sorted(_hooks, key=lambda h: h[0]):  # stable: one stage's hooks in registration order
        try:
            hook()
        except Exception as exc:  # a tracker that fails to close must not keep buffers from being sent
            error = error or exc
    if error is not None:
        raise error
