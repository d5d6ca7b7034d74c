//! apt indices as real archive tools write them: every compressed form the `xz`, `gzip`,
//! `bzip2` and `zstd` binaries produce (several blocks, concatenated streams, stream padding,
//! skippable frames, long windows) decodes exactly like the tool's own `-dc`; stanzas without
//! SHA256 and Releases without Date are refused with a message that says what and where.

mod common;

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use common::aptclient::AptClient;
use common::aptrepo::{AptRepo, Layout, Pkg};
use common::upstream::Upstream;
use common::Site;
use mirrorbox::sync::apt::index::{self, Filter};

/// Runs `program args` with `input` on stdin; returns stdout (the tool must succeed).
fn tool(program: &str, args: &[&str], input: &[u8]) -> Vec<u8> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A Packages text of `count` stanzas (a few hundred KB for 2000: enough for many xz blocks).
fn packages_text(count: usize) -> Vec<u8> {
    let mut text = String::new();
    for n in 0..count {
        let sha = common::sha256_hex(n.to_string().as_bytes());
        text.push_str(&format!(
            "Package: pkg{n}\nVersion: 1.{n}\nArchitecture: amd64\nSection: utils\nFilename: pool/main/p/pkg{n}/pkg{n}_1.{n}_amd64.deb\nSize: {}\nMD5sum: {}\nSHA256: {sha}\nDescription: package number {n}\n a longer description line {sha}\n\n",
            1000 + n,
            &sha[..32],
        ));
    }
    text.into_bytes()
}

/// Decodes `data` as mirrorbox decodes an index called `name`.
fn decode(name: &str, data: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    index::decompressed(name, data)?.read_to_end(&mut out)?;
    Ok(out)
}

/// Each form must be one the tool's own decoder accepts and gives back `plain` from; then
/// mirrorbox must decode it to the same bytes, and parse it to the same files as `plain`.
fn check_forms(name: &str, program: &str, plain: &[u8], forms: &[(&str, Vec<u8>)]) {
    let expected = index::parse("Packages", plain, &Filter::default()).unwrap();
    for (form, data) in forms {
        let reference = tool(program, &["-dc"], data);
        assert!(reference == plain, "{program} -dc of {form} differs");
        let got = decode(name, data).unwrap_or_else(|e| panic!("{form}: {e}"));
        assert!(
            got == reference,
            "{form}: decoded text differs from {program} -dc"
        );
        let parsed = index::parse(name, data.as_slice(), &Filter::default()).unwrap();
        assert_eq!(parsed, expected, "{form}");
    }
}

fn concat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

#[test]
fn xz_with_blocks_padding_and_concatenated_streams_decodes_like_xz_dc() {
    let plain = packages_text(2000);
    let (head, tail) = plain.split_at(plain.len() / 3);
    let one = tool("xz", &["-c"], head);
    let two = tool("xz", &["-c"], tail);
    let forms = [
        ("xz", tool("xz", &["-c"], &plain)),
        (
            "xz -T2 --block-size",
            tool("xz", &["-c", "-T2", "--block-size=64KiB"], &plain),
        ),
        (
            "xz -T1 --block-size",
            tool("xz", &["-c", "-T1", "--block-size=50000"], &plain),
        ),
        ("xz -T0", tool("xz", &["-c", "-T0", "-1"], &plain)),
        (
            "xz --check=sha256",
            tool("xz", &["-c", "--check=sha256"], &plain),
        ),
        (
            "xz --check=none",
            tool("xz", &["-c", "--check=none"], &plain),
        ),
        (
            "xz --check=crc32 -e",
            tool("xz", &["-c", "--check=crc32", "-e"], &plain),
        ),
        ("two streams", concat(&[&one, &two])),
        ("stream padding", concat(&[&one, &[0; 4], &two, &[0; 8]])),
        (
            "padding and blocks",
            concat(&[
                &tool("xz", &["-c", "--block-size=10000"], head),
                &[0; 12],
                &two,
            ]),
        ),
    ];
    check_forms("main/binary-amd64/Packages.xz", "xz", &plain, &forms);
}

#[test]
fn gzip_members_decode_like_gzip_dc() {
    let plain = packages_text(800);
    let (head, tail) = plain.split_at(plain.len() / 2);
    let forms = [
        ("gzip -9n", tool("gzip", &["-9nc"], &plain)),
        ("gzip -1", tool("gzip", &["-1c"], &plain)),
        (
            "two members",
            concat(&[&tool("gzip", &["-c"], head), &tool("gzip", &["-c"], tail)]),
        ),
    ];
    check_forms("Packages.gz", "gzip", &plain, &forms);
}

#[test]
fn bzip2_streams_decode_like_bzip2_dc() {
    let plain = packages_text(1500);
    let (head, tail) = plain.split_at(plain.len() / 2);
    let forms = [
        ("bzip2", tool("bzip2", &["-c"], &plain)),
        // 100 kB blocks: several blocks in one stream.
        ("bzip2 -1", tool("bzip2", &["-1c"], &plain)),
        // What pbzip2/lbzip2 and `cat` write: one stream after another.
        (
            "two streams",
            concat(&[
                &tool("bzip2", &["-1c"], head),
                &tool("bzip2", &["-c"], tail),
            ]),
        ),
    ];
    check_forms("Packages.bz2", "bzip2", &plain, &forms);
}

/// A zstd skippable frame (magic 0x184D2A5?, little-endian length, then that many bytes).
fn skippable(payload: &[u8]) -> Vec<u8> {
    let mut frame = 0x184D_2A53u32.to_le_bytes().to_vec();
    frame.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    frame.extend_from_slice(payload);
    frame
}

#[test]
fn zstd_frames_long_windows_and_skippable_frames_decode_like_zstd_dc() {
    let plain = packages_text(1500);
    let (head, tail) = plain.split_at(plain.len() / 2);
    let one = tool("zstd", &["-q", "-c"], head);
    let two = tool("zstd", &["-q", "-c", "--no-check"], tail);
    let forms = [
        ("zstd", tool("zstd", &["-q", "-c"], &plain)),
        // From a pipe the size is unknown: the frame asks for the whole 128 MiB window.
        (
            "zstd -T0 --long",
            tool("zstd", &["-q", "-c", "-T0", "--long"], &plain),
        ),
        (
            "zstd -19 --long=27",
            tool("zstd", &["-q", "-c", "-19", "--long=27"], &plain),
        ),
        ("two frames", concat(&[&one, &two])),
        (
            "skippable frames",
            concat(&[
                &skippable(b"meta"),
                &one,
                &skippable(&[7; 100]),
                &two,
                &skippable(b""),
            ]),
        ),
    ];
    check_forms("Packages.zst", "zstd", &plain, &forms);
}

#[test]
fn damaged_compressed_indices_are_errors_naming_the_format() {
    let plain = packages_text(300);
    for (name, program) in [
        ("Packages.xz", "xz"),
        ("Packages.gz", "gzip"),
        ("Packages.bz2", "bzip2"),
        ("Packages.zst", "zstd"),
    ] {
        let data = tool(program, &["-c"], &plain);
        for (what, bad) in [
            ("truncated", data[..data.len() / 2].to_vec()),
            ("trailing garbage", concat(&[&data, b"garbage!"])),
        ] {
            let error = decode(name, &bad).expect_err(&format!("{name} {what}"));
            assert!(
                error.to_string().contains(program),
                "{name} {what}: {error}"
            );
        }
    }
}

/// Counts the bytes read through it.
struct Counting<'a> {
    inner: &'a [u8],
    read: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Read for Counting<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        Ok(n)
    }
}

/// Debian's Packages is about 100 MB: the decoders must hand out text while most of the
/// compressed file is still unread, never decode it whole first.
#[test]
fn every_decoder_streams() {
    let plain = packages_text(20_000);
    for (name, program, args) in [
        ("Packages.xz", "xz", &["-c", "-1", "-T2"][..]),
        ("Packages.gz", "gzip", &["-c"][..]),
        ("Packages.bz2", "bzip2", &["-c"][..]),
        ("Packages.zst", "zstd", &["-q", "-c", "--long", "-T0"][..]),
    ] {
        let data = tool(program, args, &plain);
        let read = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let input = Counting {
            inner: &data,
            read: read.clone(),
        };
        let mut decoder = index::decompressed(name, input).unwrap();
        let mut first = vec![0; 64 * 1024];
        decoder.read_exact(&mut first).unwrap();
        assert!(first == plain[..first.len()], "{name}");
        let consumed = read.load(std::sync::atomic::Ordering::Relaxed);
        assert!(
            consumed < data.len() / 4,
            "{name}: {consumed} of {} compressed bytes read for the first 64 KiB",
            data.len()
        );
    }
}

// ---- End to end: generated upstreams, mirrorbox syncs, real apt-get. ----

fn packages() -> Vec<Pkg> {
    vec![
        Pkg::new("alpha", "1.0", 20_000),
        Pkg::new("bravo", "2.1", 150_000),
        Pkg::new("charlie", "0.3", 3_000),
    ]
}

/// A site with one apt source `deb` at `/debian` for the sources.list `line`.
fn apt_site(line: &str, key: &Path, extra: &str) -> Site {
    Site::with(false, &common::apt_source(line, key, extra))
}

/// `mirrorbox sync deb` without a server: (success, output).
fn sync(site: &Site) -> (bool, String) {
    site.cli_text(&["sync", "deb"])
}

/// Writes a new Release for `dists/<suite>` with apt-ftparchive (it lists whatever index
/// files are there now), lets `edit` change its text, and signs it.
fn release(repo: &AptRepo, suite: &str, edit: impl Fn(String) -> String) {
    let dist = repo.root().join("dists").join(suite);
    for name in ["Release", "InRelease", "Release.gpg"] {
        let _ = std::fs::remove_file(dist.join(name));
    }
    let out = Command::new("apt-ftparchive")
        .current_dir(repo.root())
        .args([
            "-o",
            &format!("APT::FTPArchive::Release::Suite={suite}"),
            "-o",
            &format!("APT::FTPArchive::Release::Codename={suite}"),
            "-o",
            "APT::FTPArchive::Release::Origin=Test",
            "-o",
            "APT::FTPArchive::Release::Architectures=amd64",
            "-o",
            "APT::FTPArchive::Release::Components=main",
            "release",
            &format!("dists/{suite}"),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = edit(String::from_utf8(out.stdout).unwrap());
    let path = dist.join("Release");
    std::fs::write(&path, text).unwrap();
    repo.gpg.sign_release(&path);
}

/// Makes `Packages.xz` (written as `xz`) the only binary-amd64 index of `suite` on the
/// upstream, as Debian does: the Release lists the uncompressed `Packages` (for its hash)
/// but only the compressed file exists.
fn publish_only_packages_xz(repo: &AptRepo, suite: &str, plain: &[u8], xz: &[u8]) {
    let dir = repo.root().join(format!("dists/{suite}/main/binary-amd64"));
    let _ = std::fs::remove_file(dir.join("Packages.gz"));
    std::fs::write(dir.join("Packages"), plain).unwrap();
    std::fs::write(dir.join("Packages.xz"), xz).unwrap();
    release(repo, suite, |r| r);
    std::fs::remove_file(dir.join("Packages")).unwrap();
}

fn binary_packages_text(repo: &AptRepo, suite: &str) -> Vec<u8> {
    std::fs::read(
        repo.root()
            .join(format!("dists/{suite}/main/binary-amd64/Packages")),
    )
    .unwrap()
}

/// The mirror of a generated suite whose only binary index is `xz` (the suite's Packages
/// compressed some way), synced; returns the upstream, the site and its server.
fn mirror_with_packages_xz(
    repo: &AptRepo,
    compress: impl Fn(&[u8]) -> Vec<u8>,
) -> (Upstream, Site, common::Server) {
    repo.suite("bookworm", "main", &packages(), false, None);
    let text = binary_packages_text(repo, "bookworm");
    let xz = compress(&text);
    assert!(tool("xz", &["-dc"], &xz) == text);
    publish_only_packages_xz(repo, "bookworm", &text, &xz);
    let upstream = Upstream::serve(repo.root());
    let line = format!("deb {} bookworm main", upstream.url("/"));
    let site = apt_site(&line, &repo.key(), "");
    let server = site.start_without_sync();
    let (ok, out) = sync(&site);
    assert!(ok, "{out}\n{}", server.log_text());
    (upstream, site, server)
}

#[test]
fn an_upstream_with_only_a_multi_block_padded_packages_xz_is_mirrored_for_apt_get() {
    let repo = AptRepo::new(Layout::Debian);
    // Blocks of 256 bytes (several per stanza), written by two threads, then stream padding.
    let (_upstream, _site, server) = mirror_with_packages_xz(&repo, |text| {
        concat(&[
            &tool("xz", &["-c", "-T2", "--block-size=256"], text),
            &[0; 8],
        ])
    });
    let client = AptClient::new(&format!(
        "deb [signed-by={}] {} bookworm main",
        repo.key().display(),
        server.url("/debian")
    ));
    let (ok, out) = client.run(&["update"]);
    assert!(ok, "apt-get update: {out}");
    let (ok, out) = client.run(&[
        "install",
        "--download-only",
        "-y",
        "alpha",
        "bravo",
        "charlie",
    ]);
    assert!(ok, "apt-get install: {out}");
    for pkg in packages() {
        let got = std::fs::read(client.archive(&pkg.file_name())).unwrap();
        let want =
            std::fs::read(repo.root().join(repo.deb_path("bookworm", "main", &pkg))).unwrap();
        assert!(got == want, "{}", pkg.file_name());
    }
}

/// apt's own decoder reads only the first stream of a Packages.xz, so no apt client can use
/// an upstream that concatenates streams; the mirror still reads every stream and carries
/// every package the index names, byte for byte.
#[test]
fn an_upstream_with_only_a_concatenated_packages_xz_is_mirrored_whole() {
    let repo = AptRepo::new(Layout::Debian);
    let (_upstream, _site, server) = mirror_with_packages_xz(&repo, |text| {
        let cut = text.windows(2).position(|w| w == b"\n\n").unwrap() + 2;
        concat(&[
            &tool("xz", &["-c", "--block-size=300"], &text[..cut]),
            &[0; 4],
            &tool("xz", &["-c", "-T2"], &text[cut..]),
        ])
    });
    for pkg in packages() {
        let path = repo.deb_path("bookworm", "main", &pkg);
        let out = common::curl(&["-sf", &server.url(&format!("/debian/{path}"))]);
        assert!(out.status.success(), "{path}: {out:?}");
        assert!(
            out.stdout == std::fs::read(repo.root().join(&path)).unwrap(),
            "{path}"
        );
    }
}

#[test]
fn packages_stanzas_without_sha256_are_refused_naming_the_index_and_package() {
    let repo = AptRepo::new(Layout::Debian);
    repo.suite("bookworm", "main", &packages(), false, None);
    let text = String::from_utf8(binary_packages_text(&repo, "bookworm")).unwrap();
    // bravo keeps only its MD5sum and SHA1 lines.
    let weak: String = text
        .split("\n\n")
        .map(|stanza| {
            if stanza.starts_with("Package: bravo\n") {
                stanza
                    .lines()
                    .filter(|l| !l.starts_with("SHA256:") && !l.starts_with("SHA512:"))
                    .collect::<Vec<_>>()
                    .join("\n")
            } else {
                stanza.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n\n");
    assert!(weak.contains("MD5sum:") && weak.matches("SHA256:").count() == 2);
    let xz = tool("xz", &["-c"], weak.as_bytes());
    publish_only_packages_xz(&repo, "bookworm", weak.as_bytes(), &xz);
    let upstream = Upstream::serve(repo.root());
    let site = apt_site(
        &format!("deb {} bookworm main", upstream.url("/")),
        &repo.key(),
        "",
    );
    let (ok, out) = sync(&site);
    assert!(!ok, "{out}");
    for needle in [
        "dists/bookworm/main/binary-amd64/Packages.xz",
        "bravo",
        "SHA256",
        "MD5sum",
    ] {
        assert!(out.contains(needle), "`{needle}` missing from: {out}");
    }
    assert!(!upstream.log().iter().any(|(p, _)| p.ends_with(".deb")));
}

#[test]
fn sources_stanzas_without_checksums_sha256_are_refused_naming_the_index_and_package() {
    let repo = AptRepo::new(Layout::Debian);
    repo.suite("bookworm", "main", &packages(), false, None);
    let dir = repo.root().join("dists/bookworm/main/source");
    std::fs::create_dir_all(&dir).unwrap();
    let sources = "Package: good\nDirectory: pool/main/g/good\nFiles:\n 0123456789abcdef0123456789abcdef 5 good_1.dsc\nChecksums-Sha256:\n 4444444444444444444444444444444444444444444444444444444444444444 5 good_1.dsc\n\nPackage: legacy\nDirectory: pool/main/l/legacy\nFiles:\n 0123456789abcdef0123456789abcdef 5 legacy_1.dsc\nChecksums-Sha1:\n 0123456789abcdef0123456789abcdef01234567 5 legacy_1.dsc\n";
    std::fs::write(
        dir.join("Sources.gz"),
        tool("gzip", &["-9nc"], sources.as_bytes()),
    )
    .unwrap();
    release(&repo, "bookworm", |r| r);
    let upstream = Upstream::serve(repo.root());
    let line = format!("deb-src {} bookworm main", upstream.url("/"));
    let site = apt_site(&line, &repo.key(), "");
    let (ok, out) = sync(&site);
    assert!(!ok, "{out}");
    for needle in [
        "dists/bookworm/main/source/Sources.gz",
        "legacy",
        "Checksums-Sha256",
    ] {
        assert!(out.contains(needle), "`{needle}` missing from: {out}");
    }
}

/// A change to a generated Release's text.
type EditRelease = Box<dyn Fn(String) -> String>;

fn without_date(release: String) -> String {
    release
        .lines()
        .filter(|l| !l.starts_with("Date:"))
        .map(|l| format!("{l}\n"))
        .collect()
}

fn with_date(date: &'static str) -> impl Fn(String) -> String {
    move |release| {
        release
            .lines()
            .map(|l| match l.starts_with("Date:") {
                true => format!("Date: {date}\n"),
                false => format!("{l}\n"),
            })
            .collect()
    }
}

#[test]
fn a_release_without_date_needs_allow_missing_date() {
    let repo = AptRepo::new(Layout::Debian);
    repo.suite("bookworm", "main", &packages(), false, None);
    release(&repo, "bookworm", without_date);
    assert!(
        !std::fs::read_to_string(repo.root().join("dists/bookworm/InRelease"))
            .unwrap()
            .contains("Date:")
    );
    let upstream = Upstream::serve(repo.root());
    let line = format!("deb {} bookworm main", upstream.url("/"));
    let strict = apt_site(&line, &repo.key(), "");
    let (ok, out) = sync(&strict);
    assert!(!ok, "{out}");
    assert!(
        out.contains("Date") && out.contains("allow_missing_date = true"),
        "{out}"
    );
    let lenient = apt_site(&line, &repo.key(), "allow_missing_date = true");
    let server = lenient.start_without_sync();
    let (ok, out) = sync(&lenient);
    assert!(ok, "{out}");
    let client = AptClient::new(&format!(
        "deb [signed-by={}] {} bookworm main",
        repo.key().display(),
        server.url("/debian")
    ));
    // apt itself refuses a Release without Date unless told otherwise: the mirror serves it
    // as the upstream signed it.
    let (_, out) = client.run(&["-o", "Acquire::Check-Date=false", "update"]);
    assert!(!out.contains("E: "), "{out}");
}

#[test]
fn replay_protection_applies_only_between_two_dated_releases() {
    let repo = AptRepo::new(Layout::Debian);
    repo.suite("bookworm", "main", &packages(), false, None);
    let upstream = Upstream::serve(repo.root());
    let line = format!("deb {} bookworm main", upstream.url("/"));
    let site = apt_site(&line, &repo.key(), "allow_missing_date = true");
    let steps: [(&str, EditRelease, bool); 4] = [
        (
            "dated 2024-02-10",
            Box::new(with_date("Sat, 10 Feb 2024 10:00:00 UTC")),
            true,
        ),
        (
            "older, dated 2024-01-01",
            Box::new(with_date("Mon, 01 Jan 2024 10:00:00 UTC")),
            false,
        ),
        ("undated", Box::new(without_date), true),
        (
            "dated 2023-12-01 after an undated one",
            Box::new(with_date("Fri, 01 Dec 2023 10:00:00 UTC")),
            true,
        ),
    ];
    for (step, (what, edit, accepted)) in steps.into_iter().enumerate() {
        release(&repo, "bookworm", edit);
        // The upstream answers If-Modified-Since by mtime, in seconds: step it explicitly so
        // that each new InRelease is seen as modified.
        let inrelease = std::fs::File::options()
            .append(true)
            .open(repo.root().join("dists/bookworm/InRelease"))
            .unwrap();
        let mtime = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
        inrelease
            .set_modified(mtime + std::time::Duration::from_secs(100 * step as u64))
            .unwrap();
        let (ok, out) = sync(&site);
        assert_eq!(ok, accepted, "{what}: {out}");
        if !accepted {
            assert!(out.contains("older"), "{what}: {out}");
        }
    }
}
