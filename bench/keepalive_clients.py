#!/usr/bin/env python3
"""Opens N concurrent keep-alive HTTP/1.1 connections to a loopback server and sends
requests on each for a fixed time. Prints, per run, how many connections were never
answered, the longest any connection waited for a response, and requests/s. wrk does not
report connections that never receive a byte; this does.

usage: bench/keepalive_clients.py PORT PATH [--connections 256] [--seconds 10]
"""
import argparse
import asyncio
import time


async def client(port, path, deadline, stats):
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
    answered = 0
    worst_wait = 0.0
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 5)
    except (OSError, asyncio.TimeoutError):
        stats.append((0, float("inf"), "connect failed"))
        return
    try:
        while time.monotonic() < deadline:
            sent = time.monotonic()
            writer.write(request)
            try:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), max(0.1, deadline + 5 - sent))
            except (asyncio.TimeoutError, asyncio.IncompleteReadError, ConnectionError):
                worst_wait = max(worst_wait, time.monotonic() - sent)
                break
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            if length:
                await reader.readexactly(length)
            worst_wait = max(worst_wait, time.monotonic() - sent)
            answered += 1
            if b"connection: close" in head.lower():
                writer.close()
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
    finally:
        writer.close()
    stats.append((answered, worst_wait, ""))


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("path")
    parser.add_argument("--connections", type=int, default=256)
    parser.add_argument("--seconds", type=float, default=10)
    args = parser.parse_args()
    stats = []
    start = time.monotonic()
    deadline = start + args.seconds
    await asyncio.gather(*(client(args.port, args.path, deadline, stats) for _ in range(args.connections)))
    elapsed = time.monotonic() - start
    total = sum(s[0] for s in stats)
    never = sum(1 for s in stats if s[0] == 0)
    worst = max(s[1] for s in stats)
    print(f"connections={args.connections} never_answered={never} "
          f"longest_wait_s={worst:.3f} requests={total} requests_per_s={total / elapsed:.0f}")


if __name__ == "__main__":
    asyncio.run(main())
