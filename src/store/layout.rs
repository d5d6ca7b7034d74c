//! Where objects live on disk: `objects/sha256/<first two hex digits>/<all 64 hex digits>`.
//!
//! This module alone knows the layout. The store's writers, GC, verify and the server's object
//! cache all ask it, so a change of the layout cannot leave one of them looking elsewhere.

use std::fs;
use std::path::{Path, PathBuf};

use super::{err, ObjectId, StoreError};

/// The path of object `id` under `objects_dir` (the store's `objects/sha256`).
pub fn object_path(objects_dir: &Path, id: &ObjectId) -> PathBuf {
    // Built in one allocation: a dry run asks for the path of every file an index names.
    let mut hex = [0u8; 64];
    hex::encode_to_slice(id.0, &mut hex).expect("64 digits for 32 bytes");
    let hex = std::str::from_utf8(&hex).expect("hex digits are ASCII");
    let mut path = PathBuf::with_capacity(objects_dir.as_os_str().len() + 68);
    path.push(objects_dir);
    path.push(&hex[..2]);
    path.push(hex);
    path
}

/// How many fan-out folders there are: one per value of an id's first byte.
pub(crate) const FAN_OUT: usize = 256;

/// The fan-out folder of object `id` (its first byte, the first two hex digits).
pub(crate) fn fan_out(id: &ObjectId) -> u8 {
    id.0[0]
}

/// The name of object `id` relative to the objects directory, `ab/abcdef…`, built on the
/// stack: the hot path of ingest names one object per file and allocates nothing for it.
pub(crate) struct ObjectName([u8; 67]);

impl ObjectName {
    pub(crate) fn of(id: &ObjectId) -> ObjectName {
        let mut name = [0u8; 67];
        hex::encode_to_slice(id.0, &mut name[3..]).expect("64 hex digits fit");
        name.copy_within(3..5, 0);
        name[2] = b'/';
        ObjectName(name)
    }

    /// `ab/abcdef…`.
    pub(crate) fn relative(&self) -> &str {
        std::str::from_utf8(&self.0).expect("hex digits and a slash")
    }

    /// `ab`: the fan-out folder.
    pub(crate) fn folder(&self) -> &str {
        &self.relative()[..2]
    }
}

/// One object file met while walking the objects directory.
pub(crate) struct ObjectFile {
    pub id: ObjectId,
    pub entry: fs::DirEntry,
}

/// Calls `each` for every object file under `objects_dir`, fan-out directory by fan-out
/// directory. Names that are not object ids are passed over. Stops at the first error, from
/// the walk or from `each`: a walk that skipped a directory silently would make GC and
/// verify report a store smaller than it is.
pub(crate) fn for_each_object(
    objects_dir: &Path,
    mut each: impl FnMut(ObjectFile) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    for fan in fs::read_dir(objects_dir).map_err(err("read", objects_dir))? {
        let fan = fan.map_err(err("read", objects_dir))?.path();
        if !fan.is_dir() {
            continue;
        }
        for entry in fs::read_dir(&fan).map_err(err("read", &fan))? {
            let entry = entry.map_err(err("read", &fan))?;
            let Some(id) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<ObjectId>().ok())
            else {
                continue;
            };
            each(ObjectFile { id, entry })?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_fan_out_by_their_first_two_hex_digits() {
        let id: ObjectId = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
            .parse()
            .unwrap();
        assert_eq!(
            object_path(Path::new("d/objects/sha256"), &id),
            Path::new("d/objects/sha256/2c")
                .join("2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824")
        );
        let name = ObjectName::of(&id);
        assert_eq!(
            Path::new("d/objects/sha256").join(name.relative()),
            object_path(Path::new("d/objects/sha256"), &id)
        );
        assert_eq!(name.folder(), "2c");
        assert_eq!(&name.relative()[3..], id.to_hex());
        assert_eq!(fan_out(&id), 0x2c);
    }
}
