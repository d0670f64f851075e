//! Records of the embedded metadata log, one per frame.

use bytes::{Buf, BufMut, Bytes};

use crate::meta::{KeyValue, LeaseId, Op};

/// One entry of the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Record {
    /// The writes of one transaction, applied at `revision`.
    Commit { revision: u64, ops: Vec<Op> },
    /// The whole state at `revision`; the log restarts with it after compaction.
    Snapshot {
        revision: u64,
        entries: Vec<KeyValue>,
    },
}

const COMMIT: u8 = 1;
const SNAPSHOT: u8 = 2;
const PUT: u8 = 1;
const DELETE: u8 = 2;

impl Record {
    pub(super) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            Record::Commit { revision, ops } => {
                out.put_u8(COMMIT);
                out.put_u64_le(*revision);
                out.put_u32_le(ops.len() as u32);
                for op in ops {
                    match op {
                        Op::Put { key, value, lease } => {
                            out.put_u8(PUT);
                            put_bytes(&mut out, key);
                            put_bytes(&mut out, value);
                            out.put_u64_le(lease.map_or(0, |l| l.0));
                        }
                        Op::Delete { key } => {
                            out.put_u8(DELETE);
                            put_bytes(&mut out, key);
                        }
                    }
                }
            }
            Record::Snapshot { revision, entries } => {
                out.put_u8(SNAPSHOT);
                out.put_u64_le(*revision);
                out.put_u32_le(entries.len() as u32);
                for kv in entries {
                    put_bytes(&mut out, &kv.key);
                    put_bytes(&mut out, &kv.value);
                    out.put_u64_le(kv.create_revision);
                    out.put_u64_le(kv.mod_revision);
                    out.put_u64_le(kv.version);
                    out.put_u64_le(kv.lease.map_or(0, |l| l.0));
                }
            }
        }
        out
    }

    /// Decodes a frame's payload; `Err` names what is malformed.
    pub(super) fn decode(mut bytes: Bytes) -> Result<Record, &'static str> {
        let tag = take_u8(&mut bytes)?;
        let revision = take_u64(&mut bytes)?;
        let count = take_u32(&mut bytes)? as usize;
        let record = match tag {
            COMMIT => {
                let mut ops = Vec::with_capacity(count.min(1024));
                for _ in 0..count {
                    ops.push(match take_u8(&mut bytes)? {
                        PUT => {
                            let key = take_bytes(&mut bytes)?;
                            let value = take_bytes(&mut bytes)?;
                            let lease = lease(take_u64(&mut bytes)?);
                            Op::Put { key, value, lease }
                        }
                        DELETE => Op::Delete {
                            key: take_bytes(&mut bytes)?,
                        },
                        _ => return Err("unknown operation tag"),
                    });
                }
                Record::Commit { revision, ops }
            }
            SNAPSHOT => {
                let mut entries = Vec::with_capacity(count.min(1024));
                for _ in 0..count {
                    entries.push(KeyValue {
                        key: take_bytes(&mut bytes)?,
                        value: take_bytes(&mut bytes)?,
                        create_revision: take_u64(&mut bytes)?,
                        mod_revision: take_u64(&mut bytes)?,
                        version: take_u64(&mut bytes)?,
                        lease: lease(take_u64(&mut bytes)?),
                    });
                }
                Record::Snapshot { revision, entries }
            }
            _ => return Err("unknown record tag"),
        };
        if bytes.has_remaining() {
            return Err("trailing bytes after the record");
        }
        Ok(record)
    }
}

fn lease(raw: u64) -> Option<LeaseId> {
    (raw != 0).then_some(LeaseId(raw))
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.put_u32_le(bytes.len() as u32);
    out.put_slice(bytes);
}

fn take_u8(bytes: &mut Bytes) -> Result<u8, &'static str> {
    if bytes.remaining() < 1 {
        Err("record ends early")
    } else {
        Ok(bytes.get_u8())
    }
}

fn take_u32(bytes: &mut Bytes) -> Result<u32, &'static str> {
    if bytes.remaining() < 4 {
        Err("record ends early")
    } else {
        Ok(bytes.get_u32_le())
    }
}

fn take_u64(bytes: &mut Bytes) -> Result<u64, &'static str> {
    if bytes.remaining() < 8 {
        Err("record ends early")
    } else {
        Ok(bytes.get_u64_le())
    }
}

fn take_bytes(bytes: &mut Bytes) -> Result<Bytes, &'static str> {
    let len = take_u32(bytes)? as usize;
    if bytes.remaining() < len {
        Err("record ends early")
    } else {
        Ok(bytes.split_to(len))
    }
}
