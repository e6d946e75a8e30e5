"""python-ndn (an independent NDN implementation) as a consumer of sflow function results.

    ndn_consumer.py PORT fetch NAME FILE segment-fetch NAME into FILE, print {"sha256", "size"}
    ndn_consumer.py PORT compute NAME    express NAME with ApplicationParameters but no signature,
                                         print {"content_type", "content"}
    ndn_consumer.py PORT ask NAME        express NAME (unsigned, MustBeFresh), print {"answered": bool}
"""

from __future__ import annotations

import hashlib
import json
import sys

from ndn.app import NDNApp
from ndn.app_support.segment_fetcher import segment_fetcher
from ndn.encoding import Name
from ndn.security import KeychainDigest
from ndn.transport.stream_face import TcpFace
from ndn.types import InterestTimeout


def main() -> None:
    port, verb, name = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    app = NDNApp(face=TcpFace("127.0.0.1", port), keychain=KeychainDigest())

    async def run() -> None:
        try:
            if verb == "fetch":
                content = b""
                async for seg in segment_fetcher(app, Name.from_str(name), timeout=4000, retry_times=3,
                                                 must_be_fresh=True):
                    content += bytes(seg)
                with open(sys.argv[4], "wb") as out:
                    out.write(content)
                print(json.dumps({"sha256": hashlib.sha256(content).hexdigest(), "size": len(content)}), flush=True)
            elif verb == "ask":
                try:
                    await app.express_interest(Name.from_str(name), must_be_fresh=True, lifetime=2000)
                    print(json.dumps({"answered": True}), flush=True)
                except InterestTimeout:
                    print(json.dumps({"answered": False}), flush=True)
            else:
                _name, meta, content = await app.express_interest(
                    Name.from_str(name), app_param=b"", must_be_fresh=True, lifetime=4000
                )
                print(json.dumps({"name": Name.to_str(_name), "content_type": meta.content_type,
                                  "content": bytes(content or b"").hex()}), flush=True)
        finally:
            app.shutdown()

    app.run_forever(after_start=run())


if __name__ == "__main__":
    main()
