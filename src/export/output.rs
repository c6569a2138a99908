//! An output file written under a temporary name in the target's folder and
//! renamed into place only when complete.

use std::fs::File;
use std::path::{Path, PathBuf};

use tempfile::NamedTempFile;

use super::ExportError;

/// A staged output: the temporary file is removed if it is dropped before
/// [`Staged::commit`].
pub(crate) struct Staged {
    tmp: NamedTempFile,
    out: PathBuf,
    force: bool,
}

impl Staged {
    /// Checks that `out` may be written (it does not exist, or `force`; it is
    /// not `input`) and creates the temporary file beside it.
    pub(crate) fn create(
        out: &Path,
        input: Option<&Path>,
        force: bool,
    ) -> Result<Staged, ExportError> {
        if let Some(input) = input {
            let same = match (std::fs::canonicalize(input), std::fs::canonicalize(out)) {
                (Ok(a), Ok(b)) => a == b,
                _ => false,
            };
            if same {
                return Err(ExportError::SameFile(out.to_owned()));
            }
        }
        if out.is_dir() {
            return Err(ExportError::Io {
                path: out.to_owned(),
                source: std::io::Error::new(std::io::ErrorKind::IsADirectory, "is a folder"),
            });
        }
        if out.exists() && !force {
            return Err(ExportError::Exists(out.to_owned()));
        }
        let dir = match out.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
            _ => PathBuf::from("."),
        };
        let name = out
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let prefix = format!(".{name}.");
        let mut builder = tempfile::Builder::new();
        builder.prefix(&prefix).suffix(".part");
        #[cfg(unix)]
        {
            // a finished export is an ordinary file, not a private temporary one
            use std::os::unix::fs::PermissionsExt;
            builder.permissions(std::fs::Permissions::from_mode(0o644));
        }
        let tmp = builder
            .tempfile_in(&dir)
            .map_err(|source| ExportError::Io { path: dir, source })?;
        Ok(Staged {
            tmp,
            out: out.to_owned(),
            force,
        })
    }

    /// The temporary file's path (for libraries that open files by name).
    pub(crate) fn tmp_path(&self) -> &Path {
        self.tmp.path()
    }

    /// The final path.
    pub(crate) fn out(&self) -> &Path {
        &self.out
    }

    /// A second handle on the temporary file, for writing.
    pub(crate) fn file(&self) -> Result<File, ExportError> {
        self.tmp.reopen().map_err(|e| self.io(e))
    }

    /// An I/O error on the output, named by its final path.
    pub(crate) fn io(&self, source: std::io::Error) -> ExportError {
        ExportError::Io {
            path: self.out.clone(),
            source,
        }
    }

    /// A format library's error on the output.
    pub(crate) fn lib_error(&self, e: impl std::fmt::Display) -> ExportError {
        ExportError::Output {
            path: self.out.clone(),
            message: e.to_string(),
        }
    }

    /// Syncs the file and renames it into place; returns its size.
    pub(crate) fn commit(self) -> Result<u64, ExportError> {
        let file = self.tmp.as_file();
        file.sync_all().map_err(|e| self.io(e))?;
        let len = file.metadata().map_err(|e| self.io(e))?.len();
        let out = self.out.clone();
        let persisted = if self.force {
            self.tmp.persist(&out)
        } else {
            // refuses a file that appeared since the start
            self.tmp.persist_noclobber(&out)
        };
        match persisted {
            Ok(_) => Ok(len),
            Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => {
                Err(ExportError::Exists(out))
            }
            Err(e) => Err(ExportError::Io {
                path: out,
                source: e.error,
            }),
        }
    }
}
