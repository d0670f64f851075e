"""Kafka compatibility scenarios run with librdkafka (confluent-kafka) against a
running Strata broker. Each scenario checks its own results and exits non-zero with
the reason on the first mismatch.

    python librdkafka_scenarios.py BOOTSTRAP SCENARIO [ARGS...]
"""
import faulthandler
import json
import sys
import threading
import time
import uuid

import confluent_kafka as ck
from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource,
                                   NewPartitions, NewTopic)

BOOTSTRAP = sys.argv[1]


def fail(message):
    print(f"FAIL: {message}", file=sys.stderr)
    sys.exit(1)


def check(condition, message):
    if not condition:
        fail(message)


_ADMIN = []


def admin():
    """One admin client for the run: a future needs its client alive."""
    if not _ADMIN:
        _ADMIN.append(AdminClient({"bootstrap.servers": BOOTSTRAP}))
    return _ADMIN[0]


def unique(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def create_topic(name, partitions=1, config=None):
    futures = admin().create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1,
                                              config=config or {})])
    futures[name].result(timeout=30)


def consume_all(topic, expected, group=None, timeout=60, extra=None):
    conf = {"bootstrap.servers": BOOTSTRAP, "group.id": group or unique("reader"),
            "auto.offset.reset": "earliest", "enable.auto.commit": False}
    conf.update(extra or {})
    consumer = ck.Consumer(conf)
    consumer.subscribe([topic])
    out = []
    deadline = time.time() + timeout
    while len(out) < expected and time.time() < deadline:
        for msg in consumer.consume(num_messages=1000, timeout=1.0):
            if msg.error():
                fail(f"consumer error: {msg.error()}")
            out.append(msg)
    consumer.close()
    return out


def scenario_codecs():
    """Every codec, keys, headers, timestamps, null values, a record near the limit."""
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"]:
        topic = unique(f"codec-{codec}")
        create_topic(topic)
        producer = ck.Producer({"bootstrap.servers": BOOTSTRAP, "compression.type": codec,
                                "linger.ms": 2, "enable.idempotence": True,
                                "message.max.bytes": 2_000_000})
        sent = []
        for i in range(300):
            key = None if i % 7 == 0 else f"key-{i}".encode()
            value = None if i % 11 == 0 else f"value-{i}-{codec}".encode() * (1 + i % 5)
            headers = [("n", str(i).encode()), ("empty", b"")] if i % 3 == 0 else None
            ts = 1_700_000_000_000 + i
            producer.produce(topic, key=key, value=value, headers=headers, timestamp=ts)
            sent.append((key, value, headers or [], ts))
        # One record of about 900 KiB: under the default max.message.bytes of 1 MiB.
        big = bytes(range(256)) * 3600
        producer.produce(topic, key=b"big", value=big, timestamp=1_700_000_001_000)
        sent.append((b"big", big, [], 1_700_000_001_000))
        left = producer.flush(30)
        check(left == 0, f"{codec}: {left} records not delivered")
        got = consume_all(topic, len(sent))
        check(len(got) == len(sent), f"{codec}: consumed {len(got)} of {len(sent)}")
        for i, (msg, (key, value, headers, ts)) in enumerate(zip(got, sent)):
            check(msg.offset() == i, f"{codec}: offset {msg.offset()} at position {i}")
            check(msg.key() == key, f"{codec}: key of record {i}: {msg.key()!r} != {key!r}")
            check(msg.value() == value, f"{codec}: value of record {i} differs")
            check((msg.headers() or []) == headers, f"{codec}: headers of record {i}: {msg.headers()}")
            check(msg.timestamp() == (ck.TIMESTAMP_CREATE_TIME, ts),
                  f"{codec}: timestamp of record {i}: {msg.timestamp()}")
    # A batch over max.message.bytes is refused with MESSAGE_TOO_LARGE.
    topic = unique("limit")
    create_topic(topic, config={"max.message.bytes": "10000"})
    errors = []
    producer = ck.Producer({"bootstrap.servers": BOOTSTRAP, "message.max.bytes": 2_000_000})
    producer.produce(topic, value=b"x" * 50_000, on_delivery=lambda err, msg: errors.append(err))
    producer.flush(30)
    check(errors and errors[0] is not None and errors[0].code() == ck.KafkaError.MSG_SIZE_TOO_LARGE,
          f"oversized batch: expected MSG_SIZE_TOO_LARGE, got {errors}")
    print("codecs ok")


def scenario_group():
    """Three members, a fourth joining and one leaving mid-stream: every record is
    consumed, and committed offsets end at the log end."""
    topic, group = unique("grp"), unique("group")
    partitions, total = 6, 6000
    create_topic(topic, partitions)
    seen, lock, stop = {}, threading.Lock(), threading.Event()

    def member(name, stop_me, assignor):
        conf = {"bootstrap.servers": BOOTSTRAP, "group.id": group,
                "auto.offset.reset": "earliest", "enable.auto.commit": False,
                "session.timeout.ms": 10000, "heartbeat.interval.ms": 500,
                "partition.assignment.strategy": assignor}
        if name == "static":
            # Static membership (KIP-345): the member keeps its seat across restarts.
            conf["group.instance.id"] = f"{group}-static"
        consumer = ck.Consumer(conf)
        consumer.subscribe([topic])
        while not stop_me.is_set():
            msgs = consumer.consume(num_messages=200, timeout=0.5)
            for msg in msgs:
                if msg.error():
                    fail(f"{name}: {msg.error()}")
                with lock:
                    seen.setdefault(int(msg.value()), []).append(name)
            if msgs:
                try:
                    consumer.commit(asynchronous=False)
                except ck.KafkaException as e:
                    # A rebalance moved the partitions on; their next owner commits.
                    if e.args[0].code() not in (ck.KafkaError.REBALANCE_IN_PROGRESS,
                                                ck.KafkaError.ILLEGAL_GENERATION,
                                                ck.KafkaError.UNKNOWN_MEMBER_ID):
                        raise
        consumer.close()

    for assignor in ["range", "cooperative-sticky"]:
        seen.clear()
        group = unique(f"group-{assignor}")
        stops = {n: threading.Event() for n in ["a", "b", "static", "late"]}
        threads = {n: threading.Thread(target=member, args=(n, stops[n], assignor),
                                       daemon=True)
                   for n in stops}
        for n in ["a", "b", "static"]:
            threads[n].start()
        producer = ck.Producer({"bootstrap.servers": BOOTSTRAP, "linger.ms": 5})
        offset = 0 if assignor == "range" else total
        for i in range(total):
            producer.produce(topic, value=str(offset + i).encode(), key=str(i).encode())
            if i == total // 3:
                producer.flush(30)
                threads["late"].start()
            if i == 2 * total // 3:
                producer.flush(30)
                stops["a"].set()
            if i % 500 == 0:
                producer.poll(0)
                time.sleep(0.05)
        check(producer.flush(30) == 0, "records not delivered")
        deadline = time.time() + 90
        wanted = set(range(offset, offset + total))
        while time.time() < deadline:
            with lock:
                if wanted <= set(seen):
                    break
            time.sleep(0.5)
        for n in stops:
            stops[n].set()
        for n in threads:
            threads[n].join(30)
        stuck = [n for n in threads if threads[n].is_alive()]
        if stuck:
            # Where they hang (a call into librdkafka that never returns shows as
            # its Python caller).
            faulthandler.dump_traceback(all_threads=True)
        check(not stuck, f"{assignor}: members {stuck} did not stop within 30 s")
        with lock:
            missing = wanted - set(seen)
        check(not missing, f"{assignor}: {len(missing)} records never consumed, e.g. {sorted(missing)[:5]}")
        # A member's last commit can be refused by the rebalance its stopping peers
        # cause; a last member picks up from the committed offsets (re-reading at most
        # what was not committed) and commits the end.
        # It offers the group's assignor: a member offering none in common with the
        # static member (which keeps its seat until its session lapses) is refused
        # with INCONSISTENT_GROUP_PROTOCOL, as Kafka does.
        consumer = ck.Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": group,
                                "auto.offset.reset": "earliest",
                                "enable.auto.commit": False,
                                "partition.assignment.strategy": assignor})
        consumer.subscribe([topic])
        # It reads until three seconds pass without a record, counted from when it
        # got its partitions (it may wait for the static member's session to lapse).
        quiet_since = None
        deadline = time.time() + 60
        while quiet_since is None or time.time() - quiet_since < 3:
            check(time.time() < deadline,
                  f"{assignor}: the last member has no partitions or still reads after 60 s")
            if quiet_since is None and consumer.assignment():
                quiet_since = time.time()
            msgs = consumer.consume(num_messages=500, timeout=0.5)
            if msgs:
                quiet_since = time.time()
                errors = [m.error() for m in msgs if m.error()]
                check(not errors, f"{assignor}: the last member got {errors[:3]}")
                check(all(int(m.value()) in wanted or int(m.value()) < offset for m in msgs),
                      "a record that was never produced")
        try:
            consumer.commit(asynchronous=False)
        except ck.KafkaException as e:
            # Nothing left to read: every offset was committed already.
            if e.args[0].code() != ck.KafkaError._NO_OFFSET:
                raise
        committed = consumer.committed([ck.TopicPartition(topic, p) for p in range(partitions)],
                                       timeout=10)
        ends = [consumer.get_watermark_offsets(ck.TopicPartition(topic, p), timeout=10)[1]
                for p in range(partitions)]
        consumer.close()
        check([tp.offset for tp in committed] == ends,
              f"{assignor}: committed {[tp.offset for tp in committed]} != log ends {ends}")
        print(f"group {assignor} ok: {len(seen)} records, members "
              f"{sorted({m for names in seen.values() for m in names})}")


def scenario_admin():
    """Topic and config administration through the librdkafka admin API."""
    a = admin()
    topic = unique("adm")
    # validate_only creates nothing.
    a.create_topics([NewTopic(topic, 2, 1)], validate_only=True)[topic].result(30)
    check(topic not in a.list_topics(timeout=10).topics, "validate_only created the topic")
    create_topic(topic, 2, {"retention.ms": "3600000"})
    try:
        create_topic(topic, 2)
        fail("a second create succeeded")
    except ck.KafkaException as e:
        check(e.args[0].code() == ck.KafkaError.TOPIC_ALREADY_EXISTS, f"duplicate create: {e}")
    try:
        create_topic(unique("compact"), 1, {"cleanup.policy": "compact"})
        fail("cleanup.policy=compact was accepted")
    except ck.KafkaException as e:
        check(e.args[0].code() == ck.KafkaError.INVALID_CONFIG and "compaction" in str(e),
              f"compact topic: {e}")
    a.create_partitions([NewPartitions(topic, 4)])[topic].result(30)
    check(len(a.list_topics(timeout=10).topics[topic].partitions) == 4, "partitions not grown")
    try:
        a.create_partitions([NewPartitions(topic, 3)])[topic].result(30)
        fail("shrinking partitions succeeded")
    except ck.KafkaException as e:
        check(e.args[0].code() == ck.KafkaError.INVALID_PARTITIONS, f"shrink: {e}")
    resource = ConfigResource("topic", topic)
    configs = a.describe_configs([resource])[resource].result(30)
    check(configs["retention.ms"].value == "3600000", f"retention.ms {configs['retention.ms'].value}")
    check(configs["cleanup.policy"].value == "delete", "cleanup.policy")
    incremental = ConfigResource("topic", topic, incremental_configs=[
        ConfigEntry("retention.bytes", "1048576", incremental_operation=AlterConfigOpType.SET),
        ConfigEntry("retention.ms", None, incremental_operation=AlterConfigOpType.DELETE)])
    a.incremental_alter_configs([incremental])[incremental].result(30)
    configs = a.describe_configs([resource])[resource].result(30)
    check(configs["retention.bytes"].value == "1048576", "incremental set")
    check(configs["retention.ms"].value == str(7 * 24 * 3600 * 1000),
          f"incremental delete left {configs['retention.ms'].value}")
    bad = ConfigResource("topic", topic, incremental_configs=[
        ConfigEntry("retention.ms", "soon", incremental_operation=AlterConfigOpType.SET)])
    try:
        a.incremental_alter_configs([bad])[bad].result(30)
        fail("a bad config value was accepted")
    except ck.KafkaException as e:
        check("retention.ms" in str(e) and "integer" in str(e), f"bad value: {e}")
    broker = ConfigResource("broker", "1")
    configs = a.describe_configs([broker])[broker].result(30)
    check("num.partitions" in configs, f"broker configs: {sorted(configs)}")
    change = ConfigResource("broker", "1", incremental_configs=[
        ConfigEntry("num.partitions", "3", incremental_operation=AlterConfigOpType.SET)])
    a.incremental_alter_configs([change])[change].result(30)
    auto = unique("auto")
    a.create_topics([NewTopic(auto)])[auto].result(30)
    check(len(a.list_topics(timeout=10).topics[auto].partitions) == 3,
          "the broker default num.partitions was not applied")
    change = ConfigResource("broker", "1", incremental_configs=[
        ConfigEntry("num.partitions", "1", incremental_operation=AlterConfigOpType.SET)])
    a.incremental_alter_configs([change])[change].result(30)
    # Produce, consume with a group, then describe and delete the group.
    producer = ck.Producer({"bootstrap.servers": BOOTSTRAP})
    for i in range(10):
        producer.produce(topic, value=b"x", partition=i % 4)
    producer.flush(30)
    group = unique("admgroup")
    consume_all(topic, 10, group=group, extra={"enable.auto.commit": True,
                                               "auto.commit.interval.ms": 100})
    listed = [g.group_id for g in a.list_consumer_groups().result(30).valid]
    check(group in listed, f"group {group} not listed in {listed}")
    a.delete_consumer_groups([group])[group].result(30)
    listed = [g.group_id for g in a.list_consumer_groups().result(30).valid]
    check(group not in listed, "group still listed after delete")
    a.delete_topics([topic])[topic].result(30)
    time.sleep(0.2)
    check(topic not in a.list_topics(timeout=10).topics, "topic still listed after delete")
    print("admin ok")


def scenario_offsets():
    """Offsets for timestamps, DeleteRecords, and auto.offset.reset on out-of-range."""
    a = admin()
    topic = unique("off")
    create_topic(topic)
    producer = ck.Producer({"bootstrap.servers": BOOTSTRAP, "linger.ms": 50})
    for i in range(100):
        producer.produce(topic, value=str(i).encode(), timestamp=1_000_000 + i * 10)
    producer.flush(30)
    consumer = ck.Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": unique("o")})
    for target, want in [(1_000_000, 0), (1_000_005, 1), (1_000_500, 50), (1_000_990, 99),
                         (1_000_991, -1)]:
        found = consumer.offsets_for_times([ck.TopicPartition(topic, 0, target)], timeout=10)[0]
        check(found.offset == want, f"offsets_for_times({target}) = {found.offset}, want {want}")
    consumer.close()
    result = a.delete_records([ck.TopicPartition(topic, 0, 40)])
    low = list(result.values())[0].result(30)
    check(low.low_watermark == 40, f"delete_records low watermark {low.low_watermark}")
    consumer = ck.Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": unique("o")})
    lo, hi = consumer.get_watermark_offsets(ck.TopicPartition(topic, 0), timeout=10)
    check((lo, hi) == (40, 100), f"watermarks after delete_records: {(lo, hi)}")
    consumer.close()
    got = consume_all(topic, 60)
    check([int(m.value()) for m in got] == list(range(40, 100)),
          f"after delete_records read {[m.offset() for m in got][:3]}...")
    # A committed position below the log start is out of range: reset applies.
    for reset, want in [("earliest", 40), ("latest", None)]:
        group = unique(f"reset-{reset}")
        c = ck.Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": group})
        c.commit(offsets=[ck.TopicPartition(topic, 0, 5)], asynchronous=False)
        c.close()
        c = ck.Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": group,
                         "auto.offset.reset": reset})
        c.subscribe([topic])
        first = None
        deadline = time.time() + 20
        if reset == "latest":
            while time.time() < deadline and not c.assignment():
                c.poll(0.2)
            time.sleep(1)
            producer.produce(topic, value=b"100")
            producer.flush(10)
            want = 100
        while first is None and time.time() < deadline:
            msg = c.poll(0.5)
            if msg is not None and not msg.error():
                first = msg.offset()
        c.close()
        check(first == want, f"auto.offset.reset={reset}: first offset {first}, want {want}")
    c = ck.Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": unique("reset-error"),
                     "auto.offset.reset": "error"})
    c.assign([ck.TopicPartition(topic, 0, 5)])
    err = None
    deadline = time.time() + 20
    while err is None and time.time() < deadline:
        msg = c.poll(0.5)
        if msg is not None and msg.error():
            err = msg.error()
    c.close()
    check(err is not None and err.code() == ck.KafkaError._AUTO_OFFSET_RESET,
          f"auto.offset.reset=error: got {err}")
    print("offsets ok")


def scenario_produce_load(topic, count, acked_path, partitions="4"):
    """Produces `count` numbered records idempotently with retries, writing each
    acknowledged record as it is acknowledged; survives broker restarts."""
    try:
        create_topic(topic, int(partitions))
    except ck.KafkaException as e:
        if e.args[0].code() != ck.KafkaError.TOPIC_ALREADY_EXISTS:
            raise
    out = open(acked_path, "w")
    producer = ck.Producer({"bootstrap.servers": BOOTSTRAP, "enable.idempotence": True,
                            "linger.ms": 5, "message.timeout.ms": 120000,
                            "retry.backoff.ms": 200, "reconnect.backoff.max.ms": 1000,
                            "socket.timeout.ms": 10000})
    errors = []

    def delivered(err, msg):
        if err:
            errors.append(str(err))
        else:
            out.write(f"{msg.partition()} {msg.offset()} {msg.value().decode()}\n")
    for i in range(int(count)):
        while True:
            try:
                producer.produce(topic, key=str(i % 97).encode(), value=str(i).encode(),
                                 on_delivery=delivered)
                break
            except BufferError:
                producer.poll(0.1)
        # About 10,000 records a second: the load spans the broker's restarts.
        if i % 100 == 0:
            producer.poll(0)
            time.sleep(0.01)
    left = producer.flush(150)
    out.close()
    check(left == 0, f"{left} records never acknowledged")
    check(not errors, f"delivery errors: {errors[:3]}")
    print(f"produced {count}")


def scenario_verify(topic, acked_path, require_all="all"):
    """Every acknowledged record is in the log exactly once, at its acknowledged
    offset, in order; with `require_all`, so is every record sent."""
    acked = {}
    with open(acked_path) as f:
        for line in f:
            p, o, v = line.split()
            acked[int(v)] = (int(p), int(o))
    consumer = ck.Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": unique("verify")})
    md = consumer.list_topics(topic, timeout=10).topics[topic]
    total = sum(consumer.get_watermark_offsets(ck.TopicPartition(topic, p), timeout=10)[1]
                for p in md.partitions)
    consumer.close()
    got = consume_all(topic, total, timeout=120)
    check(len(got) == total, f"read {len(got)} of {total} records")
    values = [int(m.value()) for m in got]
    dupes = len(values) - len(set(values))
    check(dupes == 0, f"{dupes} records appear more than once")
    where = {int(m.value()): (m.partition(), m.offset()) for m in got}
    lost = [v for v in acked if v not in where]
    check(not lost, f"{len(lost)} acknowledged records lost, e.g. {lost[:5]}")
    moved = [v for v, at in acked.items() if where[v] != at]
    check(not moved, f"{len(moved)} records not at their acknowledged offset, e.g. {moved[:3]}")
    by_partition = {}
    for m in got:
        by_partition.setdefault(m.partition(), []).append(int(m.value()))
    for p, vals in by_partition.items():
        check(vals == sorted(vals), f"partition {p} out of order")
    if require_all == "all":
        check(set(values) >= set(acked), "missing records")
    print(json.dumps({"records": len(values), "acknowledged": len(acked)}))


def scenario_keep_producing(topic, seconds):
    """Produces steadily for `seconds`; every record must be acknowledged."""
    create_topic(topic)
    producer = ck.Producer({"bootstrap.servers": BOOTSTRAP, "linger.ms": 1})
    errors, acked = [], [0]

    def delivered(err, msg):
        if err:
            errors.append(str(err))
        else:
            acked[0] += 1
    deadline = time.time() + float(seconds)
    sent = 0
    while time.time() < deadline:
        producer.produce(topic, value=str(sent).encode(), on_delivery=delivered)
        sent += 1
        producer.poll(0.01)
    check(producer.flush(30) == 0, "records not delivered")
    check(not errors and acked[0] == sent, f"{acked[0]} of {sent} acknowledged; errors {errors[:3]}")
    print(f"kept producing: {sent} records")


def scenario_commit_offsets(topic, group):
    """Consumes `topic` to its end in `group` and commits."""
    consumer = ck.Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": unique("probe")})
    md = consumer.list_topics(topic, timeout=10).topics[topic]
    ends = {p: consumer.get_watermark_offsets(ck.TopicPartition(topic, p), timeout=10)[1]
            for p in md.partitions}
    consumer.close()
    got = consume_all(topic, sum(ends.values()), group=group, timeout=120)
    check(len(got) == sum(ends.values()), f"read {len(got)} of {sum(ends.values())}")
    c = ck.Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": group})
    c.commit(offsets=[ck.TopicPartition(topic, p, e) for p, e in ends.items()], asynchronous=False)
    c.close()
    print(json.dumps(ends))


def scenario_check_offsets(topic, group, expected_json):
    """The group's committed offsets are `expected_json` ({partition: offset})."""
    expected = {int(p): o for p, o in json.loads(expected_json).items()}
    c = ck.Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": group})
    committed = c.committed([ck.TopicPartition(topic, p) for p in expected], timeout=10)
    c.close()
    got = {tp.partition: tp.offset for tp in committed}
    check(got == expected, f"committed offsets {got} != {expected}")
    print("offsets retained")


def scenario_topic_configs():
    """retention.ms drops old data (the broker runs with a 1 s retention check and
    upload interval); LogAppendTime topics stamp records with the broker's clock."""
    topic = unique("retained")
    create_topic(topic, 1, {"retention.ms": "2000"})
    producer = ck.Producer({"bootstrap.servers": BOOTSTRAP, "linger.ms": 5})
    for i in range(500):
        producer.produce(topic, value=str(i).encode())
    check(producer.flush(30) == 0, "records not delivered")
    consumer = ck.Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": unique("ret")})
    deadline = time.time() + 60
    low = 0
    while time.time() < deadline:
        low, high = consumer.get_watermark_offsets(ck.TopicPartition(topic, 0), timeout=10)
        if low == high == 500:
            break
        time.sleep(0.5)
    consumer.close()
    check(low == 500, f"retention.ms=2000 left the log start at {low} after a minute")

    topic = unique("appendtime")
    create_topic(topic, 1, {"message.timestamp.type": "LogAppendTime"})
    before = int(time.time() * 1000)
    producer.produce(topic, value=b"x", timestamp=1_000_000)
    producer.flush(30)
    got = consume_all(topic, 1)
    check(len(got) == 1, "LogAppendTime record not read back")
    kind, ts = got[0].timestamp()
    check(kind == ck.TIMESTAMP_LOG_APPEND_TIME and before - 1000 <= ts <= time.time() * 1000 + 1000,
          f"LogAppendTime topic returned timestamp {(kind, ts)}")
    print("topic configs ok")


def scenario_crashed_member(role, topic=None, group=None):
    """A group member whose process dies without leaving: after its session times
    out, the others take its partitions and every record is consumed.

    `crashed-member driver`: creates the topic, starts a doomed member in a child
    process, kills it with SIGKILL once it owns partitions, and consumes with two
    live members. `crashed-member doomed TOPIC GROUP` is the child."""
    import os
    import signal
    import subprocess
    conf = {"bootstrap.servers": BOOTSTRAP, "auto.offset.reset": "earliest",
            "enable.auto.commit": False, "session.timeout.ms": 6000,
            "heartbeat.interval.ms": 500}
    if role == "doomed":
        consumer = ck.Consumer(dict(conf, **{"group.id": group}))
        consumer.subscribe([topic])
        while True:
            consumer.poll(0.2)
            if consumer.assignment():
                print("assigned", flush=True)
    topic, group = unique("crash"), unique("crashgroup")
    create_topic(topic, 4)
    child = subprocess.Popen([sys.executable, __file__, BOOTSTRAP, "crashed-member", "doomed",
                              topic, group], stdout=subprocess.PIPE)
    check(child.stdout.readline().strip() == b"assigned", "the doomed member never got partitions")
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    producer = ck.Producer({"bootstrap.servers": BOOTSTRAP})
    for i in range(2000):
        producer.produce(topic, value=str(i).encode(), partition=i % 4)
    check(producer.flush(30) == 0, "records not delivered")
    seen, lock = set(), threading.Lock()
    stop = threading.Event()

    def member():
        consumer = ck.Consumer(dict(conf, **{"group.id": group}))
        consumer.subscribe([topic])
        while not stop.is_set():
            for msg in consumer.consume(num_messages=500, timeout=0.5):
                if not msg.error():
                    with lock:
                        seen.add(int(msg.value()))
        consumer.close()
    threads = [threading.Thread(target=member) for _ in range(2)]
    for t in threads:
        t.start()
    deadline = time.time() + 60
    while time.time() < deadline and len(seen) < 2000:
        time.sleep(0.5)
    stop.set()
    for t in threads:
        t.join(30)
    check(len(seen) == 2000, f"{2000 - len(seen)} records never consumed after a member crashed")
    print("crashed member ok")


def scenario_many_partitions(topics, per_topic):
    """Creates `topics` x `per_topic` partitions, writes one record to each and leaves
    a group committed at offset 0 on all of them (so every partition lags)."""
    topics, per_topic = int(topics), int(per_topic)
    names = [unique("wide") for _ in range(topics)]
    futures = admin().create_topics([NewTopic(n, per_topic, 1) for n in names],
                                    operation_timeout=120, request_timeout=300)
    for f in futures.values():
        f.result(300)
    producer = ck.Producer({"bootstrap.servers": BOOTSTRAP, "linger.ms": 50})
    for n in names:
        for p in range(per_topic):
            producer.produce(n, value=b"x", partition=p)
    check(producer.flush(120) == 0, "records not delivered")
    c = ck.Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": unique("wide-group")})
    c.commit(offsets=[ck.TopicPartition(n, p, 0) for n in names for p in range(per_topic)],
             asynchronous=False)
    c.close()
    print(f"{topics * per_topic} partitions")


SCENARIOS = {
    "many-partitions": scenario_many_partitions,
    "topic-configs": scenario_topic_configs,
    "crashed-member": scenario_crashed_member,
    "commit-offsets": scenario_commit_offsets,
    "check-offsets": scenario_check_offsets,
    "codecs": scenario_codecs,
    "group": scenario_group,
    "admin": scenario_admin,
    "offsets": scenario_offsets,
    "produce-load": scenario_produce_load,
    "verify": scenario_verify,
    "keep-producing": scenario_keep_producing,
}

if __name__ == "__main__":
    # The test harness sends SIGABRT to a scenario past its deadline: every
    # thread's stack shows where it hung.
    faulthandler.enable()
    SCENARIOS[sys.argv[2]](*sys.argv[3:])
