//! Single-file BitTorrent metainfo for rdiffs (BEP 3), with the rdiff's own URL as web seed
//! (BEP 19), so a laptop that tries the torrent first can always fall back to this server.
//!
//! The info dictionary is byte for byte what a Puavo bootserver's `mktorrent -w <url> <file>`
//! (mktorrent 1.1) writes for the same file: keys `length`, `name`, `piece length` (always
//! 256 KiB) and `pieces`, no `private` flag. Only the info dictionary counts for the infohash,
//! so laptops seeding an rdiff fetched from a bootserver and from this server find each other
//! as peers of one swarm. The rest follows mktorrent too: one web seed is written as a
//! `url-list` string; `announce` (and `announce-list`, one tier per tracker, when there are
//! several) only when trackers are given.
//!
//! The file is deterministic (no creation date, unlike mktorrent): the same delta, URL and
//! trackers give the same bytes, so a rebuild does not store a new object.

use std::io::{self, Read};

use sha1::{Digest, Sha1};

/// mktorrent 1.1's piece size without `-l`: 2^18 bytes.
pub const PIECE_LENGTH: u64 = 256 * 1024;

/// Piece size for a file of `size` bytes: always [`PIECE_LENGTH`], whatever the size, as
/// mktorrent 1.1 chooses (its automatic sizing came later); a different piece size would
/// give a different infohash than the bootservers' torrents of the same rdiff.
pub fn piece_length(_size: u64) -> u64 {
    PIECE_LENGTH
}

/// What goes into a torrent besides the data.
pub struct TorrentInfo<'a> {
    /// The file name in the torrent (the rdiff's name).
    pub name: &'a str,
    /// The rdiff's URL, used as web seed.
    pub web_seed: &'a str,
    /// Tracker announce URLs; the first is `announce`; when there are several, each is a
    /// tier of `announce-list` (as `mktorrent -a <first> -a <second>` writes them).
    pub trackers: &'a [String],
}

/// Reads `data` (of `size` bytes) once and returns the bencoded torrent.
pub fn build(mut data: impl Read, size: u64, info: &TorrentInfo) -> io::Result<Vec<u8>> {
    let piece = piece_length(size) as usize;
    let mut pieces = Vec::with_capacity((size / piece as u64 + 1) as usize * 20);
    let mut buffer = vec![0u8; piece];
    let mut total = 0u64;
    loop {
        let mut filled = 0;
        while filled < piece {
            match data.read(&mut buffer[filled..])? {
                0 => break,
                n => filled += n,
            }
        }
        if filled == 0 {
            break;
        }
        total += filled as u64;
        pieces.extend_from_slice(&Sha1::digest(&buffer[..filled]));
        if filled < piece {
            break;
        }
    }
    if total != size {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("expected {size} bytes for the torrent, read {total}"),
        ));
    }
    // Keys of a bencoded dictionary are in byte order.
    let mut out = Vec::new();
    out.push(b'd');
    if let Some(first) = info.trackers.first() {
        string(&mut out, b"announce");
        string(&mut out, first.as_bytes());
        if info.trackers.len() > 1 {
            string(&mut out, b"announce-list");
            out.push(b'l');
            for tracker in info.trackers {
                out.push(b'l');
                string(&mut out, tracker.as_bytes());
                out.push(b'e');
            }
            out.push(b'e');
        }
    }
    string(&mut out, b"created by");
    string(&mut out, b"mirrorbox");
    string(&mut out, b"info");
    out.push(b'd');
    string(&mut out, b"length");
    integer(&mut out, size);
    string(&mut out, b"name");
    string(&mut out, info.name.as_bytes());
    string(&mut out, b"piece length");
    integer(&mut out, piece as u64);
    string(&mut out, b"pieces");
    string(&mut out, &pieces);
    out.push(b'e');
    string(&mut out, b"url-list");
    string(&mut out, info.web_seed.as_bytes());
    out.push(b'e');
    Ok(out)
}

fn string(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(bytes.len().to_string().as_bytes());
    out.push(b':');
    out.extend_from_slice(bytes);
}

fn integer(out: &mut Vec<u8>, value: u64) {
    out.push(b'i');
    out.extend_from_slice(value.to_string().as_bytes());
    out.push(b'e');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info<'a>(trackers: &'a [String]) -> TorrentInfo<'a> {
        TorrentInfo {
            name: "a.rdiff",
            web_seed: "http://h/rdiffs/a.rdiff",
            trackers,
        }
    }

    #[test]
    fn small_torrent_layout() {
        let torrent = build(&b"hello"[..], 5, &info(&[])).unwrap();
        let mut expected = b"d10:created by9:mirrorbox4:infod6:lengthi5e4:name7:a.rdiff12:piece lengthi262144e6:pieces20:".to_vec();
        expected.extend_from_slice(&Sha1::digest(b"hello"));
        expected.extend_from_slice(b"e8:url-list23:http://h/rdiffs/a.rdiffe");
        assert_eq!(torrent, expected);
    }

    #[test]
    fn one_tracker_is_announce_only_several_are_tiers() {
        let one = ["http://t/a".to_string()];
        let torrent = build(&b""[..], 0, &info(&one)).unwrap();
        assert!(torrent.starts_with(b"d8:announce10:http://t/a10:created by"));
        let two = ["http://t/a".to_string(), "udp://u:1/a".to_string()];
        let torrent = build(&b""[..], 0, &info(&two)).unwrap();
        assert!(torrent.starts_with(
            b"d8:announce10:http://t/a13:announce-listll10:http://t/ael11:udp://u:1/aee10:created by"
        ));
    }

    #[test]
    fn size_mismatch_is_an_error() {
        assert!(build(&b"abc"[..], 4, &info(&[])).is_err());
    }

    #[test]
    fn pieces_stay_256_kib_for_any_size() {
        for size in [0, 100 << 20, 2 << 30, 1 << 40] {
            assert_eq!(piece_length(size), 256 * 1024);
        }
    }
}
