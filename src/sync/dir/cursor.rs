//! The previous snapshot's entries read in path order alongside the walk: each lookup moves
//! forward, so a scan costs one pass over them, no map, and (for a binary manifest) no more
//! memory than one entry.

use crate::manifest::{Entry, ManifestError};

/// The previous entries turned out not to be in path order (a hand-made or very old
/// manifest): lookups may have missed, so the scan starts over with them sorted.
#[derive(Debug)]
pub struct Unsorted;

/// Why a lookup failed.
#[derive(Debug)]
pub enum CursorError {
    Unsorted(Unsorted),
    /// The manifest is damaged (or does not hash to its id, found at its end).
    Manifest(ManifestError),
}

type Stream<'a> = Box<dyn Iterator<Item = Result<Entry, ManifestError>> + 'a>;

pub struct Cursor<'a> {
    stream: Stream<'a>,
    /// The entry read but not asked for yet.
    pending: Option<Entry>,
    /// The path of the last entry read, to check their order.
    last: Option<String>,
    /// An entry was passed over: the walk made no entry at its path.
    skipped: bool,
}

impl<'a> Cursor<'a> {
    pub fn new(stream: Stream<'a>) -> Cursor<'a> {
        Cursor {
            stream,
            pending: None,
            last: None,
            skipped: false,
        }
    }

    pub fn empty() -> Cursor<'static> {
        Cursor::new(Box::new(std::iter::empty()))
    }

    /// The previous entry at `path`, which must not come before any path asked for earlier.
    pub fn find(&mut self, path: &str) -> Result<Option<Entry>, CursorError> {
        loop {
            let Some(entry) = &self.pending else {
                match self.read()? {
                    Some(entry) => self.pending = Some(entry),
                    None => return Ok(None),
                }
                continue;
            };
            match entry.path.as_str().cmp(path) {
                std::cmp::Ordering::Less => {
                    self.skipped = true;
                    self.pending = None;
                }
                std::cmp::Ordering::Equal => return Ok(self.pending.take()),
                std::cmp::Ordering::Greater => return Ok(None),
            }
        }
    }

    /// Reads what is left (so a damaged manifest is found, even at its end) and says whether
    /// any previous entry was not asked for: a file that went away.
    pub fn finish(mut self) -> Result<bool, CursorError> {
        if self.pending.take().is_some() {
            self.skipped = true;
        }
        while self.read()?.is_some() {
            self.skipped = true;
        }
        Ok(self.skipped)
    }

    fn read(&mut self) -> Result<Option<Entry>, CursorError> {
        let Some(entry) = self.stream.next() else {
            return Ok(None);
        };
        let entry = entry.map_err(CursorError::Manifest)?;
        match &mut self.last {
            Some(last) if entry.path.as_str() <= last.as_str() => {
                return Err(CursorError::Unsorted(Unsorted))
            }
            Some(last) => {
                last.clear();
                last.push_str(&entry.path);
            }
            None => self.last = Some(entry.path.clone()),
        }
        Ok(Some(entry))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::ObjectId;

    fn cursor(paths: &'static [&'static str]) -> Cursor<'static> {
        Cursor::new(Box::new(
            paths.iter().map(|p| Ok(Entry::plain(p, ObjectId([1; 32])))),
        ))
    }

    #[test]
    fn lookups_move_forward_and_tell_what_was_passed_over() {
        let mut all = cursor(&["a", "b", "c"]);
        for path in ["a", "b", "c"] {
            assert_eq!(all.find(path).unwrap().unwrap().path, path);
        }
        assert!(!all.finish().unwrap(), "every entry was asked for");
        let mut gaps = cursor(&["a", "b", "c"]);
        assert!(gaps.find("a0").unwrap().is_none());
        assert!(gaps.find("c").unwrap().is_some());
        assert!(gaps.finish().unwrap(), "b was passed over");
        let mut rest = cursor(&["a", "b"]);
        assert!(rest.find("a").unwrap().is_some());
        assert!(rest.finish().unwrap(), "b was never asked for");
    }

    #[test]
    fn entries_out_of_order_are_found_out() {
        let mut unsorted = cursor(&["b", "a"]);
        assert!(matches!(
            unsorted.find("c"),
            Err(CursorError::Unsorted(Unsorted))
        ));
        let twice = cursor(&["a", "a"]);
        assert!(matches!(twice.finish(), Err(CursorError::Unsorted(_))));
    }
}
