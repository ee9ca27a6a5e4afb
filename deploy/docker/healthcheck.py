#!/usr/bin/env python3
"""The image's health check (``HEALTHCHECK``, compose ``healthcheck``, a Kubernetes exec
probe): exit 0 when the role in this container answers, 1 (with the reason on stderr)
when it does not. Standard library only, so it costs ~20 ms and no imports of the app.

    switchboard-healthcheck                 # serve: GET http://127.0.0.1:$SWITCHBOARD_PORT/healthz
    switchboard-healthcheck --url URL       # any HTTP endpoint answering 2xx
    switchboard-healthcheck --tcp HOST:PORT # engine, simulator, media port: accepts TCP
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import urllib.error
import urllib.request


def main(argv: list[str] | None = None) -> int:
    port = os.environ.get("SWITCHBOARD_PORT", "8000")
    parser = argparse.ArgumentParser(prog="switchboard-healthcheck")
    parser.add_argument("--url", default=f"http://127.0.0.1:{port}/healthz")
    parser.add_argument("--tcp", help="HOST:PORT that must accept a TCP connection instead")
    parser.add_argument("--timeout", type=float, default=3.0, help="seconds")
    args = parser.parse_args(argv)
    try:
        if args.tcp:
            host, _, tcp_port = args.tcp.rpartition(":")
            with socket.create_connection((host or "127.0.0.1", int(tcp_port)), args.timeout):
                return 0
        with urllib.request.urlopen(args.url, timeout=args.timeout) as reply:
            return 0 if 200 <= reply.status < 300 else 1
    except (OSError, ValueError, urllib.error.URLError) as exc:
        print(f"unhealthy: {args.tcp or args.url}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
