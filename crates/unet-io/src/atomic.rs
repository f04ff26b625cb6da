//! Atomic output files: data goes to a temporary file beside the target, which is renamed
//! onto the target only once it is complete, so a failure never leaves a partial output.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::error::{IoError, Result};

/// Fails with [`IoError::Exists`] when `path` exists and `force` is false.
pub fn check_writable(path: &Path, force: bool) -> Result<()> {
    if !force && path.exists() {
        return Err(IoError::Exists { path: path.to_path_buf() });
    }
    Ok(())
}

/// A file being written: write into [`AtomicFile::writer`], then [`AtomicFile::commit`].
/// Dropping it without committing removes the temporary file.
pub struct AtomicFile {
    target: PathBuf,
    temp: tempfile::NamedTempFile,
}

impl AtomicFile {
    /// Starts writing `path`; refuses an existing file unless `force`.
    pub fn create(path: &Path, force: bool) -> Result<Self> {
        check_writable(path, force)?;
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        std::fs::create_dir_all(&dir).map_err(|error| IoError::Write { path: path.to_path_buf(), error })?;
        let temp = tempfile::Builder::new()
            .prefix(".unet-tmp-")
            .tempfile_in(&dir)
            .map_err(|error| IoError::Write { path: path.to_path_buf(), error })?;
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

    /// Flushes, syncs and renames the temporary file onto the target.
    pub fn commit(self) -> Result<()> {
        let target = self.target;
        let err = |error| IoError::Write { path: target.clone(), error };
        self.temp.as_file().sync_all().map_err(err)?;
        self.temp.persist(&target).map_err(|e| IoError::Write { path: target.clone(), error: e.error })?;
        Ok(())
    }

    /// Writes all of `bytes` to `path` atomically.
    pub fn write_bytes(path: &Path, bytes: &[u8], force: bool) -> Result<()> {
        let mut f = AtomicFile::create(path, force)?;
        {
            let mut w = BufWriter::new(f.file());
            w.write_all(bytes)
                .and_then(|_| w.flush())
                .map_err(|error| IoError::Write { path: path.to_path_buf(), error })?;
        }
        f.commit()
    }
}
