//! The identity of an object's inode when it was known good, for objects that share their inode
//! with a file outside the store (hard-link ingest). Such an object can change behind the
//! store's back when the original is rewritten in place, so the server compares the inode with
//! its stamp before and after sending it, and refuses or cuts the response on a mismatch.
//!
//! mtime alone misses a rewrite that restores the mtime afterwards (`touch -r`, `rsync -a
//! --inplace`); ctime cannot be set from user space, so it catches those. The inode number
//! catches an object file that was replaced.
//!
//! The link count is part of the ctime too. When the original is replaced the careful way (a
//! new file renamed over it) the object's inode drops to one link: nobody outside can write it
//! any more, so the ctime is not compared then, and the object (and every retained snapshot
//! naming it) keeps being served. While the inode is still shared, anything that moves the
//! ctime without changing the bytes (chmod, chown, one more hard link to the original) makes
//! the object unservable until the next sync re-hashes and re-stamps it.
//!
//! Manifests written before ctime was recorded hold a bare mtime (an integer). Those still
//! read and are checked by mtime and size only; a sync re-ingests such files (see
//! `sync::dir::ingest_local`), so they are upgraded on the next run.

use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "Stored", into = "Stored")]
pub struct Stamp {
    pub mtime_ns: i64,
    /// `None` in stamps from before ctime was recorded.
    pub ctime_ns: Option<i64>,
    pub inode: Option<u64>,
}

/// How a stamp is written: the old bare mtime, or all three fields.
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum Stored {
    Mtime(i64),
    Full {
        mtime_ns: i64,
        ctime_ns: i64,
        inode: u64,
    },
}

impl From<Stored> for Stamp {
    fn from(stored: Stored) -> Stamp {
        match stored {
            Stored::Mtime(mtime_ns) => Stamp {
                mtime_ns,
                ctime_ns: None,
                inode: None,
            },
            Stored::Full {
                mtime_ns,
                ctime_ns,
                inode,
            } => Stamp {
                mtime_ns,
                ctime_ns: Some(ctime_ns),
                inode: Some(inode),
            },
        }
    }
}

impl From<Stamp> for Stored {
    fn from(stamp: Stamp) -> Stored {
        match (stamp.ctime_ns, stamp.inode) {
            (Some(ctime_ns), Some(inode)) => Stored::Full {
                mtime_ns: stamp.mtime_ns,
                ctime_ns,
                inode,
            },
            _ => Stored::Mtime(stamp.mtime_ns),
        }
    }
}

impl Stamp {
    /// The stamp of an inode as it is now.
    pub fn of(meta: &Metadata) -> Stamp {
        Stamp {
            mtime_ns: super::mtime_ns(meta),
            ctime_ns: Some(ctime_ns(meta)),
            inode: Some(meta.ino()),
        }
    }

    /// True if the inode still looks as it did when stamped (what an old stamp lacks is not
    /// compared, nor is the ctime of an inode no longer shared: see the module comment).
    pub fn matches(&self, meta: &Metadata) -> bool {
        let shared = meta.nlink() > 1;
        self.mtime_ns == super::mtime_ns(meta)
            && (!shared || self.ctime_ns.is_none_or(|c| c == ctime_ns(meta)))
            && self.inode.is_none_or(|i| i == meta.ino())
    }

    /// A stamp from before ctime was recorded.
    pub fn is_legacy(&self) -> bool {
        self.ctime_ns.is_none() || self.inode.is_none()
    }
}

fn ctime_ns(meta: &Metadata) -> i64 {
    meta.ctime()
        .saturating_mul(1_000_000_000)
        .saturating_add(meta.ctime_nsec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_and_new_forms_read_back() {
        let old: Stamp = serde_json::from_str("1700000000123456789").unwrap();
        assert_eq!(old.mtime_ns, 1_700_000_000_123_456_789);
        assert!(old.is_legacy());
        assert_eq!(serde_json::to_string(&old).unwrap(), "1700000000123456789");

        let file = tempfile::NamedTempFile::new().unwrap();
        let meta = file.as_file().metadata().unwrap();
        let new = Stamp::of(&meta);
        assert!(!new.is_legacy());
        let text = serde_json::to_string(&new).unwrap();
        assert!(text.contains("ctime_ns"), "{text}");
        assert_eq!(serde_json::from_str::<Stamp>(&text).unwrap(), new);
        assert!(new.matches(&meta));
        assert!(old.matches(&meta) == (old.mtime_ns == new.mtime_ns));
    }

    #[test]
    fn a_chmod_changes_the_stamp_but_not_an_old_one() {
        use std::os::unix::fs::PermissionsExt;
        let file = tempfile::NamedTempFile::new().unwrap();
        let link = file.path().with_extension("link");
        std::fs::hard_link(file.path(), &link).unwrap();
        let before = file.as_file().metadata().unwrap();
        let stamp = Stamp::of(&before);
        let legacy = Stamp {
            ctime_ns: None,
            inode: None,
            ..stamp
        };
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::set_permissions(file.path(), std::fs::Permissions::from_mode(0o600)).unwrap();
        let after = file.as_file().metadata().unwrap();
        assert!(!stamp.matches(&after));
        assert!(legacy.matches(&after));
        // The outside name goes away (replaced by a rename): no longer shared, still good.
        std::fs::remove_file(&link).unwrap();
        let alone = file.as_file().metadata().unwrap();
        assert!(Stamp::of(&after).matches(&alone));
    }
}
