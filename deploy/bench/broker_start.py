#!/usr/bin/env python3
"""How long `strata serve` takes to become ready with many partitions.

Starts a broker on a fresh data directory, creates TOPICS topics of PARTITIONS
partitions, sends 200-byte records to random partitions for SECONDS with
kafka-python (a producer that is not idempotent), stops the broker (SIGTERM: a clean
stop, or SIGKILL: a crash) and times each of ROUNDS starts from launch to `/ready`,
producing again and stopping the same way between them.

    deploy/bench/broker_start.py --strata target/release/strata --stop kill
    deploy/bench/broker_start.py --strata target/release/strata --config /tmp/sw.toml

Run it with the testbed's Python (`deploy/testbed/kafka-clients.sh install` puts
kafka-python in ~/.cache/strata-testbed/venv).
"""

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic

KAFKA = "127.0.0.1:19392"
ADMIN = "127.0.0.1:19744"


def start(args, data_dir, wal_kind):
    env = dict(os.environ)
    env.update(
        STRATA_BROKER_DATA_DIR=data_dir,
        STRATA_BROKER_LISTEN=KAFKA,
        STRATA_ADMIN_LISTEN=ADMIN,
        STRATA_WAL_KIND=wal_kind,
        # No merge or compaction between rounds: the objects stay as produced.
        STRATA_WAL_RETENTION_CHECK_INTERVAL="1h",
    )
    command = [args.strata, "serve"]
    if args.config:
        command += ["--config", args.config]
    else:
        env["STRATA_STORAGE_ROOT"] = os.path.join(data_dir, "objects")
    log = open(os.path.join(data_dir, "serve.log"), "ab")
    started = time.monotonic()
    broker = subprocess.Popen(command, env=env, stdout=log, stderr=log)
    while True:
        if broker.poll() is not None:
            sys.exit(f"strata serve exited with {broker.returncode}; see {data_dir}/serve.log")
        try:
            with urllib.request.urlopen(f"http://{ADMIN}/ready", timeout=1) as response:
                if response.status == 200:
                    return broker, time.monotonic() - started
        except OSError:
            pass
        time.sleep(0.02)


def stop(broker, how):
    broker.send_signal(signal.SIGKILL if how == "kill" else signal.SIGTERM)
    broker.wait(timeout=120)


def produce(args):
    producer = KafkaProducer(bootstrap_servers=KAFKA, linger_ms=5, acks=1)
    end = time.monotonic() + args.seconds
    sent = 0
    while time.monotonic() < end:
        for _ in range(200):
            topic = f"t{random.randrange(args.topics)}"
            producer.send(topic, value=b"y" * 200, partition=random.randrange(args.partitions))
            sent += 1
        producer.flush()
    producer.close()
    return sent


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strata", required=True, help="the strata binary")
    parser.add_argument("--config", help="a config file (default: the embedded local directory)")
    parser.add_argument("--topics", type=int, default=10)
    parser.add_argument("--partitions", type=int, default=500, help="per topic")
    parser.add_argument("--seconds", type=float, default=8, help="of produce before each stop")
    parser.add_argument("--stop", choices=["term", "kill"], default="term")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--wal", choices=["local", "object"], default="object",
        help="the WAL while producing (starts are timed on the local WAL)",
    )
    args = parser.parse_args()

    data_dir = tempfile.mkdtemp(prefix="strata-start-")
    try:
        broker, _ = start(args, data_dir, args.wal)
        admin = KafkaAdminClient(bootstrap_servers=KAFKA, request_timeout_ms=120000)
        admin.create_topics(
            [NewTopic(f"t{i}", args.partitions, 1) for i in range(args.topics)],
            timeout_ms=120000,
        )
        admin.close()
        print(f"# {args.topics} x {args.partitions} partitions, {args.seconds:g} s of "
              f"kafka-python produce ({args.wal} WAL) before each stop, stop by SIG{args.stop.upper()}")
        for round_ in range(1, args.rounds + 1):
            sent = produce(args)
            stop(broker, args.stop)
            broker, ready = start(args, data_dir, "local")
            print(f"round {round_}: {sent} records sent, ready after {ready:.2f} s")
            stop(broker, "term")
            broker, _ = start(args, data_dir, args.wal)
        stop(broker, "term")
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
