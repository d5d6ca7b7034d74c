//! The HTTPS listener meets Mozilla's "intermediate" TLS configuration, as sslyze checks it.
//! The only findings allowed are about the certificate a test has to use: self-signed, so no
//! trust path. Needs sslyze in the test venv (`tests/run.sh` installs it); skips with a
//! message otherwise.

mod common;

use std::process::Command;

use common::Site;

/// A certificate like a real one in everything but its issuer: ECDSA P-256, names in
/// subjectAltName, valid for 90 days (the profile allows at most 366).
fn replace_certificate(site: &Site) {
    let out = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "90",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout",
        ])
        .arg(site.dir.path().join("key.pem"))
        .arg("-out")
        .arg(site.dir.path().join("cert.pem"))
        .output()
        .expect("openssl is installed");
    assert!(out.status.success(), "{out:?}");
}

/// The names of the checks sslyze lists under "COMPLIANCE AGAINST …" as failed.
fn failed_checks(report: &str) -> Vec<String> {
    let Some((_, compliance)) = report.split_once("COMPLIANCE AGAINST") else {
        return vec!["no compliance section in the sslyze output".into()];
    };
    compliance
        .lines()
        .filter_map(|l| l.trim().strip_prefix("* "))
        .filter_map(|l| l.split_once(':').map(|(name, _)| name.trim().to_string()))
        .collect()
}

#[test]
fn https_meets_the_mozilla_intermediate_profile() {
    let python = common::probe::python();
    let has_sslyze = Command::new(&python)
        .args(["-c", "import sslyze"])
        .status()
        .is_ok_and(|s| s.success());
    if !has_sslyze {
        eprintln!("SKIPPED: {python} has no sslyze (tests/run.sh installs it into target/pyenv)");
        return;
    }
    let site = Site::with(true, "");
    replace_certificate(&site);
    let server = site.start_without_sync();
    let port = server.https.expect("https listener").port();
    let out = Command::new(&python)
        .args(["-m", "sslyze", "--mozilla_config=intermediate"])
        .arg(format!("127.0.0.1:{port}"))
        .output()
        .expect("run sslyze");
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        report.contains("SCANS COMPLETED"),
        "sslyze did not scan: {report}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Certificate trust is all a self-signed test certificate may fail.
    let allowed = ["certificate_path_validation"];
    let failed = failed_checks(&report);
    let unexpected: Vec<&String> = failed
        .iter()
        .filter(|name| !allowed.contains(&name.as_str()))
        .collect();
    assert!(
        unexpected.is_empty(),
        "sslyze flags {unexpected:?}:\n{report}"
    );
    // And the scan saw what the profile promises.
    assert!(report.contains("TLS_AES_128_GCM_SHA256"), "{report}");
    assert!(
        !report.contains("CBC"),
        "a CBC suite is accepted:\n{report}"
    );
}
