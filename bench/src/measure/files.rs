//! A run's files: what they take on disk ([`disk_usage`], the figure of every loading
//! phase) and clearing them before they are written again ([`remove`]).

use std::path::Path;

use crate::{Error, Result};

/// Removes `path` (a directory or a file) if it exists.
pub fn remove(path: &Path) -> Result<()> {
    let result = if path.is_dir() {
        std::fs::remove_dir_all(path)
    } else if path.exists() {
        std::fs::remove_file(path)
    } else {
        return Ok(());
    };
    result.map_err(|source| Error::Io {
        action: "removing",
        path: path.to_path_buf(),
        source,
    })
}

/// Bytes of segment files, their number, and bytes of every file under `dir`.
pub(crate) fn disk_usage(dir: &Path) -> Result<(u64, usize, u64)> {
    let mut seg_bytes = 0;
    let mut segs = 0;
    let mut all = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = std::fs::read_dir(&d).map_err(|source| Error::Io {
            action: "listing",
            path: d.clone(),
            source,
        })?;
        for e in entries {
            let e = e.map_err(|source| Error::Io {
                action: "listing",
                path: d.clone(),
                source,
            })?;
            let meta = e.metadata().map_err(|source| Error::Io {
                action: "reading",
                path: e.path(),
                source,
            })?;
            if meta.is_dir() {
                stack.push(e.path());
            } else {
                all += meta.len();
                if e.path().extension().is_some_and(|x| x == "seg") {
                    seg_bytes += meta.len();
                    segs += 1;
                }
            }
        }
    }
    Ok((seg_bytes, segs, all))
}
