//! The arrays the index lives in: zeroed, in anonymous mappings that ask for huge pages, and
//! split into pieces that threads fill side by side.

use std::io;

use bytemuck::Pod;

/// A zeroed array in an anonymous mapping that asks for huge pages. The index is read at
/// random; with 4 KiB pages nearly every lookup would also miss the TLB, and a page walk
/// under a hypervisor is several more trips to memory.
///
/// Elements are `Pod` (plain integers): any bytes, zeros included, are a valid value, so the
/// mapping's bytes are viewed as `T`s without copying.
pub(super) struct Table<T: Pod> {
    /// Exactly `len * size_of::<T>()` bytes, checked in [`Table::zeroed`] to view as `T`s;
    /// `None` for an empty table (a mapping cannot be empty).
    map: Option<memmap2::MmapMut>,
    _type: std::marker::PhantomData<T>,
}

impl<T: Pod> Table<T> {
    pub(super) fn zeroed(len: usize) -> io::Result<Table<T>> {
        let map = if len == 0 {
            None
        } else {
            let bytes = len.checked_mul(std::mem::size_of::<T>()).ok_or_else(|| {
                io::Error::new(io::ErrorKind::OutOfMemory, "index table too large")
            })?;
            let mut map = memmap2::MmapMut::map_anon(bytes).map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("allocating {bytes} bytes for the delta index: {e}"),
                )
            })?;
            // A speed-up, not a need: without huge pages the table works the same.
            #[cfg(target_os = "linux")]
            let _ = map.advise(memmap2::Advice::HugePage);
            // Mappings start on a page, so this holds; checked once here so that a surprise
            // is an error rather than a panic in the middle of a lookup.
            let viewed = bytemuck::try_cast_slice_mut::<u8, T>(&mut map)
                .map(|elements| elements.len())
                .map_err(|e| {
                    io::Error::other(format!(
                        "the delta index's mapping cannot hold {len} elements of {} bytes: {e}",
                        std::mem::size_of::<T>()
                    ))
                })?;
            if viewed != len {
                return Err(io::Error::other(format!(
                    "the delta index's mapping holds {viewed} elements, not {len}"
                )));
            }
            Some(map)
        };
        Ok(Table {
            map,
            _type: std::marker::PhantomData,
        })
    }
}

impl<T: Pod> std::ops::Deref for Table<T> {
    type Target = [T];

    #[inline]
    fn deref(&self) -> &[T] {
        match &self.map {
            // Cannot panic: `zeroed` checked the same view of the same mapping.
            Some(map) => bytemuck::cast_slice(map),
            None => &[],
        }
    }
}

impl<T: Pod> std::ops::DerefMut for Table<T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut [T] {
        match &mut self.map {
            // Cannot panic: as in `deref`.
            Some(map) => bytemuck::cast_slice_mut(map),
            None => &mut [],
        }
    }
}

/// Splits `slice` at the given ascending offsets (the last one at most its length).
pub(super) fn split_at_offsets<'a, T>(
    mut slice: &'a mut [T],
    offsets: &[usize],
) -> Vec<&'a mut [T]> {
    let mut pieces = Vec::with_capacity(offsets.len() + 1);
    let mut at = 0;
    for &offset in offsets {
        let (piece, rest) = slice.split_at_mut(offset - at);
        pieces.push(piece);
        slice = rest;
        at = offset;
    }
    pieces.push(slice);
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_zeroed_and_hold_their_length() {
        for len in [0, 1, 7, 4096, 100_003] {
            let mut table = Table::<u64>::zeroed(len).unwrap();
            assert_eq!(table.len(), len);
            assert!(table.iter().all(|&x| x == 0));
            if let Some(last) = table.last_mut() {
                *last = u64::MAX;
            }
            assert_eq!(table.iter().filter(|&&x| x == u64::MAX).count(), len.min(1));
            assert_eq!(Table::<u16>::zeroed(len).unwrap().len(), len);
        }
        let err = Table::<u64>::zeroed(usize::MAX).err().unwrap();
        assert_eq!(err.kind(), io::ErrorKind::OutOfMemory);
    }

    #[test]
    fn splits_at_offsets() {
        let mut numbers: Vec<u32> = (0..10).collect();
        let pieces = split_at_offsets(&mut numbers, &[0, 3, 3, 10]);
        let lens: Vec<usize> = pieces.iter().map(|p| p.len()).collect();
        assert_eq!(lens, [0, 3, 0, 7, 0]);
    }
}
