"""A python-ndn peer for the interop tests (an independent NDN implementation).

    ndn_peer.py SOCKET produce   serve /interop/ndn/hello/<x> and segmented /interop/ndn/big (ndn.appv2),
                                 and /interop/legacy/<x> (the legacy ndn.app API), print "ready"
                                 (over the forwarder's Unix socket: management is only for local users)
    ndn_peer.py PORT register NAME    try to register NAME over loopback TCP, print {"registered": bool}
    ndn_peer.py PORT consume NAME [NAME...]    express each; "seg:NAME" uses python-ndn's segment fetcher

Each consumer result is one JSON line on stdout.
"""

from __future__ import annotations

import hashlib
import json
import sys

import asyncio

from ndn.app import NDNApp as LegacyApp
from ndn.app_support.segment_fetcher import segment_fetcher
from ndn.appv2 import NDNApp
from ndn.encoding import Component, MetaInfo, Name, make_data
from ndn.security import DigestSha256Signer, KeychainDigest
from ndn.transport.stream_face import TcpFace, UnixFace
from ndn.types import InterestNack, InterestTimeout

BIG = bytes(i % 251 for i in range(60_000))
SEGMENT = 4000


def face_for(where: str) -> TcpFace | UnixFace:
    """A TCP face to 127.0.0.1:PORT, or a Unix-socket face to a path."""
    return TcpFace("127.0.0.1", int(where)) if where.isdigit() else UnixFace(where)


def produce(where: str) -> None:
    app = NDNApp(face=face_for(where))
    signer = DigestSha256Signer()
    n_segments = -(-len(BIG) // SEGMENT)
    final = Component.from_segment(n_segments - 1)
    big_prefix = Name.from_str("/interop/ndn/big")
    versioned = big_prefix + [Component.from_version(1)]

    def segment(i: int) -> bytes:
        return make_data(
            versioned + [Component.from_segment(i)],
            MetaInfo(freshness_period=10_000, final_block_id=final),
            BIG[i * SEGMENT : (i + 1) * SEGMENT],
            signer=signer,
        )

    def on_interest(name, _param, reply, _context) -> None:
        if Name.is_prefix(Name.from_str("/interop/ndn/hello"), name):
            reply(make_data(name, MetaInfo(freshness_period=5000), b"ndn says " + bytes(Component.get_value(name[-1])), signer=signer))
        elif name == big_prefix:
            reply(segment(0))
        elif len(name) == len(versioned) + 1 and Component.get_type(name[-1]) == Component.TYPE_SEGMENT:
            index = Component.to_number(name[-1])
            if index < n_segments:
                reply(segment(index))

    legacy = LegacyApp(face=face_for(where), keychain=KeychainDigest())
    legacy_registered: asyncio.Future[bool] | None = None

    @legacy.route("/interop/legacy")
    def on_legacy_interest(name, _param, _app_param) -> None:
        legacy.put_data(name, b"legacy says " + bytes(Component.get_value(name[-1])), freshness_period=5000)

    async def legacy_start() -> None:
        assert legacy_registered is not None
        legacy_registered.set_result(True)

    async def start() -> None:
        nonlocal legacy_registered
        legacy_registered = asyncio.get_running_loop().create_future()
        asyncio.ensure_future(legacy.main_loop(after_start=legacy_start()))
        app.attach_handler("/interop/ndn", on_interest)
        ok = await app.register("/interop/ndn")
        await asyncio.wait_for(legacy_registered, 10)
        # the legacy app registers its routes (signed-name commands) when it connects
        print("ready" if ok else "registration failed", flush=True)

    app.run_forever(after_start=start())


def consume(port: int, names: list[str]) -> None:
    app = LegacyApp(face=TcpFace("127.0.0.1", port), keychain=KeychainDigest())

    async def main() -> None:
        for name in names:
            try:
                if name.startswith("seg:"):
                    chunks = [bytes(c) async for c in segment_fetcher(app, name[4:], timeout=2000, retry_times=3)]
                    content = b"".join(chunks)
                else:
                    _n, _meta, raw = await app.express_interest(name, must_be_fresh=True, can_be_prefix=False, lifetime=2000)
                    content = bytes(raw or b"")
                result = {"name": name, "ok": True, "size": len(content), "sha256": hashlib.sha256(content).hexdigest(),
                          "text": content[:40].decode("latin-1")}
            except InterestNack as exc:
                result = {"name": name, "ok": False, "nack": exc.reason}
            except InterestTimeout:
                result = {"name": name, "ok": False, "timeout": True}
            print(json.dumps(result), flush=True)
        app.shutdown()

    app.run_forever(after_start=main())


def register(where: str, name: str) -> None:
    app = NDNApp(face=face_for(where))

    async def main() -> None:
        try:
            ok = await asyncio.wait_for(app.register(name), 10)
            print(json.dumps({"registered": bool(ok)}), flush=True)
        except Exception as exc:  # python-ndn reports a refusal in several ways
            print(json.dumps({"registered": False, "error": repr(exc)}), flush=True)
        app.shutdown()

    app.run_forever(after_start=main())


if __name__ == "__main__":
    port_arg, mode, *rest = sys.argv[1:]
    if mode == "produce":
        produce(port_arg)
    elif mode == "register":
        register(port_arg, rest[0])
    else:
        consume(int(port_arg), rest)
