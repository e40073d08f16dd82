//! The string codecs: lengths and concatenated bytes, or a dictionary and indices.

use std::collections::HashMap;

use super::bytes::{Reader, put_u32};
use super::int::{decode_ints, encode_ints};
use super::pack::{Plane, Zstd, read_plane_growing, write_plane};
use super::{DecodeError, Options, codec};

/// Most bytes the strings of one block may hold in all: what `i32` Arrow offsets can address.
pub(super) const MAX_BYTES: usize = i32::MAX as usize;

/// See [`super::encode_strings`].
pub(super) fn encode(offsets: &[i32], data: &[u8], opts: &Options, out: &mut Vec<u8>) {
    let n = offsets.len().saturating_sub(1);
    if n == 0 {
        out.push(codec::EMPTY);
        return;
    }
    let at = |i: usize| offsets[i] as usize;
    let value = |i: usize| &data[at(i)..at(i + 1)];
    let mut zstd = Zstd::new(opts.zstd_level);
    // String blocks are decoded whole: resume points in their lengths and indices would
    // be bytes for nothing.
    let opts = &Options {
        resume_every: None,
        ..*opts
    };

    let mut plain = vec![codec::STR_PLAIN];
    let lengths: Vec<u64> = offsets.windows(2).map(|w| (w[1] - w[0]) as u64).collect();
    encode_ints(&lengths, false, opts, &mut plain);
    write_plane(&mut plain, &data[at(0)..at(n)], None, &mut zstd);

    // A dictionary, when at most half the values are distinct.
    let mut ids: HashMap<&[u8], u32> = HashMap::new();
    let mut dict: Vec<usize> = Vec::new();
    let mut indices: Vec<u64> = Vec::with_capacity(n);
    for i in 0..n {
        let next = dict.len() as u32;
        let id = *ids.entry(value(i)).or_insert_with(|| {
            dict.push(i);
            next
        });
        indices.push(u64::from(id));
        if dict.len() > n / 2 {
            break;
        }
    }
    if dict.len() <= n / 2 {
        let mut coded = vec![codec::STR_DICT];
        put_u32(&mut coded, dict.len() as u32);
        let lengths: Vec<u64> = dict.iter().map(|&i| value(i).len() as u64).collect();
        encode_ints(&lengths, false, opts, &mut coded);
        let bytes: Vec<u8> = dict.iter().flat_map(|&i| value(i)).copied().collect();
        write_plane(&mut coded, &bytes, None, &mut zstd);
        encode_ints(&indices, false, opts, &mut coded);
        if coded.len() < plain.len() {
            out.extend_from_slice(&coded);
            return;
        }
    }
    out.extend_from_slice(&plain);
}

/// Reads `count` lengths and returns them with their sum, checked against [`MAX_BYTES`].
fn read_lengths(r: &mut Reader<'_>, count: usize) -> Result<(Vec<u64>, usize), DecodeError> {
    let lengths = decode_ints(r, count, "string")?;
    let mut total: u64 = 0;
    for &l in &lengths {
        total = total.saturating_add(l);
    }
    if total > MAX_BYTES as u64 {
        return Err(DecodeError::malformed(format!(
            "the strings' lengths add up to {total} bytes, more than the {MAX_BYTES} a block may hold"
        )));
    }
    Ok((lengths, total as usize))
}

/// Reads the data PLANE of `total` bytes.
fn read_data(r: &mut Reader<'_>, total: usize) -> Result<Vec<u8>, DecodeError> {
    let mut scratch = Vec::new();
    Ok(match read_plane_growing(r, total, &mut scratch)? {
        Plane::Raw(b) => b.to_vec(),
        Plane::Scratch => scratch,
        Plane::Fill(b) => vec![b; total],
    })
}

/// Arrow offsets, starting at 0, of strings of the given lengths (whose sum is checked).
fn offsets_of(lengths: impl Iterator<Item = u64>, count: usize) -> Vec<i32> {
    let mut offsets = Vec::with_capacity(count + 1);
    let mut at: u64 = 0;
    offsets.push(0);
    for l in lengths {
        at += l;
        offsets.push(at as i32);
    }
    offsets
}

/// See [`super::decode_strings`].
pub(super) fn decode(
    tag: u8,
    mut r: Reader<'_>,
    count: usize,
) -> Result<(Vec<i32>, Vec<u8>), DecodeError> {
    let out = match tag {
        codec::EMPTY if count == 0 => (vec![0], Vec::new()),
        codec::EMPTY => return Err(DecodeError::EmptyBlock { expected: count }),
        _ if count == 0 => return Err(DecodeError::NotEmpty { codec: tag, min: 1 }),
        codec::STR_PLAIN => {
            let (lengths, total) = read_lengths(&mut r, count)?;
            let data = read_data(&mut r, total)?;
            (offsets_of(lengths.into_iter(), count), data)
        }
        codec::STR_DICT => {
            let entries = r.u32()? as usize;
            if entries == 0 || entries > count {
                return Err(DecodeError::malformed(format!(
                    "a dictionary of {entries} strings cannot serve {count} values"
                )));
            }
            let (lengths, total) = read_lengths(&mut r, entries)?;
            let bytes = read_data(&mut r, total)?;
            let starts = offsets_of(lengths.iter().copied(), entries);
            let indices = decode_ints(&mut r, count, "string")?;
            let mut size: u64 = 0;
            for &i in &indices {
                let len = lengths.get(i as usize).ok_or_else(|| {
                    DecodeError::malformed(format!(
                        "index {i} is outside the dictionary of {entries} strings"
                    ))
                })?;
                size = size.saturating_add(*len);
            }
            if size > MAX_BYTES as u64 {
                return Err(DecodeError::malformed(format!(
                    "the strings add up to {size} bytes, more than the {MAX_BYTES} a block may hold"
                )));
            }
            let mut data = Vec::with_capacity(size as usize);
            for &i in &indices {
                let i = i as usize;
                let (s, e) = (starts[i] as usize, starts[i + 1] as usize);
                data.extend_from_slice(&bytes[s..e]);
            }
            let lens = indices.iter().map(|&i| lengths[i as usize]);
            (offsets_of(lens, count), data)
        }
        other => return Err(codec::wrong(other, "string")),
    };
    r.finish()?;
    Ok(out)
}
