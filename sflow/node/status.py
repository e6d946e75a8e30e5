"""Ask a node for its status (``sflow status``, and the ICN delegator learning each node's forwarder)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from twisted.internet import defer
from twisted.python.failure import Failure

from sflow.errors import ProtocolError, SflowError
from sflow.node.channel import Channel, connect
from sflow.node.protocol import Message
from sflow.node.transfer import FileSink

log = logging.getLogger(__name__)

STATUS_TIMEOUT = 10.0


class _StatusClient:
    """Asks one question on a channel and keeps the answer."""

    def __init__(self) -> None:
        self.reply: defer.Deferred[Message] = defer.Deferred()

    def channel_ready(self, channel: Channel) -> None:
        channel.send("status")

    def message_received(self, channel: Channel, msg: Message) -> None:
        if msg["t"] != "status_reply":
            raise ProtocolError(f"expected a status reply, found {msg['t']!r}")
        if not self.reply.called:
            self.reply.callback(msg)
        channel.close()

    def open_sink(self, channel: Channel, begin: Message) -> FileSink:
        raise ProtocolError("status does not accept files")

    def file_received(self, channel: Channel, begin: Message, path: Path) -> None:
        raise ProtocolError("status does not accept files")

    def file_failed(self, channel: Channel, begin: Message, reason: str) -> None:
        log.debug("event=unexpected_file reason=%s", reason)

    def channel_closed(self, channel: Channel, reason: str, authenticated: bool) -> None:
        if not self.reply.called:
            self.reply.errback(SflowError(f"no status from the node: {reason}"))


def query_status(
    reactor: Any, address: str, secret: bytes, timeout: float = STATUS_TIMEOUT, sealed: bool = True
) -> defer.Deferred[Message]:
    """The node's ``status_reply`` (a dict) over an authenticated connection."""
    client = _StatusClient()

    def unreachable(failure: Failure) -> None:
        if not client.reply.called:
            client.reply.errback(SflowError(f"{address}: {failure.getErrorMessage()}"))

    connect(reactor, address, secret, client, "status", timeout=timeout, sealed=sealed).addErrback(unreachable)
    client.reply.addTimeout(timeout, reactor)
    return client.reply
