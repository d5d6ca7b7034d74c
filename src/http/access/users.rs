//! htpasswd files as the rules use them: each file read once however many rules name it,
//! re-read on SIGHUP without dropping the users that worked when the new file does not load.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::http::htpasswd::{Htpasswd, HtpasswdError, Refused};

/// One htpasswd file, shared by the rules that name it, reloaded on SIGHUP.
pub(super) struct Users {
    /// Tells this file's remembered verifications from another's.
    pub(super) index: u32,
    pub(super) file: PathBuf,
    pub(super) current: ArcSwap<Htpasswd>,
}

impl Users {
    /// Reads `file`; `index` must be unique among the files of one [`super::Access`].
    pub(super) fn load(index: u32, file: &Path) -> Result<Users, HtpasswdError> {
        Ok(Users {
            index,
            file: file.to_path_buf(),
            current: ArcSwap::from_pointee(read(file)?),
        })
    }

    /// Re-reads the file (SIGHUP). A file that cannot be read keeps its old users.
    pub(super) fn reload(&self) {
        match read(&self.file) {
            Ok(htpasswd) => {
                tracing::info!(file = %self.file.display(), users = htpasswd.len(), "htpasswd reloaded");
                self.current.store(Arc::new(htpasswd));
            }
            Err(e) => {
                tracing::error!(error = %e, "htpasswd reload failed; the old users stay in use")
            }
        }
    }
}

/// Loads one htpasswd file, logging the lines it refused.
fn read(file: &Path) -> Result<Htpasswd, HtpasswdError> {
    let (htpasswd, refused) = Htpasswd::load(file)?;
    for Refused { line, reason } in refused {
        tracing::warn!("{}:{line}: {reason}; entry ignored", file.display());
    }
    if htpasswd.is_empty() {
        tracing::warn!(file = %file.display(), "htpasswd file has no usable entries: nobody can log in");
    }
    Ok(htpasswd)
}
