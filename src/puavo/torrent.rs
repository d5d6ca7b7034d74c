//! Single-file BitTorrent metainfo for rdiffs (BEP 3), with the rdiff's own URL as web seed
//! (BEP 19), so a laptop that tries the torrent first can always fall back to this server.
//!
//! The file is deterministic (no creation date): the same delta, URL and trackers give the
//! same bytes, so a rebuild does not store a new object.

use std::io::{self, Read};

use sha1::{Digest, Sha1};

/// Piece size for a file: 256 KiB, doubled until there are at most ~2000 pieces (as
/// mktorrent and transmission-create choose), at most 16 MiB.
pub fn piece_length(size: u64) -> u64 {
    let mut piece = 256 * 1024u64;
    while size / piece > 2000 && piece < 16 * 1024 * 1024 {
        piece *= 2;
    }
    piece
}

/// What goes into a torrent besides the data.
pub struct TorrentInfo<'a> {
    /// The file name in the torrent (the rdiff's name).
    pub name: &'a str,
    /// The rdiff's URL, used as web seed.
    pub web_seed: &'a str,
    /// Tracker announce URLs; the first is `announce`, all are in `announce-list`.
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
        string(&mut out, b"announce-list");
        out.push(b'l');
        for tracker in info.trackers {
            out.push(b'l');
            string(&mut out, tracker.as_bytes());
            out.push(b'e');
        }
        out.push(b'e');
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
    out.push(b'l');
    string(&mut out, info.web_seed.as_bytes());
    out.push(b'e');
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

    #[test]
    fn small_torrent_layout() {
        let data = b"hello";
        let torrent = build(
            &data[..],
            5,
            &TorrentInfo {
                name: "a.rdiff",
                web_seed: "http://h/rdiffs/a.rdiff",
                trackers: &[],
            },
        )
        .unwrap();
        let mut expected = b"d10:created by9:mirrorbox4:infod6:lengthi5e4:name7:a.rdiff12:piece lengthi262144e6:pieces20:".to_vec();
        expected.extend_from_slice(&Sha1::digest(b"hello"));
        expected.extend_from_slice(b"e8:url-listl23:http://h/rdiffs/a.rdiffee");
        assert_eq!(torrent, expected);
    }

    #[test]
    fn size_mismatch_is_an_error() {
        let info = TorrentInfo {
            name: "a",
            web_seed: "u",
            trackers: &[],
        };
        assert!(build(&b"abc"[..], 4, &info).is_err());
    }

    #[test]
    fn piece_sizes_grow_with_the_file() {
        assert_eq!(piece_length(0), 256 * 1024);
        assert_eq!(piece_length(100 << 20), 256 * 1024);
        assert_eq!(piece_length(2 << 30), 2 << 20);
        assert_eq!(piece_length(1 << 40), 16 << 20);
    }
}
