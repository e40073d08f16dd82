//! Tests of the codecs: round trips of every encoding, corruption, and the special cases.

use arrow_buffer::BooleanBuffer;
use proptest::prelude::*;

use super::*;

fn opts() -> Options {
    Options::default()
}

fn enc_i64(v: &[i64]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_i64(v, &opts(), &mut out);
    out
}

fn enc_f64(v: &[f64]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_f64(v, &opts(), &mut out);
    out
}

fn bits(v: &[f64]) -> Vec<u64> {
    v.iter().map(|x| x.to_bits()).collect()
}

fn assert_f64_round_trip(v: &[f64]) {
    let back = decode_f64(&enc_f64(v), v.len()).expect("decodes");
    assert_eq!(bits(&back), bits(v));
}

/// Offsets and data of `strings` laid out after `skip` bytes of other data, as in a slice.
fn arrow_strings(strings: &[Vec<u8>], skip: usize) -> (Vec<i32>, Vec<u8>) {
    let mut data = vec![b'#'; skip];
    let mut offsets = vec![skip as i32];
    for s in strings {
        data.extend_from_slice(s);
        offsets.push(data.len() as i32);
    }
    data.extend_from_slice(b"tail");
    (offsets, data)
}

fn decoded_strings(offsets: &[i32], data: &[u8]) -> Vec<Vec<u8>> {
    offsets
        .windows(2)
        .map(|w| data[w[0] as usize..w[1] as usize].to_vec())
        .collect()
}

/// A random walk of `n` steps from a seed, truncated or not, as the reference workload.
fn walk(n: usize, seed: u64, truncate: bool) -> Vec<f64> {
    let mut s = seed;
    let mut next = move || {
        s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = s;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut state = next() * 100.0;
    (0..n)
        .map(|_| {
            let (u1, u2) = (1.0 - next(), next());
            let step = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
            state = (state + step * 3.0).clamp(0.0, 100.0);
            if truncate { state.trunc() } else { state }
        })
        .collect()
}

// ---- strategies ----

fn i64s() -> impl Strategy<Value = Vec<i64>> {
    let value = prop_oneof![
        any::<i64>(),
        Just(i64::MIN),
        Just(i64::MAX),
        Just(0i64),
        -1000i64..1000,
    ];
    prop_oneof![
        prop::collection::vec(value.clone(), 0..300),
        // Runs of one value.
        prop::collection::vec((value, 1usize..50), 0..10).prop_map(|runs| runs
            .into_iter()
            .flat_map(|(v, n)| std::iter::repeat_n(v, n))
            .collect()),
        // Regular steps broken at a few places, like timestamps of several series.
        (any::<i64>(), -10_000i64..10_000, 1usize..400, 0usize..5).prop_map(
            |(start, step, n, breaks)| (0..n)
                .map(|i| start
                    .wrapping_add((i % (n / (breaks + 1) + 1)) as i64 * step)
                    .wrapping_add((i * breaks / n) as i64 * 7))
                .collect()
        ),
    ]
}

fn f64s() -> impl Strategy<Value = Vec<f64>> {
    let value = prop_oneof![
        any::<f64>(),
        any::<u64>().prop_map(f64::from_bits),
        (-1_000_000i64..1_000_000).prop_map(|v| v as f64),
        Just(-0.0),
        Just(0.0),
        Just(f64::NAN),
        Just(f64::from_bits(0xFFF0_0000_0000_0001)),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(5e-324),
        Just(9_007_199_254_740_992.0),
        Just(9_007_199_254_740_994.0),
        Just(-9_007_199_254_740_992.0),
    ];
    prop_oneof![
        prop::collection::vec(value.clone(), 0..300),
        prop::collection::vec((value, 1usize..40), 0..10).prop_map(|runs| runs
            .into_iter()
            .flat_map(|(v, n)| std::iter::repeat_n(v, n))
            .collect()),
        (any::<u64>(), 0usize..600, any::<bool>()).prop_map(|(s, n, t)| walk(n, s, t)),
    ]
}

fn strings() -> impl Strategy<Value = Vec<Vec<u8>>> {
    prop_oneof![
        prop::collection::vec(prop::collection::vec(any::<u8>(), 0..40), 0..100),
        // Few distinct values, so that the dictionary is used.
        (
            prop::collection::vec(prop::collection::vec(any::<u8>(), 0..20), 1..5),
            prop::collection::vec(any::<prop::sample::Index>(), 1..200)
        )
            .prop_map(|(dict, picks)| picks
                .iter()
                .map(|i| dict[i.index(dict.len())].clone())
                .collect()),
    ]
}

/// One encoded block of every kind, with its decoder as a closure returning Ok/Err only.
type Decoder = fn(&[u8], usize) -> bool;

fn blocks() -> impl Strategy<Value = (Vec<u8>, usize, Decoder)> {
    prop_oneof![
        i64s().prop_map(|v| (
            enc_i64(&v),
            v.len(),
            (|b, n| decode_i64(b, n).is_ok()) as Decoder
        )),
        i64s().prop_map(|v| {
            let mut out = Vec::new();
            encode_time(&v, &opts(), &mut out);
            (out, v.len(), (|b, n| decode_time(b, n).is_ok()) as Decoder)
        }),
        i64s().prop_map(|v| {
            let v: Vec<u64> = v.iter().map(|&x| x as u64).collect();
            let mut out = Vec::new();
            encode_u64(&v, &opts(), &mut out);
            (out, v.len(), (|b, n| decode_u64(b, n).is_ok()) as Decoder)
        }),
        f64s().prop_map(|v| (
            enc_f64(&v),
            v.len(),
            (|b, n| decode_f64(b, n).is_ok()) as Decoder
        )),
        prop::collection::vec(any::<bool>(), 0..300).prop_map(|v| {
            let mut out = Vec::new();
            encode_bool(&BooleanBuffer::from(v.clone()), &opts(), &mut out);
            (out, v.len(), (|b, n| decode_bool(b, n).is_ok()) as Decoder)
        }),
        prop::collection::vec(0u8..6, 0..300).prop_map(|v| {
            let mut out = Vec::new();
            encode_u8(&v, &opts(), &mut out);
            (out, v.len(), (|b, n| decode_u8(b, n).is_ok()) as Decoder)
        }),
        strings().prop_map(|v| {
            let (offsets, data) = arrow_strings(&v, 0);
            let mut out = Vec::new();
            encode_strings(&offsets, &data, &opts(), &mut out);
            (
                out,
                v.len(),
                (|b, n| decode_strings(b, n).is_ok()) as Decoder,
            )
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn i64_round_trips(v in i64s()) {
        prop_assert_eq!(decode_i64(&enc_i64(&v), v.len()).unwrap(), v);
    }

    #[test]
    fn time_round_trips(v in i64s()) {
        let mut out = Vec::new();
        encode_time(&v, &opts(), &mut out);
        prop_assert_eq!(decode_time(&out, v.len()).unwrap(), v);
    }

    #[test]
    fn u64_round_trips(v in i64s(), flip in any::<bool>()) {
        let v: Vec<u64> = v.iter().map(|&x| x as u64 ^ if flip { 1 << 63 } else { 0 }).collect();
        let mut out = Vec::new();
        encode_u64(&v, &opts(), &mut out);
        prop_assert_eq!(decode_u64(&out, v.len()).unwrap(), v);
    }

    #[test]
    fn f64_round_trips_bit_exactly(v in f64s(), level in prop_oneof![Just(1), Just(3), Just(-1)]) {
        let mut out = Vec::new();
        encode_f64(&v, &Options {
                zstd_level: level,
                ..Options::default()
            }, &mut out);
        prop_assert_eq!(bits(&decode_f64(&out, v.len()).unwrap()), bits(&v));
    }

    #[test]
    fn bool_round_trips_from_any_bit_offset(v in prop::collection::vec(any::<bool>(), 0..400), skip in 0usize..20) {
        let skip = skip.min(v.len());
        let buf = BooleanBuffer::from(v.clone()).slice(skip, v.len() - skip);
        let mut out = Vec::new();
        encode_bool(&buf, &opts(), &mut out);
        let back = decode_bool(&out, buf.len()).unwrap();
        prop_assert_eq!(back.iter().collect::<Vec<_>>(), v[skip..].to_vec());
    }

    #[test]
    fn u8_round_trips(v in prop::collection::vec(prop_oneof![0u8..6, any::<u8>()], 0..400)) {
        let mut out = Vec::new();
        encode_u8(&v, &opts(), &mut out);
        prop_assert_eq!(decode_u8(&out, v.len()).unwrap(), v);
    }

    #[test]
    fn strings_round_trip_from_sliced_offsets(v in strings(), skip in 0usize..10) {
        let (offsets, data) = arrow_strings(&v, skip);
        let mut out = Vec::new();
        encode_strings(&offsets, &data, &opts(), &mut out);
        let (o, d) = decode_strings(&out, v.len()).unwrap();
        prop_assert_eq!(o[0], 0);
        prop_assert_eq!(o.len(), v.len() + 1);
        prop_assert_eq!(decoded_strings(&o, &d), v);
    }

    #[test]
    fn prefixes_are_the_whole_decode_cut(
        ints in i64s(),
        floats in f64s(),
        levels in prop::collection::vec(prop_oneof![0u8..6, any::<u8>()], 0..400),
        at in any::<prop::sample::Index>(),
    ) {
        // Every prefix length of every numeric kind, each against the whole decode's.
        let want = |n: usize| at.index(n + 1);
        let block = enc_i64(&ints);
        let n = want(ints.len());
        prop_assert_eq!(decode_i64_prefix(&block, ints.len(), n).unwrap(), &ints[..n]);
        prop_assert_eq!(decode_time_prefix(&block, ints.len(), n).unwrap(), &ints[..n]);
        let unsigned: Vec<u64> = ints.iter().map(|&v| v as u64).collect();
        let mut block = Vec::new();
        encode_u64(&unsigned, &opts(), &mut block);
        prop_assert_eq!(decode_u64_prefix(&block, ints.len(), n).unwrap(), &unsigned[..n]);
        let n = want(floats.len());
        let back = decode_f64_prefix(&enc_f64(&floats), floats.len(), n).unwrap();
        prop_assert_eq!(bits(&back), bits(&floats[..n]));
        let n = want(levels.len());
        let mut block = Vec::new();
        encode_u8(&levels, &opts(), &mut block);
        prop_assert_eq!(decode_u8_prefix(&block, levels.len(), n).unwrap(), &levels[..n]);
    }

    #[test]
    fn prefix_decoders_survive_damage(
        (mut block, n, _) in blocks(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 0..4),
        at in any::<prop::sample::Index>(),
    ) {
        for (at, x) in flips {
            let at = at.index(block.len());
            block[at] ^= x;
        }
        let want = at.index(n + 1);
        let _ = decode_i64_prefix(&block, n, want);
        let _ = decode_u64_prefix(&block, n, want);
        let _ = decode_f64_prefix(&block, n, want);
        let _ = decode_u8_prefix(&block, n, want);
    }

    #[test]
    fn decoders_survive_truncation((block, n, decode) in blocks(), cut in any::<prop::sample::Index>()) {
        let cut = cut.index(block.len());
        prop_assert!(!decode(&block[..cut], n));
    }

    #[test]
    fn decoders_survive_byte_flips(
        (mut block, n, decode) in blocks(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..4),
    ) {
        for (at, x) in flips {
            let at = at.index(block.len());
            block[at] ^= x;
        }
        let _ = decode(&block, n);
    }

    #[test]
    fn decoders_survive_arbitrary_bytes(
        bytes in prop::collection::vec(any::<u8>(), 0..200),
        codec in 0u8..0x40,
        n in 0usize..100,
    ) {
        // Also with a plausible codec byte and count, to get past the first checks.
        let mut framed = vec![codec];
        bytes::put_varint(&mut framed, n as u64);
        framed.extend_from_slice(&bytes);
        for input in [&bytes[..], &framed[..]] {
            let _ = decode_i64(input, n);
            let _ = decode_time(input, n);
            let _ = decode_u64(input, n);
            let _ = decode_f64(input, n);
            let _ = decode_bool(input, n);
            let _ = decode_u8(input, n);
            let _ = decode_strings(input, n);
        }
    }

    #[test]
    fn a_wrong_count_is_an_error((block, n, decode) in blocks(), other in 0usize..400) {
        prop_assume!(other != n);
        prop_assert!(decode(&block, n));
        prop_assert!(!decode(&block, other));
    }

    #[test]
    fn trailing_bytes_are_an_error((mut block, n, decode) in blocks(), extra in 0u8..=255) {
        block.push(extra);
        prop_assert!(!decode(&block, n));
    }

    #[test]
    fn encoding_is_deterministic(v in f64s()) {
        prop_assert_eq!(enc_f64(&v), enc_f64(&v));
    }
}

#[test]
fn empty_blocks_round_trip() {
    assert_eq!(decode_i64(&enc_i64(&[]), 0).unwrap(), Vec::<i64>::new());
    assert_f64_round_trip(&[]);
    let mut out = Vec::new();
    encode_bool(&BooleanBuffer::new_unset(0), &opts(), &mut out);
    assert_eq!(decode_bool(&out, 0).unwrap().len(), 0);
    let mut out = Vec::new();
    encode_strings(&[5], b"hello", &opts(), &mut out);
    assert_eq!(decode_strings(&out, 0).unwrap(), (vec![0], vec![]));
    assert!(decode_strings(&out, 1).is_err());
}

#[test]
fn constant_blocks_take_a_few_bytes() {
    let v = vec![42i64; 10_000];
    let out = enc_i64(&v);
    assert_eq!(out[0], codec::INT_CONST);
    assert!(out.len() <= 12, "{} bytes", out.len());
    assert_eq!(decode_i64(&out, v.len()).unwrap(), v);
    let out = enc_f64(&vec![f64::NAN; 1000]);
    assert!(out.len() <= 14, "{} bytes", out.len());
}

#[test]
fn regular_timestamps_use_the_constant_step() {
    let v: Vec<i64> = (0..65_536)
        .map(|i| 1_451_606_400_000_000_000 + i * 10_000_000_000)
        .collect();
    let mut out = Vec::new();
    encode_time(&v, &opts(), &mut out);
    assert_eq!(out[0], codec::INT_STEP);
    assert!(out.len() <= 20);
    assert_eq!(decode_time(&out, v.len()).unwrap(), v);
}

#[test]
fn timestamps_of_several_series_cost_almost_nothing() {
    let v: Vec<i64> = (0..65_536)
        .map(|i| 1_451_606_400_000_000_000 + (i % 8640) * 10_000_000_000)
        .collect();
    let mut out = Vec::new();
    encode_time(&v, &opts(), &mut out);
    assert!(out.len() < 400, "{} bytes", out.len());
    assert_eq!(decode_time(&out, v.len()).unwrap(), v);
}

#[test]
fn negative_zero_is_not_taken_for_an_integer() {
    let v = [1.0, -0.0, 2.0, 0.0];
    let out = enc_f64(&v);
    assert_ne!(out[0], codec::F64_INT);
    assert_f64_round_trip(&v);
}

#[test]
fn integral_floats_use_the_integer_codecs() {
    let v = walk(5000, 3, true);
    let out = enc_f64(&v);
    assert_eq!(out[0], codec::F64_INT);
    assert_f64_round_trip(&v);
}

#[test]
fn nan_payloads_infinities_and_subnormals_round_trip() {
    assert_f64_round_trip(&[
        f64::from_bits(0x7FF8_0000_0000_0001),
        f64::from_bits(0xFFFF_FFFF_FFFF_FFFF),
        f64::from_bits(0x7FF0_0000_0000_0001),
        f64::INFINITY,
        f64::NEG_INFINITY,
        5e-324,
        -5e-324,
        f64::MIN_POSITIVE / 3.0,
        -0.0,
        1.5,
    ]);
}

#[test]
fn noisy_floats_use_the_scaled_codec() {
    let v = walk(20_000, 11, false);
    let out = enc_f64(&v);
    assert_eq!(out[0], codec::F64_SCALED);
    assert_f64_round_trip(&v);
}

#[test]
fn extreme_integers_round_trip() {
    for v in [
        vec![i64::MIN, i64::MAX, i64::MIN, 0, i64::MAX],
        vec![i64::MAX, i64::MIN],
        vec![i64::MIN; 3],
        (0..1000)
            .map(|i| if i % 2 == 0 { i64::MIN } else { i64::MAX })
            .collect(),
    ] {
        assert_eq!(decode_i64(&enc_i64(&v), v.len()).unwrap(), v);
    }
    let v = vec![u64::MAX, 0, u64::MAX - 1, 1 << 63];
    let mut out = Vec::new();
    encode_u64(&v, &opts(), &mut out);
    assert_eq!(decode_u64(&out, v.len()).unwrap(), v);
}

#[test]
fn a_block_of_another_kind_is_refused() {
    let out = enc_f64(&[1.5, 2.5, 3.25]);
    assert!(matches!(
        decode_i64(&out, 3),
        Err(DecodeError::WrongCodec { .. })
    ));
    let mut bad = out.clone();
    bad[0] = 0x7f;
    assert_eq!(
        decode_f64(&bad, 3),
        Err(DecodeError::UnknownCodec { codec: 0x7f })
    );
    assert_eq!(
        DecodeError::UnknownCodec { codec: 9 }.to_string(),
        "unknown codec 9"
    );
}

#[test]
fn truncation_names_the_lengths() {
    let out = enc_i64(&[1, 5, 2, 8, 3]);
    let err = decode_i64(&out[..out.len() - 1], 5).unwrap_err();
    assert!(err.to_string().starts_with("the block ends after"), "{err}");
}

#[test]
fn a_zstd_frame_declaring_more_than_the_plane_is_refused_before_decompressing() {
    // U8_BYTES, count 1000, PLANE_ZSTD with a frame that declares 1 GB of content.
    let big = vec![7u8; 1 << 20];
    let frame = zstd::bulk::compress(&big, 3).unwrap();
    let mut block = vec![codec::U8_BYTES];
    bytes::put_varint(&mut block, 1000);
    block.push(1);
    block.extend_from_slice(&(frame.len() as u32).to_le_bytes());
    block.extend_from_slice(&frame);
    assert!(matches!(
        decode_u8(&block, 1000),
        Err(DecodeError::DecompressedLength { expected: 1000, .. })
    ));
}

#[test]
fn string_lengths_beyond_the_cap_are_refused() {
    // STR_PLAIN, count 2, lengths as INT_CONST of 2^31 each, data raw and missing.
    let mut block = vec![codec::STR_PLAIN];
    bytes::put_varint(&mut block, 2);
    block.push(codec::INT_CONST);
    block.extend_from_slice(&(1u64 << 31).to_le_bytes());
    assert!(matches!(
        decode_strings(&block, 2),
        Err(DecodeError::Malformed { .. })
    ));
}

#[test]
fn log_levels_with_long_runs_compress() {
    let v: Vec<u8> = (0..50_000).map(|i| ((i / 1000) % 6) as u8).collect();
    let mut out = Vec::new();
    encode_u8(&v, &opts(), &mut out);
    assert!(out.len() < 1000, "{} bytes", out.len());
    assert_eq!(decode_u8(&out, v.len()).unwrap(), v);
}

#[test]
fn validity_bitmaps_that_are_all_set_take_five_bytes() {
    let mut out = Vec::new();
    encode_bool(&BooleanBuffer::new_set(65_536), &opts(), &mut out);
    assert_eq!(out.len(), 5);
    assert_eq!(decode_bool(&out, 65_536).unwrap().count_set_bits(), 65_536);
}

/// Blocks of more than 8,191 values, which the packer plans from a sample: values that
/// change only between sampled positions, walks, and wide noise, as integers and floats.
fn large_block(seed: u64, n: usize, pattern: u8) -> Vec<i64> {
    let mut state = seed | 1;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut walk = 0i64;
    (0..n)
        .map(|i| match pattern {
            // A new 40-bit value at odd positions only: a sample of every 2nd or 4th
            // value sees a constant where the block is not.
            0 => {
                if i % 2 == 1 {
                    walk = (next() & ((1 << 40) - 1)) as i64;
                }
                walk
            }
            1 => {
                walk += (next() % 11) as i64 - 5;
                walk
            }
            _ => next() as i64,
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn large_blocks_planned_from_a_sample_round_trip(
        seed in any::<u64>(),
        n in 8192usize..20_000,
        pattern in 0u8..3,
    ) {
        let v = large_block(seed, n, pattern);
        prop_assert_eq!(decode_i64(&enc_i64(&v), n).unwrap(), v.clone());
        let floats: Vec<f64> = v.iter().map(|&x| x as f64 / 8.0).collect();
        assert_f64_round_trip(&floats);
        // Prefixes that end inside and at the edges of the packer's tiles.
        for want in [1, 1023, 1024, 1025, n / 2, n - 1] {
            prop_assert_eq!(decode_i64_prefix(&enc_i64(&v), n, want).unwrap(), &v[..want]);
            let back = decode_f64_prefix(&enc_f64(&floats), n, want).unwrap();
            prop_assert_eq!(bits(&back), bits(&floats[..want]));
        }
    }
}

#[test]
fn a_string_plane_shorter_than_its_lengths_is_refused_at_any_size() {
    // STR_PLAIN, count 2, lengths as INT_CONST, then a zstd data plane whose frame does
    // not declare its size and holds 1 KiB. Below UP_FRONT_BYTES the plane is allocated
    // whole; above it, it grows only as far as the frame goes.
    let frame = zstd::stream::encode_all(&vec![b'x'; 1024][..], 3).unwrap();
    assert_eq!(
        zstd::zstd_safe::get_frame_content_size(&frame).unwrap(),
        None,
        "a streamed frame declares no size"
    );
    for each in [4 << 10, 12 << 20] {
        let mut block = vec![codec::STR_PLAIN];
        bytes::put_varint(&mut block, 2);
        block.push(codec::INT_CONST);
        block.extend_from_slice(&(each as u64).to_le_bytes());
        block.push(1);
        block.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        block.extend_from_slice(&frame);
        let err = decode_strings(&block, 2).unwrap_err();
        assert!(
            matches!(err, DecodeError::DecompressedLength { expected, .. } if expected == 2 * each),
            "{err}"
        );
    }
}

/// The walk from `start >> 20` by `steps`.
fn walk_from(start: i64, steps: impl IntoIterator<Item = i64>) -> Vec<i64> {
    let mut v = start >> 20;
    steps
        .into_iter()
        .map(|s| {
            v = v.wrapping_add(s);
            v
        })
        .collect()
}

/// Random walks of small steps, whose deltas are the resumable kind.
fn walks() -> impl Strategy<Value = Vec<i64>> {
    (
        any::<i64>(),
        prop::collection::vec(prop_oneof![8 => -2i64..3, 1 => -300i64..300], 0..700),
    )
        .prop_map(|(start, steps)| walk_from(start, steps))
}

/// Random walks of steps below 128 in size, whose deltas fit one byte plane (the layout
/// added up without widening).
fn small_walks() -> impl Strategy<Value = Vec<i64>> {
    (any::<i64>(), prop::collection::vec(-3i64..4, 0..3000))
        .prop_map(|(start, steps)| walk_from(start, steps))
}

/// Fixed numbers drawn from `seed`: each call gives one below `span`.
fn draws(seed: u64) -> impl FnMut(u64) -> u64 {
    let mut s = seed;
    move |span| {
        s = s.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        (s >> 33) % span
    }
}

/// A fixed walk of 1,000 values from 0, with steps in `-reach..=reach` drawn from `seed`.
fn fixed_walk(seed: u64, reach: i64) -> Vec<i64> {
    let mut draw = draws(seed);
    let steps = (0..1000).map(|_| draw(2 * reach as u64 + 1) as i64 - reach);
    walk_from(0, steps)
}

/// Options with resume points every `every` values.
fn resumable(every: Option<usize>) -> Options {
    Options {
        resume_every: every,
        ..Options::default()
    }
}

fn resume_spacing() -> impl Strategy<Value = Option<usize>> {
    prop_oneof![Just(None), (1usize..20).prop_map(|e| Some(e * 4))]
}

proptest! {
    #[test]
    fn ranges_are_the_whole_decode_cut(
        ints in prop_oneof![walks(), small_walks(), i64s()],
        every in resume_spacing(),
        a in any::<prop::sample::Index>(),
        b in any::<prop::sample::Index>(),
    ) {
        // Every range of every numeric kind, resumable or not, against the whole decode's.
        let opts = resumable(every);
        let n = ints.len();
        let (x, y) = (a.index(n + 1), b.index(n + 1));
        let (from, to) = (x.min(y), x.max(y));
        let mut block = Vec::new();
        encode_i64(&ints, &opts, &mut block);
        prop_assert_eq!(decode_i64(&block, n).unwrap(), ints.clone());
        prop_assert_eq!(decode_i64_range(&block, n, from, to).unwrap().0, &ints[from..to]);
        prop_assert_eq!(decode_time_range(&block, n, from, to).unwrap().0, &ints[from..to]);
        let unsigned: Vec<u64> = ints.iter().map(|&v| v as u64).collect();
        let mut block = Vec::new();
        encode_u64(&unsigned, &opts, &mut block);
        prop_assert_eq!(decode_u64_range(&block, n, from, to).unwrap().0, &unsigned[from..to]);
        // Integral floats are resumable deltas too; others are not.
        for floats in [
            ints.iter().map(|&v| (v >> 12) as f64).collect::<Vec<_>>(),
            ints.iter().map(|&v| (v >> 12) as f64 / 8.0).collect(),
        ] {
            let mut block = Vec::new();
            encode_f64(&floats, &opts, &mut block);
            prop_assert_eq!(bits(&decode_f64(&block, n).unwrap()), bits(&floats));
            let back = decode_f64_range(&block, n, from, to).unwrap().0;
            prop_assert_eq!(bits(&back), bits(&floats[from..to]));
        }
        // Bytes (log levels): the plane's rANS is resumable too.
        let levels: Vec<u8> = ints.iter().map(|&v| (v.rem_euclid(7) as u8).min(5)).collect();
        let mut block = Vec::new();
        encode_u8(&levels, &opts, &mut block);
        prop_assert_eq!(decode_u8(&block, n).unwrap(), levels.clone());
        let (back, start) = decode_u8_range(&block, n, from, to).unwrap();
        prop_assert_eq!(back, &levels[from..to]);
        prop_assert!(start <= from);
    }

    #[test]
    fn range_decoders_survive_damage(
        ints in prop_oneof![walks(), small_walks()],
        every in resume_spacing(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..4),
        a in any::<prop::sample::Index>(),
        b in any::<prop::sample::Index>(),
    ) {
        let n = ints.len();
        let (x, y) = (a.index(n + 1), b.index(n + 1));
        let (from, to) = (x.min(y), x.max(y));
        let damage = |block: &mut Vec<u8>| {
            for &(at, x) in &flips {
                let at = at.index(block.len());
                block[at] ^= x;
            }
        };
        let mut block = Vec::new();
        encode_i64(&ints, &resumable(every), &mut block);
        damage(&mut block);
        let _ = decode_i64_range(&block, n, from, to);
        let _ = decode_u64_range(&block, n, from, to);
        let _ = decode_i64(&block, n);
        // Integral floats: the same deltas, decoded straight into floats.
        let floats: Vec<f64> = ints.iter().map(|&v| (v >> 12) as f64).collect();
        let mut block = Vec::new();
        encode_f64(&floats, &resumable(every), &mut block);
        damage(&mut block);
        let _ = decode_f64_range(&block, n, from, to);
        let _ = decode_f64(&block, n);
        let levels: Vec<u8> = ints.iter().map(|&v| (v.rem_euclid(7) as u8).min(5)).collect();
        let mut block = Vec::new();
        encode_u8(&levels, &resumable(every), &mut block);
        damage(&mut block);
        let _ = decode_u8_range(&block, n, from, to);
        let _ = decode_u8(&block, n);
    }
}

#[test]
fn a_range_of_bytes_decodes_from_the_last_resume_point_before_it() {
    // Levels as logs have them: mostly info, some debug and warn, rare errors.
    let mut x = 1u64;
    let levels: Vec<u8> = (0..3000)
        .map(|_| {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            match (x >> 33) % 100 {
                0 => 4,
                1..=9 => 3,
                10..=39 => 1,
                _ => 2,
            }
        })
        .collect();
    let mut block = Vec::new();
    encode_u8(&levels, &resumable(Some(1000)), &mut block);
    let (got, start) = decode_u8_range(&block, 3000, 2500, 2600).unwrap();
    assert_eq!(got, &levels[2500..2600]);
    assert_eq!(
        start, 2000,
        "stretches of 1,000: the decode starts at the third"
    );
    // Without resume points it starts at the first byte.
    let mut block = Vec::new();
    encode_u8(&levels, &resumable(None), &mut block);
    let (got, start) = decode_u8_range(&block, 3000, 2500, 2600).unwrap();
    assert_eq!((got.as_slice(), start), (&levels[2500..2600], 0));
}

#[test]
fn resumable_deltas_start_at_a_resume_point_and_a_whole_decode_checks_them() {
    let walk = fixed_walk(1, 1000);
    let mut block = Vec::new();
    encode_i64(&walk, &resumable(Some(256)), &mut block);
    // codec, count (two bytes), first value, spacing (two bytes: 999 deltas in three
    // stretches of 336), then the first point.
    assert_eq!(block[0], codec::INT_DELTA_RESUMABLE);
    assert_eq!(block[11..13], [0xd0, 0x02]);
    for (from, to) in [(0, 1), (336, 338), (337, 337), (600, 1000), (999, 1000)] {
        assert_eq!(
            decode_i64_range(&block, 1000, from, to).unwrap().0,
            &walk[from..to]
        );
    }
    let mut without = Vec::new();
    encode_i64(&walk, &resumable(None), &mut without);
    assert_eq!(without[0], codec::INT_DELTA);
    assert!(block.len() > without.len());
    // A damaged point's value: ranges from it are wrong, but a whole decode refuses it.
    block[13] ^= 2;
    let err = decode_i64(&block, 1000).unwrap_err();
    assert!(err.to_string().contains("resume point"), "{err}");
}

/// Checks that ranges of a 1,000-value block of `walk` (`block`, integers, and
/// `float_block`, the walk as floats), around its resume points at values 336 and 672
/// and at its edges, decode as the walk and start at or before the range.
fn assert_ranges_around_points(walk: &[i64], block: &[u8], float_block: &[u8], what: &str) {
    let floats: Vec<f64> = walk.iter().map(|&v| v as f64).collect();
    let mut ranges = vec![
        (0, 0),
        (0, 1),
        (0, 1000),
        (1, 2),
        (998, 1000),
        (999, 1000),
        (1000, 1000),
    ];
    for p in [336, 672] {
        ranges.extend([
            (p - 1, p),
            (p, p),
            (p, p + 1),
            (p + 1, p + 2),
            (p - 1, 1000),
        ]);
    }
    for (from, to) in ranges {
        let (got, start) = decode_i64_range(block, 1000, from, to).unwrap();
        assert_eq!(got, &walk[from..to], "{what}, {from}..{to}");
        // Resumable deltas start at the last of the points (336 and 672) at or before
        // `from`.
        if block[0] == codec::INT_DELTA_RESUMABLE {
            assert_eq!(start, (from / 336).min(2) * 336, "{what}, {from}..{to}");
        } else {
            assert!(start <= from, "{what}, {from}..{to} started at {start}");
        }
        let got = decode_f64_range(float_block, 1000, from, to).unwrap().0;
        assert_eq!(bits(&got), bits(&floats[from..to]), "{what}, {from}..{to}");
    }
}

#[test]
fn small_deltas_are_added_up_from_one_byte_plane_and_a_whole_decode_checks_points() {
    let walk = fixed_walk(7, 3);
    let mut block = Vec::new();
    encode_i64(&walk, &resumable(Some(256)), &mut block);
    // codec, count, first value, spacing 336, two points, then the PACK: no raw low bits
    // and one byte plane.
    assert_eq!(block[0], codec::INT_DELTA_RESUMABLE);
    assert_eq!(block[11..13], [0xd0, 0x02]);
    let mut points = Vec::new();
    for i in [336, 672] {
        bytes::put_varint(
            &mut points,
            int::zigzag(walk[i].wrapping_sub(walk[0]) as u64),
        );
    }
    let pack = 13 + points.len();
    assert_eq!(block[13..pack], points);
    assert_eq!(block[pack..pack + 2], [0, 1]);
    let floats: Vec<f64> = walk.iter().map(|&v| v as f64).collect();
    let mut float_block = Vec::new();
    encode_f64(&floats, &resumable(Some(256)), &mut float_block);
    assert_ranges_around_points(&walk, &block, &float_block, "one plane");
    // A damaged point's value: a whole decode refuses it.
    block[13] ^= 2;
    let err = decode_i64(&block, 1000).unwrap_err();
    assert!(err.to_string().contains("resume point"), "{err}");
}

/// Where the PACK of an integer delta block starts: after its codec, count, first value
/// and (if resumable) spacing and points.
fn pack_offset(block: &[u8]) -> usize {
    let mut r = Reader::new(block);
    let codec = r.u8().unwrap();
    let count = r.varint().unwrap() as usize;
    r.u64().unwrap();
    if codec == codec::INT_DELTA_RESUMABLE {
        let every = r.varint().unwrap() as usize;
        for _ in 0..(count - 1).saturating_sub(1) / every {
            r.varint().unwrap();
        }
    } else {
        assert_eq!(codec, codec::INT_DELTA);
    }
    r.position()
}

#[test]
fn one_byte_plane_of_every_mode_is_added_up_like_a_whole_decode() {
    // Walks whose deltas fit one byte plane with no raw low bits, stored raw (uniform
    // bytes), by zstd (a repeating pattern) and entropy-coded (small random steps), with
    // and without resume points; ranges around each point and block edges.
    let mut draw = draws(11);
    let uniform: Vec<i64> = (0..1000).map(|_| draw(256) as i64 - 128).collect();
    let period: Vec<i64> = (0..64).map(|_| draw(81) as i64 - 40).collect();
    let pattern: Vec<i64> = (0..1000).map(|i| period[i % 64]).collect();
    let cases = [
        (walk_from(0, uniform), Some(256), pack::PLANE_RAW),
        (walk_from(0, pattern), Some(256), pack::PLANE_ZSTD),
        (fixed_walk(3, 3), Some(256), pack::PLANE_ANS_RESUMABLE),
        (fixed_walk(3, 3), None, pack::PLANE_ANS),
    ];
    for (walk, every, mode) in cases {
        let mut block = Vec::new();
        encode_i64(&walk, &resumable(every), &mut block);
        let pack = pack_offset(&block);
        assert_eq!(
            block[pack..pack + 3],
            [0, 1, mode],
            "{every:?}, mode {mode}"
        );
        let floats: Vec<f64> = walk.iter().map(|&v| v as f64).collect();
        let mut float_block = Vec::new();
        encode_f64(&floats, &resumable(every), &mut float_block);
        // An integral float block holds the integers' block after its codec and count
        // (two bytes).
        assert_eq!(float_block[0], codec::F64_INT);
        assert!(float_block.ends_with(&block[3..]), "a float {mode}");
        assert_eq!(decode_i64(&block, 1000).unwrap(), walk);
        assert_eq!(
            bits(&decode_f64(&float_block, 1000).unwrap()),
            bits(&floats)
        );
        assert_ranges_around_points(&walk, &block, &float_block, &format!("mode {mode}"));
    }
}

#[test]
fn crafted_delta_blocks_at_the_edges_decode_by_range_as_whole() {
    // Blocks the writer does not produce but a decoder must read: deltas whose one byte
    // plane is a FILL (every residual 4, a step of +2), and the same as resumable deltas
    // with a point every 4 values or before every value; and, as the writer makes it, a
    // block of one value.
    let fill_pack = [0, 1, pack::PLANE_FILL, 4];
    let mut plain = vec![codec::INT_DELTA];
    put_varint(&mut plain, 9);
    plain.extend_from_slice(&100u64.to_le_bytes());
    plain.extend_from_slice(&fill_pack);
    let want: Vec<i64> = (0..9).map(|i| 100 + 2 * i).collect();
    let mut resumable = vec![codec::INT_DELTA_RESUMABLE];
    put_varint(&mut resumable, 9);
    resumable.extend_from_slice(&100u64.to_le_bytes());
    put_varint(&mut resumable, 4);
    // The one point (8 deltas: residual 4, value 4 = 108), as a zigzagged offset from the
    // first value.
    put_varint(&mut resumable, int::zigzag(8));
    resumable.extend_from_slice(&fill_pack);
    for block in [&plain, &resumable] {
        assert_eq!(decode_i64(block, 9).unwrap(), want);
        for from in 0..=9 {
            for to in from..=9 {
                let (got, start) = decode_i64_range(block, 9, from, to).unwrap();
                assert_eq!(got, &want[from..to], "{from}..{to}");
                // The resumable block's one point is value 4.
                if block[0] == codec::INT_DELTA_RESUMABLE {
                    assert_eq!(start, (from / 4).min(1) * 4, "{from}..{to}");
                } else {
                    assert!(start <= from, "{from}..{to} from {start}");
                }
            }
        }
    }
    // A damaged point (codec, count, first value, spacing, then the point) is refused
    // by a whole decode.
    let mut bad = resumable.clone();
    bad[11] ^= 2;
    assert!(
        decode_i64(&bad, 9)
            .unwrap_err()
            .to_string()
            .contains("resume point")
    );
    // One value: a constant.
    let mut one = Vec::new();
    encode_i64(&[-7], &Options::default(), &mut one);
    assert_eq!(decode_i64_range(&one, 1, 0, 1).unwrap().0, [-7]);
    assert!(decode_i64_range(&one, 1, 1, 1).unwrap().0.is_empty());
    // Resume points every value: a point before each of values 1 to 7.
    let mut every_one = vec![codec::INT_DELTA_RESUMABLE];
    put_varint(&mut every_one, 9);
    every_one.extend_from_slice(&100u64.to_le_bytes());
    put_varint(&mut every_one, 1);
    for i in 1..8 {
        put_varint(&mut every_one, int::zigzag(2 * i));
    }
    every_one.extend_from_slice(&fill_pack);
    assert_eq!(decode_i64(&every_one, 9).unwrap(), want);
    for from in 0..=9 {
        for to in from..=9 {
            let (got, start) = decode_i64_range(&every_one, 9, from, to).unwrap();
            assert_eq!(got, &want[from..to], "every 1: {from}..{to}");
            // Points before values 1 to 7.
            assert_eq!(start, from.min(7), "every 1: {from}..{to}");
        }
    }
}

proptest! {
    #[test]
    fn zstd_takes_a_plane_with_resume_points_only_if_an_eighth_smaller(
        plane in prop_oneof![
            // Skewed independent bytes: where rANS wins, or zstd narrowly.
            prop::collection::vec(prop_oneof![8 => Just(0u8), 1 => 0u8..4, 1 => any::<u8>()], 64..3000),
            // A repeated unit: where zstd wins by far.
            (prop::collection::vec(any::<u8>(), 2..40), 10usize..200)
                .prop_map(|(unit, times)| unit.repeat(times)),
            // Skewed bytes in which every k-th stretch of 32 repeats the one before:
            // zstd ahead by a little or by much, about the eighth for some k.
            (prop::collection::vec(prop_oneof![6 => Just(0u8), 3 => 0u8..8, 1 => any::<u8>()], 3000..4096), 2usize..16)
                .prop_map(|(mut bytes, k)| {
                    for chunk in (1..bytes.len() / 32).filter(|c| c % k == 0) {
                        bytes.copy_within((chunk - 1) * 32..chunk * 32, chunk * 32);
                    }
                    bytes
                }),
        ],
    ) {
        let every = 1024;
        let mut out = Vec::new();
        pack::write_plane(&mut out, &plane, Some(every), &mut pack::Zstd::new(3));
        prop_assume!(out[0] != pack::PLANE_FILL);
        // A plane no longer than the spacing has no resume points, and zstd need only be
        // smaller.
        let resumable = plane.len() > every;
        let mut ans = Vec::new();
        ans::encode(&plane, resumable.then_some(every), &mut ans);
        let zstd = zstd::bulk::compress(&plane, 3).unwrap();
        let best = plane.len().min(ans.len() + 4);
        let bar = if resumable { best - best / 8 } else { best };
        prop_assert_eq!(out[0] == pack::PLANE_ZSTD, zstd.len() + 4 < bar);
    }
}
