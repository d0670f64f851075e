//! Compaction's memory stays bounded whatever it copies: the heap it adds while
//! rewriting hundreds of MiB of small ranges into stream objects is a few copy
//! chunks per concurrent copy, not the groups it copies.
//!
//! A test binary of its own: its global allocator counts every live byte of the
//! process, so nothing else may run beside it.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use strata_backends::{Storage, StorageConfig};
use strata_core::batch::synthetic_batch;
use strata_core::meta::{EmbeddedMetaStore, EmbeddedOptions, MetaStore};
use strata_core::store::{StoreConfig, StreamStore};

/// The system allocator, counting live bytes and their peak.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

impl Counting {
    fn added(size: usize) {
        let live = LIVE.fetch_add(size, Ordering::Relaxed) + size;
        PEAK.fetch_max(live, Ordering::Relaxed);
    }

    /// Live bytes now; the peak starts again from here.
    fn reset_peak() -> usize {
        let live = LIVE.load(Ordering::Relaxed);
        PEAK.store(live, Ordering::Relaxed);
        live
    }
}

// A global allocator is an unsafe trait; this one forwards every call to `System`
// unchanged and only counts.
#[allow(unsafe_code)]
// SAFETY: every call is forwarded to `System` unchanged; the counters only observe.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract for `alloc`, passed on.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            Counting::added(layout.size());
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            Counting::added(layout.size());
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `alloc` with `layout`, as the caller guarantees.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller's contract for `realloc`, passed on.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
            Counting::added(new_size);
        }
        new
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const MIB: usize = 1 << 20;
const STREAMS: usize = 8;
/// Per stream: one compaction group (`stream_object_bytes`) of 2 MiB ranges.
const STREAM_BYTES: usize = 64 * MIB;
const BATCH_BYTES: usize = 64 << 10;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compacting_512_mib_adds_a_few_copy_chunks_to_the_heap() {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = Storage::open(
        &StorageConfig::from_document(&format!(
            "[storage]\nkind = \"fs\"\nroot = \"{}\"\n",
            dir.path().join("bucket").display()
        ))
        .expect("storage config"),
    )
    .expect("storage");
    let meta: Arc<dyn MetaStore> = Arc::new(
        EmbeddedMetaStore::open(&dir.path().join("meta"), EmbeddedOptions::default())
            .await
            .expect("meta"),
    );
    let mut config = StoreConfig::new(dir.path().join("wal"));
    // Every upload (16 MiB) shares out the eight streams' appends: 2 MiB ranges, 32
    // per stream, one compaction group each.
    config.upload_interval = std::time::Duration::from_secs(3600);
    config.log_cache_bytes = 32 * MIB;
    config.max_unuploaded_bytes = 64 * MIB;
    let store = StreamStore::open(storage, meta, config)
        .await
        .expect("store");

    let mut streams = Vec::with_capacity(STREAMS);
    for _ in 0..STREAMS {
        let id = store.create_stream().await.expect("create");
        store.open_stream(id).await.expect("open");
        streams.push(id);
    }
    let batch = synthetic_batch(64, BATCH_BYTES - 61, 0);
    let writers: Vec<_> = streams
        .iter()
        .map(|&id| {
            let store = store.clone();
            let batch = batch.clone();
            tokio::spawn(async move {
                for _ in 0..STREAM_BYTES / BATCH_BYTES {
                    store.append(id, batch.clone()).await.expect("append");
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.expect("writer");
    }
    store.flush().await.expect("flush");

    let before = Counting::reset_peak();
    let report = store.compact_all().await.expect("compaction");
    let added = PEAK.load(Ordering::Relaxed).saturating_sub(before);
    let copied = report.bytes as usize;
    assert_eq!(report.objects_written, STREAMS, "{report:?}");
    assert!(copied >= STREAMS * STREAM_BYTES, "{report:?}");
    // A batch of four copies: each writer's part being filled (8 MiB of slices of
    // reads) and the part being written, 64 MiB; the batch's reads in flight (eight
    // GETs of at most 2 MiB), 16 MiB; per copy a read's share queued and one being
    // written (2 MiB each), 16 MiB; blocks read ahead of their stream, 2 MiB; a little
    // room for indexes and metadata. A copy that held its group would need 4 × 64 MiB.
    println!(
        "compaction copied {} MiB; heap before {} MiB, peak added {} MiB",
        copied / MIB,
        before / MIB,
        added / MIB
    );
    assert!(
        added <= 104 * MIB,
        "compaction of {} MiB added {} MiB to the heap (bound 104 MiB)",
        copied / MIB,
        added / MIB
    );
}
