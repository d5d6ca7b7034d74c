//! The arrays the index lives in: zeroed, in anonymous mappings that ask for huge pages, and
//! split into pieces that threads fill side by side.

use std::io;

/// Integers: any bytes, zeros included, are a valid value.
pub(super) trait Plain: Copy {}
impl Plain for u8 {}
impl Plain for u16 {}
impl Plain for u32 {}
impl Plain for u64 {}

/// A zeroed array in an anonymous mapping that asks for huge pages. The index is read at
/// random; with 4 KiB pages nearly every lookup would also miss the TLB, and a page walk
/// under a hypervisor is several more trips to memory.
pub(super) struct Table<T: Plain> {
    map: Option<memmap2::MmapMut>,
    len: usize,
    _type: std::marker::PhantomData<T>,
}

impl<T: Plain> Table<T> {
    pub(super) fn zeroed(len: usize) -> io::Result<Table<T>> {
        let map = if len == 0 {
            None
        } else {
            let bytes = len.checked_mul(std::mem::size_of::<T>()).ok_or_else(|| {
                io::Error::new(io::ErrorKind::OutOfMemory, "index table too large")
            })?;
            let map = memmap2::MmapMut::map_anon(bytes).map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("allocating {bytes} bytes for the delta index: {e}"),
                )
            })?;
            // A speed-up, not a need: without huge pages the table works the same.
            #[cfg(target_os = "linux")]
            let _ = map.advise(memmap2::Advice::HugePage);
            Some(map)
        };
        Ok(Table {
            map,
            len,
            _type: std::marker::PhantomData,
        })
    }
}

impl<T: Plain> std::ops::Deref for Table<T> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        match &self.map {
            // SAFETY: the mapping is page-aligned, so aligned for `T`, holds `len` `T`s, and
            // any bytes are a valid `T` (`Plain`); the slice borrows `self`, which owns it.
            Some(map) => unsafe { std::slice::from_raw_parts(map.as_ptr().cast::<T>(), self.len) },
            None => &[],
        }
    }
}

impl<T: Plain> std::ops::DerefMut for Table<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        match &mut self.map {
            // SAFETY: as in `deref`, and the borrow of `self` is exclusive.
            Some(map) => unsafe {
                std::slice::from_raw_parts_mut(map.as_mut_ptr().cast::<T>(), self.len)
            },
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
