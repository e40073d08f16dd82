//! What a power cut would leave of a database directory: a [`Faults`] hook that keeps the
//! durable state apart from what was only written, as redb's crash tests do.
//!
//! The model is the one POSIX promises and no more:
//!
//! - a file's bytes are durable as they were at its last `fsync` (bytes written since are
//!   lost; a file never synced is empty);
//! - a directory's entries (names, and which file each names) are durable as they were at
//!   its last `fsync`: a file created, renamed or removed since is as it was before.
//!
//! The engine announces every `fsync` to [`Faults::before_sync`] before making it, so the
//! hook reads the file (or lists the directory) there. Just before applying each `fsync`
//! it writes out the durable state as it stands, an *image*, and a second, *torn* image in
//! which each file that has grown since its last `fsync` (a log being appended to) also
//! keeps the first half of what was written since, as a power cut in the middle of a
//! write can. Each is a state a power cut could have left; they are the two extremes of
//! each moment (the durable state changes only at an `fsync`), not every state in
//! between (renames and removals not yet made durable are never applied, and bytes
//! written to the middle of a file are never half kept). Everything before
//! [`Durable::arm`] is taken as durable.
//!
//! A file is known by its inode and birth time, so the file system must keep birth
//! times (ext4, xfs, btrfs; [`Durable::birth_times_kept`] tells): an inode reused by a
//! new file is a new file.

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use sextant_engine::Faults;

/// A file's identity: its inode, and its birth time where the file system keeps one (so
/// that an inode reused by a new file is a new file).
type FileId = (u64, Option<SystemTime>);

#[derive(Debug, Clone)]
enum Entry {
    File(FileId),
    Dir,
}

#[derive(Debug, Default)]
struct State {
    armed: bool,
    /// The durable entries of each directory, by path relative to the root.
    dirs: HashMap<PathBuf, BTreeMap<OsString, Entry>>,
    /// The durable bytes of each file.
    files: HashMap<FileId, Vec<u8>>,
    images: Vec<Image>,
}

/// A state a power cut could have left, written out as a directory.
#[derive(Debug, Clone)]
pub struct Image {
    /// The directory holding it.
    pub dir: PathBuf,
    /// The test's label ([`Durable::label`]) when the image was taken: what the test was
    /// doing then.
    pub label: u64,
    /// What was about to be synced (the root, for [`Durable::image_now`]).
    pub before_syncing: PathBuf,
    /// Whether grown files keep half of what was written since their last `fsync`.
    pub torn: bool,
}

/// The hook. Give it to the engine's `Config::faults`, open, then [`arm`](Durable::arm).
#[derive(Debug)]
pub struct Durable {
    root: PathBuf,
    images_dir: PathBuf,
    /// Set by the test as it goes; recorded with each image.
    pub label: AtomicU64,
    state: Mutex<State>,
}

fn id(meta: &fs::Metadata) -> FileId {
    (meta.ino(), meta.created().ok())
}

fn listing(dir: &Path) -> std::io::Result<BTreeMap<OsString, Entry>> {
    let mut out = BTreeMap::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let meta = fs::symlink_metadata(entry.path())?;
        let e = if meta.is_dir() {
            Entry::Dir
        } else {
            Entry::File(id(&meta))
        };
        out.insert(entry.file_name(), e);
    }
    Ok(out)
}

impl Durable {
    /// A hook for the database in `root`, writing its images under `images_dir`.
    pub fn new(root: &Path, images_dir: &Path) -> Durable {
        Durable {
            root: root.to_path_buf(),
            images_dir: images_dir.to_path_buf(),
            label: AtomicU64::new(0),
            state: Mutex::new(State::default()),
        }
    }

    /// Whether the file system holding `dir` keeps birth times, which the hook needs to
    /// tell a new file from an old one of the same inode.
    pub fn birth_times_kept(dir: &Path) -> bool {
        fs::metadata(dir).and_then(|m| m.created()).is_ok()
    }

    /// Takes everything in the root as durable and starts following `fsync`s.
    ///
    /// # Panics
    ///
    /// When the file system keeps no birth times ([`Durable::birth_times_kept`]).
    pub fn arm(&self) {
        assert!(
            Durable::birth_times_kept(&self.root),
            "{} is on a file system without birth times",
            self.root.display()
        );
        let mut state = self.state.lock().unwrap();
        let mut stack = vec![PathBuf::new()];
        while let Some(rel) = stack.pop() {
            let entries = listing(&self.root.join(&rel)).unwrap();
            for (name, entry) in &entries {
                let path = self.root.join(&rel).join(name);
                match entry {
                    Entry::Dir => stack.push(rel.join(name)),
                    Entry::File(id) => {
                        state.files.insert(*id, fs::read(&path).unwrap());
                    }
                }
            }
            state.dirs.insert(rel, entries);
        }
        state.armed = true;
    }

    /// The images taken so far, oldest first.
    pub fn images(&self) -> Vec<Image> {
        self.state.lock().unwrap().images.clone()
    }

    /// Writes out the durable state as it stands now (after the last `fsync`), as two
    /// more images.
    pub fn image_now(&self) {
        let mut state = self.state.lock().unwrap();
        self.take_images(&mut state, &self.root).unwrap();
    }

    /// Writes out the durable state as a new image, and its torn variant where a file
    /// has grown.
    fn take_images(&self, state: &mut State, before_syncing: &Path) -> std::io::Result<()> {
        self.take_image(state, before_syncing, false)?;
        if self.any_grown(state) {
            self.take_image(state, before_syncing, true)?;
        }
        Ok(())
    }

    /// Whether a file of the durable state has grown since its last `fsync`.
    fn any_grown(&self, state: &State) -> bool {
        state.dirs.iter().any(|(rel, entries)| {
            entries.iter().any(|(name, entry)| match entry {
                Entry::File(id) => {
                    let durable = state.files.get(id).map_or(&[][..], |b| &b[..]);
                    let live = self.root.join(rel).join(name);
                    grown(&live, *id, durable).is_some_and(|g| !g.is_empty())
                }
                Entry::Dir => false,
            })
        })
    }

    /// Writes out the durable state as a new image; `torn`: files grown since their last
    /// `fsync` keep the first half of what was written since.
    fn take_image(
        &self,
        state: &mut State,
        before_syncing: &Path,
        torn: bool,
    ) -> std::io::Result<()> {
        let dir = self.images_dir.join(state.images.len().to_string());
        fs::create_dir_all(&dir)?;
        let mut stack = vec![PathBuf::new()];
        while let Some(rel) = stack.pop() {
            let Some(entries) = state.dirs.get(&rel) else {
                continue;
            };
            for (name, entry) in entries {
                let path = dir.join(&rel).join(name);
                match entry {
                    Entry::Dir => {
                        fs::create_dir_all(&path)?;
                        stack.push(rel.join(name));
                    }
                    Entry::File(id) => {
                        let durable = state.files.get(id).map_or(&[][..], |b| &b[..]);
                        let live = self.root.join(&rel).join(name);
                        let grown = torn
                            .then(|| grown(&live, *id, durable))
                            .flatten()
                            .unwrap_or_default();
                        fs::write(&path, [durable, &grown].concat())?;
                    }
                }
            }
        }
        let label = self.label.load(Ordering::SeqCst);
        state.images.push(Image {
            dir,
            label,
            before_syncing: before_syncing.to_path_buf(),
            torn,
        });
        Ok(())
    }
}

/// The first half of what was appended to the file at `live` since it held `durable`,
/// if it is still the file `id` and has only grown.
fn grown(live: &Path, id: FileId, durable: &[u8]) -> Option<Vec<u8>> {
    let meta = fs::metadata(live).ok()?;
    if self::id(&meta) != id {
        return None;
    }
    let now = fs::read(live).ok()?;
    let extra = now.strip_prefix(durable)?;
    Some(extra[..extra.len() / 2].to_vec())
}

impl Faults for Durable {
    fn before_sync(&self, path: &Path) -> std::io::Result<()> {
        let mut state = self.state.lock().unwrap();
        if !state.armed {
            return Ok(());
        }
        let Ok(rel) = path.strip_prefix(&self.root) else {
            return Ok(());
        };
        self.take_images(&mut state, path)?;
        let meta = fs::metadata(path)?;
        if meta.is_dir() {
            let entries = listing(path)?;
            state.dirs.insert(rel.to_path_buf(), entries);
        } else {
            let bytes = fs::read(path)?;
            state.files.insert(id(&meta), bytes);
        }
        Ok(())
    }
}
