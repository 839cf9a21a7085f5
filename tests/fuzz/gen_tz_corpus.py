#!/usr/bin/env python3
"""Write the TZif seeds in corpus/tz/ (RFC 8536), built from scratch here
rather than copied from a tzdata release: a few transitions each, in the
shapes tz.c must read (version 1 only, version 2 with 64-bit times, "slim"
files that leave everything to the footer, southern-hemisphere and Julian
footer rules). Run it from anywhere; it overwrites the seeds."""
import os
import struct

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "tz")


def block(times, idxs, types, chars, timesize):
    fmt = ">%d%s" % (len(times), "q" if timesize == 8 else "l")
    out = struct.pack(fmt, *times) + bytes(idxs)
    for utoff, isdst, desig in types:
        out += struct.pack(">lBB", utoff, isdst, desig)
    out += chars
    out += bytes(len(types)) * 2  # isstd and isut indicators, all 0
    return out


def header(version, times, types, chars):
    n = len(types)
    return b"TZif" + version + bytes(15) + struct.pack(">6L", n, n, 0, len(times), n, len(chars))


def tzif(version, times, idxs, types, chars, footer):
    v1 = header(version, times, types, chars) + block(times, idxs, types, chars, 4)
    if version == b"\0":
        return v1
    v2 = header(version, times, types, chars) + block(times, idxs, types, chars, 8)
    return v1 + v2 + b"\n" + footer + b"\n"


CET = [(3600, 0, 0), (7200, 1, 4)]
SEEDS = {
    # 2023-03-26 01:00Z, 2023-10-29 01:00Z, 2024-03-31 01:00Z, 2024-10-27 01:00Z
    "cet_v2": tzif(b"2", [1679792400, 1698541200, 1711846800, 1729990800], [1, 0, 1, 0], CET,
                   b"CET\0CEST\0", b"CET-1CEST,M3.5.0,M10.5.0/3"),
    "cet_v1": tzif(b"\0", [1679792400, 1698541200], [1, 0], CET, b"CET\0CEST\0", b""),
    "new_york_slim": tzif(b"2", [], [], [(-18000, 0, 0)], b"EST\0", b"EST5EDT,M3.2.0,M11.1.0"),
    "sydney_v3": tzif(b"3", [1696089600], [1], [(36000, 0, 0), (39600, 1, 5)], b"AEST\0AEDT\0",
                      b"AEST-10AEDT,M10.1.0,M4.1.0/3"),
    "julian_v4": tzif(b"4", [-1900000000], [0], [(12600, 0, 0)], b"+0330\0",
                      b"<+0330>-3:30<+0430>,J79/24,J263/24"),
    "utc_v2": tzif(b"2", [], [], [(0, 0, 0)], b"UTC\0", b"UTC0"),
}

os.makedirs(HERE, exist_ok=True)
for name, data in SEEDS.items():
    with open(os.path.join(HERE, name), "wb") as f:
        f.write(data)
