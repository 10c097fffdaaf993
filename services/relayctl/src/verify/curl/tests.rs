//! The curl reader on command lines as browsers and consoles write them.

use super::*;

fn no_files(path: &str) -> std::io::Result<Vec<u8>> {
    Err(std::io::Error::new(
        std::io::ErrorKind::NotFound,
        format!("no file {path} in this test"),
    ))
}

fn capture(text: &str) -> Capture {
    parse(text).unwrap().into_capture(&no_files).unwrap()
}

fn header<'a>(c: &'a Capture, name: &str) -> Vec<&'a str> {
    c.headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
        .collect()
}

/// Chrome's "Copy as cURL (bash)": single quotes, backslash-newline continuations, `--data-raw`.
#[test]
fn a_browser_copy_with_continuations_and_repeated_headers() {
    let c = capture(
        "curl 'https://relay.example.com/v1/plivo/status?x=1' \\\n  -H 'accept: */*' \\\n  \
         -H 'X-Tag: one' \\\n  -H 'X-Tag: two' \\\n  --data-raw 'From=%2B1555&To=+1666' \\\n  \
         --compressed\n",
    );
    assert_eq!(c.method, "POST", "data implies POST");
    assert_eq!(
        c.url.as_deref(),
        Some("https://relay.example.com/v1/plivo/status?x=1")
    );
    assert_eq!(header(&c, "x-tag"), ["one", "two"], "both kept, in order");
    assert_eq!(header(&c, "accept"), ["*/*"]);
    assert_eq!(c.body, b"From=%2B1555&To=+1666", "bytes as written");
    assert_eq!(
        header(&c, "content-type"),
        ["application/x-www-form-urlencoded"],
        "curl's default for -d"
    );
    assert!(
        c.notes.iter().all(|n| !n.contains("extra URL")),
        "{:?}",
        c.notes
    );
}

#[test]
fn double_quotes_keep_their_escapes_and_windows_line_ends_are_read() {
    let c = capture(
        "curl -X PUT \"https://h.example/p\" \\\r\n -H \"X-A: \\\"q\\\" \\$x\" \\\r\n -d \"a=1\"",
    );
    assert_eq!(c.method, "PUT", "-X wins over the implied POST");
    assert_eq!(header(&c, "x-a"), ["\"q\" $x"]);
    assert_eq!(c.body, b"a=1");
}

/// Chrome writes a body with a quote or a control character as bash's `$'…'`.
#[test]
fn ansi_c_quoted_bodies_are_decoded() {
    let c = capture(r#"curl 'https://h.example/p' --data-raw $'{"a":"it\'s\n\u00e9\x41"}'"#);
    assert_eq!(
        String::from_utf8(c.body).unwrap(),
        "{\"a\":\"it's\né\u{41}\"}"
    );
    let quoted = capture(r#"curl 'https://h.example/p' -H $'X-Q: a\'b' -d 'x'"#);
    assert_eq!(header(&quoted, "x-q"), ["a'b"]);
}

#[test]
fn data_flags_join_with_ampersands_and_encode_as_curl_does() {
    let c = capture(
        "curl https://h.example/p -d a=1 --data b=2 --data-binary 'c=3 4' \
         --data-urlencode 'name=x y+z' --data-urlencode 'é/&'",
    );
    assert_eq!(
        String::from_utf8(c.body).unwrap(),
        "a=1&b=2&c=3 4&name=x%20y%2Bz&%C3%A9%2F%26"
    );
}

#[test]
fn at_files_are_read_as_curl_reads_them() {
    let files = |path: &str| match path {
        "body.txt" => Ok(b"a=1\r\nb=2\n".to_vec()),
        other => no_files(other),
    };
    let ascii = parse("curl https://h.example/p -d @body.txt").unwrap();
    assert_eq!(
        ascii.into_capture(&files).unwrap().body,
        b"a=1b=2",
        "-d strips line ends"
    );
    let binary = parse("curl https://h.example/p --data-binary @body.txt").unwrap();
    assert_eq!(binary.into_capture(&files).unwrap().body, b"a=1\r\nb=2\n");
    let raw = parse("curl https://h.example/p --data-raw @body.txt").unwrap();
    assert_eq!(raw.into_capture(&files).unwrap().body, b"@body.txt");
    let encoded = parse("curl https://h.example/p --data-urlencode v@body.txt").unwrap();
    assert_eq!(
        encoded.into_capture(&files).unwrap().body,
        b"v=a%3D1%0D%0Ab%3D2%0A"
    );
    let missing = parse("curl https://h.example/p -d @nope").unwrap();
    assert!(missing.into_capture(&files).is_err());
}

#[test]
fn url_query_is_encoded_into_the_query_wherever_the_url_comes() {
    let c = capture("curl --url-query 'to=+1 555' https://h.example/p?x=1");
    assert_eq!(
        c.url.as_deref(),
        Some("https://h.example/p?x=1&to=%2B1%20555")
    );
}

#[test]
fn get_moves_the_data_into_the_query() {
    let c = capture("curl -G 'https://h.example/p?x=1' -d a=1 -d b=2");
    assert_eq!(c.method, "GET");
    assert_eq!(c.url.as_deref(), Some("https://h.example/p?x=1&a=1&b=2"));
    assert!(c.body.is_empty());
    assert!(header(&c, "content-type").is_empty());
}

#[test]
fn short_options_glued_and_combined() {
    let c = capture("curl -sSL -XPOST -H'X-A: 1' -uuser:pa:ss https://h.example/p -o /dev/null");
    assert_eq!(c.method, "POST");
    assert_eq!(header(&c, "x-a"), ["1"]);
    assert_eq!(
        header(&c, "authorization"),
        [relay_signing::basic::header("user", "pa:ss").as_str()]
    );
    assert_eq!(
        c.url.as_deref(),
        Some("https://h.example/p"),
        "-o's value is no URL"
    );
}

#[test]
fn headers_can_be_removed_or_sent_empty_and_json_sets_its_types() {
    let c = capture("curl https://h.example/p -H 'Content-Type:' -H 'X-Empty;' -d 'a'");
    assert!(
        header(&c, "content-type").is_empty(),
        "removed, not defaulted"
    );
    assert_eq!(header(&c, "x-empty"), [""]);
    let json = capture(r#"curl https://h.example/p --json '{"a":1}'"#);
    assert_eq!(json.method, "POST");
    assert_eq!(header(&json, "content-type"), ["application/json"]);
    assert_eq!(header(&json, "accept"), ["application/json"]);
}

#[test]
fn a_url_without_scheme_is_http_and_unknown_options_are_noted() {
    let c = capture("curl --url h.example/v1/hooks/shop --frobnicate");
    assert_eq!(c.url.as_deref(), Some("http://h.example/v1/hooks/shop"));
    assert_eq!(c.method, "GET");
    assert!(
        c.notes.iter().any(|n| n.contains("--frobnicate")),
        "{:?}",
        c.notes
    );
    assert!(
        c.notes.iter().any(|n| n.contains("no scheme")),
        "{:?}",
        c.notes
    );
}

#[test]
fn what_cannot_be_read_is_an_error() {
    assert!(
        parse("curl 'https://h.example/p").is_err(),
        "unclosed quote"
    );
    assert!(
        parse("curl https://h.example/p -H").is_err(),
        "option without value"
    );
    assert!(parse("").is_err());
    assert!(
        parse("curl -d a=1")
            .unwrap()
            .into_capture(&no_files)
            .is_err(),
        "no URL"
    );
    assert!(
        parse("curl https://h.example/p -F a=@x").is_err(),
        "multipart"
    );
    assert!(parse("curl https://h.example/p --data-raw $'x").is_err());
}
