//! Series keys: the tag values that identify a series.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};

use ahash::{AHashMap, AHashSet};

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

/// Which of a source's series hold each tag value: the series that a tag predicate may
/// match, found without comparing the predicate with every series key.
///
/// Entries are the positions of the keys it was built from (a segment's series, a chunk's
/// runs), in that order.
#[derive(Debug, Default)]
pub(crate) struct TagIndex {
    /// Tag name, then value: the entries holding it, ascending.
    postings: AHashMap<Arc<str>, AHashMap<Arc<str>, Vec<u32>>>,
}

impl TagIndex {
    /// Indexes `keys`; the i-th key is entry i.
    pub fn new<'a>(keys: impl IntoIterator<Item = &'a SeriesKey>) -> TagIndex {
        let mut postings: AHashMap<Arc<str>, AHashMap<Arc<str>, Vec<u32>>> = AHashMap::new();
        for (entry, key) in keys.into_iter().enumerate() {
            for (name, value) in key.tags() {
                postings
                    .entry(name.clone())
                    .or_default()
                    .entry(value.clone())
                    .or_default()
                    .push(entry as u32);
            }
        }
        TagIndex { postings }
    }

    /// The entries that hold one of the values of the most selective of `tags` (tag, any
    /// of values), ascending; `None` when there are no predicates. A superset of the
    /// entries meeting every predicate: the others still have to be checked.
    pub fn candidates(&self, tags: &[(String, Vec<String>)]) -> Option<Vec<u32>> {
        let lists = |(tag, values): &(String, Vec<String>)| -> Vec<&[u32]> {
            let Some(by_value) = self.postings.get(tag.as_str()) else {
                return Vec::new();
            };
            values
                .iter()
                .filter_map(|v| by_value.get(v.as_str()).map(Vec::as_slice))
                .collect()
        };
        let fewest = tags
            .iter()
            .map(lists)
            .min_by_key(|l| l.iter().map(|p| p.len()).sum::<usize>())?;
        let mut entries: Vec<u32> = fewest.concat();
        if fewest.len() > 1 {
            entries.sort_unstable();
            entries.dedup();
        }
        Some(entries)
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
    fn tag_index_candidates_are_the_entries_of_the_most_selective_predicate() {
        let keys = [
            key(&[("host", "a"), ("dc", "x")]),
            key(&[("host", "b"), ("dc", "x")]),
            key(&[("host", "c"), ("dc", "y")]),
            key(&[("dc", "y")]),
        ];
        let index = TagIndex::new(&keys);
        let pred =
            |t: &str, vs: &[&str]| (t.to_owned(), vs.iter().map(|v| v.to_string()).collect());
        assert_eq!(index.candidates(&[]), None);
        assert_eq!(index.candidates(&[pred("dc", &["y"])]), Some(vec![2, 3]));
        assert_eq!(
            index.candidates(&[pred("host", &["c", "a", "zz"])]),
            Some(vec![0, 2])
        );
        // host picks one entry, dc two: the host's entry is the candidate.
        assert_eq!(
            index.candidates(&[pred("dc", &["x"]), pred("host", &["b"])]),
            Some(vec![1])
        );
        assert_eq!(index.candidates(&[pred("rack", &["r1"])]), Some(vec![]));
        assert_eq!(index.candidates(&[pred("host", &[])]), Some(vec![]));
    }

    proptest::proptest! {
        /// The candidates, checked against every predicate, are exactly the keys that
        /// meet them all: what a scan got by checking every key.
        #[test]
        fn tag_index_candidates_hold_every_match(
            keys in proptest::collection::vec(
                proptest::collection::vec((0usize..3, 0usize..4), 0..4), 0..30),
            preds in proptest::collection::vec(
                (0usize..4, proptest::collection::vec(0usize..5, 0..3)), 0..3),
        ) {
            let tag = |t: usize| ["dc", "host", "rack", "os"][t];
            let value = |v: usize| ["a", "b", "c", "d", "e"][v];
            let keys: Vec<SeriesKey> = keys
                .iter()
                .map(|pairs| {
                    let mut seen = std::collections::BTreeMap::new();
                    for &(t, v) in pairs {
                        seen.insert(tag(t), value(v));
                    }
                    key(&seen.into_iter().collect::<Vec<_>>())
                })
                .collect();
            let preds: Vec<(String, Vec<String>)> = preds
                .iter()
                .map(|(t, vs)| (tag(*t).to_owned(), vs.iter().map(|&v| value(v).to_owned()).collect()))
                .collect();
            let index = TagIndex::new(&keys);
            let expected: Vec<u32> = (0..keys.len() as u32)
                .filter(|&e| crate::scan::source::matches(&keys[e as usize], &preds))
                .collect();
            let found: Vec<u32> = match index.candidates(&preds) {
                None => (0..keys.len() as u32).collect(),
                Some(c) => c
                    .into_iter()
                    .filter(|&e| crate::scan::source::matches(&keys[e as usize], &preds))
                    .collect(),
            };
            proptest::prop_assert_eq!(found, expected);
        }
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
