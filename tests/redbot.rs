//! REDbot (https://redbot.org, the HTTP resource linter) against a real mirrorbox: a plain
//! file, ranged requests, a directory listing and the directory redirect. Any note REDbot
//! rates BAD fails the test, whether on the main response or on one of the sub-requests
//! REDbot makes itself (Range, If-None-Match, If-Modified-Since, Accept-Encoding).
//!
//! REDbot is driven by `tests/redbot_check.py`, run with `$MIRRORBOX_PYTHON` (the test
//! script points it at a venv with `pip install redbot`), else `python3`. If REDbot cannot
//! be imported the tests fail: they never skip.

mod common;

use std::process::Command;

use serde_json::Value;

use common::{pattern, Server, Site};

const FILE_LEN: usize = 100 * 1024;

/// A site with a 100 KB package, a text file and a subdirectory, and its running server.
fn serve() -> (Site, Server) {
    let site = Site::new();
    let public = site.public();
    std::fs::write(public.join("tool_1.0_amd64.deb"), pattern(FILE_LEN, 7)).unwrap();
    let text: String = (0..2000).map(|i| format!("line {i}\n")).collect();
    std::fs::write(public.join("README.txt"), text).unwrap();
    std::fs::create_dir_all(public.join("sub")).unwrap();
    std::fs::write(public.join("sub/inner.txt"), b"inner\n").unwrap();
    let server = site.start();
    (site, server)
}

/// Runs REDbot on `url` with extra request `headers`; returns its JSON report.
fn redbot(url: &str, headers: &[&str]) -> Value {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/redbot_check.py");
    let python = common::probe::python();
    let mut command = Command::new(&python);
    command.arg(script).arg(url);
    for header in headers {
        command.arg("--header").arg(header);
    }
    let output = command.output().unwrap_or_else(|e| {
        panic!(
            "cannot run {python} (set MIRRORBOX_PYTHON to a Python with `redbot` installed): {e}"
        )
    });
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stdout = String::from_utf8_lossy(&output.stdout);
    match output.status.code() {
        Some(0) => {}
        Some(3) => panic!(
            "REDbot is not installed for {python}: {stderr}\n\
             create a venv with `python3 -m venv target/pyenv && target/pyenv/bin/pip install redbot` \
             and set MIRRORBOX_PYTHON to its bin/python"
        ),
        _ => panic!(
            "REDbot failed on {url} ({}):\nstderr: {stderr}\nstdout: {stdout}",
            output.status
        ),
    }
    serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("REDbot's report is not JSON ({e}): {stdout}\n{stderr}"))
}

fn str_of(value: &Value) -> &str {
    value.as_str().unwrap_or("")
}

fn status(exchange: &Value) -> u64 {
    exchange["response"]["status"].as_u64().unwrap_or(0)
}

/// A response header's value from an exchange in the report.
fn header<'a>(exchange: &'a Value, name: &str) -> Option<&'a str> {
    exchange["response"]["headers"]
        .as_array()?
        .iter()
        .find(|h| str_of(&h[0]).eq_ignore_ascii_case(name))
        .map(|h| str_of(&h[1]))
}

fn describe_exchange(label: &str, exchange: &Value) -> String {
    let mut out = format!("  {label}:\n");
    let request = &exchange["request"];
    out.push_str(&format!(
        "    > {} {}\n",
        str_of(&request["method"]),
        str_of(&request["uri"])
    ));
    for h in request["headers"].as_array().into_iter().flatten() {
        out.push_str(&format!("    > {}: {}\n", str_of(&h[0]), str_of(&h[1])));
    }
    let response = &exchange["response"];
    out.push_str(&format!(
        "    < {} {}\n",
        status(exchange),
        str_of(&response["phrase"])
    ));
    for h in response["headers"].as_array().into_iter().flatten() {
        out.push_str(&format!("    < {}: {}\n", str_of(&h[0]), str_of(&h[1])));
    }
    out
}

/// Every note in the report, with where it was made: (source, exchange, note).
fn all_notes(report: &Value) -> Vec<(String, &Value, &Value)> {
    let mut out = Vec::new();
    for note in report["notes"].as_array().into_iter().flatten() {
        out.push(("main response".to_string(), &report["exchange"], note));
    }
    for sub in report["subrequests"].as_array().into_iter().flatten() {
        for note in sub["notes"].as_array().into_iter().flatten() {
            let source = format!("{} sub-request", str_of(&sub["check"]));
            out.push((source, &sub["exchange"], note));
        }
    }
    out
}

/// Fails if REDbot rated anything BAD; prints the WARN notes either way.
fn assert_no_bad(what: &str, report: &Value) {
    let notes = all_notes(report);
    assert!(
        !notes.is_empty(),
        "REDbot made no notes at all on {what}, so it did not really check it: {report:#}"
    );
    let mut warnings = String::new();
    for (source, _, note) in notes.iter().filter(|n| str_of(&n.2["level"]) == "WARN") {
        warnings.push_str(&format!(
            "  WARN [{source}] {}: {}\n",
            str_of(&note["id"]),
            str_of(&note["summary"])
        ));
    }
    if !warnings.is_empty() {
        eprintln!("REDbot warnings on {what}:\n{warnings}");
    }
    let bad: Vec<_> = notes
        .iter()
        .filter(|n| str_of(&n.2["level"]) == "BAD")
        .collect();
    if bad.is_empty() {
        return;
    }
    let mut message = format!("REDbot found {} BAD note(s) on {what}:\n", bad.len());
    for (source, exchange, note) in &bad {
        message.push_str(&format!(
            "\nBAD [{source}] {} ({}, subject {:?}): {}\n{}\n",
            str_of(&note["id"]),
            str_of(&note["category"]),
            str_of(&note["subject"]),
            str_of(&note["summary"]),
            str_of(&note["text"])
                .lines()
                .map(|l| format!("    | {l}\n"))
                .collect::<String>(),
        ));
        message.push_str(&describe_exchange("exchange", exchange));
    }
    message.push_str(&format!("\nWARN notes, for information:\n{warnings}"));
    panic!("{message}");
}

fn subrequest<'a>(report: &'a Value, check: &str) -> Option<&'a Value> {
    report["subrequests"]
        .as_array()?
        .iter()
        .find(|s| str_of(&s["check"]) == check)
}

fn has_note(report: &Value, id: &str) -> bool {
    all_notes(report)
        .iter()
        .any(|(_, _, note)| str_of(&note["id"]) == id)
}

#[test]
fn redbot_finds_nothing_bad_with_a_plain_file() {
    let (_site, server) = serve();
    for name in ["tool_1.0_amd64.deb", "README.txt"] {
        let url = server.url(&format!("/files/{name}"));
        let report = redbot(&url, &[]);
        assert_eq!(status(&report["exchange"]), 200, "{url}: {report:#}");
        assert_no_bad(&url, &report);
        // REDbot's own partial content check ran and was satisfied.
        let range = subrequest(&report, "range")
            .unwrap_or_else(|| panic!("REDbot did not check ranges on {url}: {report:#}"));
        assert_eq!(status(&range["exchange"]), 206, "{url}: {range:#}");
        assert!(has_note(&report, "RANGE_CORRECT"), "{url}: {report:#}");
    }
}

#[test]
fn redbot_finds_nothing_bad_with_ranged_requests() {
    let (_site, server) = serve();
    let url = server.url("/files/tool_1.0_amd64.deb");
    let cases = [
        ("bytes=0-99", format!("bytes 0-99/{FILE_LEN}")),
        ("bytes=1000-50999", format!("bytes 1000-50999/{FILE_LEN}")),
        (
            "bytes=-100",
            format!("bytes {}-{}/{FILE_LEN}", FILE_LEN - 100, FILE_LEN - 1),
        ),
    ];
    for (range, content_range) in cases {
        let report = redbot(&url, &[&format!("Range: {range}")]);
        let what = format!("{url} with Range: {range}");
        assert_eq!(status(&report["exchange"]), 206, "{what}: {report:#}");
        assert_eq!(
            header(&report["exchange"], "content-range"),
            Some(content_range.as_str()),
            "{what}: {report:#}"
        );
        assert_no_bad(&what, &report);
    }
}

#[test]
fn redbot_finds_nothing_bad_with_a_directory_listing() {
    let (_site, server) = serve();
    for path in ["/files/", "/files/sub/"] {
        let url = server.url(path);
        let report = redbot(&url, &[]);
        assert_eq!(status(&report["exchange"]), 200, "{url}: {report:#}");
        assert!(
            header(&report["exchange"], "content-type").is_some_and(|t| t.starts_with("text/html")),
            "{url}: {report:#}"
        );
        assert_no_bad(&url, &report);
    }
}

#[test]
fn redbot_finds_nothing_bad_with_the_directory_redirect() {
    let (_site, server) = serve();
    let url = server.url("/files/sub");
    let report = redbot(&url, &[]);
    let code = status(&report["exchange"]);
    assert!((300..400).contains(&code), "{url}: {report:#}");
    assert!(
        header(&report["exchange"], "location").is_some_and(|l| l.ends_with("sub/")),
        "{url}: {report:#}"
    );
    assert_no_bad(&url, &report);
}
