//! Series keys: the tag values that identify a series.

use std::fmt;
use std::sync::Arc;

/// The identity of a series: its non-null tags as (name, value) pairs sorted by name.
///
/// Keys order lexicographically; every segment stores its series in this order and scans
/// return series in this order.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct SeriesKey(Arc<[(Arc<str>, Arc<str>)]>);

impl SeriesKey {
    /// Builds a key from (tag, value) pairs in any order; the pairs must name distinct tags.
    pub fn new(mut pairs: Vec<(Arc<str>, Arc<str>)>) -> Self {
        pairs.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        SeriesKey(pairs.into())
    }

    /// The (tag, value) pairs, sorted by tag name.
    pub fn tags(&self) -> &[(Arc<str>, Arc<str>)] {
        &self.0
    }

    /// The value of one tag, if the series has it.
    pub fn get(&self, tag: &str) -> Option<&str> {
        self.0
            .binary_search_by(|(name, _)| name.as_ref().cmp(tag))
            .ok()
            .map(|i| self.0[i].1.as_ref())
    }

    /// A hash that is the same in every process, for assigning series to partitions.
    pub fn stable_hash(&self) -> u64 {
        // FNV-1a over the pairs, with separators so ("ab","c") != ("a","bc").
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for (name, value) in self.0.iter() {
            for b in name
                .bytes()
                .chain([0xff])
                .chain(value.bytes())
                .chain([0xfe])
            {
                h ^= b as u64;
                h = h.wrapping_mul(0x0100_0000_01b3);
            }
        }
        h
    }
}

impl fmt::Debug for SeriesKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (i, (k, v)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{k}={v}")?;
        }
        f.write_str("}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(pairs: &[(&str, &str)]) -> SeriesKey {
        SeriesKey::new(
            pairs
                .iter()
                .map(|(k, v)| (Arc::from(*k), Arc::from(*v)))
                .collect(),
        )
    }

    #[test]
    fn key_is_independent_of_tag_order() {
        let a = key(&[("host", "a"), ("dc", "x")]);
        let b = key(&[("dc", "x"), ("host", "a")]);
        assert_eq!(a, b);
        assert_eq!(a.stable_hash(), b.stable_hash());
        assert_eq!(a.get("host"), Some("a"));
        assert_eq!(a.get("rack"), None);
        assert_ne!(
            key(&[("a", "bc")]).stable_hash(),
            key(&[("ab", "c")]).stable_hash()
        );
    }
}
