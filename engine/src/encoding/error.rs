//! The one error type of the codecs.

/// Why a byte string is not a valid encoding of the values asked for.
///
/// Every decoder returns one of these, and never panics, for any input that is not a valid
/// encoding: a truncated or damaged block, a block of another column kind, or a wrong value
/// count. Messages are sentences meant for a person reading a log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The block stops before a field it must hold.
    #[error("the block ends after {len} bytes, {needed} were expected")]
    Truncated {
        /// Bytes the block would need to hold the field being read.
        needed: usize,
        /// Bytes the block has.
        len: usize,
    },
    /// The block goes on after its last field.
    #[error("the block should end after {end} bytes, but {extra} more bytes follow")]
    TrailingBytes {
        /// Where the encoding ends.
        end: usize,
        /// Bytes found after that.
        extra: usize,
    },
    /// The codec byte names no codec.
    #[error("unknown codec {codec}")]
    UnknownCodec {
        /// The codec byte found.
        codec: u8,
    },
    /// The codec byte names a codec of another column kind.
    #[error("codec {codec} ({name}) cannot encode a {column} column")]
    WrongCodec {
        /// The codec byte found.
        codec: u8,
        /// The codec's name.
        name: &'static str,
        /// The kind of column being decoded (`"i64"`, `"time"`, ...).
        column: &'static str,
    },
    /// The block holds another number of values than were asked for.
    #[error("the block holds {found} values, {expected} were asked for")]
    CountMismatch {
        /// The value count asked for.
        expected: usize,
        /// The value count the block declares.
        found: u64,
    },
    /// The block is the empty encoding, but values were asked for.
    #[error("the block holds no values, {expected} were asked for")]
    EmptyBlock {
        /// The value count asked for.
        expected: usize,
    },
    /// No values were asked for, but the block is not the empty encoding.
    #[error(
        "no values were asked for, but the block uses codec {codec}, which holds at least {min}"
    )]
    NotEmpty {
        /// The codec byte found.
        codec: u8,
        /// The fewest values that codec holds.
        min: usize,
    },
    /// A field holds a value the format does not allow.
    #[error("the block is malformed: {reason}")]
    Malformed {
        /// What is wrong, as a phrase.
        reason: String,
    },
    /// zstd refused a compressed plane.
    #[error("a zstd frame at byte {offset} could not be decompressed: {reason}")]
    Zstd {
        /// Where the frame starts in the block.
        offset: usize,
        /// zstd's own explanation.
        reason: String,
    },
    /// A zstd frame decompressed to another length than its plane must have.
    #[error(
        "a zstd frame at byte {offset} decompressed to {found} bytes, {expected} were expected"
    )]
    DecompressedLength {
        /// Where the frame starts in the block.
        offset: usize,
        /// The plane's length.
        expected: usize,
        /// What the frame produced (at most one byte more than `expected`: decompression stops
        /// there).
        found: usize,
    },
}

impl DecodeError {
    /// A [`DecodeError::Malformed`] with the given reason.
    pub(super) fn malformed(reason: impl Into<String>) -> Self {
        DecodeError::Malformed {
            reason: reason.into(),
        }
    }
}
