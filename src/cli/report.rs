//! How the outcome of a sync, a GC and a deep verify reads to a person: one `Display` per
//! report type. The CLI prints them and the admin socket sends them as reply messages, so
//! both say the same words without the server side depending on the CLI's code; the impls
//! sit here only because the report types' own modules belong to the sync and store layers,
//! where they can move unchanged.

use std::fmt;

use crate::store::gc::GcReport;
use crate::store::verify::VerifyReport;
use crate::sync::SyncReport;

/// `published snapshot … (… files, … bytes; stored … new files, … bytes)`, then one
/// `warning:` line per problem.
impl fmt::Display for SyncReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let failed = if self.partial { "PARTLY FAILED: " } else { "" };
        let outcome = match (self.changed, self.pinned) {
            (true, false) => "published",
            (true, true) => "retained (pinned, not published)",
            (false, _) => "unchanged,",
        };
        write!(
            f,
            "{failed}{outcome} snapshot {} ({} files, {} bytes; stored {} new files, {} bytes)",
            self.snapshot.as_deref().unwrap_or("-"),
            self.files,
            self.bytes,
            self.files_stored,
            self.bytes_stored
        )?;
        for problem in &self.problems {
            write!(f, "\n  warning: {problem}")?;
        }
        Ok(())
    }
}

impl fmt::Display for GcReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "removed {} objects ({} bytes), kept {}",
            self.removed, self.bytes_freed, self.kept
        )
    }
}

/// A summary line, then one line per damaged object and per problem.
impl fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "verified {} objects, {} bytes: {} damaged (quarantined), {} problems",
            self.objects,
            self.bytes,
            self.damaged.len(),
            self.missing.len()
        )?;
        for id in &self.damaged {
            write!(f, "\n  damaged: {id}")?;
        }
        for problem in &self.missing {
            write!(f, "\n  {problem}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::ObjectId;

    #[test]
    fn verify_report_lists_damage_after_the_summary() {
        let report = VerifyReport {
            objects: 3,
            bytes: 30,
            damaged: vec![ObjectId([0xab; 32])],
            missing: vec!["refs/s names a missing manifest".into()],
        };
        let text = report.to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "verified 3 objects, 30 bytes: 1 damaged (quarantined), 1 problems"
        );
        assert_eq!(lines[1], format!("  damaged: {}", ObjectId([0xab; 32])));
        assert_eq!(lines[2], "  refs/s names a missing manifest");
    }

    #[test]
    fn sync_report_says_what_happened_then_warns() {
        let report = SyncReport {
            snapshot: Some("abcd".into()),
            changed: true,
            partial: true,
            files: 2,
            bytes: 20,
            files_stored: 1,
            bytes_stored: 10,
            problems: vec!["series x failed".into()],
            ..SyncReport::default()
        };
        assert_eq!(
            report.to_string(),
            "PARTLY FAILED: published snapshot abcd (2 files, 20 bytes; stored 1 new files, 10 bytes)\n  warning: series x failed"
        );
        let unchanged = SyncReport::default();
        assert_eq!(
            unchanged.to_string(),
            "unchanged, snapshot - (0 files, 0 bytes; stored 0 new files, 0 bytes)"
        );
    }

    #[test]
    fn gc_report_reads_as_one_line() {
        let report = GcReport {
            kept: 2,
            removed: 1,
            bytes_freed: 10,
        };
        assert_eq!(report.to_string(), "removed 1 objects (10 bytes), kept 2");
    }
}
