//! Series keys: the tag values that identify a series.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};

use ahash::AHashSet;

/// The identity of a series: its non-null tags as (name, value) pairs sorted by name.
///
/// Keys order lexicographically; every segment stores its series in this order and scans
/// return series in this order. Tag names and values are interned (see [`intern`]), so
/// comparing the keys of one series from different segments mostly compares pointers.
#[derive(Clone, Default)]
pub struct SeriesKey(Arc<[(Arc<str>, Arc<str>)]>);

fn str_cmp(a: &Arc<str>, b: &Arc<str>) -> Ordering {
    if Arc::ptr_eq(a, b) {
        Ordering::Equal
    } else {
        a.as_ref().cmp(b.as_ref())
    }
}

impl Ord for SeriesKey {
    fn cmp(&self, other: &Self) -> Ordering {
        if Arc::ptr_eq(&self.0, &other.0) {
            return Ordering::Equal;
        }
        for ((an, av), (bn, bv)) in self.0.iter().zip(other.0.iter()) {
            let o = str_cmp(an, bn).then_with(|| str_cmp(av, bv));
            if o != Ordering::Equal {
                return o;
            }
        }
        self.0.len().cmp(&other.0.len())
    }
}

impl PartialOrd for SeriesKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for SeriesKey {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for SeriesKey {}

impl Hash for SeriesKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.len().hash(state);
        for (n, v) in self.0.iter() {
            n.as_ref().hash(state);
            v.as_ref().hash(state);
        }
    }
}

/// Interned strings, shared by every key of the process.
struct Interner {
    set: AHashSet<Arc<str>>,
    /// Size after the last purge: the set is purged of unused strings when it doubles.
    purged_at: usize,
}

impl Interner {
    /// The shared copy of `s`, made on first use.
    fn intern(&mut self, s: &str) -> Arc<str> {
        if let Some(a) = self.set.get(s) {
            return Arc::clone(a);
        }
        if self.set.len() >= 2 * self.purged_at {
            self.set.retain(|a| Arc::strong_count(a) > 1);
            self.purged_at = self.set.len().max(1024);
        }
        let a: Arc<str> = Arc::from(s);
        self.set.insert(Arc::clone(&a));
        a
    }
}

static INTERNER: LazyLock<Mutex<Interner>> = LazyLock::new(|| {
    Mutex::new(Interner {
        set: AHashSet::new(),
        purged_at: 1024,
    })
});

fn interner() -> MutexGuard<'static, Interner> {
    INTERNER.lock().unwrap_or_else(|e| e.into_inner())
}

/// The shared copies of many strings (the tags of a write's new series), taken under
/// one lock and in their order; the lock is held for nothing else.
pub(crate) fn intern_all<'a>(strings: impl IntoIterator<Item = &'a str>) -> Vec<Arc<str>> {
    let mut interner = interner();
    strings.into_iter().map(|s| interner.intern(s)).collect()
}

/// The shared copy of a tag name or value. Strings no longer used by any key are
/// dropped from time to time, so that high-cardinality tags do not accumulate.
pub fn intern(s: &str) -> Arc<str> {
    interner().intern(s)
}

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
