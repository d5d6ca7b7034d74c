//! The stanza parser against the first one (`reference`): the same files and the same
//! refusals for real-format and random indices, whatever chunks the text comes in.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::super::reference;
use super::*;

/// What parsing `text` gives, fed in `chunks` (their lengths; the rest in one last write).
fn parse_in(text: &[u8], chunks: &[usize], filter: &Filter, sources: bool) -> Outcome {
    let mut parser = StanzaParser::new(sources, filter.clone());
    let mut rest = text;
    for &n in chunks {
        let (chunk, after) = rest.split_at(n.min(rest.len()));
        if let Err(e) = parser.write_all(chunk) {
            return Err(e.to_string());
        }
        rest = after;
    }
    parser.write_all(rest).map_err(|e| e.to_string())?;
    parser.finish().map_err(|e| e.to_string())
}

/// What the first parser gives for `text`, fed whole.
fn reference_parse(text: &[u8], filter: &Filter, sources: bool) -> Outcome {
    let mut parser = reference::StanzaParser::new(sources, filter.clone());
    parser.write_all(text).map_err(|e| e.to_string())?;
    parser.finish().map_err(|e| e.to_string())
}

type Outcome = Result<Vec<PoolFile>, String>;

/// Random chunk lengths covering `len` bytes: single bytes, a few bytes, whole KiBs.
fn random_split(rng: &mut StdRng, len: usize) -> Vec<usize> {
    let mut chunks = Vec::new();
    let mut covered = 0;
    while covered < len {
        let n = match rng.gen_range(0..4) {
            0 => 1,
            1 => rng.gen_range(0..8),
            2 => rng.gen_range(1..200),
            _ => rng.gen_range(1..5000),
        };
        chunks.push(n);
        covered += n;
    }
    chunks
}

/// Real-format stanzas: folded fields, Sources checksums, CRLF, odd white space.
fn fixtures() -> Vec<(bool, Vec<u8>)> {
    let sha = |n: usize| format!("{n:064x}");
    let mut packages = String::new();
    for n in 0..300 {
        packages.push_str(&format!(
            "Package: pkg{n}\nSource: src{n}\nVersion: 1.{n}\nSection: {}\nDepends: libc6 (>= 2.36),\n a{n},\n\tb{n}\nDescription: package {n}\n a longer description\n .\n of it\nFilename: pool/main/p/pkg{n}/pkg{n}_1_amd64.deb\nSize:  {}\t\nMD5sum: {}\nSHA256: {}\n\n",
            if n % 3 == 0 { "debug" } else { "non-free/games" },
            100 + n,
            &sha(n)[..32],
            sha(n).to_uppercase(),
        ));
    }
    let mut sources = String::new();
    for n in 0..100 {
        sources.push_str(&format!(
            "Package: s{n}\nBinary: s{n}, s{n}-doc\nDirectory: pool/main/s/s{n}\nFiles:\n {} 5 s{n}.dsc\nChecksums-Sha256:\n {} 5 s{n}_1.dsc\n {} 60 s{n}_1.tar.xz\nChecksums-Sha1:\n {} 5 s{n}.dsc\n\n",
            &sha(n)[..32], sha(n), sha(n + 1), &sha(n)[..40],
        ));
    }
    let crlf = packages.replace('\n', "\r\n");
    let spaced = packages.replace("\n\n", "\n  \t\n\n\n");
    vec![
        (false, packages.into_bytes()),
        (false, crlf.into_bytes()),
        (false, spaced.into_bytes()),
        (true, sources.into_bytes()),
    ]
}

/// A random index: stanzas of real fields, some broken, with odd lines and line ends.
fn random_index(rng: &mut StdRng, sources: bool) -> Vec<u8> {
    let sha = format!("{:064x}", rng.gen::<u64>());
    let core: Vec<String> = if sources {
        vec![
            "Package: s".into(),
            "Directory: pool/s".into(),
            "Checksums-Sha256:".into(),
            format!(" {sha} 7 s.dsc"),
            format!("\t{} 8 s.tar.xz", sha.to_uppercase()),
        ]
    } else {
        vec![
            format!("Package: p{}", rng.gen_range(0..3)),
            "Filename: pool/p.deb".into(),
            "Size: 12".into(),
            format!("SHA256: {sha}"),
        ]
    };
    let odd: Vec<Vec<u8>> = [
        "Package:",
        "Section: debug",
        "Section: main/games",
        "Filename: ./a/../b.deb",
        "Filename:   ./pool/q.deb  ",
        "Size: x",
        "Size:99",
        "SHA256: 12",
        "MD5sum: 00",
        "SHA1: 11",
        "Files:",
        "Checksums-Sha256:",
        " 1234 5",
        " folded",
        " ",
        "\t",
        "\u{a0}",
        "\u{3000}Package: q",
        "Package: q\u{a0}",
        "no colon",
        ":",
        "Package : spaced",
    ]
    .into_iter()
    .map(|p| p.as_bytes().to_vec())
    .chain([vec![0xff, b':', 0xfe], vec![b'P', 0xc3], b"\x0b".to_vec()])
    .collect();
    let mut text = Vec::new();
    for _ in 0..rng.gen_range(0..6) {
        for line in &core {
            if rng.gen_bool(0.03) {
                continue; // a field missing
            }
            if rng.gen_bool(0.08) {
                text.extend_from_slice(&odd[rng.gen_range(0..odd.len())]);
                text.push(b'\n');
            }
            text.extend_from_slice(line.as_bytes());
            if rng.gen_bool(0.1) {
                text.push(b'\r');
            }
            text.push(b'\n');
        }
        let end: &[u8] =
            [&b"\n"[..], b"\r\n", b" \n", b"\n\n\n", b"\r\r\n", b""][rng.gen_range(0..6)];
        text.extend_from_slice(end);
    }
    if rng.gen_bool(0.5) {
        text.pop(); // a last line without its end
    }
    text
}

#[test]
fn real_format_indices_parse_like_the_first_parser_in_chunks_of_every_size() {
    let mut rng = StdRng::seed_from_u64(12);
    let filters = [
        Filter::default(),
        Filter::new(vec!["pkg1*".into()], vec!["games".into()]).unwrap(),
    ];
    for (sources, text) in fixtures() {
        for filter in &filters {
            let expected = reference_parse(&text, filter, sources);
            let files = expected.as_ref().expect("the fixtures are valid");
            assert!(!files.is_empty());
            assert_eq!(parse_in(&text, &[], filter, sources), expected);
            for size in [1, 2, 3, 7, 64, 4096] {
                let chunks = vec![size; text.len() / size + 1];
                assert_eq!(parse_in(&text, &chunks, filter, sources), expected);
            }
            for _ in 0..20 {
                let chunks = random_split(&mut rng, text.len());
                assert_eq!(parse_in(&text, &chunks, filter, sources), expected);
            }
        }
    }
}

#[test]
fn crlf_indices_name_the_same_files_as_lf_ones() {
    let fixtures = fixtures();
    let lf = parse_in(&fixtures[0].1, &[], &Filter::default(), false).unwrap();
    let crlf = parse_in(&fixtures[1].1, &[7], &Filter::default(), false).unwrap();
    assert_eq!(lf.len(), 300);
    assert_eq!(crlf, lf);
    assert_eq!(lf[1].path, "pool/main/p/pkg1/pkg1_1_amd64.deb");
    assert_eq!(lf[1].size, 101);
    assert_eq!(lf[1].sha256.to_hex(), format!("{:064x}", 1));
}

#[test]
fn random_indices_give_the_first_parsers_files_and_errors_for_any_split() {
    let mut rng = StdRng::seed_from_u64(7);
    let filter = Filter::new(vec!["q".into()], vec!["games".into()]).unwrap();
    let (mut with_files, mut refused) = (0, 0);
    for round in 0..3000 {
        let sources = round % 2 == 1;
        let text = random_index(&mut rng, sources);
        let expected = reference_parse(&text, &filter, sources);
        match &expected {
            Ok(files) => with_files += usize::from(!files.is_empty()),
            Err(_) => refused += 1,
        }
        assert_eq!(
            parse_in(&text, &[], &filter, sources),
            expected,
            "{:?}",
            String::from_utf8_lossy(&text)
        );
        let chunks = random_split(&mut rng, text.len());
        assert_eq!(
            parse_in(&text, &chunks, &filter, sources),
            expected,
            "{:?} in {chunks:?}",
            String::from_utf8_lossy(&text)
        );
    }
    // Both kinds of answer are compared, many times.
    assert!(with_files > 100 && refused > 100, "{with_files} {refused}");
}

/// Feeds `chunks` to a Packages parser, as a decoder would.
fn feed(chunks: impl IntoIterator<Item = Vec<u8>>) -> io::Result<Vec<PoolFile>> {
    let mut parser = StanzaParser::new(false, Filter::default());
    for chunk in chunks {
        parser.write_all(&chunk)?;
    }
    parser.finish()
}

#[test]
fn a_line_longer_than_the_limit_is_refused_naming_its_line() {
    // Written in small chunks without a line end: each write must not rescan the rest.
    let chunk = vec![b'x'; 64 * 1024];
    let chunks = (0..(MAX_LINE / chunk.len() + 2)).map(|_| chunk.clone());
    let head = std::iter::once(b"Package: a\n".to_vec());
    let error = feed(head.chain(chunks)).unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::InvalidData);
    let message = error.to_string();
    assert!(
        message.contains("line 2") && message.contains("1 MiB"),
        "{message}"
    );
}

#[test]
fn the_line_limit_holds_whatever_the_chunks() {
    let sha = "1".repeat(64);
    let stanza = format!("Package: a\nFilename: pool/a.deb\nSize: 3\nSHA256: {sha}\n");
    for extra in [0, 1] {
        let long = format!("X-Long: {}\n", "y".repeat(MAX_LINE - 8 + extra));
        let text = format!("{stanza}{long}\n{stanza}").into_bytes();
        for chunks in [vec![], vec![100], vec![MAX_LINE], vec![3; 40]] {
            let got = parse_in(&text, &chunks, &Filter::default(), false);
            match extra {
                0 => assert_eq!(got.map(|f| f.len()), Ok(2), "{chunks:?}"),
                _ => assert!(
                    got.as_ref().is_err_and(|e| e.contains("line 5 is longer")),
                    "{chunks:?}: {got:?}"
                ),
            }
        }
    }
}

#[test]
fn lines_split_across_writes_are_joined() {
    let sha = "1".repeat(64);
    let text = format!("Package: a\nFilename: pool/a.deb\nSize: 3\nSHA256: {sha}\n");
    let chunks = text.as_bytes().chunks(5).map(|c| c.to_vec());
    let files = feed(chunks).unwrap();
    assert_eq!(files.len(), 1);
    assert_eq!(files[0].path, "pool/a.deb");
    assert_eq!(files[0].sha256.to_hex(), sha);
}

/// The table decoder takes hex digits of either case and refuses anything else, wherever
/// the bad byte is and whatever the length.
#[test]
fn sha256_digits_decode_by_table_in_either_case() {
    let lower: String = (0..32).map(|i| format!("{:02x}", i * 7 + 3)).collect();
    let expected: ObjectId = lower.parse().unwrap();
    assert_eq!(check_sha256(&lower, "p", 1), Ok(expected));
    assert_eq!(
        check_sha256(&lower.to_ascii_uppercase(), "p", 1),
        Ok(expected)
    );
    let all: String = "0123456789abcdefABCDEF".chars().cycle().take(64).collect();
    assert_eq!(
        check_sha256(&all, "p", 1).unwrap(),
        all.to_ascii_lowercase().parse().unwrap()
    );
    for at in [0, 1, 31, 62, 63] {
        for bad in ['g', 'G', ' ', '/', ':', '@', '`'] {
            let mut text = lower.clone().into_bytes();
            text[at] = bad as u8;
            let text = String::from_utf8(text).unwrap();
            let error = check_sha256(&text, "p", 9).unwrap_err();
            assert!(error.contains("is not a SHA256"), "{error}");
        }
    }
    for text in [
        &lower[..62],
        &format!("{lower}0"),
        "",
        "é".repeat(32).as_str(),
    ] {
        assert!(check_sha256(text, "p", 1).is_err(), "{text}");
    }
}
