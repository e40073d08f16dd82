//! Block filters of string columns: which values a block may hold, so that an equality
//! filter (`trace_id = '...'`) passes over a block without decoding it.
//!
//! A split-block Bloom filter as Parquet specifies it: buckets of eight 32-bit words
//! (256 bits); a value's XXH64 hash (seed 0) of its bytes picks a bucket with its upper
//! 32 bits and sets one bit in each of the bucket's words with its lower 32 bits. The
//! hash, the salts and the bucket layout are Parquet's, so that a reader knowing Parquet's
//! knows these; a Parquet export still builds its own per row group (and Parquet's
//! writers size filters in powers of two, which these are not). See docs/FORMAT.md,
//! "4.9 Block filters".

use twox_hash::XxHash64;

/// Bytes of one bucket.
pub const BUCKET_BYTES: usize = 32;

/// Bits of filter per distinct value: a block that does not hold the value looked up is
/// read anyway about once in 100 lookups (Parquet's sizing for a 1 % false-positive rate
/// asks 9.7 bits).
const BITS_PER_VALUE: usize = 10;

/// Parquet's salts: one odd multiplier per word of a bucket.
const SALT: [u32; 8] = [
    0x47b6_137b,
    0x4497_4d91,
    0x8824_ad5b,
    0xa2b7_289d,
    0x7054_95c7,
    0x2df1_424b,
    0x9efc_4947,
    0x5c6b_fb31,
];

fn hash(value: &[u8]) -> u64 {
    XxHash64::oneshot(0, value)
}

/// The bucket of `hash` among `buckets`.
fn bucket(hash: u64, buckets: usize) -> usize {
    (((hash >> 32) * buckets as u64) >> 32) as usize
}

/// The bit hash `hash` sets in word `i` of its bucket.
fn bit(hash: u64, i: usize) -> u32 {
    1 << ((hash as u32).wrapping_mul(SALT[i]) >> 27)
}

/// The filter of a block holding `values` (the non-null ones), as its bytes (words
/// little-endian); `None` when there are no values.
pub fn build<'a>(values: impl Iterator<Item = &'a [u8]>) -> Option<Vec<u8>> {
    let mut hashes: Vec<u64> = values.map(hash).collect();
    hashes.sort_unstable();
    hashes.dedup();
    if hashes.is_empty() {
        return None;
    }
    let buckets = (hashes.len() * BITS_PER_VALUE).div_ceil(BUCKET_BYTES * 8);
    let mut words = vec![0u32; buckets * 8];
    for h in hashes {
        let b = bucket(h, buckets);
        for i in 0..8 {
            words[b * 8 + i] |= bit(h, i);
        }
    }
    Some(words.iter().flat_map(|w| w.to_le_bytes()).collect())
}

/// Whether a block with filter `filter` (as [`build`] made it: a whole number of
/// buckets, at least one) may hold `value`; false only if it does not. A filter of any
/// other length (which the segment's index check rules out) rules nothing out.
pub fn may_contain(filter: &[u8], value: &[u8]) -> bool {
    if filter.is_empty() || !filter.len().is_multiple_of(BUCKET_BYTES) {
        return true;
    }
    let buckets = filter.len() / BUCKET_BYTES;
    let h = hash(value);
    let at = bucket(h, buckets) * BUCKET_BYTES;
    filter[at..at + BUCKET_BYTES]
        .chunks_exact(4)
        .enumerate()
        .all(|(i, w)| u32::from_le_bytes(w.try_into().expect("4 bytes")) & bit(h, i) != 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn no_values_no_filter() {
        assert_eq!(build(std::iter::empty()), None);
    }

    #[test]
    fn the_hash_is_xxh64_with_seed_0() {
        // XXH64 of the empty input and of "abc" with seed 0, from the reference
        // implementation's test vectors.
        assert_eq!(hash(b""), 0xef46_db37_51d8_e999);
        assert_eq!(hash(b"abc"), 0x44bc_2cf5_ad77_0999);
    }

    #[test]
    fn about_one_lookup_in_a_hundred_is_a_false_positive() {
        let held: Vec<String> = (0..16_384).map(|i| format!("{i:032x}")).collect();
        let filter = build(held.iter().map(|s| s.as_bytes())).unwrap();
        assert_eq!(filter.len(), 16_384 * 10 / 256 * BUCKET_BYTES);
        let absent = (0..100_000)
            .map(|i| format!("absent-{i}"))
            .filter(|s| may_contain(&filter, s.as_bytes()))
            .count();
        assert!(absent < 2_000, "{absent} of 100000 absent values pass");
    }

    proptest! {
        /// The filters are Parquet's: parquet-rs reading our bytes finds what we find, and
        /// inserting the values into an empty filter of the same size sets the same bits.
        #[test]
        fn parquet_reads_and_builds_the_same_filters(
            values in prop::collection::vec(".{0,12}", 1..300),
            probes in prop::collection::vec(".{0,12}", 0..100),
        ) {
            use parquet::bloom_filter::Sbbf;
            let ours = build(values.iter().map(|s| s.as_bytes())).unwrap();
            let read = Sbbf::new(&ours);
            for v in values.iter().chain(&probes) {
                prop_assert_eq!(read.check(v.as_bytes()), may_contain(&ours, v.as_bytes()), "{:?}", v);
            }
            let mut built = Sbbf::new(&vec![0u8; ours.len()]);
            for v in &values {
                built.insert(v.as_bytes());
            }
            let mut bytes = Vec::new();
            built.write_bitset(&mut bytes).unwrap();
            prop_assert_eq!(bytes, ours);
        }

        #[test]
        fn every_value_held_passes(values in prop::collection::vec(".{0,12}", 1..300)) {
            let filter = build(values.iter().map(|s| s.as_bytes())).unwrap();
            prop_assert!(filter.len().is_multiple_of(BUCKET_BYTES));
            for v in &values {
                prop_assert!(may_contain(&filter, v.as_bytes()), "{v:?}");
            }
        }
    }
}
