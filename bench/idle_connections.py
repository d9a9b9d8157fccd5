#!/usr/bin/env python3
"""Opens many keep-alive connections to a loopback server, completes one request on each
(or sends nothing with --silent), holds them all open, and reports what they cost the
server in resident memory: VmRSS of the server's PID from /proc before and after.

Raises this process's soft open-file limit to the hard limit first; the number of
connections actually reached (answered, and still open after the settle time) is
reported, never assumed.

usage: bench/idle_connections.py PID PORT [--path /x] [--connections 10000] [--silent]
       prints one line: key=value pairs (reached, rss_before_kib, rss_after_kib, ...)
"""
import argparse
import asyncio
import resource
import sys
import time


def vmrss_kib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


async def open_one(args, gate, held):
    request = f"GET {args.path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
    async with gate:  # bounded number of connections being opened at once
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", args.port), 10)
        except (OSError, asyncio.TimeoutError):
            return "connect"
        if args.silent:
            held.append((reader, writer))
            return None
        try:
            writer.write(request)
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            if length:
                await asyncio.wait_for(reader.readexactly(length), 10)
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            writer.close()
            return "request"
        if b" 200 " not in head.split(b"\r\n", 1)[0] or b"connection: close" in head.lower():
            writer.close()
            return "answer"
        held.append((reader, writer))
        return None


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("pid", type=int)
    parser.add_argument("port", type=int)
    parser.add_argument("--path", default="/")
    parser.add_argument("--connections", type=int, default=10000)
    parser.add_argument("--silent", action="store_true", help="connect only, send nothing")
    parser.add_argument("--settle", type=float, default=3.0, help="seconds to wait before reading RSS")
    args = parser.parse_args()

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft = hard
    wanted = args.connections
    if soft != resource.RLIM_INFINITY and wanted > soft - 64:
        print(f"idle_connections: open-file limit {soft} allows {soft - 64} connections", file=sys.stderr)
        wanted = soft - 64

    before = vmrss_kib(args.pid)
    held = []
    gate = asyncio.Semaphore(256)
    start = time.monotonic()
    outcomes = await asyncio.gather(*(open_one(args, gate, held) for _ in range(wanted)))
    opened_s = time.monotonic() - start
    await asyncio.sleep(args.settle)  # the server gives buffers back once a connection is idle
    alive = sum(1 for reader, _ in held if not reader.at_eof())
    after = vmrss_kib(args.pid)
    failures = {kind: outcomes.count(kind) for kind in ("connect", "request", "answer")}
    per_conn = (after - before) * 1024 / alive if alive else float("nan")
    print(f"asked={args.connections} reached={alive} open_s={opened_s:.1f} "
          f"rss_before_kib={before} rss_after_kib={after} bytes_per_connection={per_conn:.0f} "
          f"failed_connect={failures['connect']} failed_request={failures['request']} "
          f"refused_answer={failures['answer']}")
    for _, writer in held:
        writer.close()


if __name__ == "__main__":
    asyncio.run(main())
