//! Reading a Puavo image (a squashfs file) without mounting it: a sanity check of the
//! superblock, and the puavo-conf definitions that `meta/<series>.json` carries.
//!
//! Mounting needs root and loop devices; an image server has neither to spare. The filesystem
//! is read with the `backhand` crate; xz and zstd blocks are decoded by pure-Rust decoders
//! (`lzma-rs`, `ruzstd`) so that building needs nothing beyond the Rust toolchain.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use backhand::compression::{CompressionAction, Compressor, DefaultCompressor};
use backhand::kind::Kind;
use backhand::{BackhandError, FilesystemCompressor, FilesystemReader, InnerNode, SuperBlock};
use serde_json::{Map, Value};

/// Where an image keeps its puavo-conf parameter definitions.
pub const DEFINITIONS_DIR: &str = "/usr/share/puavo-conf/definitions";

/// Why an image cannot be used at all (its series fails).
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("cannot read {path}: {source}")]
    Unreadable {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is not a squashfs image: {why}")]
    NotSquashfs { path: String, why: String },
    #[error(
        "{path} is truncated: its squashfs superblock says {expected} bytes, the file has {actual}"
    )]
    Truncated {
        path: String,
        expected: u64,
        actual: u64,
    },
}

/// Checks what can be checked cheaply: the file opens, starts with a version 4 squashfs
/// superblock, and is at least as long as the superblock says the filesystem is. A copy cut
/// short by a full disk or an interrupted transfer fails here instead of reaching laptops.
pub fn check_image(path: &Path) -> Result<(), ImageError> {
    let name = path.display().to_string();
    let unreadable = |source| ImageError::Unreadable {
        path: name.clone(),
        source,
    };
    let mut file = File::open(path).map_err(unreadable)?;
    let actual = file.metadata().map_err(unreadable)?.len();
    let mut superblock = [0u8; 96];
    let mut filled = 0;
    while filled < superblock.len() {
        match file.read(&mut superblock[filled..]).map_err(unreadable)? {
            0 => break,
            n => filled += n,
        }
    }
    let not = |why: &str| ImageError::NotSquashfs {
        path: name.clone(),
        why: why.to_string(),
    };
    if filled < superblock.len() {
        return Err(not("shorter than a superblock"));
    }
    if &superblock[0..4] != b"hsqs" {
        return Err(not("no squashfs magic at the start"));
    }
    let major = u16::from_le_bytes([superblock[28], superblock[29]]);
    if major != 4 {
        return Err(not(&format!("squashfs version {major}, expected 4")));
    }
    let mut used = [0u8; 8];
    used.copy_from_slice(&superblock[40..48]);
    let expected = u64::from_le_bytes(used);
    if expected > actual {
        return Err(ImageError::Truncated {
            path: name,
            expected,
            actual,
        });
    }
    // Reading the end proves the whole length is really there (sparse holes read as zeros,
    // but an I/O error on a bad disk shows here).
    let tail = expected.saturating_sub(1);
    file.seek(SeekFrom::Start(tail)).map_err(unreadable)?;
    let mut byte = [0u8; 1];
    file.read_exact(&mut byte).map_err(unreadable)?;
    Ok(())
}

/// The image's puavo-conf definitions: every `*.json` file of [`DEFINITIONS_DIR`] (name
/// order) parsed as a JSON object, merged into one object, as puavo-os's make-rdiffs does
/// when it mounts the image. As there, a key defined in two files is an error (within one
/// file the last value wins, as with any JSON parser), an image without the folder has no
/// definitions, and every error is a reason to publish nothing for the image's series: a
/// meta file without the image's parameters would silently reset them on every laptop.
pub fn puavo_conf(path: &Path) -> Result<Map<String, Value>, String> {
    let file = File::open(path).map_err(|e| format!("cannot open: {e}"))?;
    let reader = BufReader::with_capacity(128 * 1024, file);
    let kind = Kind::new_v4(&PURE_RUST);
    let filesystem = FilesystemReader::from_reader_with_offset_and_kind(reader, 0, kind)
        .map_err(|e| format!("cannot read the squashfs filesystem: {e}"))?;
    let mut files: Vec<(String, &backhand::SquashfsFileReader)> = Vec::new();
    let prefix = Path::new(DEFINITIONS_DIR);
    let mut found_dir = false;
    for node in filesystem.files() {
        if node.fullpath == prefix {
            found_dir = true;
        }
        let Ok(rest) = node.fullpath.strip_prefix(prefix) else {
            continue;
        };
        let Some(name) = rest.to_str() else { continue };
        if name.contains('/') || !name.ends_with(".json") {
            continue;
        }
        if let InnerNode::File(file) = &node.inner {
            files.push((name.to_string(), file));
        }
    }
    if !found_dir {
        return Ok(Map::new());
    }
    files.sort_by(|a, b| a.0.cmp(&b.0));
    let mut merged = Map::new();
    // Which file defined each key, to name both files of a duplicate.
    let mut defined_in: std::collections::HashMap<String, String> = Default::default();
    for (name, file) in files {
        let mut bytes = Vec::new();
        filesystem
            .file(file)
            .reader()
            .read_to_end(&mut bytes)
            .map_err(|e| format!("cannot read {DEFINITIONS_DIR}/{name}: {e}"))?;
        let value: Value = serde_json::from_slice(&bytes)
            .map_err(|e| format!("{DEFINITIONS_DIR}/{name} is not JSON: {e}"))?;
        match value {
            Value::Object(object) => {
                // puavo-os refuses an image that defines a parameter twice; so do we.
                for (key, definition) in object {
                    if let Some(first) = defined_in.get(&key) {
                        return Err(format!(
                            "duplicate puavo-conf key `{key}`: defined in {DEFINITIONS_DIR}/{first} and again in {DEFINITIONS_DIR}/{name}"
                        ));
                    }
                    defined_in.insert(key.clone(), name.clone());
                    merged.insert(key, definition);
                }
            }
            _ => return Err(format!("{DEFINITIONS_DIR}/{name} is not a JSON object")),
        }
    }
    Ok(merged)
}

/// gzip, lz4 and uncompressed blocks go to backhand's own decoders (pure Rust); xz and zstd
/// to pure-Rust decoders here instead of backhand's C-library bindings.
struct PureRustDecompressor;

static PURE_RUST: PureRustDecompressor = PureRustDecompressor;

impl CompressionAction for PureRustDecompressor {
    type Error = BackhandError;
    type Compressor = Compressor;
    type FilesystemCompressor = FilesystemCompressor;
    type SuperBlock = SuperBlock;

    fn decompress(
        &self,
        bytes: &[u8],
        out: &mut Vec<u8>,
        compressor: Compressor,
    ) -> Result<(), BackhandError> {
        match compressor {
            Compressor::Xz => {
                let mut input = bytes;
                lzma_rs::xz_decompress(&mut input, out)
                    .map_err(|_| BackhandError::CorruptedOrInvalidSquashfs)
            }
            Compressor::Zstd => {
                let mut decoder = ruzstd::decoding::StreamingDecoder::new(bytes)
                    .map_err(|_| BackhandError::CorruptedOrInvalidSquashfs)?;
                decoder
                    .read_to_end(out)
                    .map(|_| ())
                    .map_err(|_| BackhandError::CorruptedOrInvalidSquashfs)
            }
            other => DefaultCompressor.decompress(bytes, out, other),
        }
    }

    fn compress(
        &self,
        _bytes: &[u8],
        _fc: FilesystemCompressor,
        _block_size: u32,
    ) -> Result<Vec<u8>, BackhandError> {
        // Images are only ever read here.
        Err(BackhandError::UnsupportedCompression(
            "writing squashfs".into(),
        ))
    }
}
