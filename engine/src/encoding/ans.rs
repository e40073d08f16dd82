//! A static order-0 rANS entropy coder for byte planes (four interleaved states).
//!
//! zstd codes literals with Huffman codes, which lose up to a few tenths of a bit per byte
//! on skewed distributions, and at its fast levels it also spends bytes on short spurious
//! matches in random low-entropy data. Planes of small residuals (the deltas of a random
//! walk) are such data, so they are coded here within a fraction of a percent of their
//! order-0 entropy.
//!
//! ```text
//! ANS     := top:u8 FREQ{top + 1} STATE{4} WORD*
//! FREQ    := LEB128 varint (1 or 2 bytes): the frequency of symbol 0, 1, ... top, out
//!            of 4096; they sum to 4096
//! STATE   := u32le >= 2^16: the decoder's initial states, lane 0 first
//! WORD    := u16le: renormalization words in the order the decoder reads them
//!
//! ANSR    := top:u8 FREQ{top + 1} every:varint RESUME{(m - 1) / every} STATE{4} WORD*
//! RESUME  := STATE{4} word:varint: for j from 1, the lanes' states just before symbol
//!            j * every is decoded, and the index of the next WORD
//! ```
//!
//! The resumable layout (ANSR; `m` symbols, none for `m = 0`, `every` a positive
//! multiple of 4 so that symbol `j * every` is lane 0's) lets a decode start at a resume
//! point instead of at symbol 0. The encoder, coding backwards, records the lanes and the
//! words pushed so far right after coding symbol `j * every`.
//!
//! Symbol `i` is decoded by lane `i % 4`. With `s` the symbol whose slots `[c, c + f)`
//! hold `x mod 4096`, the lane becomes `f * (x >> 12) + (x mod 4096) - c`, and if that is
//! below 2^16 it is refilled as `(x << 16) | WORD`. After the last symbol every lane's
//! state must be 2^16 again and every word must have been read, which also catches most
//! corruption; a whole decode of ANSR also checks that it passes every resume point with
//! its states and word index. A decode of a range (the first symbols, or from a resume
//! point) stops before the end and cannot check it.

use super::DecodeError;
use super::bytes::{Reader, put_varint};

/// Frequencies are out of `1 << PROB_BITS`.
const PROB_BITS: u32 = 12;
const TOTAL: u32 = 1 << PROB_BITS;
/// Lower bound of a normalized state; states lie in `[LOW, 2^32)` and are renormalized
/// 16 bits at a time, so each symbol reads at most one word.
const LOW: u32 = 1 << 16;
/// Interleaved states.
const LANES: usize = 4;

/// Frequencies summing to [`TOTAL`], each present symbol at least 1, from counts.
fn normalize(hist: &[u64; 256], n: u64) -> [u32; 256] {
    let mut freq = [0u32; 256];
    for (f, &c) in freq.iter_mut().zip(hist) {
        if c > 0 {
            *f = ((c * u64::from(TOTAL)) / n).max(1) as u32;
        }
    }
    // Fix the sum on the most frequent symbols (first one on ties).
    let mut sum: u32 = freq.iter().sum();
    while sum != TOTAL {
        let (i, _) = freq
            .iter()
            .enumerate()
            .max_by_key(|&(i, &f)| (f, std::cmp::Reverse(i)))
            .unwrap_or((0, &0));
        if sum > TOTAL {
            let cut = (sum - TOTAL).min(freq[i] - 1).max(1);
            freq[i] -= cut;
            sum -= cut;
        } else {
            freq[i] += TOTAL - sum;
            sum = TOTAL;
        }
    }
    freq
}

/// Appends `data` (not empty) coded with rANS. With `every` (a multiple of 4, at least
/// 4), the body holds a resume point before every `every`-th symbol (the resumable layout
/// of the module docs), from which a decode can start.
pub(super) fn encode(data: &[u8], every: Option<usize>, out: &mut Vec<u8>) {
    debug_assert!(every.is_none_or(|e| e >= LANES && e % LANES == 0));
    let mut hist = [0u64; 256];
    for &b in data {
        hist[b as usize] += 1;
    }
    let freq = normalize(&hist, data.len() as u64);
    let mut cum = [0u32; 256];
    let mut at = 0;
    for (c, &f) in cum.iter_mut().zip(&freq) {
        *c = at;
        at += f;
    }
    let top = freq.iter().rposition(|&f| f > 0).unwrap_or(0);
    out.push(top as u8);
    for &f in &freq[..=top] {
        put_varint(out, f as u64);
    }
    // Encode backwards; words are pushed in reverse reading order. After symbol `i` is
    // encoded, the lanes hold the states a decoder has just before decoding it, and the
    // words pushed so far are the ones it reads from symbol `i` on.
    let mut rev: Vec<u16> = Vec::with_capacity(data.len() / 4 + 8);
    let mut points: Vec<([u32; LANES], usize)> = Vec::new();
    let mut x = [LOW; LANES];
    for (i, &s) in data.iter().enumerate().rev() {
        let lane = &mut x[i % LANES];
        let (f, c) = (freq[s as usize], cum[s as usize]);
        let max = (u64::from(LOW >> PROB_BITS) << 16) * u64::from(f);
        if u64::from(*lane) >= max {
            rev.push(*lane as u16);
            *lane >>= 16;
        }
        *lane = ((*lane / f) << PROB_BITS) + (*lane % f) + c;
        if let Some(every) = every
            && i > 0
            && i % every == 0
        {
            points.push((x, rev.len()));
        }
    }
    if let Some(every) = every {
        put_varint(out, every as u64);
        for (states, pushed) in points.iter().rev() {
            for lane in states {
                out.extend_from_slice(&lane.to_le_bytes());
            }
            put_varint(out, (rev.len() - pushed) as u64);
        }
    }
    for lane in x {
        out.extend_from_slice(&lane.to_le_bytes());
    }
    for w in rev.iter().rev() {
        out.extend_from_slice(&w.to_le_bytes());
    }
}

/// Decodes symbols `[start, to)` of the `total` symbols coded in `input`, which must be
/// exactly one ANS body (of the resumable layout if `resumable`), into `out` (replacing
/// its contents), and returns `start`: the last resume point at or before `from` (0 in a
/// body without resume points). Only a whole decode (`from == 0`, `to == total`) checks
/// the end of the body (every word read, every lane back in its starting state) and that
/// every resume point is where the decode passes; any other range leaves damage outside
/// it to the block's checksum.
pub(super) fn decode(
    input: &[u8],
    resumable: bool,
    from: usize,
    to: usize,
    total: usize,
    out: &mut Vec<u8>,
) -> Result<usize, DecodeError> {
    debug_assert!(from <= to && to <= total, "a range of the symbols");
    let bad = |what: &str| DecodeError::malformed(format!("the entropy-coded plane {what}"));
    let mut r = Reader::new(input);
    let top = usize::from(r.u8().map_err(|_| bad("ends early"))?);
    let mut freq = [0u32; 256];
    let mut sum = 0u32;
    for f in &mut freq[..=top] {
        let mut v = 0u32;
        for shift in [0, 7] {
            let b = r.u8().map_err(|_| bad("ends early"))?;
            v |= u32::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                break;
            }
            if shift == 7 {
                return Err(bad("has a frequency longer than two bytes"));
            }
        }
        *f = v;
        sum = sum.saturating_add(v);
    }
    if sum != TOTAL {
        return Err(bad(&format!(
            "has frequencies summing to {sum}, not {TOTAL}"
        )));
    }
    let states = |r: &mut Reader<'_>| -> Result<[u32; LANES], DecodeError> {
        let mut x = [0u32; LANES];
        for lane in &mut x {
            *lane = r.u32().map_err(|_| bad("ends early"))?;
            if *lane < LOW {
                return Err(bad("starts in an impossible state"));
            }
        }
        Ok(x)
    };
    // Resume point `j` (from 1) is before symbol `j * every`: the lanes' states and the
    // index of the next word.
    // A whole decode keeps every point, to check them; a range only the one it starts at.
    let whole = from == 0 && to >= total;
    let mut every = usize::MAX;
    let mut points: Vec<([u32; LANES], usize)> = Vec::new();
    let mut resume = None;
    if resumable {
        let e = r.varint().map_err(|_| bad("ends early"))?;
        if e < LANES as u64 || e % LANES as u64 != 0 {
            return Err(bad(&format!(
                "has resume points every {e} symbols, not a positive multiple of {LANES}"
            )));
        }
        every = usize::try_from(e).map_err(|_| bad("has resume points too far apart"))?;
        let count = total.saturating_sub(1) / every;
        let j = if whole { 0 } else { (from / every).min(count) };
        if whole {
            // Each point takes at least 17 bytes: no more are reserved than could be there.
            points.reserve_exact(count.min(input.len() / 17));
        }
        for i in 1..=count {
            let x = states(&mut r)?;
            let word = r.varint().map_err(|_| bad("ends early"))?;
            let point = (x, usize::try_from(word).unwrap_or(usize::MAX));
            if whole {
                points.push(point);
            } else if i == j {
                resume = Some((i * every, point));
            }
        }
    }
    let initial = states(&mut r)?;
    let rest = r.take(input.len() - r.position()).unwrap_or(&[]);
    if !rest.len().is_multiple_of(2) {
        return Err(bad("has an odd number of renormalization bytes"));
    }
    let all_words = rest.len() / 2;
    let (start, x, first_word) = match resume {
        None => (0, initial, 0),
        Some((start, (x, word))) => (start, x, word),
    };
    if first_word > all_words {
        return Err(bad("has a resume point past its last word"));
    }
    SCRATCH.with_borrow_mut(|scratch| {
        let Scratch {
            table,
            symbols,
            words,
        } = &mut **scratch;
        // Every slot is written: the frequencies sum to TOTAL. Only symbols up to `top`
        // can have slots, and a symbol without any is skipped, so that no empty `fill`
        // (a call to memset) is made for it.
        let mut at = 0usize;
        for (s, &f) in freq[..=top].iter().enumerate() {
            if f == 0 {
                continue;
            }
            let slots = at..at + f as usize;
            for (k, slot) in table[slots.clone()].iter_mut().enumerate() {
                *slot = f | (k as u32) << 16;
            }
            symbols[slots].fill(s as u8);
            at += f as usize;
        }
        // A symbol reads at most one word, so a range needs no more words than symbols.
        words.clear();
        words.extend(
            rest[2 * first_word..]
                .chunks_exact(2)
                .take(if whole { usize::MAX } else { to - start })
                .map(|w| u32::from(u16::from_le_bytes([w[0], w[1]]))),
        );
        out.clear();
        out.resize(to - start, 0);
        let decoded = run_all(table, symbols, words, x, whole, every, &points, out);
        // A plane of a huge block does not keep its words' memory for the thread's life.
        if words.capacity() > KEPT_WORDS {
            *words = Vec::new();
        }
        decoded.map(|()| start)
    })
}

/// Words whose buffer a thread keeps between decodes (256 KiB).
const KEPT_WORDS: usize = 1 << 16;

/// The decoder's lookup tables and its copy of the words, kept per thread: 20 KB that
/// would otherwise be zeroed for every plane.
struct Scratch {
    /// slot -> frequency | (slot - start of the symbol's slots) << 16; with `symbols`,
    /// slot -> symbol: two tables, so that the step reads each part without shifting and
    /// masking.
    table: [u32; TOTAL as usize],
    symbols: [u8; TOTAL as usize],
    words: Vec<u32>,
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Box<Scratch>> = std::cell::RefCell::new(Box::new(Scratch {
        table: [0; TOTAL as usize],
        symbols: [0; TOTAL as usize],
        words: Vec::new(),
    }));
}

/// Decodes `out.len()` symbols from the lanes' states `x`; a whole decode (`whole`) also
/// checks each of `points` (one every `every` symbols) and the end of the body.
#[allow(clippy::too_many_arguments)]
fn run_all(
    table: &[u32; TOTAL as usize],
    symbols: &[u8; TOTAL as usize],
    words: &[u32],
    mut x: [u32; LANES],
    whole: bool,
    every: usize,
    points: &[([u32; LANES], usize)],
    out: &mut [u8],
) -> Result<(), DecodeError> {
    let bad = |what: &str| DecodeError::malformed(format!("the entropy-coded plane {what}"));
    // Reads past the end yield 0 and are caught by the position checks below.
    let mut at = 0usize;
    if !whole {
        run(table, symbols, words, &mut x, &mut at, out);
        return if at > words.len() {
            Err(bad("ends early"))
        } else {
            Ok(())
        };
    }
    // A whole decode passes every resume point and checks that it is where it says.
    // (Points first: `zip` takes a piece only when there is a point for it.)
    let mut pieces = out.chunks_mut(every);
    for (&(states, word), piece) in points.iter().zip(&mut pieces) {
        run(table, symbols, words, &mut x, &mut at, piece);
        if x != states || at != word {
            return Err(bad("has a resume point that does not match its symbols"));
        }
    }
    for piece in pieces {
        run(table, symbols, words, &mut x, &mut at, piece);
    }
    if at != words.len() {
        return Err(bad(if at > words.len() {
            "ends early"
        } else {
            "has bytes left over"
        }));
    }
    if x != [LOW; LANES] {
        return Err(bad("does not end in the state it started from"));
    }
    Ok(())
}

/// Decodes `out.len()` symbols, the first of which belongs to lane 0, from the lanes'
/// states `x` and the words from `words[*at]` on.
#[inline(always)]
fn run(
    table: &[u32; TOTAL as usize],
    symbols: &[u8; TOTAL as usize],
    words: &[u32],
    x: &mut [u32; LANES],
    at: &mut usize,
    out: &mut [u8],
) {
    let step = |lane: &mut u32, at: &mut usize| step(table, symbols, words, lane, at);
    let [mut x0, mut x1, mut x2, mut x3] = *x;
    let mut chunks = out.chunks_exact_mut(LANES);
    for c in &mut chunks {
        c[0] = step(&mut x0, at);
        c[1] = step(&mut x1, at);
        c[2] = step(&mut x2, at);
        c[3] = step(&mut x3, at);
    }
    let mut lanes = [&mut x0, &mut x1, &mut x2, &mut x3];
    for (o, lane) in chunks.into_remainder().iter_mut().zip(lanes.iter_mut()) {
        *o = step(lane, at);
    }
    *x = [x0, x1, x2, x3];
}

/// Decodes one symbol with `lane`, refilling it from `words[*at]` when it runs low.
#[inline(always)]
fn step(
    table: &[u32; TOTAL as usize],
    symbols: &[u8; TOTAL as usize],
    words: &[u32],
    lane: &mut u32,
    at: &mut usize,
) -> u8 {
    let slot = (*lane & (TOTAL - 1)) as usize;
    let entry = table[slot];
    let y = (entry & 0xffff)
        .wrapping_mul(*lane >> PROB_BITS)
        .wrapping_add(entry >> 16);
    let refill = y < LOW;
    let word = words.get(*at).copied().unwrap_or(0);
    *lane = if refill { (y << 16) | word } else { y };
    *at += usize::from(refill);
    symbols[slot]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Codes `data` with and without resume points every 8 symbols, checks that the whole
    /// and ranges of it come back, and returns the sizes.
    fn round_trip(data: &[u8]) -> (usize, usize) {
        let mut sizes = [0; 2];
        for (resumable, size) in [false, true].into_iter().zip(&mut sizes) {
            let mut out = Vec::new();
            encode(data, resumable.then_some(8), &mut out);
            *size = out.len();
            let mut back = Vec::new();
            assert_eq!(
                decode(&out, resumable, 0, data.len(), data.len(), &mut back),
                Ok(0)
            );
            assert_eq!(back, data);
            let n = data.len();
            for (from, to) in [
                (0, 0),
                (0, 1),
                (n / 3, n / 2),
                (n / 2, n),
                (n.saturating_sub(1), n),
            ] {
                let start = decode(&out, resumable, from, to, n, &mut back).unwrap();
                assert!(start <= from);
                if resumable {
                    assert_eq!(start, from / 8 * 8);
                }
                assert_eq!(back, data[start..to]);
            }
        }
        (sizes[0], sizes[1])
    }

    #[test]
    fn ans_round_trips_skewed_and_uniform_bytes() {
        let skewed: Vec<u8> = (0..10_000u32).map(|i| (i * i % 7 % 3) as u8).collect();
        round_trip(&skewed);
        let all: Vec<u8> = (0..=255u8).cycle().take(5000).collect();
        round_trip(&all);
        round_trip(&[9]);
        round_trip(&[1, 2, 3]);
    }

    #[test]
    fn ans_with_one_rare_symbol_among_many_keeps_every_symbol_codable() {
        let mut data = vec![0u8; 100_000];
        for (i, b) in (0..=255u8).enumerate() {
            data[i * 7] = b;
        }
        round_trip(&data);
    }

    #[test]
    fn ans_rejects_a_wrong_length() {
        let mut out = Vec::new();
        encode(&[1, 2, 3, 1, 1, 1, 2], None, &mut out);
        let mut back = Vec::new();
        assert!(decode(&out, false, 0, 6, 6, &mut back).is_err());
        assert!(decode(&out, false, 0, 8, 8, &mut back).is_err());
    }

    #[test]
    fn ans_resume_points_cost_what_they_hold_and_are_checked_by_a_whole_decode() {
        let data: Vec<u8> = (0..1000u32).map(|i| (i * i % 7 % 3) as u8).collect();
        let (plain, resumable) = round_trip(&data);
        // One varint for the spacing, then 124 points of four states and a word index.
        assert!(resumable - plain > 124 * 17, "{plain} {resumable}");
        let mut out = Vec::new();
        encode(&data, Some(8), &mut out);
        // The first point's first state is past `top`, the frequencies and the spacing.
        let mut pos = 1;
        for _ in 0..=out[0] {
            pos += out[pos..].iter().position(|b| b & 0x80 == 0).unwrap() + 1;
        }
        out[pos + 1] ^= 1;
        let mut back = Vec::new();
        assert!(decode(&out, true, 0, 1000, 1000, &mut back).is_err());
    }
}
