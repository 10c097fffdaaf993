//! Configuration errors as an operator reads them: the file, the line and the table path of
//! the offending field (`relay.toml:12: [destinations.helpdesk] timeout: must be positive`).

use std::path::Path;

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
            Some(file) => match locate(file, table, key) {
                Some(line) => format!("{}:{line}: ", file.display()),
                None => format!("{}: ", file.display()),
            },
            None => "defaults (no configuration file): ".to_owned(),
        };
        if table.is_empty() {
            format!("invalid configuration: {place}{key}: {message}")
        } else {
            format!("invalid configuration: {place}[{table}] {key}: {message}")
        }
    }
}

/// The line (1-based) of `key` in the table `[table]` of the file at `path`, else of the
/// table's header; `None` when neither is written in the file (a default, or an environment
/// override).
fn locate(path: &Path, table: &str, key: &str) -> Option<usize> {
    let text = std::fs::read_to_string(path).ok()?;
    let mut current = String::new();
    let mut header = None;
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if let Some(name) = line.strip_prefix('[') {
            current = name
                .trim_start_matches('[')
                .split(']')
                .next()
                .unwrap_or_default()
                .trim()
                .to_owned();
            if current == table {
                header = Some(n + 1);
            }
            continue;
        }
        if current == table
            && line
                .strip_prefix(key)
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
