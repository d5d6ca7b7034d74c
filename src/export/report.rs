//! How an export and a check of a medium read to a person.

use std::fmt;
use std::path::PathBuf;

use crate::manifest::{ChangeKind, ManifestDiff};

/// What one export changed on the medium, against the manifest of the export before it.
#[derive(Debug)]
pub struct ExportReport {
    pub dir: PathBuf,
    /// From the medium's previous manifest (nothing, for a first export) to the new one.
    pub changes: ManifestDiff,
    /// Files and bytes the medium holds now.
    pub files: usize,
    pub bytes: u64,
    /// Files and bytes written from the store.
    pub copied: usize,
    pub bytes_copied: u64,
    /// An export interrupted before this one was finished by it.
    pub resumed: bool,
    pub warnings: Vec<String>,
}

impl fmt::Display for ExportReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for change in &self.changes.changes {
            let path = &change.path;
            match change.kind {
                ChangeKind::Added { size } => writeln!(f, "+ {path} ({size} bytes)")?,
                ChangeKind::Removed { size } => writeln!(f, "- {path} ({size} bytes)")?,
                ChangeKind::Changed { old_size, new_size } => {
                    writeln!(f, "~ {path} ({old_size} → {new_size} bytes)")?
                }
            }
        }
        write!(
            f,
            "exported {} files, {} bytes to {}: {} added, {} removed, {} changed ({} → {} bytes); wrote {} files, {} bytes",
            self.files,
            self.bytes,
            self.dir.display(),
            self.changes.added(),
            self.changes.removed(),
            self.changes.changed(),
            self.changes.bytes_before,
            self.changes.bytes_after,
            self.copied,
            self.bytes_copied
        )?;
        if self.resumed {
            write!(f, "\n  finished an export that had been interrupted")?;
        }
        for warning in &self.warnings {
            write!(f, "\n  warning: {warning}")?;
        }
        Ok(())
    }
}

/// What `export --check` found: files whose bytes differ from the manifest, files gone, and
/// whether an export was interrupted.
#[derive(Debug, Default)]
pub struct CheckReport {
    pub files: usize,
    pub bytes: u64,
    /// `path: why` for each file whose size or sha256 differs from the manifest.
    pub damaged: Vec<String>,
    pub missing: Vec<String>,
    /// When (unix seconds) the interrupted export started, if one was.
    pub interrupted: Option<i64>,
}

impl CheckReport {
    /// Nothing damaged, missing or half done.
    pub fn is_clean(&self) -> bool {
        self.damaged.is_empty() && self.missing.is_empty() && self.interrupted.is_none()
    }
}

impl fmt::Display for CheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "checked {} files, {} bytes: {} damaged, {} missing",
            self.files,
            self.bytes,
            self.damaged.len(),
            self.missing.len()
        )?;
        for damaged in &self.damaged {
            write!(f, "\n  damaged: {damaged}")?;
        }
        for missing in &self.missing {
            write!(f, "\n  missing: {missing}")?;
        }
        if let Some(started) = self.interrupted {
            write!(
                f,
                "\n  an export started {} was interrupted: the medium is part old, part new; export again",
                crate::time::http_date(started)
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_report_lists_each_problem_after_the_summary() {
        let report = CheckReport {
            files: 3,
            bytes: 30,
            damaged: vec!["a: sha256 differs".into()],
            missing: vec!["b".into()],
            interrupted: None,
        };
        assert!(!report.is_clean());
        assert_eq!(
            report.to_string(),
            "checked 3 files, 30 bytes: 1 damaged, 1 missing\n  damaged: a: sha256 differs\n  missing: b"
        );
        assert!(CheckReport::default().is_clean());
    }
}
