"""What this machine's disk does to a WAL's syncs when the CPUs and the disk are
shared: the latency of a 470 KiB overwrite + fdatasync (one produce request of a
single lz4 partition) alone, beside one busy core, beside another process writing,
and beside both.

    python3 deploy/bench/sync_probe.py [--dir DIR] [--seconds N]

Nothing of Strata runs here: it is the baseline for reading the Kafka benchmark's
single-partition figures. On the project's Firecracker VM the last case is an order
of magnitude slower than the others (a busy vCPU plus a second writer), which is what
librdkafka's idempotent producer, busy-polling one core while its one request is in
flight, does to the broker's WAL in that benchmark.
"""
import argparse
import multiprocessing
import os
import time

WRITE = 470 << 10
FILE = 64 << 20
PIECE = 256 << 10


def busy():
    """A core kept busy in user space (no system calls), until terminated."""
    while True:
        pass


def writer(directory, stop):
    """Another process writing the disk: 8 MiB files in synced 256 KiB pieces, the
    way uploads to a local directory are written."""
    piece = os.urandom(PIECE)
    n = 0
    while not stop.is_set():
        path = os.path.join(directory, f"sync-probe-writer-{n % 4}")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            for _ in range(32):
                os.write(fd, piece)
                os.fsync(fd)
        finally:
            os.close(fd)
        n += 1


def syncs(directory, seconds):
    """Latencies (ms) of WRITE-byte overwrites of a preallocated file, each synced."""
    path = os.path.join(directory, "sync-probe-wal")
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        os.write(fd, b"\0" * FILE)
        os.fsync(fd)
        data = os.urandom(WRITE)
        latencies = []
        position = 0
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            started = time.perf_counter()
            os.pwrite(fd, data, position)
            os.fdatasync(fd)
            latencies.append((time.perf_counter() - started) * 1000)
            position = (position + WRITE) % (FILE - WRITE)
    finally:
        os.close(fd)
        os.remove(path)
    return sorted(latencies)


def case(directory, seconds, busy_cores, writers):
    stop = multiprocessing.Event()
    spinners = [multiprocessing.Process(target=busy) for _ in range(busy_cores)]
    writers = [multiprocessing.Process(target=writer, args=(directory, stop))
               for _ in range(writers)]
    for helper in spinners + writers:
        helper.start()
    try:
        time.sleep(0.5)
        return syncs(directory, seconds)
    finally:
        stop.set()
        for spinner in spinners:
            spinner.terminate()
        for helper in spinners + writers:
            helper.join()
        for n in range(4):
            try:
                os.remove(os.path.join(directory, f"sync-probe-writer-{n}"))
            except FileNotFoundError:
                pass


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--dir", default=".", help="a directory on the disk under test")
    parser.add_argument("--seconds", type=float, default=4)
    args = parser.parse_args()
    print(f"# {WRITE >> 10} KiB overwrite + fdatasync, {args.seconds:g} s per case, "
          f"{os.cpu_count()} CPUs, in {os.path.abspath(args.dir)}")
    print(f"{'beside':<34} {'syncs':>6} {'MiB/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'mean ms':>8}")
    for label, busy_cores, writers in (("nothing", 0, 0), ("one busy core", 1, 0),
                                       ("a writer (synced 256 KiB pieces)", 0, 1),
                                       ("one busy core and a writer", 1, 1)):
        latencies = case(args.dir, args.seconds, busy_cores, writers)
        count = len(latencies)
        mean = sum(latencies) / count
        print(f"{label:<34} {count:>6} {count * WRITE / args.seconds / (1 << 20):>7.0f} "
              f"{latencies[count // 2]:>7.2f} "
              f"{latencies[min(count - 1, int(count * 0.99))]:>7.2f} {mean:>8.2f}", flush=True)


if __name__ == "__main__":
    main()
