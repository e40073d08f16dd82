//! Memory-mapping of segment files: the engine's only `unsafe`.

use std::fs::File;
use std::path::Path;

use memmap2::Mmap;

use crate::error::{Error, Result};

/// Maps a whole file read-only.
pub(crate) fn map(path: &Path) -> Result<Mmap> {
    let file = File::open(path).map_err(|e| Error::io("opening", path, e))?;
    let len = file
        .metadata()
        .map_err(|e| Error::io("reading metadata of", path, e))?
        .len();
    if len == 0 {
        // Mapping an empty file fails on some platforms; callers treat it as too short.
        return Err(Error::corrupt(path, 0, "the file is empty"));
    }
    // SAFETY: segment files are immutable once renamed into place: the engine never writes,
    // truncates or deletes a mapped segment while a reader holds it (deletion only unlinks,
    // which keeps the pages alive). Another process changing the file is outside the
    // engine's assumptions about its directory (docs/FORMAT.md), as with any database.
    let map = unsafe { Mmap::map(&file) }.map_err(|e| Error::io("mapping", path, e))?;
    Ok(map)
}
