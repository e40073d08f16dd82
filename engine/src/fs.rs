//! File-system steps the engine's durability rests on.

use std::fs::{self, File};
use std::path::Path;

use crate::error::{Error, Result};
use crate::wal::Faults;

/// fsyncs a directory, so that entries created, renamed or removed in it are durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    let f = File::open(dir).map_err(|e| Error::io("opening directory", dir, e))?;
    f.sync_all()
        .map_err(|e| Error::io("syncing directory", dir, e))
}

/// Creates a directory and its missing parents, syncing the parent of each one created
/// (asking the test hook first).
pub(crate) fn create_dir(dir: &Path, faults: Option<&dyn Faults>) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    // Every directory created needs its entry in its parent made durable.
    let missing: Vec<&Path> = dir.ancestors().take_while(|d| !d.is_dir()).collect();
    fs::create_dir_all(dir).map_err(|e| Error::io("creating directory", dir, e))?;
    for created in missing.iter().rev() {
        if let Some(parent) = created.parent().filter(|p| !p.as_os_str().is_empty()) {
            sync_dir_with(parent, faults)?;
        }
    }
    Ok(())
}

/// Lists the files in `dir` whose names end with `suffix`, sorted by name.
pub(crate) fn list(dir: &Path, suffix: &str) -> Result<Vec<std::path::PathBuf>> {
    let mut out = Vec::new();
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(Error::io("listing directory", dir, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("listing directory", dir, e))?;
        let path = entry.path();
        if path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.ends_with(suffix))
        {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

/// A step on a file that the test hook ([`Faults`]) may fail.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Step {
    Write,
    Sync,
    Rename,
}

/// Asks the test hook, if any, before `step` on `path`: its error is that step's failure.
pub(crate) fn fault(faults: Option<&dyn Faults>, step: Step, path: &Path) -> Result<()> {
    let Some(f) = faults else {
        return Ok(());
    };
    let (doing, result) = match step {
        Step::Write => ("writing", f.before_write(path)),
        Step::Sync => ("syncing", f.before_sync(path)),
        Step::Rename => ("renaming", f.before_rename(path)),
    };
    result.map_err(|e| Error::io(doing, path, e))
}

/// [`sync_dir`], asking the test hook first.
pub(crate) fn sync_dir_with(dir: &Path, faults: Option<&dyn Faults>) -> Result<()> {
    fault(faults, Step::Sync, dir)?;
    sync_dir(dir)
}
