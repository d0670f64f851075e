"""Whether a WAL's syncs on a disk slow a bulk writer on the same disk: the throughput
of writing 16 MiB files four at a time (each fsynced, as a local-directory object
store does) alone, and beside a loop of `pwrite` + `fdatasync` of SIZE bytes (a WAL's
group commits) on the same filesystem.

    python3 deploy/bench/bulk_beside_sync.py [--dir DIR] [--seconds N] none 16384 1048576 none

Each argument is one case, run in order: `none` (the bulk writer alone) or the sync
loop's write size in bytes. Nothing of Strata runs here: it is a baseline for reading
the local WAL's figures in docs/benchmarks.md.
"""
import argparse
import os
import shutil
import tempfile
import threading
import time

OBJECT = 16 << 20
AT_ONCE = 4
WAL_FILE = 64 << 20


def bulk(directory, seconds, data):
    """MiB/s of writing AT_ONCE files of OBJECT bytes, then fsyncing each, in turns."""
    written, started, turn = 0, time.time(), 0
    while time.time() - started < seconds:
        fds = []
        for k in range(AT_ONCE):
            path = os.path.join(directory, f"object-{turn}-{k}")
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            os.write(fd, data)
            fds.append(fd)
        for fd in fds:
            os.fsync(fd)
            os.close(fd)
        written += AT_ONCE * len(data)
        turn += 1
    return written / (time.time() - started) / (1 << 20)


def sync_loop(directory, size, stop, counted):
    """Overwrites a preallocated file SIZE bytes at a time, each write fdatasynced."""
    fd = os.open(os.path.join(directory, "wal"), os.O_WRONLY | os.O_CREAT)
    os.ftruncate(fd, WAL_FILE)
    piece, offset, syncs = os.urandom(size), 0, 0
    while not stop.is_set():
        os.pwrite(fd, piece, offset)
        os.fdatasync(fd)
        offset = (offset + size) % WAL_FILE
        syncs += 1
    os.close(fd)
    counted.append(syncs)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default=None, help="where to write (a new directory under it)")
    parser.add_argument("--seconds", type=float, default=8.0, help="seconds per case")
    parser.add_argument("cases", nargs="+", help="`none` or a sync write size in bytes")
    args = parser.parse_args()
    data = os.urandom(OBJECT)
    for case in args.cases:
        directory = tempfile.mkdtemp(prefix="strata-bulk-sync-", dir=args.dir)
        try:
            stop, counted, syncer = threading.Event(), [], None
            if case != "none":
                syncer = threading.Thread(target=sync_loop,
                                          args=(directory, int(case), stop, counted))
                syncer.start()
            rate = bulk(directory, args.seconds, data)
            stop.set()
            if syncer:
                syncer.join()
            syncs = counted[0] if counted else 0
            print(f"sync writes {case:>8}: bulk write {rate:6.0f} MiB/s, "
                  f"{syncs / args.seconds:6.0f} syncs/s", flush=True)
        finally:
            shutil.rmtree(directory)


if __name__ == "__main__":
    main()
