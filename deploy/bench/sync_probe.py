"""What this machine's disk does to a WAL's syncs when its CPUs are busy: the latency
of overwrite + fdatasync alone, beside a process spinning on each CPU in turn, and
beside another process writing the disk.

    python3 deploy/bench/sync_probe.py [--dir DIR] [--seconds N]

Nothing of Strata runs here: it is the baseline for reading the benchmarks. On the
project's VM (Firecracker, `nested_pvm=1` on the kernel command line) the disk's
completion interrupt goes to one CPU, and while a process spins in user space on that
CPU a sync completes only after ~8 ms instead of ~0.2 ms: the interrupt waits for the
vCPU's next exit to the host. `quiet_cpus` finds the CPUs a busy process can use
without that; the Kafka benchmark pins its client there, as a client on its own
machine would leave the broker's disk alone.
"""
import argparse
import multiprocessing
import os
import time

FILE = 64 << 20
PIECE = 256 << 10
# A CPU is noisy when a spinner there makes the median sync this many times slower
# (and slower than NOISY_MS): the effect seen is 40x, the run-to-run noise under 2x.
NOISY_FACTOR = 4
NOISY_MS = 2.0


def spin(cpu):
    """Keeps `cpu` busy in user space (no system calls) until terminated."""
    os.sched_setaffinity(0, {cpu})
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


def syncs(directory, seconds, size, pause):
    """Latencies (ms, sorted) of `size`-byte overwrites of a preallocated file, each
    fdatasynced, `pause` seconds apart (so the probe does not fill the disk)."""
    path = os.path.join(directory, "sync-probe-wal")
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        os.write(fd, b"\0" * FILE)
        os.fsync(fd)
        data = os.urandom(size)
        latencies = []
        position = 0
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            started = time.perf_counter()
            os.pwrite(fd, data, position)
            os.fdatasync(fd)
            latencies.append((time.perf_counter() - started) * 1000)
            position = (position + size) % (FILE - size)
            if pause:
                time.sleep(pause)
    finally:
        os.close(fd)
        os.remove(path)
    return sorted(latencies)


def beside(directory, seconds, size, pause, spin_on=None, writing=False):
    """`syncs` while a spinner runs on CPU `spin_on` and/or a writer writes."""
    stop = multiprocessing.Event()
    spinner = None if spin_on is None else multiprocessing.Process(target=spin, args=(spin_on,))
    writers = [multiprocessing.Process(target=writer, args=(directory, stop))] if writing else []
    for helper in ([spinner] if spinner else []) + writers:
        helper.start()
    try:
        time.sleep(0.3)
        return syncs(directory, seconds, size, pause)
    finally:
        stop.set()
        if spinner:
            spinner.terminate()
            spinner.join()
        for helper in writers:
            helper.join()
        for n in range(4):
            try:
                os.remove(os.path.join(directory, f"sync-probe-writer-{n}"))
            except FileNotFoundError:
                pass


def p50(latencies):
    return latencies[len(latencies) // 2]


def quiet_cpus(directory, seconds=1.0):
    """The CPUs where a spinning process leaves the disk's 4 KiB syncs as fast as on
    an idle machine, and a line saying what was measured."""
    cpus = sorted(os.sched_getaffinity(0))
    idle = p50(beside(directory, seconds, 4096, 0.001))
    quiet = []
    figures = []
    for cpu in cpus:
        busy = p50(beside(directory, seconds, 4096, 0.001, spin_on=cpu))
        figures.append(f"CPU {cpu}: {busy:.2f} ms")
        if busy < max(NOISY_MS, NOISY_FACTOR * idle):
            quiet.append(cpu)
    report = (f"4 KiB fdatasync p50 {idle:.2f} ms idle; beside a process spinning on "
              + ", ".join(figures))
    return quiet, report


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--dir", default=".", help="a directory on the disk under test")
    parser.add_argument("--seconds", type=float, default=2)
    parser.add_argument("--quiet-cpus", action="store_true",
                        help="print only the CPUs a busy process can use without slowing "
                             "the disk's syncs, as a taskset list (all when none is noisy)")
    args = parser.parse_args()
    if args.quiet_cpus:
        quiet, _ = quiet_cpus(args.dir)
        print(",".join(map(str, quiet or sorted(os.sched_getaffinity(0)))))
        return
    size = 470 << 10
    print(f"# {size >> 10} KiB overwrite + fdatasync every 2 ms, {args.seconds:g} s per case, "
          f"{os.cpu_count()} CPUs, in {os.path.abspath(args.dir)}")
    print(f"{'beside':<34} {'syncs':>6} {'p50 ms':>7} {'p99 ms':>7} {'mean ms':>8}")
    cases = [("nothing", None, False)]
    cases += [(f"a process spinning on CPU {cpu}", cpu, False)
              for cpu in sorted(os.sched_getaffinity(0))]
    cases += [("a writer (synced 256 KiB pieces)", None, True)]
    for label, spin_on, writing in cases:
        latencies = beside(args.dir, args.seconds, size, 0.002, spin_on, writing)
        count = len(latencies)
        print(f"{label:<34} {count:>6} {p50(latencies):>7.2f} "
              f"{latencies[min(count - 1, int(count * 0.99))]:>7.2f} "
              f"{sum(latencies) / count:>8.2f}", flush=True)


if __name__ == "__main__":
    main()
