"""Text made in a forked child while this process goes on with other work: a one-shot command
with two things to compute uses a second CPU (``sflow schedule`` formats a large mapping there
while it schedules, then checks and measures the schedule).

The work comes in two parts. ``prepare()`` needs only what exists at the fork: the child starts on
it at once. ``finish(prepared, given)`` needs ``given``, which this process hands over later
(:meth:`Pending.give`, pickled down a pipe by a short-lived thread, so that this process never
waits for a child still preparing). The child shares everything this process had at the fork
(copy-on-write), sends the text's UTF-8 through a pipe and exits without running anything else of
this process (no ``atexit``, no ``finally`` above the fork).

The result does not depend on the child: when the fork fails, or the child dies or fails,
:meth:`Pending.result` computes ``finish(prepare(), given)`` here instead. Only for pure
functions of what exists at the fork (and of ``given``), in a process that starts no threads it
would need in the child."""

from __future__ import annotations

import os
import pickle
import signal
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

#: how much of the child's text is read at a time
_CHUNK = 1 << 20

P = TypeVar("P")
G = TypeVar("G")


class Pending(Generic[P, G]):
    """``finish(prepare(), given)``, being computed in a child process (see the module)."""

    def __init__(self, prepare: Callable[[], P], finish: Callable[[P, G], str]) -> None:
        self._prepare, self._finish = prepare, finish
        self._pid = 0
        self._text = -1  # the child's text comes out of this
        self._given = -1  # ``given`` goes in here
        self._sender: threading.Thread | None = None
        self._has_given = False
        self._value: G | None = None
        try:
            text_r, text_w = os.pipe()
        except OSError:
            return
        try:
            given_r, given_w = os.pipe()
        except OSError:
            _close(text_r, text_w)
            return
        try:
            pid = os.fork()
        except OSError:
            _close(text_r, text_w, given_r, given_w)
            return
        if pid == 0:  # the child: never returns
            status = 1
            try:
                _close(text_r, given_w)
                prepared = prepare()
                with os.fdopen(given_r, "rb") as given:
                    value = pickle.load(given)
                view = memoryview(finish(prepared, value).encode())
                while view:
                    view = view[os.write(text_w, view):]
                status = 0
            finally:
                os._exit(status)
        _close(text_w, given_r)
        self._pid, self._text, self._given = pid, text_r, given_w

    @property
    def forked(self) -> bool:
        """Whether a child is computing it (False: :meth:`result` computes it here)."""
        return self._pid != 0

    def give(self, given: G) -> None:
        """Hand over what :meth:`result`'s text is finished with (once)."""
        assert not self._has_given, "given once"
        self._has_given, self._value = True, given
        if not self._pid:
            return
        data = pickle.dumps(given, protocol=pickle.HIGHEST_PROTOCOL)
        fd, self._given = self._given, -1
        self._sender = threading.Thread(target=_send, args=(fd, data), name="sflow-forked-give", daemon=True)
        self._sender.start()

    def result(self) -> bytes:
        """The text's UTF-8 (what is written out; not decoded only to be encoded again), from the
        child when it made it, else made here."""
        assert self._has_given, "give() before result()"
        if self._pid:
            chunks = []
            try:
                while chunk := os.read(self._text, _CHUNK):
                    chunks.append(chunk)
            finally:
                status = self._reap()
            if status == 0:
                return b"".join(chunks)
        return self._finish(self._prepare(), self._value).encode()  # type: ignore[arg-type]

    def cancel(self) -> None:
        """Stop the child, if there is one (its work is not wanted)."""
        if self._pid:
            try:
                os.kill(self._pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self._reap()

    def _reap(self) -> int:
        _close(self._text)
        _, status = os.waitpid(self._pid, 0)
        if self._sender is not None:
            self._sender.join()  # the child is gone: its pipe's end is closed, the send is over
            self._sender = None
        if self._given >= 0:
            _close(self._given)
        self._pid, self._text, self._given = 0, -1, -1
        return status


def _send(fd: int, data: bytes) -> None:
    """Write ``data`` to ``fd`` and close it; a child that went away (its end closed) ends it."""
    view = memoryview(data)
    try:
        while view:
            view = view[os.write(fd, view):]
    except OSError:
        pass  # the child died: result() makes the text here
    finally:
        os.close(fd)


def _close(*fds: int) -> None:
    for fd in fds:
        os.close(fd)
