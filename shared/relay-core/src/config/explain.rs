//! Configuration errors as an operator reads them: the file, the line and the table path of
//! the offending field (`relay.toml:12: [destinations.helpdesk] timeout: must be positive`), or
//! the environment variable it came from (`RELAY__WORKER__PREFETCH: [worker] prefetch: …`).

use std::path::Path;

use figment::error::Kind;

use super::layers::Override;
use super::{Config, ConfigError};

impl Config {
    /// `error` (from validating this configuration) with where to look.
    pub fn explain(&self, error: &ConfigError) -> String {
        let ConfigError::Invalid { field, message } = error else {
            return error.to_string();
        };
        let (table, key) = match field.rsplit_once('.') {
            Some((table, key)) => (table, key),
            None => ("", field.as_str()),
        };
        let place = match &self.file {
            Some(file) => {
                let line = std::fs::read_to_string(file)
                    .ok()
                    .and_then(|text| locate(&text, table, key));
                at(Some(file), line)
            }
            None => "defaults (no configuration file): ".to_owned(),
        };
        format!(
            "invalid configuration: {}",
            describe(&place, table, key, message)
        )
    }
}

/// An error of merging the layers (`text`, read from `file`, then `overrides`) and reading the
/// tree from them, one line per error: where the value came from, the table, the key, what is
/// wrong.
pub(super) fn layer_error(
    error: figment::Error,
    text: &str,
    file: Option<&Path>,
    overrides: &[Override],
) -> String {
    let lines: Vec<String> = error
        .into_iter()
        .map(|error| {
            let mut path = error.path.clone();
            let variable = match &error.kind {
                // An unknown key is tagged with its table, and a table with the last layer that
                // wrote into it, whichever wrote the key: the key's own layer is the override
                // that set it, if one did, else the file.
                Kind::UnknownField(key, _) => {
                    if path.last() != Some(key) {
                        path.push(key.clone());
                    }
                    overrides
                        .iter()
                        .rev()
                        .find(|o| o.path.starts_with(&path))
                        .map(|o| o.name.clone())
                }
                // A missing field has no layer: name it in its table, in the file.
                Kind::MissingField(key) => {
                    path.push(key.to_string());
                    None
                }
                _ => match error.metadata.as_ref().and_then(|m| m.source.as_ref()) {
                    Some(figment::Source::Custom(name)) => Some(name.clone()),
                    _ => None,
                },
            };
            let (table, key) = dotted(&path);
            let place = match variable {
                Some(name) => format!("{name}: "),
                None => at(file, locate(text, &table, &key)),
            };
            describe(&place, &table, &key, &error.kind.to_string())
        })
        .collect();
    lines.join("\n")
}

/// `file:line: `, `file: `, `line N: ` or nothing.
fn at(file: Option<&Path>, line: Option<usize>) -> String {
    match (file, line) {
        (Some(file), Some(line)) => format!("{}:{line}: ", file.display()),
        (Some(file), None) => format!("{}: ", file.display()),
        (None, Some(line)) => format!("line {line}: "),
        (None, None) => String::new(),
    }
}

/// `{place}[{table}] {key}: {message}`, leaving out what is empty.
fn describe(place: &str, table: &str, key: &str, message: &str) -> String {
    match (table, key) {
        (_, "") => format!("{place}{message}"),
        ("", key) => format!("{place}{key}: {message}"),
        (table, key) => format!("{place}[{table}] {key}: {message}"),
    }
}

/// A key path as its table and key, the way validation names fields: array items by index
/// (`["ingress", "voximplant", "accounts", "0", "api_key_env"]` →
/// `("ingress.voximplant.accounts[0]", "api_key_env")`).
fn dotted(path: &[String]) -> (String, String) {
    let mut parts: Vec<String> = Vec::new();
    for segment in path {
        match parts.last_mut() {
            Some(last) if segment.bytes().all(|b| b.is_ascii_digit()) && !segment.is_empty() => {
                last.push_str(&format!("[{segment}]"));
            }
            _ => parts.push(segment.clone()),
        }
    }
    let key = parts.pop().unwrap_or_default();
    (parts.join("."), key)
}

/// The line (1-based) of `key` in the table `[table]` of `text`, else of the table's header;
/// `None` when neither is written there (a default, or an environment override). An item of
/// an array of tables is `name[i]`: the `i`-th `[[name]]` header.
fn locate(text: &str, table: &str, key: &str) -> Option<usize> {
    let (table, item) = match table.strip_suffix(']').and_then(|t| t.rsplit_once('[')) {
        Some((name, index)) => (name, index.parse::<usize>().ok()),
        None => (table, None),
    };
    // Keys before the first header are the root table's.
    let mut in_table = table.is_empty() && item.is_none();
    let mut seen = 0;
    let mut header = None;
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if let Some(name) = line.strip_prefix('[') {
            // `[a."b.c"]` and `[[ a . b ]]` name the tables `a.b.c` and `a.b`.
            let name: String = name
                .trim_start_matches('[')
                .split(']')
                .next()
                .unwrap_or_default()
                .split('.')
                .map(|part| part.trim().trim_matches('"'))
                .collect::<Vec<_>>()
                .join(".");
            in_table = name == table
                && match item {
                    None => true,
                    Some(i) => {
                        seen += 1;
                        seen == i + 1
                    }
                };
            if in_table {
                header = Some(n + 1);
            }
            continue;
        }
        if in_table
            && line
                .strip_prefix(key)
                .or_else(|| line.strip_prefix(&format!("\"{key}\"")))
                .is_some_and(|rest| rest.trim_start().starts_with('='))
        {
            return Some(n + 1);
        }
    }
    header
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> std::path::PathBuf {
        let path = std::env::temp_dir().join(format!(
            "relay-explain-{}-{}.toml",
            std::process::id(),
            uuid::Uuid::now_v7().simple()
        ));
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn an_invalid_field_is_named_with_its_file_line_and_table() {
        let path = file(
            "[delivery]\nprefetch = 64\n\n[destinations.helpdesk]\nurl = \"http://x\"\nmax_attempts = 0\n",
        );
        let config = Config::load(Some(&path)).unwrap();
        let error = config.validate_delivery().unwrap_err();
        assert_eq!(
            config.explain(&error),
            format!(
                "invalid configuration: {}:6: [destinations.helpdesk] max_attempts: must be at least 1",
                path.display()
            )
        );
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn a_bad_value_in_the_file_is_named_with_its_file_line_and_table() {
        let path = file("[delivery]\nprefetch = 64\n\n[worker]\nprefetch = \"many\"\n");
        let error = Config::load(Some(&path)).unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "invalid configuration: {}:5: [worker] prefetch: invalid type: found string \"many\", expected u16",
                path.display()
            )
        );
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn a_bad_value_from_the_environment_names_the_variable() {
        let vars = [("RELAY__WORKER__PREFETCH".to_owned(), "many".to_owned())];
        let error = Config::from_toml("[worker]\nprefetch = 3\n", &vars, &|_| None).unwrap_err();
        assert_eq!(
            error.to_string(),
            "invalid configuration: RELAY__WORKER__PREFETCH: [worker] prefetch: invalid type: found string \"many\", expected u16"
        );
    }

    #[test]
    fn an_unknown_key_is_named_where_it_was_written() {
        // The table `[amqp]` is written by both layers: the key's own layer is named.
        let text = "[amqp]\nurl = \"amqp://h\"\nurll = 1\n";
        let url = ("RELAY__AMQP__URL".to_owned(), "amqp://x".to_owned());
        let error = Config::from_toml(text, std::slice::from_ref(&url), &|_| None).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("invalid configuration: line 3: [amqp] urll: unknown field"),
            "{error}"
        );
        let vars = [url, ("RELAY__AMQP__URLL".to_owned(), "x".to_owned())];
        let error = Config::from_toml("[amqp]\n", &vars, &|_| None).unwrap_err();
        assert!(
            error.to_string().starts_with(
                "invalid configuration: RELAY__AMQP__URLL: [amqp] urll: unknown field"
            ),
            "{error}"
        );
    }

    #[test]
    fn an_item_of_an_array_of_tables_is_named_by_its_index_and_line() {
        let text = "[[ingress.voximplant.accounts]]\naccount_id = 1\napi_key_env = \"K\"\n\n[[ingress.voximplant.accounts]]\naccount_id = \"x\"\n";
        let error = Config::from_toml(text, &[], &|_| None).unwrap_err();
        assert_eq!(
            error.to_string(),
            "invalid configuration: line 6: [ingress.voximplant.accounts[1]] account_id: invalid type: found string \"x\", expected u64"
        );
    }

    #[test]
    fn a_syntax_error_names_the_file_and_the_parser_the_line() {
        let path = file("[amqp\nurl = 1\n");
        let error = Config::load(Some(&path)).unwrap_err().to_string();
        assert!(
            error.starts_with(&format!(
                "invalid configuration: {}: TOML parse error at line 1, column 6",
                path.display()
            )),
            "{error}"
        );
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn a_field_not_written_in_the_file_points_at_its_table_or_the_file() {
        let path = file("[destinations.helpdesk]\nurl = \"ftp://x\"\n");
        let mut config = Config::load(Some(&path)).unwrap();
        let error = config.validate_delivery().unwrap_err();
        assert!(
            config
                .explain(&error)
                .contains(":2: [destinations.helpdesk] url:")
        );
        let error = ConfigError::Invalid {
            field: "delivery.prefetch".into(),
            message: "must be at least 1".into(),
        };
        assert_eq!(
            config.explain(&error),
            format!(
                "invalid configuration: {}: [delivery] prefetch: must be at least 1",
                path.display()
            )
        );
        config.file = None;
        assert!(
            config
                .explain(&error)
                .contains("defaults (no configuration file)")
        );
        std::fs::remove_file(&path).unwrap();
    }
}
