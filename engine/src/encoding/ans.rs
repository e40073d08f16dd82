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
//! ```
//!
//! Symbol `i` is decoded by lane `i % 4`. With `s` the symbol whose slots `[c, c + f)`
//! hold `x mod 4096`, the lane becomes `f * (x >> 12) + (x mod 4096) - c`, and if that is
//! below 2^16 it is refilled as `(x << 16) | WORD`. After the last symbol every lane's
//! state must be 2^16 again and every word must have been read, which also catches most
//! corruption. A decode of only the first symbols (a prefix) stops before the end and
//! cannot check it.

use super::DecodeError;

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

fn put_varint(out: &mut Vec<u8>, mut v: u32) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Appends `data` (not empty) coded with rANS.
pub(super) fn encode(data: &[u8], out: &mut Vec<u8>) {
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
        put_varint(out, f);
    }
    // Encode backwards; words are pushed in reverse reading order.
    let mut rev: Vec<u16> = Vec::with_capacity(data.len() / 4 + 8);
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
    }
    for lane in x {
        out.extend_from_slice(&lane.to_le_bytes());
    }
    for w in rev.iter().rev() {
        out.extend_from_slice(&w.to_le_bytes());
    }
}

/// Decodes the first `out.len()` of the `total` symbols coded in `input`, which must be
/// exactly one ANS body. Only a whole decode (`out.len() == total`) checks the end of the
/// body (every word read, every lane back in its starting state); a prefix stops early and
/// leaves damage past it to the block's checksum.
pub(super) fn decode(input: &[u8], out: &mut [u8], total: usize) -> Result<(), DecodeError> {
    debug_assert!(out.len() <= total, "a prefix of the symbols");
    let bad = |what: &str| DecodeError::malformed(format!("the entropy-coded plane {what}"));
    let mut pos = 0;
    let mut byte = || {
        let b = input.get(pos).copied();
        pos += 1;
        b.ok_or_else(|| bad("ends early"))
    };
    let top = usize::from(byte()?);
    let mut freq = [0u32; 256];
    let mut sum = 0u32;
    for f in &mut freq[..=top] {
        let mut v = 0u32;
        for shift in [0, 7] {
            let b = byte()?;
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
    // slot -> frequency | (slot - start of the symbol's slots) << 16, and slot -> symbol:
    // two tables, so that the step reads each part without shifting and masking.
    let mut table = [0u32; TOTAL as usize];
    let mut symbols = [0u8; TOTAL as usize];
    let mut at = 0usize;
    for (s, &f) in freq.iter().enumerate() {
        let slots = at..at + f as usize;
        for (k, slot) in table[slots.clone()].iter_mut().enumerate() {
            *slot = f | (k as u32) << 16;
        }
        symbols[slots].fill(s as u8);
        at += f as usize;
    }
    let mut x = [0u32; LANES];
    for lane in &mut x {
        let mut b = [0u8; 4];
        for v in &mut b {
            *v = byte()?;
        }
        *lane = u32::from_le_bytes(b);
        if *lane < LOW {
            return Err(bad("starts in an impossible state"));
        }
    }
    let rest = input.get(pos..).unwrap_or(&[]);
    if rest.len() % 2 != 0 {
        return Err(bad("has an odd number of renormalization bytes"));
    }
    // A symbol reads at most one word, so a prefix needs no more words than symbols.
    let whole = out.len() >= total;
    let words: Vec<u32> = rest
        .chunks_exact(2)
        .take(if whole { usize::MAX } else { out.len() })
        .map(|w| u32::from(u16::from_le_bytes([w[0], w[1]])))
        .collect();
    // Reads past the end yield 0 and are caught by the position check below.
    let mut at = 0usize;
    let step = |lane: &mut u32, at: &mut usize| step(&table, &symbols, &words, lane, at);
    let [mut x0, mut x1, mut x2, mut x3] = x;
    let mut chunks = out.chunks_exact_mut(LANES);
    for c in &mut chunks {
        c[0] = step(&mut x0, &mut at);
        c[1] = step(&mut x1, &mut at);
        c[2] = step(&mut x2, &mut at);
        c[3] = step(&mut x3, &mut at);
    }
    let mut lanes = [&mut x0, &mut x1, &mut x2, &mut x3];
    for (o, lane) in chunks.into_remainder().iter_mut().zip(lanes.iter_mut()) {
        *o = step(lane, &mut at);
    }
    if !whole {
        return if at > words.len() {
            Err(bad("ends early"))
        } else {
            Ok(())
        };
    }
    if at != words.len() {
        return Err(bad(if at > words.len() {
            "ends early"
        } else {
            "has bytes left over"
        }));
    }
    if [x0, x1, x2, x3] != [LOW; LANES] {
        return Err(bad("does not end in the state it started from"));
    }
    Ok(())
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

    fn round_trip(data: &[u8]) -> usize {
        let mut out = Vec::new();
        encode(data, &mut out);
        let mut back = vec![0u8; data.len()];
        decode(&out, &mut back, data.len()).unwrap();
        assert_eq!(back, data);
        for want in [0, 1, data.len() / 3, data.len().saturating_sub(1)] {
            let mut prefix = vec![0u8; want];
            decode(&out, &mut prefix, data.len()).unwrap();
            assert_eq!(prefix, data[..want]);
        }
        out.len()
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
        encode(&[1, 2, 3, 1, 1, 1, 2], &mut out);
        assert!(decode(&out, &mut [0u8; 6], 6).is_err());
        assert!(decode(&out, &mut [0u8; 8], 8).is_err());
    }
}
