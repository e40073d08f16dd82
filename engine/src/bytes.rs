//! Little-endian byte reading and writing for the engine's file formats.
//!
//! [`Reader`] checks every length before it touches a byte, so decoding damaged input
//! yields a [`Short`] error with the offset, never a panic.

/// Reading ran past the end of the input, or met an impossible value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Short {
    /// Offset within the input where the read started.
    pub offset: usize,
    /// What was wrong.
    pub what: String,
}

impl std::fmt::Display for Short {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} at offset {}", self.what, self.offset)
    }
}

/// A bounds-checked cursor over a byte slice.
#[derive(Debug)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    pub fn position(&self) -> usize {
        self.pos
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    pub fn fail<T>(&self, what: impl Into<String>) -> Result<T, Short> {
        Err(Short {
            offset: self.pos,
            what: what.into(),
        })
    }

    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8], Short> {
        if n > self.remaining() {
            return self.fail(format!(
                "{n} bytes were expected but only {} remain",
                self.remaining()
            ));
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], Short> {
        Ok(self.bytes(N)?.try_into().expect("length checked"))
    }

    pub fn u8(&mut self) -> Result<u8, Short> {
        Ok(self.array::<1>()?[0])
    }

    pub fn u16(&mut self) -> Result<u16, Short> {
        Ok(u16::from_le_bytes(self.array()?))
    }

    pub fn u32(&mut self) -> Result<u32, Short> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    pub fn u64(&mut self) -> Result<u64, Short> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    pub fn i64(&mut self) -> Result<i64, Short> {
        Ok(i64::from_le_bytes(self.array()?))
    }

    /// A u32 length that must not exceed `max` (a bound the caller derives from the
    /// remaining input), so no allocation follows from a damaged length.
    pub fn len_u32(&mut self, max: usize) -> Result<usize, Short> {
        let at = self.pos;
        let n = self.u32()? as usize;
        if n > max {
            return Err(Short {
                offset: at,
                what: format!("length {n} exceeds the bound {max}"),
            });
        }
        Ok(n)
    }

    /// A string prefixed with its u16 length.
    pub fn str16(&mut self) -> Result<&'a str, Short> {
        let n = self.u16()? as usize;
        let at = self.pos;
        std::str::from_utf8(self.bytes(n)?).map_err(|_| Short {
            offset: at,
            what: "a name is not valid UTF-8".into(),
        })
    }

    /// A string prefixed with its u32 length.
    pub fn str32(&mut self) -> Result<&'a str, Short> {
        let n = self.len_u32(self.remaining())?;
        let at = self.pos;
        std::str::from_utf8(self.bytes(n)?).map_err(|_| Short {
            offset: at,
            what: "a string is not valid UTF-8".into(),
        })
    }
}

/// Appending little-endian values to a `Vec<u8>`.
pub(crate) trait Put {
    fn put_u8(&mut self, v: u8);
    fn put_u16(&mut self, v: u16);
    fn put_u32(&mut self, v: u32);
    fn put_u64(&mut self, v: u64);
    fn put_i64(&mut self, v: i64);
    /// A string of at most `u16::MAX` bytes (names are at most 128).
    fn put_str16(&mut self, s: &str);
    fn put_str32(&mut self, s: &str);
}

impl Put for Vec<u8> {
    fn put_u8(&mut self, v: u8) {
        self.push(v);
    }
    fn put_u16(&mut self, v: u16) {
        self.extend_from_slice(&v.to_le_bytes());
    }
    fn put_u32(&mut self, v: u32) {
        self.extend_from_slice(&v.to_le_bytes());
    }
    fn put_u64(&mut self, v: u64) {
        self.extend_from_slice(&v.to_le_bytes());
    }
    fn put_i64(&mut self, v: i64) {
        self.extend_from_slice(&v.to_le_bytes());
    }
    fn put_str16(&mut self, s: &str) {
        let n = u16::try_from(s.len()).expect("names are validated to at most 128 bytes");
        self.put_u16(n);
        self.extend_from_slice(s.as_bytes());
    }
    fn put_str32(&mut self, s: &str) {
        let n = u32::try_from(s.len()).expect("strings in metadata are far below 4 GiB");
        self.put_u32(n);
        self.extend_from_slice(s.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reader_refuses_to_read_past_the_end() {
        let mut v = Vec::new();
        v.put_u32(7);
        v.put_str16("abc");
        let mut r = Reader::new(&v);
        assert_eq!(r.u32().unwrap(), 7);
        assert_eq!(r.str16().unwrap(), "abc");
        let err = r.u64().unwrap_err();
        assert_eq!(err.offset, 9);
        assert!(err.what.contains("8 bytes were expected but only 0 remain"));
    }

    #[test]
    fn damaged_lengths_are_bounded() {
        let mut v = Vec::new();
        v.put_u32(u32::MAX);
        assert!(Reader::new(&v).len_u32(100).is_err());
        assert!(Reader::new(&v).str32().is_err());
    }
}
