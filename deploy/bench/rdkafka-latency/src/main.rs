//! Produces 1 KiB records with librdkafka at a fixed rate and prints the latency of
//! every record, from the `send` call to its delivery report, as p50/p99/p999/max.
//!
//! librdkafka's own background thread serves delivery reports (`ThreadedProducer`),
//! so a report is timed when librdkafka has it, not when a driver gets round to it.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use rdkafka::ClientConfig;
use rdkafka::ClientContext;
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;

const RECORD: usize = 1024;

#[derive(Parser)]
struct Args {
    #[arg(long)]
    bootstrap: String,
    #[arg(long)]
    topic: String,
    #[arg(long, default_value_t = 16)]
    partitions: i32,
    /// Offered load in MiB/s, released once a millisecond.
    #[arg(long, default_value_t = 50)]
    rate_mib: u64,
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    #[arg(long, default_value = "lz4")]
    codec: String,
    #[arg(long, default_value = "all")]
    acks: String,
}

/// Collects each record's latency in microseconds; a failed delivery is a failed run.
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

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let producer: ThreadedProducer<Latencies> = ClientConfig::new()
        .set("bootstrap.servers", &args.bootstrap)
        .set("acks", &args.acks)
        .set("compression.type", &args.codec)
        .set("linger.ms", "0")
        .set("batch.size", "1000000")
        .set("queue.buffering.max.kbytes", "1048576")
        .set("queue.buffering.max.messages", "1000000")
        .set(
            "enable.idempotence",
            if args.acks == "all" { "true" } else { "false" },
        )
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
    let total = (args.rate_mib * args.seconds * 1024) as usize;
    let per_second = (args.rate_mib * 1024) as f64;
    let start = Instant::now();
    let mut produced = 0usize;
    while produced < total {
        let due = total.min((start.elapsed().as_secs_f64() * per_second) as usize + 1);
        while produced < due {
            let partition = (produced % args.partitions as usize) as i32;
            send(
                &producer,
                &args.topic,
                partition,
                &payloads[produced % payloads.len()],
            )?;
            produced += 1;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    producer
        .flush(Duration::from_secs(120))
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
        f64::from(micros[((micros.len() as f64 * q) as usize).min(micros.len() - 1)]) / 1000.0
    };
    println!(
        "records={total} seconds={elapsed:.2} mib_per_s={:.1} msg_per_s={:.0} p50_ms={:.2} p99_ms={:.2} p999_ms={:.2} max_ms={:.2}",
        (total * RECORD) as f64 / elapsed / 1048576.0,
        total as f64 / elapsed,
        ms(0.5),
        ms(0.99),
        ms(0.999),
        ms(1.0),
    );
    Ok(())
}

/// The Python driver's record: a counter, 256 random bytes as hex, then a repeated
/// JSON-ish filler, so lz4 finds about half of each record to compress.
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
