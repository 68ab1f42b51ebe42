#!/usr/bin/env python3
"""The server's latency at its own socket, from a loopback capture (`tcpdump -i lo -w FILE`).

Usage: bench/wire-latency.py FILE PATH [PATH...]

For each HTTP/1.1 request whose path is one of PATH, on a connection that carried every PATH
(bench/phone-batch.mjs times its answers and its GET /healthz floor on one kept-alive
connection, so the batch's own requests on other connections are left out): the time from the
request's last segment reaching the server to the first segment of its response leaving it.
That is the server's part of a round trip over HTTP (parsing, handler, database, writing),
without the client's own scheduling, which on a shared machine is most of a client-side tail.
Prints one JSON object: per path, the count and the p50/p90/p99/max in milliseconds.
Reads classic pcap (micro- or nanosecond stamps), Ethernet (Linux `lo`) or Linux cooked frames.
"""
import json
import struct
import sys


def packets(path):
    with open(path, 'rb') as f:
        head = f.read(24)
        if len(head) < 24:
            return
        magic = struct.unpack('<I', head[:4])[0]
        if magic not in (0xA1B2C3D4, 0xA1B23C4D):
            sys.exit(f'{path}: not a little-endian pcap file (pcapng is not read; use tcpdump -w)')
        scale = 1e9 if magic == 0xA1B23C4D else 1e6
        link = struct.unpack('<I', head[20:24])[0]
        offset = {1: 14, 113: 16, 276: 20}.get(link)
        if offset is None:
            sys.exit(f'{path}: link type {link} is not read (capture on lo)')
        while True:
            rec = f.read(16)
            if len(rec) < 16:
                return
            sec, frac, incl, _ = struct.unpack('<IIII', rec)
            frame = f.read(incl)
            ip = frame[offset:]
            if not ip:
                continue
            if ip[0] >> 4 == 4:
                tcp = ip[(ip[0] & 15) * 4:]
            elif ip[0] >> 4 == 6:
                tcp = ip[40:]
            else:
                continue
            if len(tcp) < 20:
                continue
            sport, dport = struct.unpack('>HH', tcp[:4])
            payload = tcp[(tcp[12] >> 4) * 4:]
            if payload:
                yield sec + frac / scale, sport, dport, payload


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    wanted = [p.encode() for p in sys.argv[2:]]
    open_requests = {}  # (client port, server port) -> [path, time of its last segment]
    done = []  # (client port, server port, path, ms)
    for t, sport, dport, payload in packets(sys.argv[1]):
        first = payload.split(b' ', 2)
        if first[0] in (b'GET', b'POST', b'PUT', b'DELETE', b'PATCH') and len(first) > 2:
            open_requests[(sport, dport)] = [first[1].split(b'?')[0], t]
        elif payload.startswith(b'HTTP/1.1 ') and (dport, sport) in open_requests:
            path, t0 = open_requests.pop((dport, sport))
            done.append((dport, sport, path, (t - t0) * 1000))
        elif (sport, dport) in open_requests:
            open_requests[(sport, dport)][1] = t  # a later segment of the same request
    paths_of = {}
    for client, server, path, _ in done:
        paths_of.setdefault((client, server), set()).add(path)
    keep = {c for c, p in paths_of.items() if all(w in p for w in wanted)}
    out = {}
    for w in wanted:
        v = sorted(ms for c, s, p, ms in done if p == w and (c, s) in keep)
        if not v:
            out[w.decode()] = {'requests': 0}
            continue
        q = lambda p: round(v[min(len(v) - 1, int(len(v) * p))], 2)  # noqa: E731
        out[w.decode()] = {'requests': len(v), 'p50_ms': q(0.5), 'p90_ms': q(0.9), 'p99_ms': q(0.99), 'max_ms': q(1)}
    print(json.dumps(out))


if __name__ == '__main__':
    main()
