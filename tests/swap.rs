//! Atomic swaps: clients download continuously while the source is re-published many times
//! with changing contents. No request may fail, and every body must be exactly one
//! snapshot's version of that file, never a mix.

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use common::{pattern, sha256_hex, Client, Site};

const FILES: [(&str, usize); 3] = [
    ("small.txt", 3_000),
    ("medium.bin", 200_000),
    ("large.bin", 1_500_000),
];

fn content(name: &str, size: usize, version: u64) -> Vec<u8> {
    let seed = version * 1000 + name.len() as u64;
    let mut data = pattern(size + version as usize * 17, seed);
    data[..name.len()].copy_from_slice(name.as_bytes());
    data
}

/// Replaces a file the way careful tools do: write a new file, rename it over the old one.
fn replace(path: &std::path::Path, data: &[u8]) {
    let tmp = path.with_extension("partial");
    std::fs::write(&tmp, data).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[test]
fn clients_see_whole_snapshots_across_twenty_republishes() {
    let site = Site::new();
    let mut expected: HashMap<&str, HashSet<String>> = HashMap::new();
    for (name, size) in FILES {
        let data = content(name, size, 0);
        expected.entry(name).or_default().insert(sha256_hex(&data));
        replace(&site.public().join(name), &data);
    }
    let server = site.start();
    let stop = Arc::new(AtomicBool::new(false));
    let seen: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let failures: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut clients = Vec::new();
    for worker in 0..3 {
        let (stop, seen, failures) = (stop.clone(), seen.clone(), failures.clone());
        let addr = server.http;
        clients.push(std::thread::spawn(move || {
            let mut client = Client::connect(addr).unwrap();
            let mut n = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let (name, _) = FILES[(n + worker) % FILES.len()];
                n += 1;
                match client.get(&format!("/files/{name}")) {
                    Ok((200, _, body)) => seen
                        .lock()
                        .unwrap()
                        .push((name.to_string(), sha256_hex(&body))),
                    Ok((status, _, _)) => failures
                        .lock()
                        .unwrap()
                        .push(format!("{name}: HTTP {status}")),
                    Err(e) => {
                        failures.lock().unwrap().push(format!("{name}: {e}"));
                        client = Client::connect(addr).unwrap();
                    }
                }
            }
            n
        }));
    }
    let publishes = 22;
    for version in 1..=publishes {
        for (name, size) in FILES {
            let data = content(name, size, version);
            expected.entry(name).or_default().insert(sha256_hex(&data));
            replace(&site.public().join(name), &data);
        }
        let out = site.cli(&["sync"]);
        assert!(
            out.status.success(),
            "sync {version}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("published"),
            "{out:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(30));
    }
    std::thread::sleep(std::time::Duration::from_millis(200));
    stop.store(true, Ordering::Relaxed);
    let requests: usize = clients.into_iter().map(|c| c.join().unwrap()).sum();
    let failures = failures.lock().unwrap();
    assert!(
        failures.is_empty(),
        "{} failed requests: {:?}\n{}",
        failures.len(),
        &failures[..failures.len().min(10)],
        server.log_text()
    );
    let seen = seen.lock().unwrap();
    assert!(requests > 100, "only {requests} requests made");
    let mut versions_seen = HashSet::new();
    for (name, hash) in seen.iter() {
        assert!(
            expected[name.as_str()].contains(hash),
            "{name}: body matches no snapshot"
        );
        versions_seen.insert(hash.clone());
    }
    // The clients really saw the content change many times.
    assert!(
        versions_seen.len() > 20,
        "only {} distinct bodies seen",
        versions_seen.len()
    );
    // And the latest snapshot is what is served now.
    let mut client = Client::connect(server.http).unwrap();
    for (name, size) in FILES {
        let (status, _, body) = client.get(&format!("/files/{name}")).unwrap();
        assert_eq!(status, 200);
        assert_eq!(body, content(name, size, publishes));
    }
}
