//! Directory listings: names that look like template placeholders are shown literally and
//! escaped, and a very large folder is listed correctly, the same bytes and ETag every time.

mod common;

use common::{curl, Client, Site};

#[test]
fn placeholder_names_are_shown_literally_and_escaped() {
    let site = Site::new();
    let folder = site.public().join("{{rows}}");
    std::fs::create_dir(&folder).unwrap();
    std::fs::write(folder.join("{{title}}<b>"), "x").unwrap();
    std::fs::write(folder.join("{{style}}"), "y").unwrap();
    let server = site.start();

    let page = curl(&["-f", &server.url("/files/%7B%7Brows%7D%7D/")]);
    assert!(page.status.success(), "{page:?}");
    let page = String::from_utf8(page.stdout).unwrap();
    assert!(
        page.contains("<title>Index of /files/{{rows}}/</title>"),
        "{page}"
    );
    assert!(page.contains(">{{rows}}/</a></h1>"), "{page}");
    assert!(page.contains(">{{title}}&lt;b&gt;</a>"), "{page}");
    assert!(page.contains(">{{style}}</a>"), "{page}");
    assert!(!page.contains("<b>"), "{page}");
    // The parent row and the two files, once each.
    assert_eq!(page.matches("<tr><td>").count(), 3, "{page}");
    assert_eq!(page.matches("<style>").count(), 1, "{page}");
    assert!(page.contains("2 entries"), "{page}");

    let parent = curl(&["-f", &server.url("/files/")]);
    let parent = String::from_utf8(parent.stdout).unwrap();
    assert!(parent.contains(">{{rows}}/</a>"), "{parent}");
    assert_eq!(parent.matches("<tr><td>").count(), 2, "{parent}");
}

#[test]
fn a_folder_of_fifty_thousand_files_is_listed_the_same_every_time() {
    const FILES: usize = 50_000;
    let site = Site::new();
    let big = site.public().join("big");
    std::fs::create_dir(&big).unwrap();
    for i in 0..FILES {
        std::fs::write(big.join(format!("file-{i:05}.txt")), "x").unwrap();
    }
    let server = site.start();

    let mut client = Client::connect(server.http).unwrap();
    let mut first: Option<(String, Vec<u8>)> = None;
    for _ in 0..5 {
        let (status, headers, body) = client.get("/files/big/").unwrap();
        assert_eq!(status, 200);
        let etag = headers
            .iter()
            .find(|(name, _)| name == "etag")
            .map(|(_, value)| value.clone())
            .expect("an ETag");
        match &first {
            None => {
                let page = String::from_utf8(body.clone()).unwrap();
                assert_eq!(page.matches("<tr><td>").count(), FILES + 1);
                assert!(page.contains(">file-00000.txt</a>"));
                assert!(page.contains(">file-49999.txt</a>"));
                assert!(page.contains("50000 entries"));
                first = Some((etag, body));
            }
            Some((etag0, body0)) => {
                assert_eq!(&etag, etag0);
                assert!(&body == body0, "the listing changed between requests");
            }
        }
    }
    // Revalidation with the ETag: 304.
    let (etag, _) = first.unwrap();
    let out = curl(&[
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "-H",
        &format!("If-None-Match: {etag}"),
        &server.url("/files/big/"),
    ]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "304");
}
