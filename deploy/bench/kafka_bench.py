"""Drives a Strata broker with librdkafka and prints produce and consume throughput
and produce latency, beside the broker's peak RSS.

    python kafka_bench.py --strata target/release/strata --driver PATH \\
        [--config FILE] [--label NAME] [--mib N] [--latency-only] [--client-cpus auto]

Starts `strata serve` itself (fresh data directory, free ports) so it can read the
broker's peak RSS from /proc; each case uses a new topic, created here with
confluent-kafka's admin client. Records are produced and consumed by the Rust
driver in rdkafka-driver/ (librdkafka), which prints `key=value` figures. The
driver is pinned to the CPUs where a busy process does not slow the disk's syncs
(`choose_client_cpus`).
"""
import argparse
import os
import resource
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request

from confluent_kafka.admin import AdminClient, NewTopic

import sync_probe

RECORD = 1024


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def histogram(admin_addr, series):
    """Cumulative buckets [(upper bound in seconds, count)] of one histogram series
    (name and labels up to the `le` label) scraped from the broker."""
    text = urllib.request.urlopen(f"http://{admin_addr}/metrics", timeout=10).read().decode()
    prefix = series + 'le="'
    buckets = []
    for line in text.splitlines():
        if line.startswith(prefix):
            le = line[len(prefix):].split('"')[0]
            buckets.append((float("inf") if le == "+Inf" else float(le), float(line.split()[-1])))
    return sorted(buckets)


def broker_produce_quantiles(admin_addr, quantiles=(0.5, 0.99, 0.999)):
    """Quantiles (ms) of the broker's own Produce latency histogram, from arrival of
    the request to its response written: the broker's share of the latency."""
    buckets = histogram(admin_addr,
                        'strata_kafka_request_duration_seconds_bucket{api="Produce",')
    total = buckets[-1][1] if buckets else 0
    return [next((le for le, count in buckets if count >= q * total), float("nan")) * 1000
            for q in quantiles]


def over(buckets, seconds):
    """How many observations of a cumulative histogram exceeded `seconds` (a bound)."""
    total = buckets[-1][1] if buckets else 0
    return total - next((count for le, count in buckets if le == seconds), total)


SLOW_SYNC_MS = (5, 10, 25)


def disk_sync_probe(directory, seconds):
    """The disk's own fdatasync latency, before the broker runs: 4 KiB overwrites of
    a preallocated file, each synced, for `seconds`. Stalls here are the machine's
    (the host flushing its cache), and every WAL sync in their path waits as long."""
    latencies = sync_probe.syncs(directory, seconds, 4096, pause=0)
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    slow = ", ".join(f"over {ms} ms: {sum(1 for x in latencies if x > ms)}"
                     for ms in SLOW_SYNC_MS)
    return (f"{len(latencies)} syncs, p50 {latencies[len(latencies) // 2]:.2f} ms, "
            f"p99 {p99:.2f} ms, max {latencies[-1]:.1f} ms; {slow}")


def choose_client_cpus(choice, directory):
    """The CPU set to pin the client to (None: not pinned), and says why.

    The client shares this machine with the broker, where it would run on machines
    of its own. librdkafka's idempotent producer busy-polls a core while its request
    is in flight; on a VM whose disk interrupts reach a busy vCPU late (this
    project's: ~8 ms instead of ~0.2), a client spinning on that CPU sets the
    broker's WAL sync time, which a client elsewhere would not. `auto` keeps it on
    the CPUs where a spinning process leaves the disk alone."""
    every = sorted(os.sched_getaffinity(0))
    if choice == "all":
        cpus = None
    elif choice == "auto":
        quiet, report = sync_probe.quiet_cpus(directory)
        print(f"# {report}", flush=True)
        cpus = set(quiet) if quiet and len(quiet) < len(every) else None
    else:
        cpus = {int(cpu) for cpu in choice.split(",")}
    where = "all CPUs" if cpus is None else "CPU " + ", ".join(map(str, sorted(cpus)))
    print(f"# client on {where}; the broker on all {len(every)}", flush=True)
    return cpus


def peak_rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid):
    """User plus system CPU time a process has used so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def drive(driver, bootstrap, topic, partitions, *mode, broker_pid, cpus=None):
    """Runs the driver; returns its figures as a dict of floats, with the CPU the
    driver and the broker used meanwhile (`client_cpu`, `broker_cpu`: percent of one
    core). The driver runs on `cpus` (all when None)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    broker_before = cpu_seconds(broker_pid)
    started = time.monotonic()
    run = subprocess.run([driver, "--bootstrap", bootstrap, "--topic", topic,
                          "--partitions", str(partitions), *map(str, mode)],
                         capture_output=True, text=True, timeout=900,
                         preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None)
    elapsed = time.monotonic() - started
    if run.returncode != 0:
        raise SystemExit(f"driver {' '.join(map(str, mode))} failed: {run.stderr.strip()}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    figures = {k: float(v) for k, v in (field.split("=") for field in run.stdout.split())}
    client = (after.ru_utime + after.ru_stime) - (children.ru_utime + children.ru_stime)
    figures["client_cpu"] = 100 * client / elapsed
    figures["broker_cpu"] = 100 * (cpu_seconds(broker_pid) - broker_before) / elapsed
    return figures


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--strata", required=True)
    parser.add_argument("--driver", required=True,
                        help="the strata-rdkafka-driver binary (deploy/bench/rdkafka-driver)")
    parser.add_argument("--config")
    parser.add_argument("--label", default="embedded default (local directory, local WAL)")
    parser.add_argument("--mib", type=int, default=512, help="MiB produced per case")
    parser.add_argument("--latency-only", action="store_true",
                        help="only the paced 50 MiB/s latency case")
    parser.add_argument("--client-cpus", default="auto",
                        help="CPUs the client runs on: 'auto' (those where a busy process "
                             "does not slow the disk's syncs, see sync_probe.py), 'all', "
                             "or a list such as 0,1")
    args = parser.parse_args()

    data = tempfile.mkdtemp(prefix="strata-bench-")
    # Each case writes hundreds of MiB: the data directory goes when the run ends,
    # however it ends.
    broker = None
    try:
        # The same run's baseline for the latency case: what the disk itself does.
        print(f"# disk baseline, {data}: {disk_sync_probe(data, 10)}", flush=True)
        client_cpus = choose_client_cpus(args.client_cpus, data)
        port = free_port()
        admin_addr = f"127.0.0.1:{free_port()}"
        env = dict(os.environ, STRATA_BROKER_LISTEN=f"127.0.0.1:{port}",
                   STRATA_ADMIN_LISTEN=admin_addr,
                   STRATA_BROKER_DATA_DIR=os.path.join(data, "state"),
                   STRATA_STORAGE_ROOT=os.path.join(data, "objects"), STRATA_LOG="warn")
        command = [args.strata, "serve"] + (["--config", args.config] if args.config else [])
        if args.config:
            env.pop("STRATA_STORAGE_ROOT")
        broker = subprocess.Popen(command, env=env, stderr=open(os.path.join(data, "broker.log"), "w"))
        bootstrap = f"127.0.0.1:{port}"
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        admin = AdminClient({"bootstrap.servers": bootstrap})

        def new_topic(name, partitions):
            admin.create_topics([NewTopic(name, partitions, 1)])[name].result(30)

        version = subprocess.run([args.driver, "--bootstrap", "-", "--topic", "-", "version"],
                                 capture_output=True, text=True, check=True).stdout.strip()
        print(f"# {args.label}; librdkafka {version} (Rust driver); "
              f"1 KiB records, {args.mib} MiB per case")
        print(f"{'case':<38} {'produce MiB/s':>13} {'msg/s':>9} {'p50 ms':>7} {'p99 ms':>7} "
              f"{'p999 ms':>8} {'consume MiB/s':>13} {'msg/s':>9} {'peak RSS MiB':>12} "
              f"{'produce CPU % client/broker':>27}")
        # The paced latency case runs first, on the fresh broker, so uploads of the
        # throughput cases' backlog do not share the disk with it.
        new_topic("bench-latency", 16)
        paced = drive(args.driver, bootstrap, "bench-latency", 16, "produce", "--mib", 500,
                      "--rate-mib", 50, "--codec", "lz4", "--acks", "all",
                      broker_pid=broker.pid, cpus=client_cpus)
        print(f"{'16 partitions, lz4, acks=all @50MiB/s':<38} {paced['mib_per_s']:>13.1f} "
              f"{paced['msg_per_s']:>9.0f} {paced['p50_ms']:>7.2f} {paced['p99_ms']:>7.2f} "
              f"{paced['p999_ms']:>8.2f}   (max {paced['max_ms']:.2f}; CPU client "
              f"{paced['client_cpu']:.0f} %, broker {paced['broker_cpu']:.0f} %)", flush=True)
        b50, b99, b999 = broker_produce_quantiles(admin_addr)
        print(f"{'  same, broker-side (bucket bound)':<38} {'':>13} {'':>9} "
              f"{b50:>7.2f} {b99:>7.2f} {b999:>8.2f}", flush=True)
        wal_syncs = histogram(admin_addr, "strata_wal_fsync_seconds_bucket{")
        if wal_syncs:
            slow = ", ".join(f"over {ms} ms: {over(wal_syncs, ms / 1000):.0f}" for ms in SLOW_SYNC_MS)
            print(f"{'  same, WAL syncs':<38} {wal_syncs[-1][1]:>13.0f} syncs; {slow}", flush=True)
        print(f"{'  broker peak RSS so far':<38} {peak_rss_mib(broker.pid):>13.0f} MiB", flush=True)
        # acks=all is idempotent (librdkafka keeps one produce request in flight per
        # broker then), except the case marked "5 in flight", which shows what one
        # partition takes from a client that pipelines.
        cases = [] if args.latency_only else [
            (p, codec, acks, ()) for p in (1, 16) for codec, acks in
            (("none", "all"), ("lz4", "all"), ("none", "1"))]
        if not args.latency_only:
            cases.insert(2, (1, "lz4", "all", ("--no-idempotence",)))
        for n, (partitions, codec, acks, extra) in enumerate(cases):
            topic = f"bench-{n}-{partitions}-{codec}-{acks}"
            new_topic(topic, partitions)
            produced = drive(args.driver, bootstrap, topic, partitions, "produce", "--mib", args.mib,
                             "--codec", codec, "--acks", acks, *extra,
                             broker_pid=broker.pid, cpus=client_cpus)
            consumed = drive(args.driver, bootstrap, topic, partitions, "consume",
                             "--records", int(produced["records"]) + partitions,
                             broker_pid=broker.pid, cpus=client_cpus)
            label = (f"{partitions} partition, {codec}, all, 5 in flight" if extra
                     else f"{partitions} partition(s), {codec}, acks={acks}")
            print(f"{label:<38} "
                  f"{produced['mib_per_s']:>13.1f} {produced['msg_per_s']:>9.0f} "
                  f"{produced['p50_ms']:>7.2f} {produced['p99_ms']:>7.2f} {produced['p999_ms']:>8.2f} "
                  f"{consumed['mib_per_s']:>13.1f} {consumed['msg_per_s']:>9.0f} "
                  f"{peak_rss_mib(broker.pid):>12.0f} "
                  f"{produced['client_cpu']:>19.0f}/{produced['broker_cpu']:<7.0f}", flush=True)
        print(f"broker peak RSS over all cases: {peak_rss_mib(broker.pid):.0f} MiB")
    finally:
        if broker is not None:
            broker.terminate()
            broker.wait(60)
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
