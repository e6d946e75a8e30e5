"""An sflow peer for the interop tests, on the real reactor.

    sflow_peer.py ADDRESS produce     serve /interop/sflow/hello/<x> and segmented /interop/sflow/big, print "ready"
    sflow_peer.py ADDRESS consume NAME [NAME...]   express each; "seg:NAME" fetches segmented content
    sflow_peer.py ADDRESS register NAME            try to register NAME, print {"registered": bool}

Each consumer result is one JSON line on stdout.
"""

from __future__ import annotations

import hashlib
import json
import sys
from typing import Any

from twisted.internet import reactor as installed_reactor
from twisted.internet.defer import inlineCallbacks

from sflow.errors import InterestNacked, InterestTimeout, SflowError
from sflow.icn.app import Endpoint, connect
from sflow.icn.packet import Interest

BIG = bytes(i % 241 for i in range(100_000))
reactor: Any = installed_reactor


def produce(address: str) -> None:
    @inlineCallbacks
    def start() -> Any:
        endpoint: Endpoint = yield connect(reactor, address)

        def hello(interest: Interest) -> bytes:
            return b"sflow says " + interest.name[-1].value

        yield endpoint.route("/interop/sflow/hello", hello, freshness_period=5000)
        yield endpoint.serve_segmented("/interop/sflow/big", BIG, version=1)
        print("ready", flush=True)

    reactor.callWhenRunning(start)
    reactor.run()


def consume(address: str, names: list[str]) -> None:
    @inlineCallbacks
    def start() -> Any:
        try:
            yield run(names)
        finally:
            reactor.stop()

    @inlineCallbacks
    def run(names: list[str]) -> Any:
        endpoint: Endpoint = yield connect(reactor, address)
        for name in names:
            try:
                if name.startswith("seg:"):
                    content = yield endpoint.fetch_segmented(name[4:], lifetime=2000, retries=2)
                else:
                    data = yield endpoint.express(name, lifetime=2000, must_be_fresh=True)
                    content = data.content
                result = {"name": name, "ok": True, "size": len(content), "sha256": hashlib.sha256(content).hexdigest(),
                          "text": content[:40].decode("latin-1")}
            except InterestNacked as exc:
                result = {"name": name, "ok": False, "nack": exc.reason}
            except InterestTimeout:
                result = {"name": name, "ok": False, "timeout": True}
            print(json.dumps(result), flush=True)
        endpoint.close()

    reactor.callWhenRunning(start)
    reactor.run()


def register(address: str, name: str) -> None:
    @inlineCallbacks
    def start() -> Any:
        endpoint: Endpoint = yield connect(reactor, address)
        try:
            yield endpoint.register(name)
            print(json.dumps({"registered": True}), flush=True)
        except SflowError as exc:
            print(json.dumps({"registered": False, "error": str(exc)}), flush=True)
        finally:
            endpoint.close()
            reactor.stop()

    reactor.callWhenRunning(start)
    reactor.run()


if __name__ == "__main__":
    address_arg, mode, *rest = sys.argv[1:]
    if mode == "produce":
        produce(address_arg)
    elif mode == "register":
        register(address_arg, rest[0])
    else:
        consume(address_arg, rest)
