//! Atomic output files: data goes to a temporary file beside the target, which is renamed
//! onto the target only once it is complete, so a failure never leaves a partial output and
//! never replaces a good file with a broken one.
//!
//! A temporary file is named `.unet-tmp-<pid>.<random>.<target name>` and created with the
//! mode a plain `File::create` gives (`0666 & !umask` on Unix). Every error (of the body,
//! of flushing the buffer, of `sync_all`) stops the write before the rename.
//!
//! Orphans: a process killed while writing leaves its temporary file behind. Before a
//! writer creates its own temporary file it removes the orphans of *the same target*: files
//! of the scheme above whose process is gone (no `/proc/<pid>`; where `/proc` is missing,
//! nothing is removed) and that nobody has modified for [`ORPHAN_MIN_AGE`] (a guard
//! against PIDs of another machine or PID namespace sharing the folder: a live writer
//! keeps its file's modification time fresh). Temporary files of other targets, of another
//! naming scheme, or of live processes are never touched.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::error::{IoError, Result};

/// The name prefix of every temporary file.
const TEMP_PREFIX: &str = ".unet-tmp-";
/// Random characters in a temporary file's name.
const TEMP_RANDOM: usize = 6;
/// Target names longer than this are left out of the temporary name (a file name holds
/// 255 bytes on most file systems); such temporary files are never cleaned as orphans.
const MAX_TARGET_IN_NAME: usize = 200;
/// How long an orphan's modification time must lie in the past before it is removed.
const ORPHAN_MIN_AGE: Duration = Duration::from_secs(10 * 60);

/// Fails with [`IoError::Exists`] when `path` exists and `force` is false.
pub fn check_writable(path: &Path, force: bool) -> Result<()> {
    if !force && path.exists() {
        return Err(IoError::Exists { path: path.to_path_buf() });
    }
    Ok(())
}

fn write_err(path: &Path) -> impl Fn(std::io::Error) -> IoError + '_ {
    move |error| IoError::Write { path: path.to_path_buf(), error }
}

/// The folder a target lives in (`.` for a bare file name).
fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// A file being written: write into [`AtomicFile::file`], then [`AtomicFile::commit`].
/// Dropping it without committing removes the temporary file. [`AtomicFile::write_with`]
/// does all of this around a closure and is the one to use.
pub struct AtomicFile {
    target: PathBuf,
    temp: tempfile::NamedTempFile,
}

impl AtomicFile {
    /// Starts writing `path`; refuses an existing file unless `force`. Removes orphaned
    /// temporary files of the same target first (see the module documentation).
    pub fn create(path: &Path, force: bool) -> Result<Self> {
        check_writable(path, force)?;
        let name = path.file_name().ok_or_else(|| IoError::Invalid {
            path: path.to_path_buf(),
            message: "is not a file name; give the output a file name".into(),
        })?;
        let dir = parent_dir(path);
        std::fs::create_dir_all(&dir).map_err(write_err(path))?;
        remove_orphans(&dir, name, SystemTime::now());
        let prefix = format!("{TEMP_PREFIX}{}.", std::process::id());
        let mut suffix = OsString::new();
        if name.len() <= MAX_TARGET_IN_NAME {
            suffix.push(".");
            suffix.push(name);
        }
        let mut builder = tempfile::Builder::new();
        builder.prefix(&prefix).suffix(&suffix).rand_bytes(TEMP_RANDOM);
        // The kernel applies the umask to this mode, as it does for `File::create`
        // (tempfile's default would be 0600).
        #[cfg(unix)]
        builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666));
        let temp = builder.tempfile_in(&dir).map_err(write_err(path))?;
        Ok(AtomicFile { target: path.to_path_buf(), temp })
    }

    /// The temporary file to write into.
    pub fn file(&mut self) -> &mut File {
        self.temp.as_file_mut()
    }

    /// The target path.
    pub fn path(&self) -> &Path {
        &self.target
    }

    /// Syncs the temporary file to disk and renames it onto the target.
    pub fn commit(self) -> Result<()> {
        let target = self.target;
        self.temp.as_file().sync_all().map_err(write_err(&target))?;
        self.temp.persist(&target).map_err(|e| IoError::Write { path: target.clone(), error: e.error })?;
        // Make the rename itself durable. The target is in place already, so a failure here
        // (some file systems cannot sync a folder) changes nothing the caller could act on.
        #[cfg(unix)]
        if let Ok(dir) = File::open(parent_dir(&target)) {
            let _ = dir.sync_all();
        }
        Ok(())
    }

    /// Writes `path` atomically: `body` writes into a buffered writer over the temporary
    /// file; an error of `body`, of flushing the buffer or of syncing the file stops the
    /// write before the target is touched. An existing file is replaced only with `force`.
    pub fn write_with(
        path: &Path,
        force: bool,
        body: impl FnOnce(&mut BufWriter<&mut File>) -> Result<()>,
    ) -> Result<()> {
        let mut f = AtomicFile::create(path, force)?;
        let mut w = BufWriter::new(f.file());
        body(&mut w)?;
        finish(w).map_err(write_err(path))?;
        f.commit()
    }

    /// Writes all of `bytes` to `path` atomically.
    pub fn write_bytes(path: &Path, bytes: &[u8], force: bool) -> Result<()> {
        AtomicFile::write_with(path, force, |w| w.write_all(bytes).map_err(write_err(path)))
    }
}

/// Flushes a buffered writer and returns its inner writer, with the flush's error (a
/// `BufWriter` dropped unflushed would swallow it).
pub(crate) fn finish<W: Write>(w: BufWriter<W>) -> std::io::Result<W> {
    w.into_inner().map_err(std::io::IntoInnerError::into_error)
}

/// The process id in a temporary file name of `target`'s, or `None` when the name is
/// not one of ours for that target.
fn orphan_pid(file_name: &OsStr, target: &OsStr) -> Option<u32> {
    let name = file_name.as_encoded_bytes();
    let rest = name.strip_prefix(TEMP_PREFIX.as_bytes())?;
    let dot = rest.iter().position(|&b| b == b'.')?;
    let (pid, rest) = rest.split_at(dot);
    if pid.is_empty() || !pid.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let rest = &rest[1..];
    if rest.len() < TEMP_RANDOM + 1 || rest[TEMP_RANDOM] != b'.' {
        return None;
    }
    if &rest[TEMP_RANDOM + 1..] != target.as_encoded_bytes() {
        return None;
    }
    std::str::from_utf8(pid).ok()?.parse().ok()
}

/// Whether process `pid` exists, or `None` where this cannot be told (no `/proc`).
fn process_alive(pid: u32) -> Option<bool> {
    if !Path::new("/proc/self").exists() {
        return None;
    }
    Some(pid == std::process::id() || Path::new("/proc").join(pid.to_string()).exists())
}

/// Removes the orphaned temporary files of `target` in `dir` (best effort: a file that
/// cannot be inspected or removed is left alone).
fn remove_orphans(dir: &Path, target: &OsStr, now: SystemTime) {
    if target.len() > MAX_TARGET_IN_NAME {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let Some(pid) = orphan_pid(&entry.file_name(), target) else { continue };
        if process_alive(pid) != Some(false) {
            continue;
        }
        // The entry itself, not a link's target.
        let Ok(meta) = entry.metadata() else { continue };
        let old =
            meta.modified().ok().and_then(|m| now.duration_since(m).ok()).is_some_and(|age| age >= ORPHAN_MIN_AGE);
        if meta.file_type().is_file() && old {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_names_are_recognised_for_their_target_only() {
        let t = OsStr::new("out.png");
        assert_eq!(orphan_pid(OsStr::new(".unet-tmp-123.aB3xY9.out.png"), t), Some(123));
        assert_eq!(orphan_pid(OsStr::new(".unet-tmp-123.aB3xY9.out.png.png"), t), None);
        assert_eq!(orphan_pid(OsStr::new(".unet-tmp-123.aB3xY9.other.png"), t), None);
        assert_eq!(orphan_pid(OsStr::new(".unet-tmp-12x.aB3xY9.out.png"), t), None);
        assert_eq!(orphan_pid(OsStr::new(".unet-tmp-.aB3xY9.out.png"), t), None);
        assert_eq!(orphan_pid(OsStr::new(".unet-tmp-aB3xY9"), t), None, "the old scheme is left alone");
        assert_eq!(orphan_pid(OsStr::new("out.png"), t), None);
    }

    #[test]
    fn a_written_temp_file_carries_pid_and_target() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("a.tif");
        let f = AtomicFile::create(&target, false).unwrap();
        let temp = f.temp.path().file_name().unwrap().to_owned();
        assert_eq!(orphan_pid(&temp, OsStr::new("a.tif")), Some(std::process::id()), "{temp:?}");
    }
}
