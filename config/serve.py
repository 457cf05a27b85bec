"""How Launchday serves HTTP: uvicorn, with the settings every caller shares.

`make serve`, the bench, the live-front tests and CI's schemathesis all start the server
by running this module, so a server setting is written once:

    python -m config.serve --host 127.0.0.1 --port 8000 --workers 2 [--backlog 2048]

One process per core: in each, admissions wait on coroutines (orders.api.front) and the
rest of Django runs on a pool of threads (config/asgi.py); make bench measures the choice.
"""

import argparse

import uvicorn

APPLICATION = "config.asgi:application"
# What uvicorn refuses itself (an over-long header, a DEL in one) answered in the envelope.
HTTP_PROTOCOL = "config.http_protocol:EnvelopeHttpToolsProtocol"
# Kept-alive connections live 75 s (uvicorn's default is 5): longer than the idle timeout
# of clients and proxies, so the server is not the one closing a connection as a request
# is sent on it (the bench's open loop saw such requests cut).
KEEP_ALIVE_SECONDS = 75


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--backlog", type=int, default=2048)
    parser.add_argument("--log-level", default="warning")
    parser.add_argument("--access-log", action="store_true")
    args = parser.parse_args(argv)
    uvicorn.run(
        APPLICATION,
        host=args.host,
        port=args.port,
        workers=args.workers,
        backlog=args.backlog,
        http=HTTP_PROTOCOL,
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
        log_level=args.log_level,
        access_log=args.access_log,
    )


if __name__ == "__main__":
    main()
