//! Bodies a sender may have signed instead of the captured one: the same JSON formatted
//! otherwise, the same form encoded otherwise, a line end more or less.
//!
//! Schemes over the exact bytes (Re:amaze, `hmac-sha256`, Standard Webhooks, Twilio's
//! `bodySHA256`) break when anything between the sender and the relay re-serialises the body;
//! schemes over decoded parameters (Plivo, Twilio forms) only when the decoded values change,
//! as when a literal `+` loses its `%2B` and is read as a space.

/// A body the sender may have signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BodyVariant {
    /// How it differs from the captured body.
    pub(crate) what: String,
    /// The bytes.
    pub(crate) bytes: Vec<u8>,
}

/// Re-serialisations of `body` (JSON or form), each different from it.
pub(crate) fn raw_variants(body: &[u8], is_form: bool) -> Vec<BodyVariant> {
    let mut out = Vec::new();
    let mut add = |what: &str, bytes: Vec<u8>| {
        if bytes != body && !out.iter().any(|v: &BodyVariant| v.bytes == bytes) {
            out.push(BodyVariant {
                what: what.to_owned(),
                bytes,
            });
        }
    };
    if let Ok(text) = std::str::from_utf8(body)
        && serde_json::from_str::<serde_json::Value>(text).is_ok()
    {
        let compact = minify(text);
        add("the JSON without whitespace", compact.clone().into_bytes());
        add(
            "the JSON with `: ` and `, ` (Python's json.dumps)",
            spaced(&compact).into_bytes(),
        );
        add("the JSON indented by 2", indent(&compact, 2).into_bytes());
        add("the JSON indented by 4", indent(&compact, 4).into_bytes());
        if let Ok(value) = serde_json::from_str::<serde_json::Value>(text) {
            add(
                "the JSON with its keys sorted",
                value.to_string().into_bytes(),
            );
        }
    }
    if is_form {
        let pairs: Vec<(String, String)> = form_urlencoded::parse(body).into_owned().collect();
        let plus = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&pairs)
            .finish();
        add(
            "the form re-encoded with `+` for spaces",
            plus.clone().into_bytes(),
        );
        add(
            "the form re-encoded with `%20` for spaces",
            plus.replace('+', "%20").into_bytes(),
        );
        add(
            "the form with its `%20` written as `+`",
            String::from_utf8_lossy(body)
                .replace("%20", "+")
                .into_bytes(),
        );
        add(
            "the form with its `+` written as `%20`",
            String::from_utf8_lossy(body)
                .replace('+', "%20")
                .into_bytes(),
        );
    }
    let trimmed = body.trim_ascii_end();
    add("without the trailing line end", trimmed.to_vec());
    let mut newline = body.to_vec();
    newline.push(b'\n');
    add("with a trailing newline", newline);
    if body.contains(&b'\r') {
        let lf = String::from_utf8_lossy(body).replace("\r\n", "\n");
        add("with CRLF line ends as LF", lf.into_bytes());
    }
    out
}

/// The form with every `+` as `%2B`: what a sender meant when it signed `+` literally (a phone
/// number) and the capture, or something on the way, lost the encoding.
pub(crate) fn plus_literal(form: &[u8]) -> Option<Vec<u8>> {
    form.contains(&b'+').then(|| {
        String::from_utf8_lossy(form)
            .replace('+', "%2B")
            .into_bytes()
    })
}

/// JSON text without whitespace outside strings (key order kept).
pub(crate) fn minify(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    let mut in_string = false;
    let mut escaped = false;
    for c in json.chars() {
        if in_string {
            out.push(c);
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
        } else if !c.is_whitespace() {
            in_string = c == '"';
            out.push(c);
        }
    }
    out
}

/// Walks minified JSON, calling `punct` for each structural character outside strings.
fn rewrite(compact: &str, mut punct: impl FnMut(&mut String, char, Option<char>)) -> String {
    let mut out = String::with_capacity(compact.len() * 2);
    let mut in_string = false;
    let mut escaped = false;
    let mut chars = compact.chars().peekable();
    while let Some(c) = chars.next() {
        if in_string {
            out.push(c);
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => {
                in_string = true;
                out.push(c);
            }
            '{' | '[' | '}' | ']' | ',' | ':' => punct(&mut out, c, chars.peek().copied()),
            _ => out.push(c),
        }
    }
    out
}

/// Minified JSON with `: ` and `, `.
fn spaced(compact: &str) -> String {
    rewrite(compact, |out, c, _| {
        out.push(c);
        if matches!(c, ',' | ':') {
            out.push(' ');
        }
    })
}

/// Minified JSON indented as serde_json's and JavaScript's pretty printers do.
fn indent(compact: &str, width: usize) -> String {
    let mut depth = 0usize;
    let mut empty = false;
    rewrite(compact, |out, c, next| {
        let newline = |out: &mut String, depth: usize| {
            out.push('\n');
            out.push_str(&" ".repeat(depth * width));
        };
        match c {
            '{' | '[' => {
                out.push(c);
                depth += 1;
                empty = matches!(next, Some('}' | ']'));
                if !empty {
                    newline(out, depth);
                }
            }
            '}' | ']' => {
                depth = depth.saturating_sub(1);
                if !empty {
                    newline(out, depth);
                }
                empty = false;
                out.push(c);
            }
            ',' => {
                out.push(c);
                newline(out, depth);
            }
            _ => out.push_str(": "),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PRETTY: &str = "{\n  \"b\": [1, \"x y\"],\n  \"a\": {}\n}";

    #[test]
    fn json_is_reformatted_with_its_key_order_kept() {
        let compact = minify(PRETTY);
        assert_eq!(compact, r#"{"b":[1,"x y"],"a":{}}"#);
        assert_eq!(spaced(&compact), r#"{"b": [1, "x y"], "a": {}}"#);
        assert_eq!(
            indent(&compact, 2),
            "{\n  \"b\": [\n    1,\n    \"x y\"\n  ],\n  \"a\": {}\n}"
        );
        let whats: Vec<String> = raw_variants(PRETTY.as_bytes(), false)
            .into_iter()
            .map(|v| v.what)
            .collect();
        assert!(whats.contains(&"the JSON without whitespace".to_owned()));
        assert!(whats.contains(&"the JSON with its keys sorted".to_owned()));
    }

    #[test]
    fn strings_keep_their_spaces_and_escapes() {
        assert_eq!(minify(r#"{ "a" : "q\" }" }"#), r#"{"a":"q\" }"}"#);
    }

    #[test]
    fn forms_are_re_encoded_both_ways() {
        let variants = raw_variants(b"a=x%20y&b=1", true);
        let bytes: Vec<&[u8]> = variants.iter().map(|v| v.bytes.as_slice()).collect();
        assert!(bytes.contains(&b"a=x+y&b=1".as_slice()), "{variants:?}");
        assert!(
            !bytes.contains(&b"a=x%20y&b=1".as_slice()),
            "the original is no variant"
        );
        assert_eq!(plus_literal(b"From=+1555"), Some(b"From=%2B1555".to_vec()));
        assert_eq!(plus_literal(b"From=%2B1555"), None);
    }
}
