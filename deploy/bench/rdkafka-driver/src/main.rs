//! The Kafka benchmark's client: librdkafka, driven from Rust so that the figures
//! are the broker's and librdkafka's, not an interpreter's.
//!
//! `produce` sends 1 KiB records, as fast as librdkafka takes them or paced at a
//! fixed rate, and times every record from `send` to its delivery report (served by
//! librdkafka's own thread, `ThreadedProducer`). `consume` reads a topic from the
//! start with one consumer. Each prints one line of `key=value` figures.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientConfig, ClientContext, Offset, TopicPartitionList};

const RECORD: usize = 1024;
const MIB: f64 = 1048576.0;

#[derive(Parser)]
struct Args {
    #[arg(long)]
    bootstrap: String,
    #[arg(long)]
    topic: String,
    #[arg(long, default_value_t = 16)]
    partitions: i32,
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Subcommand)]
enum Mode {
    Produce {
        /// MiB of records to send.
        #[arg(long)]
        mib: u64,
        /// Offered load in MiB/s, released once a millisecond; 0 sends as fast as
        /// librdkafka's queue takes records.
        #[arg(long, default_value_t = 0)]
        rate_mib: u64,
        #[arg(long, default_value = "lz4")]
        codec: String,
        #[arg(long, default_value = "all")]
        acks: String,
        /// With acks=all, produce without idempotence (five requests in flight).
        /// librdkafka's idempotent producer keeps one produce request in flight per
        /// broker (librdkafka PR #4989), so one partition then goes at one request
        /// per broker round trip.
        #[arg(long)]
        no_idempotence: bool,
    },
    Consume {
        /// Records to read before stopping.
        #[arg(long)]
        records: usize,
    },
    /// Prints the librdkafka version linked in.
    Version,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    match args.mode {
        Mode::Produce {
            mib,
            rate_mib,
            ref codec,
            ref acks,
            no_idempotence,
        } => produce(
            &args,
            mib,
            rate_mib,
            codec,
            acks,
            acks == "all" && !no_idempotence,
        ),
        Mode::Consume { records } => consume(&args, records),
        Mode::Version => {
            println!("{}", rdkafka::util::get_rdkafka_version().1);
            Ok(())
        }
    }
}

/// Collects each record's latency in microseconds; a failed delivery fails the run.
#[derive(Default)]
struct Latencies {
    micros: Mutex<Vec<u32>>,
    failures: Mutex<Vec<String>>,
}

impl ClientContext for Latencies {}

impl ProducerContext for Latencies {
    type DeliveryOpaque = Box<Instant>;

    fn delivery(&self, result: &DeliveryResult<'_>, sent: Self::DeliveryOpaque) {
        let micros = u32::try_from(sent.elapsed().as_micros()).unwrap_or(u32::MAX);
        match result {
            Ok(_) => lock(&self.micros).push(micros),
            Err((error, _)) => lock(&self.failures).push(error.to_string()),
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn produce(
    args: &Args,
    mib: u64,
    rate_mib: u64,
    codec: &str,
    acks: &str,
    idempotence: bool,
) -> anyhow::Result<()> {
    let paced = rate_mib > 0;
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &args.bootstrap)
        .set("acks", acks)
        .set("compression.type", codec)
        // Paced: each millisecond's records go out at once. Unpaced: librdkafka's
        // default batching.
        .set("linger.ms", if paced { "0" } else { "5" })
        .set("batch.size", "1000000")
        .set("queue.buffering.max.kbytes", "1048576")
        .set("queue.buffering.max.messages", "1000000")
        .set(
            "enable.idempotence",
            if idempotence { "true" } else { "false" },
        );
    if acks == "all" && !idempotence {
        // The idempotent limit (and the Java client's default); librdkafka's own
        // default without idempotence is a million.
        config.set("max.in.flight.requests.per.connection", "5");
    }
    let producer: ThreadedProducer<Latencies> = config
        .create_with_context(Latencies::default())
        .context("creating the librdkafka producer")?;

    // Metadata, the producer id and connections are not part of the figures.
    for partition in 0..args.partitions {
        send(&producer, &args.topic, partition, b"warm-up")?;
    }
    producer
        .flush(Duration::from_secs(30))
        .context("flushing the warm-up records")?;
    lock(&producer.context().micros).clear();

    let payloads: Vec<Vec<u8>> = (0..256u64).map(payload).collect();
    let total = (mib * 1024) as usize;
    let per_second = (rate_mib * 1024) as f64;
    let start = Instant::now();
    let mut produced = 0usize;
    while produced < total {
        let due = if paced {
            total.min((start.elapsed().as_secs_f64() * per_second) as usize + 1)
        } else {
            total
        };
        while produced < due {
            let partition = (produced % args.partitions as usize) as i32;
            let value = &payloads[produced % payloads.len()];
            send(&producer, &args.topic, partition, value)?;
            produced += 1;
        }
        if paced {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    producer
        .flush(Duration::from_secs(300))
        .context("flushing the produced records")?;
    let elapsed = start.elapsed().as_secs_f64();

    let context = producer.context();
    if let Some(error) = lock(&context.failures).first() {
        bail!("a delivery failed: {error}");
    }
    let mut micros = std::mem::take(&mut *lock(&context.micros));
    if micros.len() != total {
        bail!("{} delivery reports for {total} records", micros.len());
    }
    micros.sort_unstable();
    let ms = |q: f64| {
        let index = ((micros.len() as f64 * q) as usize).min(micros.len() - 1);
        f64::from(micros[index]) / 1000.0
    };
    println!(
        "records={total} seconds={elapsed:.2} mib_per_s={:.1} msg_per_s={:.0} p50_ms={:.2} p99_ms={:.2} p999_ms={:.2} max_ms={:.2}",
        (total * RECORD) as f64 / elapsed / MIB,
        total as f64 / elapsed,
        ms(0.5),
        ms(0.99),
        ms(0.999),
        ms(1.0),
    );
    Ok(())
}

/// Sends one record, waiting for queue room when librdkafka's buffer is full.
fn send(
    producer: &ThreadedProducer<Latencies>,
    topic: &str,
    partition: i32,
    value: &[u8],
) -> anyhow::Result<()> {
    let mut record = BaseRecord::with_opaque_to(topic, Box::new(Instant::now()))
        .partition(partition)
        .payload(value);
    loop {
        match producer.send::<(), [u8]>(record) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned)) => {
                record = returned;
                std::thread::sleep(Duration::from_micros(200));
            }
            Err((error, _)) => return Err(error).context("queueing a record"),
        }
    }
}

/// Reads every partition from its start until `records` have arrived; the clock
/// starts at the first record, so connection and metadata set-up are left out.
fn consume(args: &Args, records: usize) -> anyhow::Result<()> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &args.bootstrap)
        .set("group.id", format!("bench-{}", args.topic))
        .set("enable.auto.commit", "false")
        .set("fetch.max.bytes", "52428800")
        .set("max.partition.fetch.bytes", "10485760")
        .set("queued.max.messages.kbytes", "1048576")
        .create()
        .context("creating the librdkafka consumer")?;
    let mut assignment = TopicPartitionList::new();
    for partition in 0..args.partitions {
        assignment
            .add_partition_offset(&args.topic, partition, Offset::Beginning)
            .context("building the assignment")?;
    }
    consumer
        .assign(&assignment)
        .context("assigning partitions")?;
    let deadline = Instant::now() + Duration::from_secs(300);
    let (mut count, mut bytes, mut start) = (0usize, 0usize, None);
    while count < records {
        if Instant::now() > deadline {
            bail!("read {count} of {records} records in 300 s");
        }
        match consumer.poll(Duration::from_secs(1)) {
            Some(Ok(message)) => {
                start.get_or_insert_with(Instant::now);
                count += 1;
                bytes += message.payload_len();
            }
            Some(Err(error)) => bail!("consuming: {error}"),
            None => {}
        }
    }
    let elapsed = start.map_or(0.0, |s| s.elapsed().as_secs_f64()).max(1e-9);
    println!(
        "records={count} seconds={elapsed:.2} mib_per_s={:.1} msg_per_s={:.0}",
        bytes as f64 / elapsed / MIB,
        count as f64 / elapsed,
    );
    Ok(())
}

/// A counter, 256 random bytes as hex, then a repeated JSON-ish filler: exactly
/// RECORD bytes, about half of which lz4 can compress.
fn payload(seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut bytes = format!("{seed:08} ").into_bytes();
    for _ in 0..256 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        bytes.extend_from_slice(format!("{:02x}", state as u8).as_bytes());
    }
    while bytes.len() < RECORD {
        bytes.extend_from_slice(FILLER);
    }
    bytes.truncate(RECORD);
    bytes
}

const FILLER: &[u8] = br#"{"source":"bench","kind":"page_view","region":"eu-west"}"#;
