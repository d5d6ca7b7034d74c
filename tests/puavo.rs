//! Puavo pieces with the real tools: every delta mirrorbox makes is applied with librsync's
//! `rdiff patch` and must rebuild the target byte for byte (squashfs images from mksquashfs
//! with files changed, removed and added; synthetic data with inserts, deletes and shifts);
//! CKSUMS lines equal what coreutils `cksum` prints.

mod common;

use std::path::Path;
use std::process::Command;

use common::pattern;

fn rdiff_patch_rebuilds(old: &Path, new: &Path, block: usize) -> (u64, u64) {
    let dir = tempfile::tempdir().unwrap();
    let delta = dir.path().join("delta");
    let out = Command::new(common::BIN)
        .args(["-q", "rdiff", "--block-size", &block.to_string()])
        .arg(old)
        .arg(new)
        .arg(&delta)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let rebuilt = dir.path().join("rebuilt");
    let patch = Command::new("rdiff")
        .arg("patch")
        .arg(old)
        .arg(&delta)
        .arg(&rebuilt)
        .output()
        .expect("rdiff (Debian package rdiff)");
    assert!(
        patch.status.success(),
        "rdiff patch: {}",
        String::from_utf8_lossy(&patch.stderr)
    );
    assert!(
        std::fs::read(&rebuilt).unwrap() == std::fs::read(new).unwrap(),
        "rdiff patch did not rebuild {}",
        new.display()
    );
    // And rdiff's own delta, for size.
    let sig = dir.path().join("sig");
    let theirs = dir.path().join("theirs");
    assert!(Command::new("rdiff")
        .args(["--block-size", &block.to_string(), "signature"])
        .arg(old)
        .arg(&sig)
        .status()
        .unwrap()
        .success());
    assert!(Command::new("rdiff")
        .arg("delta")
        .arg(&sig)
        .arg(new)
        .arg(&theirs)
        .status()
        .unwrap()
        .success());
    (
        std::fs::metadata(&delta).unwrap().len(),
        std::fs::metadata(&theirs).unwrap().len(),
    )
}

#[test]
fn deltas_of_synthetic_edits_apply_with_real_rdiff() {
    let dir = tempfile::tempdir().unwrap();
    let base = pattern(6_000_000, 11);
    let mut cases: Vec<(&str, Vec<u8>)> = Vec::new();
    let mut inserted = base.clone();
    for at in [10usize, 100_000, 3_000_001, 5_999_000] {
        inserted.splice(at..at, pattern(333 + at % 1000, at as u64));
    }
    cases.push(("inserts", inserted));
    let mut deleted = base.clone();
    deleted.drain(4_000_000..4_100_007);
    deleted.drain(17..1_017);
    cases.push(("deletes", deleted));
    let mut shifted = base[1..].to_vec();
    shifted.extend_from_slice(&base[..1]);
    cases.push(("shift by one", shifted));
    let mut moved = base[3_000_000..].to_vec();
    moved.extend_from_slice(&base[..3_000_000]);
    cases.push(("halves swapped", moved));
    cases.push(("unrelated", pattern(2_000_000, 99)));
    cases.push(("empty", Vec::new()));
    cases.push(("same", base.clone()));
    let old = dir.path().join("old");
    std::fs::write(&old, &base).unwrap();
    for (name, data) in cases {
        let new = dir.path().join(name.replace(' ', "-"));
        std::fs::write(&new, &data).unwrap();
        let (ours, theirs) = rdiff_patch_rebuilds(&old, &new, 128);
        assert!(
            ours as f64 <= theirs as f64 * 1.05 + 64.0,
            "{name}: delta {ours} vs rdiff {theirs}"
        );
    }
    // An empty old image.
    let empty = dir.path().join("empty-old");
    std::fs::write(&empty, b"").unwrap();
    rdiff_patch_rebuilds(&empty, &old, 128);
}

#[test]
fn deltas_of_squashfs_images_apply_with_real_rdiff() {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("v1");
    for i in 0..60 {
        let sub = tree.join(format!("dir{}", i % 7));
        std::fs::create_dir_all(&sub).unwrap();
        let text: String = (0..(200 + i * 37))
            .map(|n| format!("line {n} of file {i}\n"))
            .collect();
        std::fs::write(sub.join(format!("file{i}.txt")), text).unwrap();
        std::fs::write(
            sub.join(format!("blob{i}.bin")),
            pattern(20_000 + i * 1000, i as u64),
        )
        .unwrap();
    }
    let v2 = dir.path().join("v2");
    let copy = Command::new("cp")
        .args(["-a"])
        .arg(&tree)
        .arg(&v2)
        .status()
        .unwrap();
    assert!(copy.success());
    // Changed, removed, added.
    for i in (0..60).step_by(9) {
        let file = v2
            .join(format!("dir{}", i % 7))
            .join(format!("file{i}.txt"));
        let mut text = std::fs::read_to_string(&file).unwrap();
        text.insert_str(text.len() / 2, "an inserted line\n");
        std::fs::write(&file, text).unwrap();
    }
    std::fs::remove_file(v2.join("dir3/blob3.bin")).unwrap();
    std::fs::write(v2.join("dir0/new.bin"), pattern(123_456, 777)).unwrap();
    let mut images = Vec::new();
    for (name, source) in [("v1.img", &tree), ("v2.img", &v2)] {
        let image = dir.path().join(name);
        let out = Command::new("mksquashfs")
            .arg(source)
            .arg(&image)
            .args(["-noappend", "-quiet", "-no-progress"])
            .output()
            .expect("mksquashfs (squashfs-tools)");
        assert!(out.status.success(), "{out:?}");
        images.push(image);
    }
    let (ours, theirs) = rdiff_patch_rebuilds(&images[0], &images[1], 128);
    assert!(
        ours as f64 <= theirs as f64 * 1.05,
        "delta {ours} vs rdiff {theirs}"
    );
    // Downgrades too (puavo-os builds rdiffs in both directions).
    rdiff_patch_rebuilds(&images[1], &images[0], 128);
    // Other block sizes.
    rdiff_patch_rebuilds(&images[0], &images[1], 2048);
}

#[test]
fn cksum_lines_equal_coreutils() {
    let dir = tempfile::tempdir().unwrap();
    for (name, len) in [
        ("empty.img", 0usize),
        ("one.img", 1),
        ("odd.img", 65_537),
        ("big.img", 3_000_003),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, pattern(len, len as u64)).unwrap();
        let theirs = Command::new("cksum")
            .arg(name)
            .current_dir(dir.path())
            .output()
            .unwrap();
        let (crc, length) =
            mirrorbox::puavo::cksum::cksum(std::fs::File::open(&path).unwrap()).unwrap();
        assert_eq!(
            mirrorbox::puavo::cksum::line(crc, length, name),
            String::from_utf8(theirs.stdout).unwrap()
        );
    }
}
