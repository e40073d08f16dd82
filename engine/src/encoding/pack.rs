//! PLANE and PACK: how byte planes and streams of unsigned residuals are stored.
//!
//! Every integer-like codec reduces its values to unsigned residuals (zigzagged deltas,
//! offsets from a minimum) that are mostly small. PACK stores `n` residuals as `k` raw low
//! bits each, bit-packed, and the rest (`v >> k`) as byte planes, each plane stored raw, as
//! one repeated byte, or as a zstd frame, whichever is smallest. The encoder picks `k` from
//! an order-0 entropy estimate of the planes (see [`plan`]).

use std::borrow::Cow;
use std::cell::RefCell;

use super::DecodeError;
use super::bytes::{Reader, put_u32};

/// PLANE mode: the bytes follow as they are.
pub(super) const PLANE_RAW: u8 = 0;
/// PLANE mode: a `u32` length, then a zstd frame of that length.
pub(super) const PLANE_ZSTD: u8 = 1;
/// PLANE mode: one byte, repeated for the whole plane.
pub(super) const PLANE_FILL: u8 = 2;
/// PLANE mode: a `u32` length, then that many bytes of rANS (see [`super::ans`]).
pub(super) const PLANE_ANS: u8 = 3;
/// PLANE mode: a `u32` length, then that many bytes of rANS with resume points, from
/// which a decode can start inside the plane.
pub(super) const PLANE_ANS_RESUMABLE: u8 = 4;

/// Estimated overhead of a zstd frame (header, Huffman table) on top of its entropy, in bytes.
const ZSTD_OVERHEAD: usize = 40;

/// A zstd compressor at one level, created on first use and reused for the planes of one
/// block.
pub(super) struct Zstd {
    level: i32,
    ctx: Option<zstd::bulk::Compressor<'static>>,
}

impl std::fmt::Debug for Zstd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Zstd").field("level", &self.level).finish()
    }
}

impl Zstd {
    /// A compressor at `level` (zstd's own scale; 0 is zstd's default).
    pub(super) fn new(level: i32) -> Self {
        Zstd { level, ctx: None }
    }

    /// `data` compressed as one frame with its content size, or `None` if zstd failed.
    fn compress(&mut self, data: &[u8]) -> Option<Vec<u8>> {
        if self.ctx.is_none() {
            self.ctx = zstd::bulk::Compressor::new(self.level).ok();
        }
        self.ctx.as_mut()?.compress(data).ok()
    }
}

/// Appends `plane` as a PLANE: the smallest of raw, fill, rANS and zstd. With `every`,
/// the rANS candidate has a resume point every `every` bytes (a multiple of 4) if the
/// plane is longer than that, and zstd is taken over it only if an eighth smaller.
///
/// Measured on the logs workload (1.73 M events; the planes of time deltas and levels,
/// which have resume points): zstd was smallest for 183 of 940 planes, and the 940 took
/// 1.0 % fewer bytes with it than with rANS alone; with the eighth, zstd is taken for 22,
/// and the 940 take 0.9 % more bytes than when zstd was taken whenever smallest.
pub(super) fn write_plane(out: &mut Vec<u8>, plane: &[u8], every: Option<usize>, zstd: &mut Zstd) {
    if let Some((&first, rest)) = plane.split_first()
        && rest.iter().all(|&b| b == first)
    {
        out.extend_from_slice(&[PLANE_FILL, first]);
        return;
    }
    let mut best = (PLANE_RAW, None);
    let mut best_len = plane.len();
    if plane.len() > 8 {
        // ANSR's spacing must be a positive multiple of its lanes.
        let every = every.filter(|&e| e >= 4 && e.is_multiple_of(4) && plane.len() > e);
        let mut ans = Vec::new();
        super::ans::encode(plane, every, &mut ans);
        if ans.len() + 4 < best_len {
            best_len = ans.len() + 4;
            let mode = if every.is_some() {
                PLANE_ANS_RESUMABLE
            } else {
                PLANE_ANS
            };
            best = (mode, Some(ans));
        }
        // A plane with resume points (or raw) decodes a range from the last point before
        // it, zstd from the plane's first byte: zstd must save an eighth of the bytes.
        let bar = if every.is_some() {
            best_len - best_len / 8
        } else {
            best_len
        };
        if let Some(frame) = zstd.compress(plane)
            && frame.len() + 4 < bar
        {
            best = (PLANE_ZSTD, Some(frame));
        }
    }
    match best {
        (mode, Some(body)) if u32::try_from(body.len()).is_ok() => {
            out.push(mode);
            put_u32(out, body.len() as u32);
            out.extend_from_slice(&body);
        }
        _ => {
            out.push(PLANE_RAW);
            out.extend_from_slice(plane);
        }
    }
}

/// One plane as read: where its bytes are, or one byte repeated.
#[derive(Debug)]
pub(super) enum Plane<'a> {
    /// The plane's bytes, exactly those asked for, stored raw in the block.
    Raw(&'a [u8]),
    /// The plane's bytes were decoded into the scratch buffer given to the reader, which
    /// now holds exactly those asked for (from a range's start, see [`read_plane_range`]).
    Scratch,
    /// Every byte of the plane is this one.
    Fill(u8),
}

/// Reads a PLANE of `m` bytes; a zstd plane is decompressed into `scratch`, which is
/// allocated `m` bytes up front.
pub(super) fn read_plane<'a>(
    r: &mut Reader<'a>,
    m: usize,
    scratch: &mut Vec<u8>,
) -> Result<Plane<'a>, DecodeError> {
    read_plane_with(r, m, 0, m, scratch, false).map(|(plane, _)| plane)
}

/// Reads bytes `[start, to)` of a PLANE of `m` bytes, where `start` (returned) is at most
/// `from`: `from` itself for raw planes, the last resume point at or before it for a
/// resumable rANS plane, 0 for the others, which are decoded from their first byte. The
/// reader is past the whole plane; see [`super::ans::decode`] for what a range leaves
/// unchecked.
pub(super) fn read_plane_range<'a>(
    r: &mut Reader<'a>,
    m: usize,
    from: usize,
    to: usize,
    scratch: &mut Vec<u8>,
) -> Result<(Plane<'a>, usize), DecodeError> {
    let to = to.min(m);
    read_plane_with(r, m, from.min(to), to, scratch, false)
}

/// Reads a PLANE of `m` bytes like [`read_plane`], for planes whose length `m` comes from
/// the block itself: a zstd plane past [`UP_FRONT_BYTES`] lets `scratch` grow only as far
/// as zstd actually produces bytes.
pub(super) fn read_plane_growing<'a>(
    r: &mut Reader<'a>,
    m: usize,
    scratch: &mut Vec<u8>,
) -> Result<Plane<'a>, DecodeError> {
    read_plane_with(r, m, 0, m, scratch, true).map(|(plane, _)| plane)
}

/// Reads bytes `[start, to)` of a PLANE of `m` bytes, `start <= from` (returned).
fn read_plane_with<'a>(
    r: &mut Reader<'a>,
    m: usize,
    from: usize,
    to: usize,
    scratch: &mut Vec<u8>,
    grow: bool,
) -> Result<(Plane<'a>, usize), DecodeError> {
    match r.u8()? {
        PLANE_RAW => Ok((Plane::Raw(&r.take(m)?[from..to]), from)),
        PLANE_FILL => Ok((Plane::Fill(r.u8()?), from)),
        PLANE_ZSTD => {
            let len = r.u32()? as usize;
            let offset = r.position();
            let frame = r.take(len)?;
            unzstd(frame, offset, m, scratch, grow)?;
            scratch.truncate(to);
            Ok((Plane::Scratch, 0))
        }
        mode @ (PLANE_ANS | PLANE_ANS_RESUMABLE) => {
            let len = r.u32()? as usize;
            let body = r.take(len)?;
            let resumable = mode == PLANE_ANS_RESUMABLE;
            let start = super::ans::decode(body, resumable, from, to, m, scratch)?;
            Ok((Plane::Scratch, start))
        }
        mode => Err(DecodeError::malformed(format!(
            "plane mode {mode} is unknown"
        ))),
    }
}

thread_local! {
    /// One decompression context per thread, so that small blocks do not pay for creating one.
    static DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { RefCell::new(None) };
}

/// Planes of at most this many bytes are allocated whole up front even with `grow` (see
/// [`unzstd`]): a damaged block's length then costs at most this much memory for a
/// moment, and an intact plane is decompressed with the thread's reused context instead
/// of a new one. A block of log messages holds a few MiB.
const UP_FRONT_BYTES: usize = 16 << 20;

/// Decompresses `frame`, which must be exactly one zstd frame of exactly `m` bytes, into
/// `dst`, allocating at most `m` bytes, or with `grow` and `m` past [`UP_FRONT_BYTES`] at
/// most about twice what the frame actually produces (and still no more than `m` plus
/// one).
fn unzstd(
    frame: &[u8],
    offset: usize,
    m: usize,
    dst: &mut Vec<u8>,
    grow: bool,
) -> Result<(), DecodeError> {
    use zstd::zstd_safe;
    let zstd_err = |code: usize| DecodeError::Zstd {
        offset,
        reason: zstd_safe::get_error_name(code).to_string(),
    };
    let size = zstd_safe::find_frame_compressed_size(frame).map_err(zstd_err)?;
    if size != frame.len() {
        return Err(DecodeError::malformed(format!(
            "the zstd frame at byte {offset} ends after {size} of its {} bytes",
            frame.len()
        )));
    }
    match zstd_safe::get_frame_content_size(frame) {
        Ok(Some(declared)) if declared != m as u64 => {
            return Err(DecodeError::DecompressedLength {
                offset,
                expected: m,
                found: usize::try_from(declared).unwrap_or(usize::MAX),
            });
        }
        Ok(_) => {}
        Err(_) => {
            return Err(DecodeError::Zstd {
                offset,
                reason: "the frame header is invalid".to_string(),
            });
        }
    }
    dst.clear();
    if grow && m > UP_FRONT_BYTES {
        use std::io::Read;
        let io_err = |e: std::io::Error| DecodeError::Zstd {
            offset,
            reason: e.to_string(),
        };
        let decoder = zstd::stream::read::Decoder::with_buffer(frame)
            .map_err(io_err)?
            .single_frame();
        decoder
            .take(m as u64 + 1)
            .read_to_end(dst)
            .map_err(io_err)?;
        if dst.len() != m {
            return Err(DecodeError::DecompressedLength {
                offset,
                expected: m,
                found: dst.len(),
            });
        }
        return Ok(());
    }
    dst.reserve_exact(m);
    let result = DECOMPRESSOR.with(|cell| match cell.try_borrow_mut() {
        Ok(mut slot) => {
            if slot.is_none() {
                *slot = zstd::bulk::Decompressor::new().ok();
            }
            match slot.as_mut() {
                Some(d) => d.decompress_to_buffer(frame, dst),
                None => zstd::bulk::decompress_to_buffer(frame, dst),
            }
        }
        Err(_) => zstd::bulk::decompress_to_buffer(frame, dst),
    });
    let n = result.map_err(|e| DecodeError::Zstd {
        offset,
        reason: e.to_string(),
    })?;
    if n != m || dst.len() != m {
        return Err(DecodeError::DecompressedLength {
            offset,
            expected: m,
            found: n,
        });
    }
    Ok(())
}

/// How a stream of residuals will be packed: `k` low bits raw, then `planes` byte planes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Plan {
    k: u32,
    pub(super) planes: u32,
    /// Estimated size of the PACK in bytes.
    pub(super) est: usize,
}

/// `log2(x)` in fixed point with 8 fractional bits, for `x >= 1`; integer-only so that the
/// encoder's choices are the same on every platform.
fn log2_fixed(x: u64) -> u64 {
    let int = u64::from(x.ilog2());
    // Normalize to [1, 2) in Q32.
    let mut y: u128 = if int >= 32 {
        u128::from(x >> (int - 32))
    } else {
        u128::from(x) << (32 - int)
    };
    let mut frac = 0u64;
    for bit in (0..8).rev() {
        y = (y * y) >> 32;
        if y >= 2 << 32 {
            y >>= 1;
            frac |= 1 << bit;
        }
    }
    (int << 8) | frac
}

/// How many of `z` have each value of bits `shift..shift+8`.
///
/// Counted into four tables, a value each in turn, then summed: most planes are nearly
/// constant, and one table would make every count wait for the one before it to be
/// stored.
fn plane_histogram(z: &[u64], shift: u32) -> [u32; 256] {
    let byte = |v: u64| ((v >> shift) & 0xff) as usize;
    let mut tables = [[0u32; 256]; 4];
    let mut quads = z.chunks_exact(4);
    for q in &mut quads {
        tables[0][byte(q[0])] += 1;
        tables[1][byte(q[1])] += 1;
        tables[2][byte(q[2])] += 1;
        tables[3][byte(q[3])] += 1;
    }
    for &v in quads.remainder() {
        tables[0][byte(v)] += 1;
    }
    let mut hist = tables[0];
    for table in &tables[1..] {
        for (h, &c) in hist.iter_mut().zip(table) {
            *h += c;
        }
    }
    hist
}

/// Residuals a plan looks at: with more, every `len / SAMPLE`-th one.
///
/// Planning measures the residuals' lengths and counts a histogram per plane of every
/// candidate split, for every codec an encoder tries: about an eighth of a server's core
/// while it took line protocol. The lengths and order-0 entropy of 4,096 to 6,144 evenly
/// spaced residuals choose about as well as the whole block's.
const SAMPLE: usize = 4096;

/// The residuals plane estimates are taken from: all of `z` up to `2 * SAMPLE - 1`,
/// else every `z.len() / SAMPLE`-th one, from the first.
fn sample(z: &[u64]) -> std::borrow::Cow<'_, [u64]> {
    let stride = z.len() / SAMPLE;
    if stride <= 1 {
        return std::borrow::Cow::Borrowed(z);
    }
    std::borrow::Cow::Owned(z.iter().step_by(stride).copied().collect())
}

/// Estimated stored size of one plane of `n` residuals (bits `shift..shift+8`), from
/// the residuals `sample` of them: raw, fill, or an order-0 entropy coder.
fn plane_estimate(sample: &[u64], shift: u32, n: usize) -> usize {
    let hist = plane_histogram(sample, shift);
    let m = sample.len() as u64;
    if m == 0 || hist.iter().any(|&c| u64::from(c) == m) {
        return 2;
    }
    let log_m = log2_fixed(m);
    let bits: u64 = hist
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| u64::from(c) * (log_m - log2_fixed(u64::from(c))))
        .sum();
    // At most 8 bits (Q8) a residual of the sample, so no overflow for any block.
    let bits = bits * n as u64 / m;
    let entropy_bytes = (bits >> 8).div_ceil(8) as usize;
    (entropy_bytes + ZSTD_OVERHEAD).min(n) + 1
}

/// Chooses `k` for the residuals `z`: near the point where the high part `v >> k` of most
/// residuals fits in one byte, whichever candidate has the smallest estimated size.
pub(super) fn plan(z: &[u64]) -> Plan {
    let all = z.iter().fold(0u64, |a, &v| a | v);
    let bits = 64 - all.leading_zeros();
    if bits == 0 {
        return Plan {
            k: 0,
            planes: 0,
            est: 2,
        };
    }
    // Bit length below which 99 % of the residuals lie, in the sample: a length is a
    // slow instruction (`bsr`) on x86-64's baseline.
    let sample = sample(z);
    let mut hist = [0usize; 65];
    for &v in sample.iter() {
        hist[(64 - v.leading_zeros()) as usize] += 1;
    }
    let target = sample.len() - sample.len() / 100;
    let mut seen = 0;
    let mut l99 = bits;
    for (len, &c) in hist.iter().enumerate() {
        seen += c;
        if seen >= target {
            l99 = len as u32;
            break;
        }
    }
    let k0 = l99.saturating_sub(8);
    let mut candidates = vec![0];
    candidates.extend(k0.saturating_sub(2)..=(k0 + 1).min(bits));
    candidates.dedup();
    let mut best: Option<Plan> = None;
    for k in candidates {
        let planes = (bits.saturating_sub(k)).div_ceil(8);
        let low = (z.len() as u64 * u64::from(k)).div_ceil(8) as usize;
        let est = 2
            + low
            + (0..planes)
                .map(|p| plane_estimate(&sample, k + 8 * p, z.len()))
                .sum::<usize>();
        if best.is_none_or(|b| est < b.est) {
            best = Some(Plan { k, planes, est });
        }
    }
    best.unwrap_or(Plan {
        k: 64,
        planes: 0,
        est: 2 + z.len() * 8,
    })
}

/// Appends `z` as a PACK laid out by `plan`, its entropy-coded planes with a resume point
/// every `every` residuals if given (see [`write_plane`]).
pub(super) fn write_pack(
    out: &mut Vec<u8>,
    z: &[u64],
    plan: Plan,
    every: Option<usize>,
    zstd: &mut Zstd,
) {
    out.extend_from_slice(&[plan.k as u8, plan.planes as u8]);
    if plan.k > 0 {
        pack_low(z, plan.k, out);
    }
    let mut plane = vec![0u8; z.len()];
    for p in 0..plan.planes {
        let shift = plan.k + 8 * p;
        for (b, &v) in plane.iter_mut().zip(z) {
            *b = (v >> shift) as u8;
        }
        write_plane(out, &plane, every, zstd);
    }
}

/// Mask of the `k` low bits.
fn low_mask(k: u32) -> u64 {
    u64::MAX.checked_shr(64 - k).unwrap_or(0)
}

/// Bit-packs the `k` low bits of each value, least significant bit first.
fn pack_low(z: &[u64], k: u32, out: &mut Vec<u8>) {
    let mask = low_mask(k);
    let mut acc: u128 = 0;
    let mut have = 0u32;
    for &v in z {
        acc |= u128::from(v & mask) << have;
        have += k;
        if have >= 64 {
            out.extend_from_slice(&(acc as u64).to_le_bytes());
            acc >>= 64;
            have -= 64;
        }
    }
    let rest = have.div_ceil(8) as usize;
    out.extend_from_slice(&acc.to_le_bytes()[..rest]);
}

/// Reads values `first..first + out.len()` of the `k`-bit values bit-packed in `buf`, which
/// starts at bit `base` of the packed bits (a multiple of 8, at most `first * k`) and is
/// padded with 16 zero bytes past them.
fn unpack_low(buf: &[u8], k: u32, base: usize, first: usize, out: &mut [u64]) {
    let mask = low_mask(k);
    let k = k as usize;
    if k <= 56 {
        for (i, o) in (first..).zip(out) {
            let bit = i * k - base;
            let mut word = [0u8; 8];
            word.copy_from_slice(&buf[bit / 8..bit / 8 + 8]);
            *o = (u64::from_le_bytes(word) >> (bit % 8)) & mask;
        }
    } else {
        for (i, o) in (first..).zip(out) {
            let bit = i * k - base;
            let mut word = [0u8; 16];
            word.copy_from_slice(&buf[bit / 8..bit / 8 + 16]);
            *o = (u128::from_le_bytes(word) >> (bit % 8)) as u64 & mask;
        }
    }
}

/// Values assembled at a time, so that the output tile stays in the L1 cache while every
/// plane is added to it.
const TILE: usize = 1024;

/// A plane kept for assembly.
enum Held<'a> {
    /// Bytes in the block, or decoded into a buffer of their own: residuals from `start`
    /// on.
    Bytes {
        bytes: Cow<'a, [u8]>,
        start: usize,
    },
    Fill(u8),
}

/// Reads a PACK of `n` residuals and appends the first `want` of them to `out`; the
/// reader is past the whole PACK.
pub(super) fn read_pack(
    r: &mut Reader<'_>,
    n: usize,
    want: usize,
    out: &mut Vec<u64>,
) -> Result<(), DecodeError> {
    read_pack_range(r, n, 0, want, out)
}

/// Reads a PACK of `n` residuals and appends residuals `[from, to)` of them to `out`
/// (`to` at most `n`); the reader is past the whole PACK. Raw low bits and raw planes are
/// read from `from` on, resumable planes from their last resume point at or before it,
/// and the other planes from their first byte.
pub(super) fn read_pack_range(
    r: &mut Reader<'_>,
    n: usize,
    from: usize,
    to: usize,
    out: &mut Vec<u64>,
) -> Result<(), DecodeError> {
    let (k, planes) = read_pack_header(r)?;
    read_pack_body(r, n, from.min(to.min(n)), to.min(n), k, planes, out)
}

/// Residuals of a PACK as [`read_pack_residuals`] reads them.
#[derive(Debug)]
pub(super) enum Residuals<'a> {
    /// The PACK is one byte plane without raw low bits: residual `start + i` is
    /// `bytes[i]`, for the residuals asked for (`start` is at most the first of them).
    Bytes { bytes: Cow<'a, [u8]>, start: usize },
    /// The residuals asked for, widened.
    Wide(Vec<u64>),
}

/// Reads a PACK of `n` residuals for residuals `[from, to)` (`to` at most `n`) like
/// [`read_pack_range`], but leaves the commonest layout, one byte plane without raw low
/// bits, as bytes: the caller then adds them up without widening them first.
pub(super) fn read_pack_residuals<'a>(
    r: &mut Reader<'a>,
    n: usize,
    from: usize,
    to: usize,
) -> Result<Residuals<'a>, DecodeError> {
    let to = to.min(n);
    let from = from.min(to);
    let (k, planes) = read_pack_header(r)?;
    if k == 0 && planes == 1 {
        let mut scratch = Vec::new();
        let (bytes, start) = match read_plane_range(r, n, from, to, &mut scratch)? {
            (Plane::Raw(bytes), start) => (Cow::Borrowed(bytes), start),
            (Plane::Scratch, start) => (Cow::Owned(scratch), start),
            (Plane::Fill(b), _) => return Ok(Residuals::Wide(vec![u64::from(b); to - from])),
        };
        // (The plane readers return what was asked for; these guard the slicing.)
        if start > from {
            return Err(DecodeError::malformed(format!(
                "a byte plane was read from byte {start}, after byte {from}"
            )));
        }
        if bytes.len() < to - start {
            return Err(DecodeError::malformed(format!(
                "a byte plane holds fewer than {to} bytes"
            )));
        }
        return Ok(Residuals::Bytes { bytes, start });
    }
    let mut out = Vec::new();
    read_pack_body(r, n, from, to, k, planes, &mut out)?;
    Ok(Residuals::Wide(out))
}

/// Reads a PACK's raw low bits `k` and count of byte planes, and checks that they fit.
fn read_pack_header(r: &mut Reader<'_>) -> Result<(u32, u32), DecodeError> {
    let k = u32::from(r.u8()?);
    let planes = u32::from(r.u8()?);
    if k > 64 {
        return Err(DecodeError::malformed(format!(
            "{k} raw low bits were declared, at most 64 fit"
        )));
    }
    if planes > 0 && k + 8 * (planes - 1) >= 64 {
        return Err(DecodeError::malformed(format!(
            "{planes} byte planes above {k} raw low bits do not fit in 64 bits"
        )));
    }
    Ok((k, planes))
}

/// The rest of [`read_pack_range`] once its header is read (`from <= to <= n`).
fn read_pack_body(
    r: &mut Reader<'_>,
    n: usize,
    from: usize,
    to: usize,
    k: u32,
    planes: u32,
    out: &mut Vec<u64>,
) -> Result<(), DecodeError> {
    let mut low = Vec::new();
    // The bit of residual `from`'s byte, where `low` starts.
    let mut low_base = 0;
    if k > 0 {
        let bytes = |count: usize| {
            count
                .checked_mul(k as usize)
                .map(|b| b.div_ceil(8))
                .ok_or_else(|| DecodeError::malformed("the raw low bits overflow"))
        };
        let src = r.take(bytes(n)?)?;
        // Only the wanted values' bits are copied, padded for the unpacking's loads.
        let first_byte = from * k as usize / 8;
        let src = &src[first_byte..bytes(to)?];
        low_base = first_byte * 8;
        low.reserve_exact(src.len() + 16);
        low.extend_from_slice(src);
        low.resize(src.len() + 16, 0);
    }
    let mut held = Vec::with_capacity(planes as usize);
    for _ in 0..planes {
        let mut scratch = Vec::new();
        held.push(match read_plane_range(r, n, from, to, &mut scratch)? {
            (Plane::Raw(bytes), start) => Held::Bytes {
                bytes: Cow::Borrowed(bytes),
                start,
            },
            (Plane::Scratch, start) => Held::Bytes {
                bytes: Cow::Owned(scratch),
                start,
            },
            (Plane::Fill(b), _) => Held::Fill(b),
        });
    }
    let short = || DecodeError::malformed(format!("a byte plane holds fewer than {to} bytes"));
    // The bytes of residuals `[first, first + len)` of a plane that starts at `start`.
    fn plane_bytes(
        bytes: &[u8],
        start: usize,
        first: usize,
        len: usize,
        short: impl Fn() -> DecodeError,
    ) -> Result<&[u8], DecodeError> {
        // (A plane reader returns a start at or before what was asked for; a later one
        // is refused here rather than trusted.)
        let at = first.checked_sub(start).ok_or_else(&short)?;
        bytes.get(at..at + len).ok_or_else(short)
    }
    out.reserve(to - from);
    for first in (from..to).step_by(TILE) {
        let len = TILE.min(to - first);
        let start = out.len();
        // The tile's first layer is written, the others are added to it: the raw low
        // bits, or without them the first plane (which then has no shift), so that no
        // tile is zeroed only to be overwritten.
        let mut layers = held.iter().enumerate();
        if k > 0 {
            out.resize(start + len, 0);
            unpack_low(&low, k, low_base, first, &mut out[start..]);
        } else {
            match layers.next() {
                None => out.resize(start + len, 0),
                Some((_, Held::Fill(b))) => out.resize(start + len, u64::from(*b)),
                Some((_, Held::Bytes { bytes, start: s })) => {
                    let bytes = plane_bytes(bytes, *s, first, len, short)?;
                    out.extend(bytes.iter().map(|&b| u64::from(b)));
                }
            }
        }
        let tile = &mut out[start..];
        for (p, plane) in layers {
            let shift = k + 8 * p as u32;
            let (bytes, s) = match plane {
                Held::Bytes { bytes, start } => (bytes, *start),
                Held::Fill(b) => {
                    let add = u64::from(*b) << shift;
                    tile.iter_mut().for_each(|o| *o |= add);
                    continue;
                }
            };
            let bytes = plane_bytes(bytes, s, first, len, short)?;
            for (o, &b) in tile.iter_mut().zip(bytes) {
                *o |= u64::from(b) << shift;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn plane_histograms_count_as_one_table_does(
            z in prop::collection::vec(prop_oneof![0u64..4, any::<u64>()], 0..40),
            shift in 0u32..57,
        ) {
            let mut expected = [0u32; 256];
            for &v in &z {
                expected[((v >> shift) & 0xff) as usize] += 1;
            }
            prop_assert_eq!(super::plane_histogram(&z, shift), expected);
        }
    }
}
