"""What protecting a channel costs, and the alternative that was not chosen: one sender process
streams ``--size-mb`` MB in 256 KiB frames over loopback TCP to one receiver process (Twisted on
both sides, as the node), in clear, sealed the way sflow seals its channels (AES-256-GCM per frame,
sflow.node.seal), and inside mutual TLS 1.3 (Twisted's TLS over pyOpenSSL, a cluster CA and a
certificate per side). Each figure is the receiver's time from the first byte to the last; the
three run one after the other in the same invocation, so compare the ratios.

    .venv/bin/python benchmarks/channel_protection.py [--size-mb 1024] [--json OUT]
"""

from __future__ import annotations

import datetime
import multiprocessing as mp
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from report import emit, load, parser

FRAME = 256 * 1024


def _certificates(directory: Path) -> dict[str, str]:
    """A CA and two certificates it signed (server, client), as PEM files."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)

    def name(common: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(name("sflow cluster CA")).issuer_name(name("sflow cluster CA"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True).sign(ca_key, hashes.SHA256()))
    files = {"ca": str(directory / "ca.pem")}
    Path(files["ca"]).write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    for who in ("server", "client"):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (x509.CertificateBuilder().subject_name(name(who)).issuer_name(ca.subject).public_key(key.public_key())
                .serial_number(x509.random_serial_number()).not_valid_before(now)
                .not_valid_after(now + datetime.timedelta(days=1))
                .add_extension(x509.SubjectAlternativeName([x509.DNSName(who)]), critical=False)
                .sign(ca_key, hashes.SHA256()))
        pem = cert.public_bytes(serialization.Encoding.PEM) + key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        files[who] = str(directory / f"{who}.pem")
        Path(files[who]).write_bytes(pem)
    return files


def _tls_options(files: dict[str, str], who: str) -> Any:
    from twisted.internet import ssl

    me = ssl.PrivateCertificate.loadPEM(Path(files[who]).read_text())
    ca = ssl.Certificate.loadPEM(Path(files["ca"]).read_text())
    # the peer must show a certificate of the CA (mutual authentication); TLS 1.3 only
    return ssl.CertificateOptions(privateKey=me.privateKey.original, certificate=me.original, trustRoot=ca,
                                  raiseMinimumTo=ssl.TLSVersion.TLSv1_3)


def _receiver(mode: str, key: bytes, files: dict[str, str], total: int, conn: Any) -> None:
    from twisted.internet import protocol, reactor

    from sflow.node import seal
    from sflow.node.protocol import HEADER

    class Receive(protocol.Protocol):
        def __init__(self) -> None:
            self.buf = bytearray()
            self.got = 0
            self.first = 0.0
            self.opener = seal.Opener(key) if mode == "sealed" else None

        def dataReceived(self, data: bytes) -> None:
            if not self.first:
                self.first = time.perf_counter()
            self.buf += data
            while len(self.buf) >= HEADER.size:
                (length,) = HEADER.unpack_from(self.buf)
                end = HEADER.size + length
                if len(self.buf) < end:
                    break
                with memoryview(self.buf) as view, view[HEADER.size : end] as body:
                    n = len(self.opener.open(bytes(view[: HEADER.size]), body)) if self.opener else len(body)
                del self.buf[:end]
                self.got += n
            if self.got >= total:
                version = self.transport.getHandle().get_protocol_version_name() if mode == "tls" else ""  # type: ignore[union-attr]
                conn.send((time.perf_counter() - self.first, version))
                reactor.stop()  # type: ignore[attr-defined]

    factory = protocol.Factory.forProtocol(Receive)
    if mode == "tls":
        port = reactor.listenSSL(0, factory, _tls_options(files, "server"), interface="127.0.0.1")  # type: ignore[attr-defined]
    else:
        port = reactor.listenTCP(0, factory, interface="127.0.0.1")  # type: ignore[attr-defined]
    conn.send(port.getHost().port)
    reactor.run()  # type: ignore[attr-defined]


def _sender(mode: str, key: bytes, files: dict[str, str], total: int, port: int) -> None:
    from twisted.internet import protocol, reactor
    from zope.interface import implementer
    from twisted.internet.interfaces import IPullProducer

    from sflow.node import seal
    from sflow.node.protocol import HEADER

    payload = os.urandom(FRAME)

    @implementer(IPullProducer)
    class Producer:
        def __init__(self, transport: Any) -> None:
            self.transport = transport
            self.sent = 0
            self.sealer = seal.Sealer(key) if mode == "sealed" else None

        def resumeProducing(self) -> None:
            if self.sent >= total:
                self.transport.unregisterProducer()
                return
            if self.sealer is None:
                self.transport.writeSequence([HEADER.pack(FRAME), payload])
            else:
                self.transport.writeSequence(self.sealer.frame(payload))
            self.sent += FRAME

        def stopProducing(self) -> None:
            pass

    class Send(protocol.Protocol):
        def connectionMade(self) -> None:
            self.transport.registerProducer(Producer(self.transport), False)  # type: ignore[union-attr]

        def connectionLost(self, reason: Any = None) -> None:
            if reactor.running:  # type: ignore[attr-defined]
                reactor.stop()  # type: ignore[attr-defined]

    factory = protocol.ClientFactory.forProtocol(Send)
    if mode == "tls":
        reactor.connectSSL("127.0.0.1", port, factory, _tls_options(files, "client"))  # type: ignore[attr-defined]
    else:
        reactor.connectTCP("127.0.0.1", port, factory)  # type: ignore[attr-defined]
    reactor.run()  # type: ignore[attr-defined]


def measure(mode: str, files: dict[str, str], total: int) -> float:
    """The receiver's seconds from the first byte to the last."""
    ctx = mp.get_context("spawn")
    key = os.urandom(32)
    here, there = ctx.Pipe()
    receiver = ctx.Process(target=_receiver, args=(mode, key, files, total, there))
    receiver.start()
    port = here.recv()
    sender = ctx.Process(target=_sender, args=(mode, key, files, total, port))
    sender.start()
    seconds, version = here.recv()
    if mode == "tls":
        assert version == "TLSv1.3", version
    receiver.join(30)
    sender.kill()
    sender.join(30)
    return float(seconds)


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--size-mb", type=int, default=1024)
    args = p.parse_args()
    total = args.size_mb * 2**20
    figures: dict[str, Any] = {"size_mb": args.size_mb, "frame": FRAME}
    with tempfile.TemporaryDirectory(prefix="sflow-bench-") as tmp:
        files = _certificates(Path(tmp))
        for mode in ("clear", "sealed", "tls"):
            seconds = measure(mode, files, total)
            figures[mode] = {"seconds": seconds, "mb_per_s": args.size_mb / seconds}
    for mode in ("clear", "sealed", "tls"):
        rate = figures[mode]["mb_per_s"]
        print(f"{mode:>6}: {args.size_mb} MB in {figures[mode]['seconds']:.2f} s = {rate:.0f} MB/s "
              f"({rate / figures['clear']['mb_per_s']:.2f} of clear)")
    print(f"  sealed (sflow's channels) / TLS 1.3: {figures['sealed']['mb_per_s'] / figures['tls']['mb_per_s']:.2f}; "
          f"load {load()['loadavg_1m']:.2f}")
    emit(args, "channel_protection", figures)


if __name__ == "__main__":
    main()
