#!/usr/bin/env python3
"""What sets a local directory's write speed on this machine: the disk, or the page
cache growing into memory the kernel has handed back to the host.

Three measurements in DIRECTORY (docs/benchmarks.md, "The raw write and the ingest
take turns"):

1. direct I/O: 64 MiB writes at every --step GiB of a preallocated --gib file, three
   passes; what the disk takes, without the page cache.
2. through the page cache: --gib written in 64 MiB writes (fdatasync every GiB), MiB/s
   each second; then the file is removed and the same is written again.
3. the kernel's free page reporting: its settings and how much it has handed back.

    python3 deploy/bench/page_cache_probe.py /tmp --gib 40
"""

import argparse
import mmap
import os
import time

CHUNK = 64 << 20
REPORTING = "/sys/module/page_reporting/parameters"


def reporting():
    """The free page reporting parameters, or None where the kernel has none."""
    if not os.path.isdir(REPORTING):
        return None
    values = {}
    for name in sorted(os.listdir(REPORTING)):
        with open(os.path.join(REPORTING, name)) as f:
            values[name] = f.read().strip()
    return values


def direct(path, gib, step):
    # O_DIRECT needs an aligned buffer: an anonymous map is page-aligned.
    buf = mmap.mmap(-1, CHUNK)
    buf.write(os.urandom(CHUNK))
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_DIRECT)
    try:
        os.posix_fallocate(fd, 0, gib << 30)
        for rnd in range(3):
            rates = []
            for offset in range(0, gib, step):
                started = time.monotonic()
                for i in range(16):  # 1 GiB at this offset
                    os.pwrite(fd, buf, (offset << 30) + i * CHUNK)
                os.fdatasync(fd)
                rates.append(f"{offset}:{1024 / (time.monotonic() - started):.0f}")
            print(f"  pass {rnd}  GiB offset:MiB/s  {' '.join(rates)}", flush=True)
    finally:
        os.close(fd)
        os.unlink(path)


def buffered(path, gib):
    buf = os.urandom(CHUNK)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    started = last = time.monotonic()
    written = in_second = 0
    seconds = []
    try:
        while written < gib << 30:
            os.write(fd, buf)
            written += CHUNK
            in_second += CHUNK
            if written % (1 << 30) == 0:
                os.fdatasync(fd)
            now = time.monotonic()
            if now - last >= 1:
                seconds.append(f"{in_second / (now - last) / (1 << 20):.0f}")
                in_second, last = 0, now
        os.fdatasync(fd)
    finally:
        os.close(fd)
    mean = (gib << 10) / (time.monotonic() - started)
    print(f"  MiB/s by second: {' '.join(seconds)}  (mean {mean:.0f})", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", help="on the file system under test")
    parser.add_argument("--gib", type=int, default=8, help="file size (default 8)")
    parser.add_argument("--step", type=int, default=4, help="GiB between direct writes")
    args = parser.parse_args()
    path = os.path.join(args.directory, "page-cache-probe")

    before = reporting()
    print(f"free page reporting: {before if before is not None else 'not in this kernel'}")
    print(f"direct I/O, 1 GiB at every {args.step} GiB of {args.gib} GiB:")
    direct(path, args.gib, args.step)
    for rnd in range(2):
        print(f"through the page cache, {args.gib} GiB, pass {rnd}:")
        buffered(path, args.gib)
        os.unlink(path)
    after = reporting()
    if before is not None and after is not None:
        handed = int(after["reported_kib"]) - int(before["reported_kib"])
        print(f"memory handed back to the host meanwhile: {handed / (1 << 20):.1f} GiB")


if __name__ == "__main__":
    main()
