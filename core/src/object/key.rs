//! Object ids and the keys they are stored under.

use std::fmt;

/// An object's id, allocated by the metadata store; never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectId(pub u64);

impl fmt::Display for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// `objects/<hash prefix>/<id>.obj`. Ids grow by one, so a prefix of the id itself
/// would send every new object to the same key range; S3 partitions by prefix, and a
/// hot prefix gets throttled. A mixed hash of the id spreads them over 256 prefixes.
pub fn object_key(id: ObjectId) -> String {
    format!("objects/{:02x}/{id}.obj", spread(id.0) as u8)
}

/// SplitMix64's finaliser: cheap, and consecutive inputs land far apart.
fn spread(mut x: u64) -> u64 {
    x ^= x >> 30;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn consecutive_ids_spread_over_prefixes() {
        let prefixes: HashSet<String> = (0..1024)
            .map(|id| object_key(ObjectId(id))[..10].to_string())
            .collect();
        assert!(prefixes.len() > 200, "only {} prefixes", prefixes.len());
        assert_eq!(object_key(ObjectId(0x2a)), object_key(ObjectId(0x2a)));
        assert!(object_key(ObjectId(0x2a)).ends_with("/000000000000002a.obj"));
    }
}
