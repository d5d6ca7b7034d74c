//! A full disk during a sync: the sync fails with a clear message, the previous snapshot
//! stays served, the objects the failed sync stored are removed again (the disk does not stay
//! full until someone runs `gc`), no temp file is left behind, and the status page reports
//! the failure even though its run record could not be written.
//!
//! The data directory is a small tmpfs (mounting needs root; the test says so and skips
//! otherwise). The disk runs out of inodes rather than bytes: that makes the point where
//! space runs out exact, so the run record's write fails for certain, as it does on a disk
//! that is really full.

mod common;

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{curl, pattern, status_code, Site};

/// A tmpfs mounted on a folder, unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path) -> Option<Tmpfs> {
        std::fs::create_dir_all(dir).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=32m", "tmpfs"])
            .arg(dir)
            .output()
            .ok()?;
        out.status.success().then(|| Tmpfs(dir.to_path_buf()))
    }

    /// Inodes in use on the filesystem.
    fn inodes_used(&self) -> u64 {
        let out = Command::new("df")
            .args(["--output=iused"])
            .arg(&self.0)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .last()
            .and_then(|l| l.trim().parse().ok())
            .expect("df prints the inodes in use")
    }

    /// Leaves room for exactly `spare` more files or folders.
    fn limit_inodes(&self, spare: u64) {
        let limit = self.inodes_used() + spare;
        let status = Command::new("mount")
            .args(["-o", &format!("remount,nr_inodes={limit}")])
            .arg(&self.0)
            .status()
            .unwrap();
        assert!(status.success(), "remount with nr_inodes={limit}");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Files under `dir` (recursively): their paths and total bytes.
fn files(dir: &Path) -> (Vec<PathBuf>, u64) {
    let mut found = Vec::new();
    let mut bytes = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            let meta = entry.metadata().unwrap();
            if meta.is_dir() {
                stack.push(entry.path());
            } else {
                bytes += meta.len();
                found.push(entry.path());
            }
        }
    }
    (found, bytes)
}

fn source_status(server: &common::Server) -> serde_json::Value {
    let out = curl(&[&server.url("/.status.json")]);
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    status["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "site")
        .cloned()
        .unwrap()
}

#[test]
fn a_sync_that_fills_the_disk_cleans_up_and_is_reported() {
    let site = Site::new();
    // Copies, so every new file needs a new inode in the data directory.
    site.store_keys("ingest = \"copy\"");
    let Some(disk) = Tmpfs::mount(&site.data()) else {
        eprintln!("SKIPPED: cannot mount a tmpfs for the data directory (needs root)");
        return;
    };
    std::fs::write(site.public().join("old.bin"), pattern(1 << 20, 1)).unwrap();
    let server = site.start();
    assert_eq!(status_code(&server.url("/files/old.bin")), "200");
    assert_eq!(source_status(&server)["state"], "ok");
    let objects = site.data().join("objects/sha256");
    // Every fan-out folder exists already, so from here each new object costs one inode:
    // the space runs out exactly when a file is created.
    for byte in 0..=255u8 {
        std::fs::create_dir_all(objects.join(format!("{byte:02x}"))).unwrap();
    }
    let (objects_before, bytes_before) = files(&objects);
    let (_, data_bytes_before) = files(&site.data());

    // Five new files, room for two.
    for n in 0..5 {
        std::fs::write(
            site.public().join(format!("new-{n}.bin")),
            pattern(1 << 20, 100 + n),
        )
        .unwrap();
    }
    disk.limit_inodes(2);
    let out = site.cli(&["sync", "site"]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("site: FAILED"), "{text}");
    assert!(text.contains("No space left on device"), "{text}");
    assert!(
        text.contains("disk of the data directory is full"),
        "{text}"
    );

    // The previous snapshot is still served, and nothing of the new one.
    assert_eq!(status_code(&server.url("/files/old.bin")), "200");
    assert_eq!(status_code(&server.url("/files/new-0.bin")), "404");

    // The objects the failed sync stored are gone again.
    let (objects_after, bytes_after) = files(&objects);
    assert_eq!(
        objects_after.len(),
        objects_before.len(),
        "objects left by the failed sync: {:?}",
        objects_after
            .iter()
            .filter(|o| !objects_before.contains(o))
            .collect::<Vec<_>>()
    );
    assert_eq!(bytes_after, bytes_before);
    let (leftovers, data_bytes_after) = files(&site.data());
    assert!(
        data_bytes_after <= data_bytes_before + 64 * 1024,
        "data dir holds {data_bytes_after} bytes, {data_bytes_before} before the sync"
    );
    let temp: Vec<_> = leftovers
        .iter()
        .filter(|p| {
            p.extension().is_some_and(|e| e == "tmp")
                || p.parent() == Some(site.data().join("tmp").as_path())
        })
        .collect();
    assert!(temp.is_empty(), "temp files left behind: {temp:?}");

    // The record could not be written (the disk was full right then): the file still
    // says ok, and the status page must not.
    let on_disk: serde_json::Value =
        serde_json::from_slice(&std::fs::read(site.data().join("refs/site/state.json")).unwrap())
            .unwrap();
    assert_eq!(on_disk["ok"], true, "the record write was expected to fail");
    let status = source_status(&server);
    assert_eq!(status["state"], "failed", "{status}");
    assert_eq!(status["last_run"]["ok"], false, "{status}");
    let error = status["last_run"]["error"].as_str().unwrap_or_default();
    assert!(error.contains("No space left on device"), "{status}");
    assert!(
        error.contains("run record could not be written"),
        "{status}"
    );
    let metrics = String::from_utf8_lossy(&curl(&[&server.url("/.metrics")]).stdout).into_owned();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("mirrorbox_sync_last_ok{")
                && l.contains("\"site\"")
                && l.ends_with(" 0")),
        "{metrics}"
    );
    drop(server);
}

/// An upstream that accepts connections and answers nothing until `hang_up`: a sync of it
/// stays in flight as long as the test wants.
struct SilentUpstream {
    addr: std::net::SocketAddr,
    held: Arc<Mutex<Vec<TcpStream>>>,
}

impl SilentUpstream {
    fn start() -> SilentUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let held: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let sink = held.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { break };
                let _ = stream.set_read_timeout(Some(Duration::from_millis(50)));
                let _ = stream.read(&mut [0u8; 1024]);
                sink.lock().unwrap().push(stream);
            }
        });
        SilentUpstream { addr, held }
    }

    /// Closes every connection: the sync waiting on one fails.
    fn hang_up(&self) {
        for stream in self.held.lock().unwrap().drain(..) {
            let _ = stream.shutdown(std::net::Shutdown::Both);
        }
    }
}

#[test]
fn objects_of_a_failed_sync_wait_for_syncs_in_flight_and_the_cli_does_not() {
    let upstream = SilentUpstream::start();
    let site = Site::with(
        false,
        &format!(
            "[[source]]\nid = \"slow\"\nkind = \"files\"\nmount = \"/slow\"\nurl = \"http://{}/\"\nretries = 0\n",
            upstream.addr
        ),
    );
    site.store_keys("ingest = \"copy\"");
    let Some(disk) = Tmpfs::mount(&site.data()) else {
        eprintln!("SKIPPED: cannot mount a tmpfs for the data directory (needs root)");
        return;
    };
    std::fs::write(site.public().join("old.bin"), pattern(100_000, 1)).unwrap();
    assert!(site.cli(&["sync", "site"]).status.success());
    let server = site.start_without_sync();
    let objects = site.data().join("objects/sha256");
    for byte in 0..=255u8 {
        std::fs::create_dir_all(objects.join(format!("{byte:02x}"))).unwrap();
    }
    let (before, _) = files(&objects);

    // A sync of `slow` is in flight (it may be storing objects no ref names yet) ...
    let slow = site.spawn_cli(&["sync", "slow"]);
    assert!(
        server.log_contains("sync started source=\"slow\""),
        "{}",
        server.log_text()
    );
    // ... when a sync of `site` runs out of space after storing two objects.
    for n in 0..5 {
        std::fs::write(
            site.public().join(format!("new-{n}.bin")),
            pattern(100_000, 100 + n),
        )
        .unwrap();
    }
    disk.limit_inodes(2);
    let started = Instant::now();
    let out = site.cli(&["sync", "site"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the failed sync waited for the other one"
    );
    // Its objects stay while the other sync runs: GC must not race a sync in flight.
    let (during, _) = files(&objects);
    assert_eq!(during.len(), before.len() + 2, "{during:?}");

    // When the last sync in flight ends, they go.
    upstream.hang_up();
    let slow = slow.wait_with_output().unwrap();
    assert_eq!(slow.status.code(), Some(1), "{slow:?}");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (now, _) = files(&objects);
        if now.len() == before.len() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "objects of the failed sync are still there: {} > {}\n{}",
            now.len(),
            before.len(),
            server.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(status_code(&server.url("/files/old.bin")), "200");
    drop(server);
}
