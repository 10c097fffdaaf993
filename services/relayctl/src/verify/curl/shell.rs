//! What a shell does to a command line before curl sees it, beyond `shlex`'s POSIX words:
//! bash's ANSI-C quoting `$'…'` and line continuations.

use super::{CurlError, error};

/// Rewrites bash's `$'…'` words as single-quoted ones with their escapes decoded and drops
/// line continuations outside quotes, leaving everything else as written.
pub(super) fn expand_ansi_c_quotes(text: &str) -> Result<String, CurlError> {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            // A line continuation is no word at all (shlex would make it an empty one).
            '\\' if chars.peek() == Some(&'\n') => {
                chars.next();
            }
            '\\' => {
                out.push(c);
                out.extend(chars.next());
            }
            '\'' => {
                out.push(c);
                for c in chars.by_ref() {
                    out.push(c);
                    if c == '\'' {
                        break;
                    }
                }
            }
            '"' => {
                out.push(c);
                while let Some(c) = chars.next() {
                    out.push(c);
                    match c {
                        '\\' => out.extend(chars.next()),
                        '"' => break,
                        _ => {}
                    }
                }
            }
            '$' if chars.peek() == Some(&'\'') => {
                chars.next();
                let decoded = ansi_c_body(&mut chars)?;
                out.push('\'');
                out.push_str(&decoded.replace('\'', r"'\''"));
                out.push('\'');
            }
            _ => out.push(c),
        }
    }
    Ok(out)
}

/// The text of a `$'…'` word up to its closing quote, escapes decoded.
fn ansi_c_body(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Result<String, CurlError> {
    let mut out = String::new();
    let hex = |chars: &mut std::iter::Peekable<std::str::Chars<'_>>, max: usize| {
        let mut digits = String::new();
        while digits.len() < max && chars.peek().is_some_and(char::is_ascii_hexdigit) {
            digits.extend(chars.next());
        }
        u32::from_str_radix(&digits, 16).ok()
    };
    loop {
        match chars.next() {
            None => return Err(error("a $'…' quote is not closed")),
            Some('\'') => return Ok(out),
            Some('\\') => match chars.next() {
                Some('n') => out.push('\n'),
                Some('r') => out.push('\r'),
                Some('t') => out.push('\t'),
                Some('e' | 'E') => out.push('\u{1b}'),
                Some('a') => out.push('\u{7}'),
                Some('b') => out.push('\u{8}'),
                Some('f') => out.push('\u{c}'),
                Some('v') => out.push('\u{b}'),
                Some('x') => out.extend(hex(chars, 2).and_then(char::from_u32)),
                Some('u') => out.extend(hex(chars, 4).and_then(char::from_u32)),
                Some('U') => out.extend(hex(chars, 8).and_then(char::from_u32)),
                Some(c @ '0'..='7') => {
                    let mut digits = c.to_string();
                    while digits.len() < 3 && chars.peek().is_some_and(|d| ('0'..='7').contains(d))
                    {
                        digits.extend(chars.next());
                    }
                    out.extend(
                        u32::from_str_radix(&digits, 8)
                            .ok()
                            .and_then(char::from_u32),
                    );
                }
                Some(other) => {
                    // `\\`, `\'`, `\"`, `\?` stand for themselves; other escapes stay as written.
                    if !matches!(other, '\\' | '\'' | '"' | '?') {
                        out.push('\\');
                    }
                    out.push(other);
                }
                None => return Err(error("a $'…' quote is not closed")),
            },
            Some(c) => out.push(c),
        }
    }
}
