//! Which real files a local source may read: those under its own folder (`dir` `path`, Puavo
//! `image_dir`), and under the folders the administrator allowed with `follow_symlinks_into`.
//!
//! Symlinks are followed, because image folders and web trees use them on purpose, but a link
//! is a way out of the folder too: `ln -s .. tree/up` would publish the parent folder (and the
//! TLS key in it), `ln -s /etc/passwd tree/passwd` a system file. So a link counts only if its
//! target, fully resolved, lies inside one of the allowed roots; anything else is skipped with
//! a warning that names the link and where it leads.

use std::io;
use std::path::{Path, PathBuf};

/// The folders one source may read from, resolved (no symlinks left in them).
#[derive(Debug, Clone)]
pub struct Confinement {
    /// The source's own folder, resolved; first of `roots`.
    base: PathBuf,
    roots: Vec<PathBuf>,
}

/// Why a path is not read.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    #[error("symlink {link} points to {target}, outside the source's folder and every `follow_symlinks_into` root; not followed")]
    Outside { link: PathBuf, target: PathBuf },
    #[error("symlink {link} cannot be resolved ({source}); not followed")]
    Unresolved {
        link: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl Confinement {
    /// Resolves `base` (an error if it cannot be) and the allowed roots (one that does not
    /// exist is left out with a warning: it allows nothing until it appears).
    pub fn new(base: &Path, allowed: &[PathBuf]) -> io::Result<Confinement> {
        let base = std::fs::canonicalize(base)?;
        let mut roots = vec![base.clone()];
        for root in allowed {
            match std::fs::canonicalize(root) {
                Ok(resolved) => roots.push(resolved),
                Err(e) => tracing::warn!(
                    root = %root.display(),
                    error = %e,
                    "follow_symlinks_into: folder cannot be resolved; links into it are not followed"
                ),
            }
        }
        Ok(Confinement { base, roots })
    }

    /// The source's own folder, resolved: walk from here.
    pub fn base(&self) -> &Path {
        &self.base
    }

    /// The real path behind `path` (a symlink, or a path through one), if it is allowed.
    /// Loops and dangling links fail to resolve, so they are refused, never followed.
    pub fn resolve(&self, path: &Path) -> Result<PathBuf, Refused> {
        let target = std::fs::canonicalize(path).map_err(|source| Refused::Unresolved {
            link: path.to_path_buf(),
            source,
        })?;
        if self.roots.iter().any(|root| target.starts_with(root)) {
            Ok(target)
        } else {
            Err(Refused::Outside {
                link: path.to_path_buf(),
                target,
            })
        }
    }

    /// [`Confinement::resolve`] for a scan: a refused link is logged and noted in `problems`
    /// (the status page shows them), and the scan goes on without it.
    pub fn follow(&self, link: &Path, problems: &mut Vec<String>) -> Option<PathBuf> {
        match self.resolve(link) {
            Ok(target) => Some(target),
            Err(refused) => {
                tracing::warn!("{refused}");
                problems.push(refused.to_string());
                None
            }
        }
    }
}

/// True if `path` itself is a symlink (not what it points to).
pub fn is_symlink(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink())
}

/// Reads `follow_symlinks_into`: a list of absolute folder paths (read from a plain TOML
/// value, so a wrong type is reported with the key's name).
pub fn parse_roots(value: Option<toml::Value>) -> Result<Vec<PathBuf>, String> {
    const KEY: &str = "key `follow_symlinks_into`";
    let Some(value) = value else {
        return Ok(Vec::new());
    };
    let toml::Value::Array(items) = value else {
        return Err(format!(
            "{KEY}: expected a list of folders, like [\"/srv/shared\"]"
        ));
    };
    items
        .into_iter()
        .map(|item| match item {
            toml::Value::String(path) if Path::new(&path).is_absolute() => Ok(PathBuf::from(path)),
            toml::Value::String(path) => Err(format!("{KEY}: `{path}` must be an absolute path")),
            other => Err(format!("{KEY}: `{other}` is not a folder path")),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn links_are_followed_only_into_allowed_roots() {
        let top = tempfile::tempdir().unwrap();
        let tree = top.path().join("tree");
        let shared = top.path().join("shared");
        std::fs::create_dir_all(tree.join("sub")).unwrap();
        std::fs::create_dir_all(&shared).unwrap();
        std::fs::write(tree.join("sub/file"), b"x").unwrap();
        std::fs::write(shared.join("s"), b"s").unwrap();
        std::fs::write(top.path().join("secret"), b"k").unwrap();
        symlink("sub/file", tree.join("inside")).unwrap();
        symlink("..", tree.join("up")).unwrap();
        symlink(top.path().join("secret"), tree.join("secret")).unwrap();
        symlink(shared.join("s"), tree.join("shared")).unwrap();
        symlink("loop", tree.join("loop")).unwrap();

        let strict = Confinement::new(&tree, &[]).unwrap();
        assert!(strict.resolve(&tree.join("inside")).is_ok());
        for name in ["up", "secret", "shared"] {
            let refused = strict.resolve(&tree.join(name)).unwrap_err();
            assert!(matches!(refused, Refused::Outside { .. }), "{name}");
            assert!(refused.to_string().contains(name), "{refused}");
        }
        assert!(matches!(
            strict.resolve(&tree.join("loop")),
            Err(Refused::Unresolved { .. })
        ));

        let open = Confinement::new(&tree, &[shared.clone(), top.path().join("gone")]).unwrap();
        assert!(open.resolve(&tree.join("shared")).is_ok());
        assert!(open.resolve(&tree.join("secret")).is_err());
    }
}
