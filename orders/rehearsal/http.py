"""A lean HTTP/1.1 client on asyncio streams: what the crowd needs and nothing more.

httpx spends about a millisecond of CPU per request, which on a small machine makes the
simulator, not the server, the bottleneck of a spike. This keeps connections alive, reads
the status line, Retry-After and Content-Length, and gives the body back. (bench/ has a
leaner one still, but nothing outside bench/ may import bench/.)
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Reply:
    status: int  # -1 when no answer came (refused, reset, timed out)
    retry_after: float | None
    body: bytes


class Client:
    def __init__(self, url: str, *, max_connections: int, timeout: float):
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.host_header = f"{self.host}:{self.port}".encode()
        self.timeout = timeout
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self.slots = asyncio.Semaphore(max_connections)

    async def post(self, path: str, body: bytes, headers: dict[str, str]) -> Reply:
        head = [
            f"POST {path} HTTP/1.1".encode(),
            b"Host: " + self.host_header,
            f"Content-Length: {len(body)}".encode(),
        ]
        head += [f"{k}: {v}".encode() for k, v in headers.items()]
        request = b"\r\n".join(head) + b"\r\n\r\n" + body
        async with self.slots:
            conn = None
            try:
                conn = self.idle.pop() if self.idle else await asyncio.open_connection(self.host, self.port)
                reply, keep = await asyncio.wait_for(self._exchange(conn, request), self.timeout)
            except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError):
                if conn is not None:
                    conn[1].close()
                return Reply(-1, None, b"")
            if keep:
                self.idle.append(conn)
            else:
                conn[1].close()
            return reply

    async def _exchange(self, conn, request: bytes) -> tuple[Reply, bool]:
        reader, writer = conn
        writer.write(request)
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        length, retry_after, keep = 0, None, True
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"retry-after":
                try:
                    retry_after = float(value)
                except ValueError:
                    retry_after = None
            elif name == b"connection" and value.strip().lower() == b"close":
                keep = False
            elif name == b"transfer-encoding":
                raise ValueError("chunked answers are not expected from the API")
        body = await reader.readexactly(length) if length else b""
        return Reply(status, retry_after, body), keep

    async def close(self) -> None:
        for _, writer in self.idle:
            writer.close()
        self.idle.clear()
