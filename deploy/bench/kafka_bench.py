"""Drives a Strata broker with librdkafka and prints produce and consume throughput
and produce latency, beside the broker's peak RSS.

    python kafka_bench.py --strata target/release/strata --latency-driver PATH \
        [--config FILE] [--label NAME]

The paced latency case (50 MiB/s) runs the Rust driver in rdkafka-latency/, which
times every record from send to delivery report in librdkafka's own thread; the
throughput cases go through confluent-kafka.

Starts `strata serve` itself (fresh data directory, free port) so it can read the
broker's peak RSS from /proc; each case uses a new topic.
"""
import argparse
import gc
import os
import socket
import subprocess
import sys
import tempfile
import time

import confluent_kafka as ck
from confluent_kafka.admin import AdminClient, NewTopic

RECORD = 1024


# A counter, 256 random bytes as hex, then a repeated JSON-ish filler: exactly RECORD
# bytes, about half of which lz4 can compress (the Rust latency driver builds the same).
FILLER = b'{"source":"bench","kind":"page_view","region":"eu-west"}'


def payload(i):
    record = b"%08d " % i + os.urandom(256).hex().encode()
    record += FILLER * ((RECORD - len(record)) // len(FILLER) + 1)
    return record[:RECORD]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def broker_produce_quantiles(admin_addr, quantiles=(0.5, 0.99, 0.999)):
    """Quantiles (ms) of the broker's own Produce latency histogram, from arrival of
    the request to its response written: the broker's share of the latency."""
    import urllib.request
    text = urllib.request.urlopen(f"http://{admin_addr}/metrics", timeout=10).read().decode()
    buckets = []
    for line in text.splitlines():
        if line.startswith('strata_kafka_request_duration_seconds_bucket{api="Produce",le="'):
            le = line.split('le="')[1].split('"')[0]
            buckets.append((float("inf") if le == "+Inf" else float(le), float(line.split()[-1])))
    buckets.sort()
    total = buckets[-1][1] if buckets else 0
    out = []
    for q in quantiles:
        bound = next((le for le, count in buckets if count >= q * total), float("nan"))
        out.append(bound * 1000)
    return out


def peak_rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def percentile(values, p):
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))]


def produce(bootstrap, topic, partitions, total_bytes, codec, acks):
    """Produces `total_bytes` of 1 KiB records as fast as librdkafka takes them;
    returns (seconds, per-record latencies in ms)."""
    producer = ck.Producer({"bootstrap.servers": bootstrap, "acks": acks,
                            "compression.type": codec, "linger.ms": 5,
                            "batch.size": 1_000_000, "queue.buffering.max.kbytes": 1_048_576,
                            "queue.buffering.max.messages": 1_000_000,
                            "enable.idempotence": acks == "all"})
    # Warm up: metadata, producer id and connections are not part of the figures.
    for p in range(partitions):
        producer.produce(topic, b"warm-up", partition=p)
    producer.flush(30)
    count = total_bytes // RECORD
    payloads = [payload(i) for i in range(256)]
    latencies = []
    now = time.perf_counter

    def delivered(err, msg, sent):
        if err is not None:
            raise SystemExit(f"delivery failed: {err}")
        latencies.append((now() - sent) * 1000)

    # Python's cyclic GC pausing over hundreds of thousands of pending callbacks would
    # show up as produce latency: measure the broker, not the driver's collector.
    gc.disable()
    start = now()
    i = 0
    while i < count:
        sent = now()
        due = min(count, i + 1000)
        while i < due:
            try:
                producer.produce(topic, payloads[i % 256], partition=i % partitions,
                                 on_delivery=lambda err, msg, sent=sent: delivered(err, msg, sent))
                i += 1
            except BufferError:
                producer.poll(0.001)
        producer.poll(0)
    producer.flush(120)
    elapsed = now() - start
    gc.enable()
    return elapsed, latencies


def consume(bootstrap, topic, expected):
    consumer = ck.Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-{topic}",
                            "auto.offset.reset": "earliest", "enable.auto.commit": False,
                            "fetch.max.bytes": 52_428_800,
                            "max.partition.fetch.bytes": 10_485_760,
                            "queued.max.messages.kbytes": 1_048_576})
    consumer.subscribe([topic])
    got, start = 0, None
    deadline = time.time() + 300
    while got < expected and time.time() < deadline:
        msgs = consumer.consume(num_messages=10000, timeout=1.0)
        if msgs and start is None:
            start = time.perf_counter()
        # Every record is 1 KiB; counting keeps the driver's own cost per record low.
        got += len(msgs)
    nbytes = got * RECORD
    seconds = time.perf_counter() - (start or time.perf_counter())
    consumer.close()
    return got, nbytes, seconds


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--strata", required=True)
    parser.add_argument("--config")
    parser.add_argument("--latency-driver", required=True,
                        help="the rdkafka-latency binary (deploy/bench/rdkafka-latency)")
    parser.add_argument("--label", default="embedded default (local directory, local WAL)")
    parser.add_argument("--mib", type=int, default=512, help="MiB produced per case")
    parser.add_argument("--latency-only", action="store_true",
                        help="only the paced 50 MiB/s latency case")
    args = parser.parse_args()

    data = tempfile.mkdtemp(prefix="strata-bench-")
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
    print(f"# {args.label}; librdkafka {ck.libversion()[0]}; 1 KiB records, {args.mib} MiB per case")
    print(f"{'case':<34} {'produce MiB/s':>13} {'msg/s':>9} {'p50 ms':>7} {'p99 ms':>7} "
          f"{'p999 ms':>8} {'consume MiB/s':>13} {'msg/s':>9}")
    # The paced latency case runs first, on the fresh broker, so uploads of the
    # throughput cases' backlog do not share the disk with it.
    topic = "bench-latency"
    admin.create_topics([NewTopic(topic, 16, 1)])[topic].result(30)
    run = subprocess.run([args.latency_driver, "--bootstrap", bootstrap, "--topic", topic,
                          "--partitions", "16", "--rate-mib", "50", "--seconds", "10",
                          "--codec", "lz4", "--acks", "all"],
                         capture_output=True, text=True, timeout=300)
    if run.returncode != 0:
        raise SystemExit(f"latency driver failed: {run.stderr.strip()}")
    figures = dict(field.split("=") for field in run.stdout.split())
    print(f"{'16 partitions, lz4, acks=all @50MiB/s':<34} "
          f"{float(figures['mib_per_s']):>13.1f} {float(figures['msg_per_s']):>9.0f} "
          f"{float(figures['p50_ms']):>7.2f} {float(figures['p99_ms']):>7.2f} "
          f"{float(figures['p999_ms']):>8.2f}   (max {float(figures['max_ms']):.2f} ms)",
          flush=True)
    b50, b99, b999 = broker_produce_quantiles(admin_addr)
    print(f"{'  same, broker-side (bucket bound)':<34} {'':>13} {'':>9} "
          f"{b50:>7.2f} {b99:>7.2f} {b999:>8.2f}", flush=True)
    cases = [] if args.latency_only else [(p, codec, acks) for p in (1, 16) for codec, acks in
             (("none", "all"), ("lz4", "all"), ("none", "1"))]
    for n, (partitions, codec, acks) in enumerate(cases):
        topic = f"bench-{n}-{partitions}-{codec}-{acks}"
        admin.create_topics([NewTopic(topic, partitions, 1)])[topic].result(30)
        total = args.mib * 1048576
        seconds, lat = produce(bootstrap, topic, partitions, total, codec, acks)
        got, nbytes, cseconds = consume(bootstrap, topic, total // RECORD + partitions)
        print(f"{f'{partitions} partition(s), {codec}, acks={acks}':<34} "
              f"{total / seconds / 1048576:>13.1f} {total / RECORD / seconds:>9.0f} "
              f"{percentile(lat, 0.5):>7.2f} {percentile(lat, 0.99):>7.2f} "
              f"{percentile(lat, 0.999):>8.2f} {nbytes / max(cseconds, 1e-9) / 1048576:>13.1f} "
              f"{got / max(cseconds, 1e-9):>9.0f}", flush=True)
    print(f"broker peak RSS: {peak_rss_mib(broker.pid):.0f} MiB")
    broker.terminate()
    broker.wait(60)


if __name__ == "__main__":
    main()
