//! The package files the indices of one sync name, held compactly.
//!
//! A Debian suite lists hundreds of thousands of files, and a sync holds every one of them
//! from parsing to publishing. One `String` per path and per package name (plus their
//! headers and the allocator's rounding) cost about 200 bytes a file; here every path and
//! package name is appended to one text buffer and a file is a fixed slot of hash, size and
//! offsets into it: about 55 bytes plus its text.

use crate::store::ObjectId;

/// How much a full buffer grows: by a quarter of what it holds. Doubling (what `Vec` does)
/// would leave up to half of each buffer unused and, while one is copied to its new place,
/// hold both: the parse of three large suites at once then peaks at twice their lists.
const GROWTH: usize = 4;

/// The least a buffer grows by (slots or bytes): small lists grow in few steps.
const MIN_GROWTH: usize = 4096;

/// Makes room in `text` for `more` bytes, growing it by [`GROWTH`] when full.
fn grow(text: &mut String, more: usize) {
    if text.capacity() - text.len() < more {
        text.reserve_exact(more.max(text.len() / GROWTH + MIN_GROWTH));
    }
}

/// The files named so far, in listing order until [`PoolList::into_unique`].
#[derive(Debug, Default)]
pub struct PoolList {
    /// Every file's path followed by its package's name.
    text: String,
    files: Vec<Slot>,
}

/// One file: its hash and size, and where its path and package name are in the text.
#[derive(Debug, Clone, Copy)]
struct Slot {
    sha256: ObjectId,
    size: u64,
    /// Offset of the path in the text; the package's name follows it. Grows with the listing
    /// order, so it also tells which of two files was listed first.
    start: u32,
    path_len: u32,
    package_len: u32,
}

/// One file of a [`PoolList`], borrowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolFileRef<'a> {
    pub path: &'a str,
    pub size: u64,
    pub sha256: ObjectId,
    pub package: &'a str,
}

impl PoolList {
    /// Records a file; refused only when the text outgrows the 4 GiB its offsets can reach
    /// (no real archive comes near: Debian's paths are about 100 MB).
    pub fn add(
        &mut self,
        path: &str,
        size: u64,
        sha256: ObjectId,
        package: &str,
    ) -> Result<(), String> {
        let too_long = || "the indices name more file text than 4 GiB".to_string();
        let start = u32::try_from(self.text.len()).map_err(|_| too_long())?;
        let path_len = u32::try_from(path.len()).map_err(|_| too_long())?;
        let package_len = u32::try_from(package.len()).map_err(|_| too_long())?;
        if u32::try_from(self.text.len() + path.len() + package.len()).is_err() {
            return Err(too_long());
        }
        grow(&mut self.text, path.len() + package.len());
        self.text.push_str(path);
        self.text.push_str(package);
        if self.files.len() == self.files.capacity() {
            self.files
                .reserve_exact(self.files.len() / GROWTH + MIN_GROWTH);
        }
        self.files.push(Slot {
            sha256,
            size,
            start,
            path_len,
            package_len,
        });
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.files.len()
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// File `n` (in the list's order).
    pub fn get(&self, n: usize) -> PoolFileRef<'_> {
        self.file(&self.files[n])
    }

    pub fn iter(&self) -> impl Iterator<Item = PoolFileRef<'_>> + '_ {
        self.files.iter().map(|slot| self.file(slot))
    }

    fn file(&self, slot: &Slot) -> PoolFileRef<'_> {
        let start = slot.start as usize;
        let middle = start + slot.path_len as usize;
        PoolFileRef {
            path: &self.text[start..middle],
            size: slot.size,
            sha256: slot.sha256,
            package: &self.text[middle..middle + slot.package_len as usize],
        }
    }

    fn path(&self, slot: &Slot) -> &str {
        let start = slot.start as usize;
        &self.text[start..start + slot.path_len as usize]
    }

    /// The files in path order, each path once (the first listed): a path listed again (by
    /// another index, or twice in one) must name the same content, else the listing is
    /// refused, naming both packages.
    pub fn into_unique(mut self) -> Result<PoolList, String> {
        let mut files = std::mem::take(&mut self.files);
        // The text offset breaks ties: of the files listed under one path, the first listed
        // comes first, without the buffer a stable sort needs.
        files.sort_unstable_by(|a, b| {
            (self.path(a).cmp(self.path(b))).then_with(|| a.start.cmp(&b.start))
        });
        let mut kept = 0;
        for n in 0..files.len() {
            if kept > 0 && self.path(&files[kept - 1]) == self.path(&files[n]) {
                let (first, again) = (self.file(&files[kept - 1]), self.file(&files[n]));
                if first.sha256 != again.sha256 {
                    return Err(format!(
                        "{} is listed twice with different hashes (packages {} and {})",
                        again.path, first.package, again.package
                    ));
                }
                continue;
            }
            files[kept] = files[n];
            kept += 1;
        }
        files.truncate(kept);
        files.shrink_to_fit();
        self.files = files;
        self.text.shrink_to_fit();
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_come_out_in_path_order_each_path_once_the_first_listed() {
        let mut list = PoolList::default();
        let id = |n: u8| ObjectId([n; 32]);
        list.add("pool/b.deb", 2, id(2), "b").unwrap();
        list.add("pool/a.deb", 1, id(1), "a").unwrap();
        list.add("pool/b.deb", 2, id(2), "b-again").unwrap();
        list.add("pool/a0.deb", 3, id(3), "").unwrap();
        let unique = list.into_unique().unwrap();
        let files: Vec<_> = unique.iter().map(|f| (f.path, f.package, f.size)).collect();
        assert_eq!(
            files,
            [
                ("pool/a.deb", "a", 1),
                ("pool/a0.deb", "", 3),
                ("pool/b.deb", "b", 2)
            ]
        );
        assert_eq!(unique.get(2).sha256, id(2));
    }

    #[test]
    fn a_path_listed_with_two_hashes_is_refused_naming_both_packages() {
        let mut list = PoolList::default();
        list.add("pool/x.deb", 1, ObjectId([1; 32]), "one").unwrap();
        list.add("pool/x.deb", 1, ObjectId([2; 32]), "two").unwrap();
        let message = list.into_unique().unwrap_err();
        assert!(message.contains("pool/x.deb"), "{message}");
        assert!(message.contains("packages one and two"), "{message}");
    }
}
