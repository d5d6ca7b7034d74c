//! The librsync delta wire format: the commands a scan finds, encoded (see the module's
//! documentation for the bytes), literals read from the new image as they are written.

use std::io::{self, Write};

use super::source::{Source, READ_CHUNK};
use super::{Stats, DELTA_MAGIC};

/// One step of rebuilding the new image.
pub(super) enum Command {
    /// `len` bytes of the old image from `start`.
    Copy { start: u64, len: u64 },
    /// A range of the new image sent as is.
    Literal { start: u64, end: u64 },
}

/// The fewest bytes (1, 2, 4 or 8) that hold `value`, as a class 0..=3.
fn class(value: u64) -> (u8, usize) {
    match value {
        0..=0xff => (0, 1),
        0x100..=0xffff => (1, 2),
        0x1_0000..=0xffff_ffff => (2, 4),
        _ => (3, 8),
    }
}

fn write_number(out: &mut impl Write, value: u64, bytes: usize) -> io::Result<()> {
    out.write_all(&value.to_be_bytes()[8 - bytes..])
}

/// Literal commands carry at most this much each (any length is valid; this bounds buffers).
const LITERAL_PIECE: u64 = READ_CHUNK as u64;

fn write_commands(
    out: &mut impl Write,
    new: &dyn Source,
    commands: &[Command],
    buf: &mut [u8],
    stats: &mut Stats,
) -> io::Result<()> {
    for command in commands {
        match *command {
            Command::Copy { start, len } => {
                let (start_class, start_bytes) = class(start);
                let (len_class, len_bytes) = class(len);
                out.write_all(&[0x45 + 4 * start_class + len_class])?;
                write_number(out, start, start_bytes)?;
                write_number(out, len, len_bytes)?;
                stats.copied += len;
                stats.commands += 1;
                stats.delta_bytes += 1 + (start_bytes + len_bytes) as u64;
            }
            Command::Literal { start, end } => {
                let mut at = start;
                while at < end {
                    let len = (end - at).min(LITERAL_PIECE);
                    if len <= 64 {
                        out.write_all(&[len as u8])?;
                        stats.delta_bytes += 1;
                    } else {
                        let (len_class, len_bytes) = class(len);
                        out.write_all(&[0x41 + len_class])?;
                        write_number(out, len, len_bytes)?;
                        stats.delta_bytes += 1 + len_bytes as u64;
                    }
                    let bytes = &mut buf[..len as usize];
                    new.read_at(at, bytes)?;
                    out.write_all(bytes)?;
                    stats.literal += len;
                    stats.commands += 1;
                    stats.delta_bytes += len;
                    at += len;
                }
            }
        }
    }
    Ok(())
}

/// Writes a whole delta: the magic number, the commands of `segments` segments in order
/// (`commands_of(j)` waits for segment `j`'s), the end.
pub(super) fn write_delta(
    out: &mut impl Write,
    new: &dyn Source,
    segments: usize,
    mut commands_of: impl FnMut(usize) -> io::Result<Vec<Command>>,
) -> io::Result<Stats> {
    let mut stats = Stats::default();
    out.write_all(&DELTA_MAGIC.to_be_bytes())?;
    stats.delta_bytes += 4;
    let mut buf = vec![0; LITERAL_PIECE as usize];
    for j in 0..segments {
        let commands = commands_of(j)?;
        write_commands(out, new, &commands, &mut buf, &mut stats)?;
    }
    out.write_all(&[0])?;
    stats.delta_bytes += 1;
    Ok(stats)
}
