//! How curl turns its `--data*` arguments into body bytes.

use std::fmt::Write as _;

use super::{CurlError, DataKind, error};

/// The bytes one data argument adds to the body.
pub(super) fn data_bytes(
    kind: DataKind,
    value: &str,
    read_file: &dyn Fn(&str) -> std::io::Result<Vec<u8>>,
) -> Result<Vec<u8>, CurlError> {
    let read = |path: &str| {
        if path == "-" {
            return Err(error("data from standard input (`@-`) is not supported"));
        }
        read_file(path).map_err(|e| error(format!("cannot read data file `{path}`: {e}")))
    };
    match (kind, value.strip_prefix('@')) {
        // curl strips carriage returns and newlines from `-d @file`.
        (DataKind::Ascii, Some(path)) => {
            let mut bytes = read(path)?;
            bytes.retain(|b| !matches!(b, b'\r' | b'\n'));
            Ok(bytes)
        }
        (DataKind::Binary | DataKind::Json, Some(path)) => read(path),
        (DataKind::UrlEncode, _) => url_encode_arg(value, &read),
        _ => Ok(value.as_bytes().to_vec()),
    }
}

/// `--data-urlencode`'s forms: `content`, `=content`, `name=content`, `@file`, `name@file`.
fn url_encode_arg(
    value: &str,
    read: &dyn Fn(&str) -> Result<Vec<u8>, CurlError>,
) -> Result<Vec<u8>, CurlError> {
    let eq = value.find('=');
    let at = value.find('@');
    let (name, content) = match (eq, at) {
        (Some(e), Some(a)) if a < e => (&value[..a], read(&value[a + 1..])?),
        (None, Some(a)) => (&value[..a], read(&value[a + 1..])?),
        (Some(e), _) => (&value[..e], value.as_bytes()[e + 1..].to_vec()),
        (None, None) => ("", value.as_bytes().to_vec()),
    };
    let mut out = String::new();
    if !name.is_empty() {
        out.push_str(name);
        out.push('=');
    }
    out.push_str(&curl_escape(&content));
    Ok(out.into_bytes())
}

/// curl's `curl_easy_escape`: everything but `A-Z a-z 0-9 - . _ ~` percent-encoded, a space as
/// `%20`.
fn curl_escape(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}
