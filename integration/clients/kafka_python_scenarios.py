"""Kafka compatibility with kafka-python (a pure-Python client with its own protocol
code): every codec, a consumer group with commits, and the admin API.

    python kafka_python_scenarios.py BOOTSTRAP
"""
import faulthandler
import sys
import uuid

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType, NewPartitions, NewTopic
from kafka.errors import InvalidConfigurationError, TopicAlreadyExistsError

BOOTSTRAP = sys.argv[1]
# Past its deadline the test harness sends SIGABRT: the stack shows where it hung.
faulthandler.enable()


def check(condition, message):
    if not condition:
        print(f"FAIL: {message}", file=sys.stderr)
        sys.exit(1)


def unique(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


admin = KafkaAdminClient(bootstrap_servers=BOOTSTRAP)
topic = unique("kp")
admin.create_topics([NewTopic(topic, 2, 1, topic_configs={"retention.ms": "600000"})])
try:
    admin.create_topics([NewTopic(topic, 2, 1)])
    check(False, "duplicate create accepted")
except TopicAlreadyExistsError:
    pass
try:
    admin.create_topics([NewTopic(unique("bad"), 1, 1, topic_configs={"cleanup.policy": "compact"})])
    check(False, "compact accepted")
except InvalidConfigurationError:
    pass
check(topic in admin.list_topics(), "topic not listed")

sent = []
for codec in [None, "gzip", "snappy", "lz4", "zstd"]:
    producer = KafkaProducer(bootstrap_servers=BOOTSTRAP, compression_type=codec,
                             enable_idempotence=True, acks="all")
    futures = []
    for i in range(200):
        key = None if i % 9 == 0 and i % 13 != 0 else f"k{i}".encode()
        value = None if i % 13 == 0 else f"{codec}-{i}".encode()
        headers = [("h", b"v"), ("i", str(i).encode())]
        futures.append(producer.send(topic, key=key, value=value, headers=headers,
                                     partition=i % 2, timestamp_ms=1_700_000_000_000 + i))
        sent.append((i % 2, key, value, headers, 1_700_000_000_000 + i))
    producer.flush()
    for f in futures:
        f.get(timeout=30)
    producer.close()

group = unique("kpg")
consumer = KafkaConsumer(topic, bootstrap_servers=BOOTSTRAP, group_id=group,
                         auto_offset_reset="earliest", enable_auto_commit=False,
                         consumer_timeout_ms=8000)
got = list(consumer)
check(len(got) == len(sent), f"consumed {len(got)} of {len(sent)}")
for p in (0, 1):
    mine = [(m.key, m.value, [tuple(h) for h in m.headers], m.timestamp) for m in got if m.partition == p]
    want = [(k, v, h, ts) for (pp, k, v, h, ts) in sent if pp == p]
    check(mine == want, f"partition {p}: records differ from what was sent")
consumer.commit()
ends = consumer.end_offsets([TopicPartition(topic, 0), TopicPartition(topic, 1)])
for tp, end in ends.items():
    check(consumer.committed(tp) == end, f"committed {consumer.committed(tp)} != end {end}")
consumer.close()

offsets = admin.list_group_offsets(group)[group]
check({tp: o.offset for tp, o in offsets.items()} == ends, f"list_group_offsets {offsets}")
described = admin.describe_groups([group])[group]
check(described["group_state"] == "Empty" and described["error"] is None, f"describe_groups {described}")
cluster = admin.describe_cluster()
check(cluster["brokers"][0]["broker_id"] == 1, f"describe_cluster {cluster}")
producers = admin.describe_producers([TopicPartition(topic, 0)])[TopicPartition(topic, 0)]
check(len(producers.active_producers) == 5, f"describe_producers {producers}")
# OffsetDelete on a group without members removes just the named partitions.
admin.delete_group_offsets(group, [TopicPartition(topic, 0)])
left = admin.list_group_offsets(group)[group]
check(sorted(tp.partition for tp in left) == [1], f"after delete_group_offsets: {left}")
admin.create_partitions({topic: NewPartitions(3)})
configs = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
text = str(configs)
check("retention.ms" in text and "600000" in text, f"describe_configs: {text[:300]}")
admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, configs={"retention.ms": "1000000"})])
text = str(admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)]))
check("1000000" in text, "alter_configs did not take")
admin.delete_groups([group])
admin.delete_topics([topic])
check(topic not in admin.list_topics(), "topic still listed")
admin.close()
print("kafka-python ok")
