//! Real Kafka clients against a running `strata serve`: librdkafka (confluent-kafka),
//! kafka-python, kafkajs and kcat, on the embedded default (a local directory) and on
//! a real S3 server (SeaweedFS from `deploy/testbed/`), including broker restarts,
//! SIGKILL under load, and bad input on one connection while others keep working.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use libtest_mimic::{Arguments, Failed, Trial};
use strata_integration::broker::{BrokerProcess, BrokerStorage};
use strata_integration::clients::Clients;
use strata_integration::s3_document;

type Check = fn(&Clients, &BrokerStorage) -> Result<(), String>;

struct Fixture {
    _dir: tempfile::TempDir,
    broker: BrokerProcess,
}

fn broker(storage: &BrokerStorage) -> Result<Fixture, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let broker = BrokerProcess::start(storage.clone(), dir.path())?;
    Ok(Fixture { _dir: dir, broker })
}

impl Fixture {
    /// A librdkafka scenario against this broker; a failure carries the broker's
    /// log, which says what the client could not.
    fn librdkafka(&self, clients: &Clients, args: &[&str]) -> Result<(), String> {
        clients
            .librdkafka(&self.broker.bootstrap(), args)
            .map(drop)
            .map_err(|e| format!("{e}\nbroker log:\n{}", self.broker.log_tail()))
    }
}

fn codecs(clients: &Clients, storage: &BrokerStorage) -> Result<(), String> {
    broker(storage)?.librdkafka(clients, &["codecs"])
}

fn consumer_group(clients: &Clients, storage: &BrokerStorage) -> Result<(), String> {
    broker(storage)?.librdkafka(clients, &["group"])
}

fn admin(clients: &Clients, storage: &BrokerStorage) -> Result<(), String> {
    broker(storage)?.librdkafka(clients, &["admin"])
}

fn offsets(clients: &Clients, storage: &BrokerStorage) -> Result<(), String> {
    broker(storage)?.librdkafka(clients, &["offsets"])
}

fn topic_configs(clients: &Clients, storage: &BrokerStorage) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let broker = BrokerProcess::start_with(
        storage.clone(),
        dir.path(),
        &[
            ("STRATA_WAL_RETENTION_CHECK_INTERVAL", "1s"),
            ("STRATA_WAL_UPLOAD_INTERVAL", "1s"),
        ],
    )?;
    clients
        .librdkafka(&broker.bootstrap(), &["topic-configs"])
        .map(drop)
}

fn crashed_member(clients: &Clients, storage: &BrokerStorage) -> Result<(), String> {
    broker(storage)?.librdkafka(clients, &["crashed-member", "driver"])
}

/// A second cluster (its own metadata) pointed at the first one's storage root is
/// refused at start, before it could overwrite or collect the first one's objects.
fn second_cluster_refused(_: &Clients, _: &BrokerStorage) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let shared = format!(
        "[storage]\nkind = \"fs\"\nroot = \"{}\"\n",
        dir.path().join("shared-objects").display()
    );
    let first = BrokerProcess::start(
        BrokerStorage::Document(shared.clone()),
        &dir.path().join("first"),
    )?;
    match BrokerProcess::start(BrokerStorage::Document(shared), &dir.path().join("second")) {
        Ok(_) => Err("a second cluster started on the first one's storage root".into()),
        Err(log) if log.contains("holds the objects of cluster") => {
            drop(first);
            Ok(())
        }
        Err(other) => Err(format!("refused, but not for the shared root:\n{other}")),
    }
}

/// Two brokers on one data directory would replay the same WAL and allocate the
/// same object ids: the second is refused, naming the directory and the holder, and
/// the first goes on serving.
fn second_broker_on_a_data_dir_in_use_refused(
    clients: &Clients,
    _: &BrokerStorage,
) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let data = dir.path().join("data");
    let first = BrokerProcess::start(BrokerStorage::EmbeddedDefault, &data)?;
    match BrokerProcess::start(BrokerStorage::EmbeddedDefault, &data) {
        Ok(_) => return Err("a second broker started on a data directory in use".into()),
        Err(log) if log.contains("is in use by process") => {}
        Err(other) => return Err(format!("refused, but not for the data directory:\n{other}")),
    }
    let listed = clients.kcat(&["-b", &first.bootstrap(), "-L"], "")?;
    if !listed.contains("1 brokers") {
        return Err(format!("the first broker stopped answering:\n{listed}"));
    }
    Ok(())
}

fn kafka_python(clients: &Clients, storage: &BrokerStorage) -> Result<(), String> {
    let f = broker(storage)?;
    clients.kafka_python(&f.broker.bootstrap()).map(drop)
}

fn kafkajs(clients: &Clients, storage: &BrokerStorage) -> Result<(), String> {
    let f = broker(storage)?;
    clients.kafkajs(&f.broker.bootstrap()).map(drop)
}

fn kcat(clients: &Clients, storage: &BrokerStorage) -> Result<(), String> {
    let f = broker(storage)?;
    let bootstrap = f.broker.bootstrap();
    let input: String = (0..100).map(|i| format!("key{i}:value{i}\n")).collect();
    clients.kcat(
        &[
            "-b", &bootstrap, "-t", "kcat", "-P", "-K", ":", "-z", "snappy",
        ],
        &input,
    )?;
    let listed = clients.kcat(&["-b", &bootstrap, "-L"], "")?;
    if !listed.contains("topic \"kcat\" with 1 partitions") {
        return Err(format!("kcat -L does not list the topic:\n{listed}"));
    }
    let read = clients.kcat(
        &[
            "-b",
            &bootstrap,
            "-t",
            "kcat",
            "-C",
            "-e",
            "-o",
            "beginning",
            "-f",
            "%o %k %s\n",
        ],
        "",
    )?;
    let want: String = (0..100).map(|i| format!("{i} key{i} value{i}\n")).collect();
    if read != want {
        return Err(format!("kcat read back:\n{read}"));
    }
    Ok(())
}

/// The broker's startup line says how produced data becomes durable: the local WAL
/// and its directory, or the object WAL and its window.
fn startup_line_names_the_wal(_: &Clients, storage: &BrokerStorage) -> Result<(), String> {
    let f = broker(storage)?;
    let expected = match storage {
        BrokerStorage::Document(text) if text.contains("kind = \"object\"") => "object WAL (",
        _ => "local WAL in ",
    };
    let logs = f.broker.all_logs();
    if logs.contains(expected) {
        Ok(())
    } else {
        Err(format!("the broker log does not say {expected:?}:\n{logs}"))
    }
}

/// Idempotent producing while the broker is SIGKILLed twice: afterwards every
/// acknowledged record is there exactly once, at its acknowledged offset, in order.
fn sigkill_under_load(clients: &Clients, storage: &BrokerStorage) -> Result<(), String> {
    let mut f = broker(storage)?;
    let acked = f._dir.path().join("acked.txt");
    let acked = acked.to_string_lossy().into_owned();
    let load = clients.spawn_librdkafka(
        &f.broker.bootstrap(),
        &["produce-load", "load", "40000", &acked],
    )?;
    for _ in 0..2 {
        std::thread::sleep(Duration::from_millis(1500));
        f.broker.kill();
        std::thread::sleep(Duration::from_millis(500));
        f.broker.restart()?;
    }
    load.finish("producer under SIGKILL")
        .map_err(|e| format!("{e}\nbroker logs:\n{}", f.broker.all_logs()))?;
    f.broker.restart()?;
    clients.librdkafka(&f.broker.bootstrap(), &["verify", "load", &acked, "all"])?;
    Ok(())
}

/// A graceful restart (SIGTERM) mid-load exits cleanly; committed offsets and the
/// idempotent producer's state come back with the data.
fn graceful_restart(clients: &Clients, storage: &BrokerStorage) -> Result<(), String> {
    let mut f = broker(storage)?;
    let bootstrap = f.broker.bootstrap();
    let acked = f._dir.path().join("acked.txt");
    let acked = acked.to_string_lossy().into_owned();
    let load = clients.spawn_librdkafka(&bootstrap, &["produce-load", "calm", "20000", &acked])?;
    std::thread::sleep(Duration::from_millis(1500));
    f.broker.stop()?;
    f.broker.restart()?;
    load.finish("producer across a graceful restart")?;
    let ends = clients.librdkafka(&bootstrap, &["commit-offsets", "calm", "keeper"])?;
    let ends = ends.trim().lines().last().unwrap_or_default().to_string();
    f.broker.stop()?;
    f.broker.restart()?;
    clients.librdkafka(&bootstrap, &["check-offsets", "calm", "keeper", &ends])?;
    clients.librdkafka(&bootstrap, &["verify", "calm", &acked, "all"])?;
    Ok(())
}

fn expect_closed(stream: &mut TcpStream, what: &str) -> Result<(), String> {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    let mut buf = [0u8; 64];
    match stream.read(&mut buf) {
        Ok(0) | Err(_) => Ok(()),
        Ok(n) => Err(format!(
            "{what}: the broker answered {n} bytes instead of closing"
        )),
    }
}

fn frame(api_key: i16, version: i16, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let len = (8 + 2 + body.len()) as i32;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&api_key.to_be_bytes());
    out.extend_from_slice(&version.to_be_bytes());
    out.extend_from_slice(&7i32.to_be_bytes());
    out.extend_from_slice(&(-1i16).to_be_bytes());
    out.extend_from_slice(body);
    out
}

/// Reads one whole response frame and checks its correlation id (7, as `frame`
/// sends) and the error code that starts its body.
fn expect_error_code(s: &mut TcpStream, what: &str, want: i16) -> Result<(), String> {
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    let mut size = [0u8; 4];
    s.read_exact(&mut size)
        .map_err(|e| format!("{what}: no answer: {e}"))?;
    let mut body = vec![0u8; i32::from_be_bytes(size).max(0) as usize];
    s.read_exact(&mut body)
        .map_err(|e| format!("{what}: answer cut short: {e}"))?;
    if body.len() < 6 {
        return Err(format!("{what}: answer of {} bytes", body.len()));
    }
    let correlation = i32::from_be_bytes([body[0], body[1], body[2], body[3]]);
    let error = i16::from_be_bytes([body[4], body[5]]);
    if (correlation, error) != (7, want) {
        return Err(format!(
            "{what} answered correlation {correlation}, error {error}; want 7, {want}"
        ));
    }
    Ok(())
}

/// Garbage, a truncated frame, an oversized frame, an unknown API key and an
/// unsupported version, each on its own connection, while a producer keeps going.
fn bad_input(clients: &Clients, storage: &BrokerStorage) -> Result<(), String> {
    let f = broker(storage)?;
    let addr = f.broker.addr();
    let producer =
        clients.spawn_librdkafka(&f.broker.bootstrap(), &["keep-producing", "steady", "8"])?;
    std::thread::sleep(Duration::from_millis(1500));
    let connect = || TcpStream::connect(addr).map_err(|e| e.to_string());
    // Garbage: a size prefix that makes no sense.
    let mut s = connect()?;
    s.write_all(b"\xff\xff\xff\xffGET / HTTP/1.1\r\n\r\n")
        .map_err(|e| e.to_string())?;
    expect_closed(&mut s, "garbage")?;
    // Oversized: 200 MiB announced, above socket.request.max.bytes (100 MiB).
    let mut s = connect()?;
    s.write_all(&(200i32 << 20).to_be_bytes())
        .map_err(|e| e.to_string())?;
    expect_closed(&mut s, "oversized frame")?;
    // Unknown API key.
    let mut s = connect()?;
    s.write_all(&frame(999, 0, b""))
        .map_err(|e| e.to_string())?;
    expect_closed(&mut s, "unknown API key")?;
    // Produce v2 is not spoken.
    let mut s = connect()?;
    s.write_all(&frame(0, 2, b"")).map_err(|e| e.to_string())?;
    expect_closed(&mut s, "unsupported Produce version")?;
    // A Metadata request cut short: the body ends inside a field.
    let mut s = connect()?;
    s.write_all(&frame(3, 1, &[0, 0, 0, 5, 0]))
        .map_err(|e| e.to_string())?;
    expect_closed(&mut s, "malformed Metadata")?;
    // A truncated frame: the connection ends mid-frame.
    let mut s = connect()?;
    s.write_all(&[0, 0, 0, 100, 0, 3, 0, 1])
        .map_err(|e| e.to_string())?;
    drop(s);
    // ApiVersions of a future version gets UNSUPPORTED_VERSION (35) in a v0 answer.
    let mut s = connect()?;
    s.write_all(&frame(18, 99, b""))
        .map_err(|e| e.to_string())?;
    expect_error_code(&mut s, "ApiVersions v99", 35)?;
    // An API this broker does not implement (SaslHandshake v1, mechanism PLAIN) gets
    // UNSUPPORTED_VERSION too, and the connection keeps serving.
    let mut s = connect()?;
    s.write_all(&frame(17, 1, b"\x00\x05PLAIN"))
        .map_err(|e| e.to_string())?;
    expect_error_code(&mut s, "SaslHandshake v1", 35)?;
    s.write_all(&frame(18, 0, b"")).map_err(|e| e.to_string())?;
    expect_error_code(&mut s, "ApiVersions v0 after SaslHandshake", 0)?;
    producer.finish("the producer on another connection")?;
    let logs = f.broker.all_logs();
    for expected in [
        "exceeds socket.request.max.bytes",
        "unknown API key 999",
        "Produce version 2 is not supported",
        "malformed Metadata",
    ] {
        if !logs.contains(expected) {
            return Err(format!("the broker log does not say {expected:?}:\n{logs}"));
        }
    }
    Ok(())
}

fn main() {
    let mut args = Arguments::from_args();
    // Client scenarios are processes of their own: two at a time keep a 2-core
    // machine responsive enough for their timeouts.
    args.test_threads = args.test_threads.or(Some(2));
    let testbed = strata_integration::start_or_fail("kafka-clients");
    let clients = Arc::new(Clients::from_testbed(&testbed));
    let seaweedfs = strata_integration::start_or_fail("seaweedfs");
    let s3_base = s3_document(
        "minio",
        &seaweedfs.setting("S3_ENDPOINT"),
        &seaweedfs.setting("S3_BUCKET"),
        &seaweedfs.setting("S3_ACCESS_KEY_ID"),
        &seaweedfs.setting("S3_SECRET_ACCESS_KEY"),
    );
    let embedded: &[(&str, Check)] = &[
        ("librdkafka_codecs_keys_headers_large_records", codecs),
        (
            "librdkafka_consumer_group_members_join_and_leave",
            consumer_group,
        ),
        ("librdkafka_admin_topics_configs_groups", admin),
        ("librdkafka_offsets_for_times_delete_records_reset", offsets),
        ("librdkafka_retention_and_log_append_time", topic_configs),
        (
            "librdkafka_member_crash_rebalances_after_session_timeout",
            crashed_member,
        ),
        ("kafka_python_codecs_group_admin", kafka_python),
        ("kafkajs_produce_consume_group_admin", kafkajs),
        ("kcat_lists_produces_and_consumes", kcat),
        (
            "sigkill_under_load_loses_nothing_acknowledged",
            sigkill_under_load,
        ),
        (
            "graceful_restart_keeps_offsets_and_producer_state",
            graceful_restart,
        ),
        ("bad_input_closes_only_its_connection", bad_input),
        ("startup_line_names_the_wal", startup_line_names_the_wal),
        (
            "a_second_cluster_on_the_same_storage_root_is_refused",
            second_cluster_refused,
        ),
        (
            "a_second_broker_on_a_data_dir_in_use_is_refused",
            second_broker_on_a_data_dir_in_use_refused,
        ),
    ];
    let on_s3: &[(&str, Check)] = &[
        ("librdkafka_codecs_keys_headers_large_records", codecs),
        (
            "librdkafka_consumer_group_members_join_and_leave",
            consumer_group,
        ),
        (
            "sigkill_under_load_loses_nothing_acknowledged",
            sigkill_under_load,
        ),
        (
            "graceful_restart_keeps_offsets_and_producer_state",
            graceful_restart,
        ),
    ];
    // The object WAL (the mode for clusters: no local state) under the same clients:
    // acknowledgements follow a window's PUT and commit, and a SIGKILL loses the
    // windows not yet committed, never an acknowledged record.
    let on_s3_object_wal: &[(&str, Check)] = &[
        ("startup_line_names_the_wal", startup_line_names_the_wal),
        ("librdkafka_codecs_keys_headers_large_records", codecs),
        (
            "sigkill_under_load_loses_nothing_acknowledged",
            sigkill_under_load,
        ),
        (
            "graceful_restart_keeps_offsets_and_producer_state",
            graceful_restart,
        ),
    ];
    let mut trials = Vec::new();
    let run = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    for (label, checks) in [
        ("embedded-default", embedded),
        ("s3-seaweedfs", on_s3),
        ("s3-seaweedfs-object-wal", on_s3_object_wal),
    ] {
        for (name, check) in checks {
            let clients = clients.clone();
            // Each broker is a cluster of its own: on S3 it gets a root of its own in
            // the shared bucket (a shared root is refused, see above).
            let on_s3 = |wal: &str| {
                BrokerStorage::Document(
                    s3_base.replacen(
                        "[storage]\n",
                        &format!("[storage]\nroot = \"/kafka-{run}-{label}-{name}\"\n"),
                        1,
                    ) + wal,
                )
            };
            let storage = match label {
                "s3-seaweedfs" => on_s3(""),
                "s3-seaweedfs-object-wal" => on_s3("\n[wal]\nkind = \"object\"\n"),
                _ => BrokerStorage::EmbeddedDefault,
            };
            let check = *check;
            trials.push(Trial::test(format!("{label}/{name}"), move || {
                check(&clients, &storage).map_err(Failed::from)
            }));
        }
    }
    eprintln!("=== kafka clients: {} tests", trials.len());
    let conclusion = libtest_mimic::run(&args, trials);
    drop(seaweedfs);
    drop(testbed);
    conclusion.exit()
}
