//! The binary manifest format: random manifests read back equal, a cut or damaged manifest is
//! an error naming it, what a Debian-sized snapshot costs on disk, and a data directory of an
//! older mirrorbox (JSON manifests) that keeps working across the change (`data_dir`).

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use mirrorbox::manifest::binary::{Compression, Header, ManifestReader, ManifestWriter};
use mirrorbox::manifest::{save_entries, Entry, Manifest, Origin, Selection, StoredEntries};
use mirrorbox::store::{IngestMode, ObjectId, Stamp, Store, StoreOptions};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn store(dir: &Path) -> Store {
    let options = StoreOptions {
        fsync: false,
        ingest: IngestMode::Copy,
    };
    Store::open(dir, &options).unwrap()
}

fn encode(manifest: &Manifest, compression: Compression) -> Vec<u8> {
    let mut out = ManifestWriter::new(Vec::new(), &manifest.header(), compression).unwrap();
    for entry in &manifest.entries {
        out.push(entry).unwrap();
    }
    out.finish().unwrap()
}

/// Decodes a whole manifest from bytes, or the first error.
fn decode(bytes: &[u8]) -> Result<(Header, Vec<Entry>), String> {
    let reader = ManifestReader::new(bytes).map_err(|e| e.to_string())?;
    let header = reader.header().clone();
    let entries = reader
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    Ok((header, entries))
}

/// Random manifests with what breaks codecs: shared and unshared prefixes, multi-byte
/// characters, empty and long names, extreme numbers, every combination of optional fields.
struct Generator(StdRng);

impl Generator {
    fn number(&mut self) -> i64 {
        match self.0.gen_range(0..6) {
            0 => 0,
            1 => i64::MIN,
            2 => i64::MAX,
            3 => self.0.gen(),
            4 => self.0.gen_range(-1000..1000),
            _ => 1_700_000_000 + self.0.gen_range(0..100_000_000),
        }
    }

    fn unsigned(&mut self) -> u64 {
        match self.0.gen_range(0..4) {
            0 => 0,
            1 => u64::MAX,
            2 => self.0.gen(),
            _ => self.0.gen_range(0..100_000),
        }
    }

    fn option<T>(&mut self, value: impl FnOnce(&mut Self) -> T) -> Option<T> {
        self.0.gen_bool(0.5).then(|| value(self))
    }

    fn path(&mut self) -> String {
        const PARTS: &[&str] = &[
            "pool", "main", "a", "ä", "日本", "x", "-", "_", ".deb", "1.0",
        ];
        let segments = self.0.gen_range(1..6);
        let mut path = String::new();
        for i in 0..segments {
            if i > 0 {
                path.push('/');
            }
            for _ in 0..self.0.gen_range(1..5) {
                path.push_str(PARTS[self.0.gen_range(0..PARTS.len())]);
            }
        }
        if self.0.gen_ratio(1, 50) {
            path.push_str(&"long".repeat(self.0.gen_range(100..2000)));
        }
        path
    }

    fn entry(&mut self) -> Entry {
        Entry {
            path: self.path(),
            object: ObjectId(self.0.gen()),
            size: self.unsigned(),
            mtime: self.number(),
            stamp: self.option(|g| Stamp {
                mtime_ns: g.number(),
                ctime_ns: g.option(Generator::number),
                inode: g.option(Generator::unsigned),
            }),
            origin: self.option(|g| Origin {
                size: g.unsigned(),
                mtime_ns: g.number(),
                inode: g.unsigned(),
            }),
            immutable: self.0.gen(),
        }
    }

    fn manifest(&mut self, max_entries: usize) -> Manifest {
        let count = self.0.gen_range(0..=max_entries);
        let entries = (0..count).map(|_| self.entry()).collect();
        let source = format!("s{}ä", self.0.gen::<u16>());
        let mut manifest = Manifest::new(&source, self.number(), entries);
        manifest.immutability_recorded = self.0.gen();
        manifest.selection = self.option(|g| Selection {
            description: g.path(),
            left_out: (0..g.0.gen_range(0..3)).map(|_| g.path()).collect(),
            unserved: Vec::new(),
        });
        manifest
    }
}

#[test]
fn random_manifests_read_back_equal_in_every_encoding() {
    let mut generator = Generator(StdRng::seed_from_u64(12));
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    for round in 0..300 {
        let manifest = generator.manifest(if round % 10 == 0 { 2000 } else { 40 });
        for compression in [Compression::None, Compression::Zstd] {
            let bytes = encode(&manifest, compression);
            let (header, entries) = decode(&bytes).unwrap();
            assert_eq!(header, manifest.header(), "round {round}");
            assert_eq!(entries, manifest.entries, "round {round}");
        }
        let id = manifest.save(&store).unwrap();
        assert_eq!(
            Manifest::load(&store, &id).unwrap(),
            manifest,
            "round {round}"
        );
        let streamed: Vec<Entry> = StoredEntries::open(&store, &id)
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(streamed, manifest.entries, "round {round}");
    }
}

/// A snapshot id is the hash of the manifest's bytes, so equal manifests must give equal
/// bytes, whichever way they are saved.
#[test]
fn equal_manifests_are_stored_under_one_id() {
    let mut generator = Generator(StdRng::seed_from_u64(5));
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let manifest = generator.manifest(300);
    let id = manifest.save(&store).unwrap();
    assert_eq!(manifest.clone().save(&store).unwrap(), id);
    let streamed = save_entries(&store, &manifest.header(), manifest.entries.iter()).unwrap();
    assert_eq!(streamed, id);
    let other = generator.manifest(300);
    assert_ne!(other.save(&store).unwrap(), id);
}

#[test]
fn what_the_reader_would_refuse_is_not_written() {
    let mut manifest = Manifest::new(&"s".repeat(5000), 0, Vec::new());
    assert!(ManifestWriter::new(Vec::new(), &manifest.header(), Compression::Zstd).is_err());
    manifest.source = "s".into();
    let mut entry = Generator(StdRng::seed_from_u64(1)).entry();
    entry.path = "p".repeat(70_000);
    manifest.entries = vec![entry];
    let mut out = ManifestWriter::new(Vec::new(), &manifest.header(), Compression::None).unwrap();
    assert!(out.push(&manifest.entries[0]).is_err());
}

#[test]
fn every_cut_of_a_manifest_is_an_error_never_a_shorter_manifest() {
    let mut generator = Generator(StdRng::seed_from_u64(7));
    let mut manifest = generator.manifest(0);
    manifest.entries = (0..200).map(|_| generator.entry()).collect();
    manifest = Manifest::new(&manifest.source, manifest.created, manifest.entries);
    for compression in [Compression::None, Compression::Zstd] {
        let bytes = encode(&manifest, compression);
        assert!(decode(&bytes).is_ok());
        for cut in (0..bytes.len()).step_by(3) {
            let result = decode(&bytes[..cut]);
            assert!(
                result.is_err(),
                "{compression:?}: cut at {cut} of {}",
                bytes.len()
            );
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode(&longer).is_err(), "{compression:?}: a byte too many");
    }
}

/// Random damage to the bytes themselves (flips, insertions, deletions) gives a manifest or
/// an error, never a panic (the store's hash check then rejects what decodes).
#[test]
fn randomly_damaged_bytes_never_panic_the_reader() {
    let mut generator = Generator(StdRng::seed_from_u64(99));
    let mut manifest = generator.manifest(0);
    manifest.entries = (0..100).map(|_| generator.entry()).collect();
    manifest = Manifest::new("s", 0, manifest.entries);
    let rng = &mut generator.0;
    for compression in [Compression::None, Compression::Zstd] {
        let good = encode(&manifest, compression);
        let mut errors = 0;
        for _ in 0..3000 {
            let mut bytes = good.clone();
            for _ in 0..rng.gen_range(1..4) {
                let at = rng.gen_range(0..bytes.len());
                match rng.gen_range(0..3) {
                    0 => bytes[at] ^= 1 << rng.gen_range(0..8),
                    1 => bytes.insert(at, rng.gen()),
                    _ => {
                        bytes.remove(at);
                    }
                }
            }
            let decoded = std::panic::catch_unwind(|| decode(&bytes));
            match decoded {
                Ok(Ok(_)) => {}
                Ok(Err(_)) => errors += 1,
                Err(_) => panic!("{compression:?}: the reader panicked on {bytes:?}"),
            }
        }
        assert!(
            errors > 1500,
            "{compression:?}: only {errors} of 3000 rejected"
        );
    }
}

/// The stored object of manifest `id`.
fn object_file(store: &Store, id: &ObjectId) -> PathBuf {
    store.object_path(id)
}

#[test]
fn a_damaged_or_truncated_manifest_object_is_an_error_naming_it() {
    let mut generator = Generator(StdRng::seed_from_u64(3));
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let mut manifest = generator.manifest(0);
    manifest.entries = (0..500).map(|_| generator.entry()).collect();
    manifest = Manifest::new("s", 0, manifest.entries);
    let id = manifest.save(&store).unwrap();
    let file = object_file(&store, &id);
    let good = std::fs::read(&file).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();

    let mut damages: Vec<(String, Vec<u8>)> = Vec::new();
    for at in (0..good.len())
        .step_by(good.len() / 40 + 1)
        .chain([good.len() - 1])
    {
        let mut bytes = good.clone();
        bytes[at] ^= 0x10;
        damages.push((format!("a bit flipped at {at}"), bytes));
    }
    for cut in [0, 1, 8, good.len() / 2, good.len() - 1] {
        damages.push((format!("cut at {cut}"), good[..cut].to_vec()));
    }
    let mut extended = good.clone();
    extended.extend_from_slice(b"more");
    damages.push(("bytes appended".into(), extended));

    for (what, bytes) in damages {
        std::fs::write(&file, &bytes).unwrap();
        let error = Manifest::load(&store, &id).expect_err(&what).to_string();
        assert!(error.contains(&id.to_hex()), "{what}: {error}");
        assert!(error.contains("damaged"), "{what}: {error}");
        let streamed: Result<Vec<Entry>, _> =
            StoredEntries::open(&store, &id).and_then(|entries| entries.collect());
        assert!(streamed.is_err(), "{what}: streamed");
    }
    std::fs::write(&file, &good).unwrap();
    assert_eq!(Manifest::load(&store, &id).unwrap(), manifest);
}

/// A fast seeded generator (splitmix64) for the large measurement: a cryptographic one
/// takes most of the test's time in a debug build.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, range: std::ops::Range<i64>) -> i64 {
        range.start + (self.next() % (range.end - range.start) as u64) as i64
    }

    fn object(&mut self) -> ObjectId {
        let mut bytes = [0u8; 32];
        for chunk in bytes.chunks_mut(8) {
            chunk.copy_from_slice(&self.next().to_le_bytes());
        }
        ObjectId(bytes)
    }
}

/// `pool/main/<l>/<pkg>/<pkg>_<ver>_<arch>.deb` for `count` files: package names of made-up
/// syllables (with `lib` ones under `libX/`), a few binary packages per source package.
fn debian_like(count: usize, local: bool) -> Manifest {
    const SYLLABLES: &[&str] = &[
        "ba", "con", "de", "fi", "gno", "ker", "li", "mo", "net", "py", "qt", "ru", "sys", "tex",
        "util", "x", "ya", "zen", "perl", "ocaml", "-dev", "-doc", "-common", "3",
    ];
    let mut rng = SplitMix(200);
    let mut entries = Vec::with_capacity(count);
    let mut inode = 1_000_000u64;
    let ctime = 1_760_000_000_000_000_000i64;
    while entries.len() < count {
        let mut name = String::new();
        if rng.below(0..4) == 0 {
            name.push_str("lib");
        }
        for _ in 0..rng.below(2..4) {
            name.push_str(SYLLABLES[rng.below(0..SYLLABLES.len() as i64 - 4) as usize]);
        }
        let dir = if name.starts_with("lib") {
            &name[..4]
        } else {
            &name[..1]
        };
        let version = format!(
            "{}.{}.{}-{}",
            rng.below(0..10),
            rng.below(0..40),
            rng.below(0..20),
            rng.below(1..5)
        );
        for suffix in ["", "-dev", "-doc", "-common"]
            .iter()
            .take(rng.below(1..5) as usize)
        {
            for arch in ["amd64", "arm64", "all"]
                .iter()
                .take(rng.below(1..3) as usize)
            {
                let mtime = 1_600_000_000 + rng.below(0..150_000_000);
                let size = rng.below(1_000..5_000_000) as u64;
                inode += rng.below(1..4) as u64;
                let mtime_ns = mtime * 1_000_000_000 + rng.below(0..1_000_000_000);
                let stamp_ctime = ctime + entries.len() as i64 * 50_000 + rng.below(0..20_000);
                entries.push(Entry {
                    path: format!("pool/main/{dir}/{name}/{name}{suffix}_{version}_{arch}.deb"),
                    object: rng.object(),
                    size,
                    mtime,
                    stamp: local.then_some(Stamp {
                        mtime_ns,
                        ctime_ns: Some(stamp_ctime),
                        inode: Some(inode),
                    }),
                    origin: local.then_some(Origin {
                        size,
                        mtime_ns,
                        inode,
                    }),
                    immutable: !local,
                });
            }
        }
    }
    entries.truncate(count);
    Manifest::new("debian", 1_760_000_000, entries)
}

/// Prints bytes per entry of 200,000 Debian-like paths, as a mirror (apt) and as a `dir`
/// source (origin and stamp recorded), against JSON; the binary form must stay within 64 B.
/// `MANIFEST_ENTRIES=1000000 cargo test --release --test manifests bytes_per_entry -- --nocapture`
/// measures another size.
#[test]
fn bytes_per_entry_of_a_debian_sized_manifest() {
    let count: usize = std::env::var("MANIFEST_ENTRIES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(200_000);
    for (kind, local) in [("apt", false), ("dir", true)] {
        let manifest = debian_like(count, local);
        let json = serde_json::to_vec(&manifest).unwrap().len();
        let plain = encode(&manifest, Compression::None);
        let started = Instant::now();
        let zstd = encode(&manifest, Compression::Zstd);
        let encoded = started.elapsed();
        let started = Instant::now();
        let decoded = decode(&zstd).unwrap().1;
        let decoded_in = started.elapsed();
        let per = |bytes: usize| bytes as f64 / count as f64;
        println!(
            "{kind} manifest of {count} entries: JSON {:.1} B/entry, binary {:.1} B/entry, \
             binary+zstd {:.1} B/entry (target 64); encoded in {encoded:.2?}, decoded in \
             {decoded_in:.2?} (this build's profile)",
            per(json),
            per(plain.len()),
            per(zstd.len())
        );
        assert!(decoded == manifest.entries);
        assert!(
            per(zstd.len()) <= 64.0,
            "{kind}: {:.1} B/entry",
            per(zstd.len())
        );
    }
}

#[path = "manifests/data_dir.rs"]
mod data_dir;
