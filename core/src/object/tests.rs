use bytes::Bytes;
use proptest::prelude::*;

use super::*;

/// Decodes a whole object the way a reader does: footer from the tail, then the
/// index it points at, then every block verified.
fn decode(object: &Bytes) -> Result<(Footer, Index), FormatError> {
    let footer = Footer::decode(object, object.len() as u64)?;
    let start = footer.index_position as usize;
    let index = Index::decode(
        &object.slice(start..start + footer.index_len as usize),
        &footer,
    )?;
    for entry in index.entries() {
        let position = entry.position as usize;
        entry.verify(&object[position..position + entry.len as usize])?;
    }
    Ok((footer, index))
}

/// Blocks for a stream-set object: per stream, consecutive offset ranges.
fn blocks() -> impl Strategy<Value = Vec<(BlockMeta, Vec<u8>)>> {
    prop::collection::vec((0u64..6, 1u64..50, 0usize..300, any::<i64>()), 1..24).prop_map(|raw| {
        let mut next_offset = std::collections::HashMap::new();
        raw.into_iter()
            .map(|(stream_id, count, len, max_timestamp)| {
                let start = *next_offset.entry(stream_id).or_insert(1000 * stream_id);
                next_offset.insert(stream_id, start + count);
                let data: Vec<u8> = (0..len)
                    .map(|i| (i as u64 ^ start ^ stream_id) as u8)
                    .collect();
                let meta = BlockMeta {
                    stream_id,
                    start_offset: start,
                    end_offset: start + count,
                    record_count: count as u32,
                    max_timestamp,
                };
                (meta, data)
            })
            .collect()
    })
}

fn build(blocks: &[(BlockMeta, Vec<u8>)]) -> Bytes {
    let mut builder = ObjectBuilder::new(ObjectKind::StreamSet);
    for (meta, data) in blocks {
        // Split each block's bytes in two parts to exercise multi-part blocks.
        let data = Bytes::from(data.clone());
        let middle = data.len() / 2;
        builder
            .add_block(*meta, &[data.slice(..middle), data.slice(middle..)])
            .expect("valid block");
    }
    builder.finish().0.to_bytes()
}

proptest! {
    #[test]
    fn round_trip_keeps_every_block(blocks in blocks()) {
        let object = build(&blocks);
        let (footer, index) = decode(&object).expect("decodes");
        prop_assert_eq!(footer.block_count as usize, blocks.len());
        prop_assert_eq!(footer.kind, ObjectKind::StreamSet);
        for (meta, data) in &blocks {
            let entry = index.find(meta.stream_id, meta.start_offset).expect("block found by its first offset");
            prop_assert_eq!(entry.start_offset, meta.start_offset);
            prop_assert_eq!(entry.end_offset, meta.end_offset);
            prop_assert_eq!(entry.record_count, meta.record_count);
            prop_assert_eq!(entry.max_timestamp, meta.max_timestamp);
            let position = entry.position as usize;
            prop_assert_eq!(&object[position..position + entry.len as usize], &data[..]);
            let last = index.find(meta.stream_id, meta.end_offset - 1).expect("found by its last offset");
            prop_assert_eq!(last, entry);
        }
    }

    #[test]
    fn offsets_outside_every_block_are_not_found(blocks in blocks(), probe in 0u64..7000) {
        let object = build(&blocks);
        let (_, index) = decode(&object).expect("decodes");
        for stream_id in 0..7 {
            let held = blocks.iter().any(|(m, _)| m.stream_id == stream_id && (m.start_offset..m.end_offset).contains(&probe));
            prop_assert_eq!(index.find(stream_id, probe).is_some(), held);
        }
    }

    #[test]
    fn any_flipped_byte_is_detected(blocks in blocks(), at in any::<prop::sample::Index>(), bit in 0u8..8) {
        let object = build(&blocks);
        let mut corrupt = object.to_vec();
        let position = at.index(corrupt.len());
        corrupt[position] ^= 1 << bit;
        prop_assert!(decode(&Bytes::from(corrupt)).is_err(), "flip at {} of {} went unnoticed", position, object.len());
    }

    #[test]
    fn truncated_objects_are_refused(blocks in blocks(), cut in 1usize..64) {
        let object = build(&blocks);
        let cut = cut.min(object.len());
        prop_assert!(decode(&object.slice(..object.len() - cut)).is_err());
    }
}

#[test]
fn builder_refuses_overlap_and_mixed_stream_objects() {
    let meta = |stream_id, start_offset, end_offset| BlockMeta {
        stream_id,
        start_offset,
        end_offset,
        record_count: 1,
        max_timestamp: 0,
    };
    let mut set = ObjectBuilder::new(ObjectKind::StreamSet);
    set.add_block(meta(1, 0, 10), &[Bytes::from_static(b"a")])
        .expect("first block");
    assert!(
        set.add_block(meta(1, 5, 12), &[Bytes::from_static(b"b")])
            .is_err()
    );
    assert!(set.add_block(meta(1, 9, 9), &[]).is_err());
    set.add_block(meta(2, 0, 1), &[Bytes::from_static(b"c")])
        .expect("another stream");
    // A refused block leaves the stream's end where it was.
    set.add_block(meta(1, 10, 12), &[Bytes::from_static(b"d")])
        .expect("the block after the first");
    assert!(
        set.add_block(meta(1, 0, 5), &[Bytes::from_static(b"e")])
            .is_err(),
        "a block before the stream's earlier ones"
    );
    set.add_block(meta(1, 15, 20), &[Bytes::from_static(b"f")])
        .expect("a gap is allowed");

    let mut single = ObjectBuilder::new(ObjectKind::Stream);
    single
        .add_block(meta(1, 0, 10), &[Bytes::from_static(b"a")])
        .expect("first block");
    assert!(
        single
            .add_block(meta(2, 0, 10), &[Bytes::from_static(b"b")])
            .is_err()
    );
}

#[test]
fn footer_refuses_other_files_and_newer_versions() {
    assert!(matches!(
        Footer::decode(b"short", 5),
        Err(FormatError::TooShort { .. })
    ));
    assert!(matches!(
        Footer::decode(&[0u8; 64], 64),
        Err(FormatError::BadMagic { .. })
    ));

    let (object, _) = ObjectBuilder::new(ObjectKind::Stream).finish();
    let mut newer = object.to_bytes().to_vec();
    let footer_start = newer.len() - FOOTER_LEN;
    newer[footer_start + 24..footer_start + 26].copy_from_slice(&2u16.to_le_bytes());
    let checksum = crc32c::crc32c(&newer[footer_start..footer_start + 36]);
    newer[footer_start + 36..].copy_from_slice(&checksum.to_le_bytes());
    assert_eq!(
        Footer::decode(&newer, newer.len() as u64),
        Err(FormatError::UnsupportedVersion(2))
    );
}
