//! How the outcome of a sync, a GC and a deep verify reads to a person. Each report type
//! implements `Display` beside its own definition (the CLI prints them, the admin socket
//! sends them as reply messages); these tests keep the wording the CLI's users see.

#[cfg(test)]
mod tests {
    use crate::store::gc::GcReport;
    use crate::store::verify::VerifyReport;
    use crate::store::ObjectId;
    use crate::sync::SyncReport;

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
            counts: crate::store::refs::Counts {
                files: 2,
                bytes: 20,
                files_stored: 1,
                bytes_stored: 10,
                ..Default::default()
            },
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
