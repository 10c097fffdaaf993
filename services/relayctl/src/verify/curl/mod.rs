//! Reading a `curl` command line, as browsers' "Copy as cURL" and provider consoles write it,
//! into the request curl would send.
//!
//! The shell words are split by `shlex` (POSIX quoting: single and double quotes, backslash
//! escapes). What a shell accepts and `shlex` reads otherwise is rewritten first: CRLF line ends
//! (a command copied on Windows), backslash-newline continuations (`shlex` makes an empty word of
//! one that starts a word) and bash's ANSI-C quoting `$'…'`, which Chrome uses whenever a body
//! holds a quote or a control character. Then the words
//! are read as curl reads them: `-X`/`--request`, the URL (positional or `--url`), `-H`/`--header`,
//! the `--data*` family and `--json` (joined with `&`, POST and a form Content-Type implied),
//! `-G`/`--get`, `-u`/`--user`. Options that change nothing the relay verifies are skipped.

mod data;
mod options;
mod shell;

use super::capture::Capture;
use data::data_bytes;
use options::{LONG_IGNORED_SWITCHES, LONG_IGNORED_WITH_VALUE, SHORT_WITH_VALUE};
use shell::expand_ansi_c_quotes;

/// A command line that cannot be read as a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub(crate) struct CurlError(String);

fn error(message: impl Into<String>) -> CurlError {
    CurlError(message.into())
}

/// How a `--data*` argument becomes body bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DataKind {
    /// `-d`, `--data`, `--data-ascii`: `@file` is read with its line ends removed.
    Ascii,
    /// `--data-binary`: `@file` is read as is.
    Binary,
    /// `--data-raw`: never a file.
    Raw,
    /// `--data-urlencode`: `[name]=content`, `[name]@file` or `content`, percent-encoded.
    UrlEncode,
    /// `--json`: like `--data-binary`, with JSON content and accept types.
    Json,
}

/// The request a command line describes, files not yet read.
#[derive(Debug, Default)]
pub(crate) struct CurlCommand {
    method: Option<String>,
    url: Option<String>,
    headers: Vec<(String, String)>,
    /// Headers curl would add that the command removed (`-H 'Name:'`), lowercase.
    removed: Vec<String>,
    data: Vec<(DataKind, String)>,
    /// `--url-query` arguments, encoded as `--data-urlencode` into the URL's query.
    url_query: Vec<String>,
    get: bool,
    head: bool,
    notes: Vec<String>,
}

/// Parses a command line.
pub(crate) fn parse(text: &str) -> Result<CurlCommand, CurlError> {
    let text = expand_ansi_c_quotes(&text.replace("\r\n", "\n"))?;
    let words = shlex::split(&text)
        .ok_or_else(|| error("the command line ends inside a quote or after a backslash"))?;
    let mut words = words.into_iter().peekable();
    match words.peek() {
        Some(first) if first == "curl" || first.ends_with("/curl") || first == "curl.exe" => {
            words.next();
        }
        Some(_) => {}
        None => return Err(error("the command line is empty")),
    }
    let mut command = CurlCommand::default();
    while let Some(word) = words.next() {
        if let Some(long) = word.strip_prefix("--") {
            if long.is_empty() {
                // `--` ends the options: what follows is the URL.
                if let Some(url) = words.next() {
                    command.set_url(url);
                }
                continue;
            }
            if let Some(kind) = long_data_kind(long) {
                let value = value_of(&mut words, &word)?;
                command.data.push((kind, value));
            } else if LONG_IGNORED_WITH_VALUE.contains(&long) {
                value_of(&mut words, &word)?;
            } else if LONG_IGNORED_SWITCHES.contains(&long) {
            } else {
                match long {
                    "request" | "header" | "url" | "user" | "user-agent" | "referer" | "cookie"
                    | "form" | "form-string" | "upload-file" | "url-query" => {
                        let value = value_of(&mut words, &word)?;
                        command.apply(long, value)?;
                    }
                    "get" => command.get = true,
                    "head" => command.head = true,
                    other => command.notes.push(format!(
                        "curl option `--{other}` ignored (read as a switch)"
                    )),
                }
            }
        } else if word.len() > 1 && word.starts_with('-') {
            let flags: Vec<char> = word[1..].chars().collect();
            let mut i = 0;
            while i < flags.len() {
                let flag = flags[i];
                if SHORT_WITH_VALUE.contains(flag) {
                    let rest: String = flags[i + 1..].iter().collect();
                    let value = if rest.is_empty() {
                        value_of(&mut words, &format!("-{flag}"))?
                    } else {
                        rest
                    };
                    command.apply_short(flag, value)?;
                    break;
                }
                match flag {
                    'G' => command.get = true,
                    'I' => command.head = true,
                    _ => {}
                }
                i += 1;
            }
        } else {
            command.set_url(word);
        }
    }
    Ok(command)
}

/// The word after an option: its value.
fn value_of(words: &mut impl Iterator<Item = String>, option: &str) -> Result<String, CurlError> {
    words
        .next()
        .ok_or_else(|| error(format!("`{option}` needs a value")))
}

fn long_data_kind(option: &str) -> Option<DataKind> {
    Some(match option {
        "data" | "data-ascii" => DataKind::Ascii,
        "data-binary" => DataKind::Binary,
        "data-raw" => DataKind::Raw,
        "data-urlencode" => DataKind::UrlEncode,
        "json" => DataKind::Json,
        _ => return None,
    })
}

impl CurlCommand {
    fn set_url(&mut self, url: String) {
        if self.url.is_some() {
            self.notes.push(format!("extra URL `{url}` ignored"));
        } else {
            self.url = Some(url);
        }
    }

    fn apply_short(&mut self, flag: char, value: String) -> Result<(), CurlError> {
        let long = match flag {
            'X' => "request",
            'H' => "header",
            'u' => "user",
            'A' => "user-agent",
            'e' => "referer",
            'b' => "cookie",
            'F' => "form",
            'T' => "upload-file",
            'd' => {
                self.data.push((DataKind::Ascii, value));
                return Ok(());
            }
            _ => return Ok(()),
        };
        self.apply(long, value)
    }

    fn apply(&mut self, option: &str, value: String) -> Result<(), CurlError> {
        match option {
            "request" => self.method = Some(value.to_ascii_uppercase()),
            "url" => self.set_url(value),
            "header" => self.header(&value),
            "user" => {
                let (user, password) = value.split_once(':').unwrap_or((&value, ""));
                let basic = relay_signing::basic::header(user, password);
                self.headers.push(("Authorization".to_owned(), basic));
            }
            "user-agent" => self.headers.push(("User-Agent".to_owned(), value)),
            "referer" => self.headers.push(("Referer".to_owned(), value)),
            // Without `=` the value names a cookie file, which sends nothing verifiable.
            "cookie" if value.contains('=') => self.headers.push(("Cookie".to_owned(), value)),
            "url-query" => self.url_query.push(value),
            "form" | "form-string" => {
                return Err(error(
                    "multipart bodies (-F/--form) are not supported: no scheme the relay verifies \
                     reads them",
                ));
            }
            "upload-file" => {
                return Err(error("uploads (-T/--upload-file) are not supported"));
            }
            _ => {}
        }
        Ok(())
    }

    /// `Name: value` adds a header, `Name:` removes one curl would add, `Name;` sends it empty.
    fn header(&mut self, line: &str) {
        if let Some(name) = line.strip_suffix(';').filter(|n| !n.contains(':')) {
            self.headers.push((name.trim().to_owned(), String::new()));
        } else if let Some((name, value)) = line.split_once(':') {
            let (name, value) = (name.trim(), value.trim());
            if value.is_empty() {
                self.removed.push(name.to_ascii_lowercase());
            } else {
                self.headers.push((name.to_owned(), value.to_owned()));
            }
        } else if line.starts_with('@') {
            self.notes.push(format!("header file `{line}` not read"));
        } else {
            self.notes
                .push(format!("header `{line}` has no `:`, ignored"));
        }
    }

    fn has_header(&self, name: &str) -> bool {
        self.headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case(name))
            || self.removed.iter().any(|n| n == name)
    }

    /// The request curl would send, reading `@file` arguments with `read_file`.
    pub(crate) fn into_capture(
        mut self,
        read_file: &dyn Fn(&str) -> std::io::Result<Vec<u8>>,
    ) -> Result<Capture, CurlError> {
        let mut url = self
            .url
            .take()
            .ok_or_else(|| error("the command line has no URL"))?;
        if !url.contains("://") && !url.starts_with('/') {
            self.notes.push(format!(
                "URL `{url}` has no scheme: curl calls it over http"
            ));
            url = format!("http://{url}");
        }
        for value in &self.url_query {
            let encoded = data_bytes(DataKind::UrlEncode, value, read_file)?;
            url.push(if url.contains('?') { '&' } else { '?' });
            url.push_str(&String::from_utf8_lossy(&encoded));
        }
        let mut parts = Vec::with_capacity(self.data.len());
        for (kind, value) in &self.data {
            parts.push(data_bytes(*kind, value, read_file)?);
        }
        let mut body = parts.join(&b'&');
        let has_data = !self.data.is_empty();
        let json = self.data.iter().any(|(k, _)| *k == DataKind::Json);
        let method = if self.get && has_data {
            // `-G`: the data goes into the query instead of a body.
            url.push(if url.contains('?') { '&' } else { '?' });
            url.push_str(&String::from_utf8_lossy(&body));
            body.clear();
            "GET".to_owned()
        } else if self.head {
            "HEAD".to_owned()
        } else if has_data {
            "POST".to_owned()
        } else {
            "GET".to_owned()
        };
        let method = self.method.clone().unwrap_or(method);
        if has_data && !self.get && !self.has_header("content-type") {
            let implied = if json {
                "application/json"
            } else {
                "application/x-www-form-urlencoded"
            };
            self.notes.push(format!(
                "Content-Type: {implied} (curl's default for its data option)"
            ));
            self.headers
                .push(("Content-Type".to_owned(), implied.to_owned()));
        }
        if json && !self.has_header("accept") {
            self.headers
                .push(("Accept".to_owned(), "application/json".to_owned()));
        }
        Ok(Capture {
            method,
            url: Some(url),
            headers: self.headers,
            body,
            notes: self.notes,
        })
    }
}

#[cfg(test)]
mod tests;
