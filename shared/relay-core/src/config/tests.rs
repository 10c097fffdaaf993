//! Tests of loading: defaults, overrides, secrets, validation messages and the example file.

use super::*;
use std::time::Duration;

fn no_env(_: &str) -> Option<String> {
    None
}

#[test]
fn empty_file_gives_documented_defaults() {
    let c = Config::from_toml("", &[], &no_env).unwrap();
    assert_eq!(c.amqp.url, "amqp://guest:guest@127.0.0.1:5672/%2f");
    assert_eq!(c.redis.url, "redis://127.0.0.1:6379");
    assert_eq!(c.ingress.listen.port(), 8080);
    assert_eq!(c.ingress.admin_listen.port(), 9090);
    assert_eq!(c.worker.admin_listen.port(), 9091);
    assert_eq!(c.delivery.admin_listen.port(), 9092);
}

#[test]
fn environment_overrides_file_values() {
    let vars = vec![
        ("RELAY__AMQP__URL".to_owned(), "amqp://x:y@h:1/v".to_owned()),
        ("RELAY__WORKER__PREFETCH".to_owned(), "7".to_owned()),
        (
            "RELAY__AMQP__RETRY_TIERS".to_owned(),
            r#"["1s", "2s"]"#.to_owned(),
        ),
        ("UNRELATED".to_owned(), "1".to_owned()),
    ];
    let c = Config::from_toml("[worker]\nprefetch = 3\n", &vars, &no_env).unwrap();
    assert_eq!(c.amqp.url, "amqp://x:y@h:1/v");
    assert_eq!(c.worker.prefetch, 7);
    assert_eq!(
        c.amqp.retry_tiers,
        vec![Duration::from_secs(1), Duration::from_secs(2)]
    );
}

#[test]
fn override_names_are_case_insensitive_and_values_read_as_toml() {
    let vars = vec![
        ("relay__Worker__Prefetch".to_owned(), "9".to_owned()),
        (
            "RELAY__WORKER__CALL_LOG__RECORDINGS".to_owned(),
            "false".to_owned(),
        ),
        (
            "RELAY__WORKER__CALL_LOG__DEFAULT_REGION".to_owned(),
            "\"US\"".to_owned(),
        ),
        (
            "RELAY__DESTINATIONS__VOXIMPLANT-API__URL".to_owned(),
            "http://127.0.0.1:1/x".to_owned(),
        ),
    ];
    let text = "[worker.call_log]\nrecordings = true\n[destinations.voximplant-api]\nurl = \"http://h/\"\n";
    let c = Config::from_toml(text, &vars, &no_env).unwrap();
    assert_eq!(c.worker.prefetch, 9);
    let call_log = c.worker.call_log.as_ref().unwrap();
    assert!(!call_log.recordings);
    assert_eq!(call_log.default_region.as_deref(), Some("US"));
    assert_eq!(c.destinations["voximplant-api"].url, "http://127.0.0.1:1/x");
}

#[test]
fn malformed_override_names_are_refused_by_name() {
    for name in ["RELAY__", "RELAY__AMQP____URL", "RELAY__AMQP__"] {
        let vars = vec![(name.to_owned(), "1".to_owned())];
        match Config::from_toml("", &vars, &no_env).unwrap_err() {
            ConfigError::Invalid { field, message } => {
                assert_eq!(field, name);
                assert_eq!(
                    message,
                    "malformed override name (use RELAY__SECTION__FIELD)"
                );
            }
            other => panic!("{name}: {other}"),
        }
    }
}

#[test]
fn unknown_fields_are_named() {
    let err = Config::from_toml("[amqp]\nurll = \"x\"\n", &[], &no_env).unwrap_err();
    assert!(err.to_string().contains("urll"), "{err}");
}

#[test]
fn type_errors_quote_the_key() {
    let vars = vec![("RELAY__WORKER__PREFETCH".to_owned(), "many".to_owned())];
    let err = Config::from_toml("", &vars, &no_env).unwrap_err();
    assert!(err.to_string().contains("prefetch"), "{err}");
}

#[test]
fn secrets_come_from_the_environment_and_never_print() {
    let text = r#"
            [ingress.voximplant]
            salt_env = "SALT"
            [[ingress.voximplant.accounts]]
            account_id = 42
            api_key_env = "KEY"
        "#;
    let env = |name: &str| match name {
        "SALT" => Some("pepper".to_owned()),
        "KEY" => Some("hunter2".to_owned()),
        _ => None,
    };
    let c = Config::from_toml(text, &[], &env).unwrap();
    c.validate_ingress().unwrap();
    assert_eq!(
        c.ingress.voximplant.accounts[0].api_key_env.value(),
        Some("hunter2")
    );
    let printed = format!("{c:?}");
    assert!(
        !printed.contains("hunter2") && !printed.contains("pepper"),
        "{printed}"
    );
}

#[test]
fn missing_secret_fails_closed_naming_the_field() {
    let text = "[[ingress.voximplant.accounts]]\naccount_id = 1\napi_key_env = \"NOPE\"\n";
    let c = Config::from_toml(text, &[], &no_env).unwrap();
    let err = c.validate_ingress().unwrap_err().to_string();
    assert!(
        err.contains("ingress.voximplant.accounts[0].api_key_env"),
        "{err}"
    );
    assert!(err.contains("NOPE"), "{err}");
}

#[test]
fn handlers_run_when_their_section_is_present_and_need_their_destination() {
    let c = Config::from_toml("", &[], &no_env).unwrap();
    assert!(c.enabled_handlers().is_empty());
    c.validate_worker().unwrap();

    let c = Config::from_toml("[worker.min_balance_alert]\n", &[], &no_env).unwrap();
    assert_eq!(c.enabled_handlers(), [crate::routing::MIN_BALANCE_ALERT]);
    let err = c.validate_worker().unwrap_err().to_string();
    assert!(
        err.contains("worker.min_balance_alert.destination"),
        "{err}"
    );

    let text = r#"
            [worker.call_log]
            destination = "helpdesk"
            [worker.call_log.channels]
            "+15550001000" = "brand-b"
            [destinations.helpdesk]
            url = "http://127.0.0.1:1/h"
        "#;
    let c = Config::from_toml(text, &[], &no_env).unwrap();
    assert_eq!(c.enabled_handlers(), [crate::routing::CALL_LOG]);
    let err = c.validate_worker().unwrap_err().to_string();
    assert!(err.contains("worker.call_log.channels"), "{err}");
    assert!(err.contains("brand-b"), "{err}");
}

#[test]
fn call_log_limits_are_checked() {
    let base = "[destinations.helpdesk]\nurl = \"http://127.0.0.1:1/h\"\n[worker.call_log]\n";
    let check = |extra: &str| {
        Config::from_toml(&format!("{base}{extra}"), &[], &no_env)
            .unwrap()
            .validate_worker()
            .map_err(|e| e.to_string())
    };
    check("").unwrap();
    assert!(
        check("session_ttl = \"1h\"\n")
            .unwrap_err()
            .contains("session_ttl")
    );
    assert!(
        check("default_region = \"usa\"\n")
            .unwrap_err()
            .contains("default_region")
    );
    assert!(
        check("prefetch = 0\n")
            .unwrap_err()
            .contains("worker.call_log.prefetch")
    );
}

#[test]
fn delivery_checks_destination_secrets() {
    let text = r#"
            [destinations.alerts]
            url = "http://127.0.0.1:1/x"
            signing = "standard-webhooks"
            secret_env = "WH"
        "#;
    let bad = |name: &str| (name == "WH").then(|| "not-whsec".to_owned());
    let err = Config::from_toml(text, &[], &bad)
        .unwrap()
        .validate_delivery()
        .unwrap_err()
        .to_string();
    assert!(err.contains("destinations.alerts.secret_env"), "{err}");
    let good = |name: &str| (name == "WH").then(|| "whsec_AAAA".to_owned());
    Config::from_toml(text, &[], &good)
        .unwrap()
        .validate_delivery()
        .unwrap();
}

#[test]
fn sources_fail_closed_and_name_the_field() {
    let text = r#"
            [ingress.sources.gh]
            scheme = "hmac-sha256"
            secret_env = "GH_SECRET"
        "#;
    let with = |name: &str| (name == "GH_SECRET").then(|| "s".to_owned());
    let err = Config::from_toml(text, &[], &with)
        .unwrap()
        .validate_ingress()
        .unwrap_err()
        .to_string();
    assert!(err.contains("ingress.sources.gh.header"), "{err}");
    let err = Config::from_toml(text, &[], &no_env)
        .unwrap()
        .validate_ingress()
        .unwrap_err()
        .to_string();
    assert!(err.contains("ingress.sources.gh.secret_env"), "{err}");
    let sw = "[ingress.sources.sw]\nscheme = \"standard-webhooks\"\nsecret_env = \"GH_SECRET\"\n";
    let err = Config::from_toml(sw, &[], &with)
        .unwrap()
        .validate_ingress()
        .unwrap_err()
        .to_string();
    assert!(err.contains("whsec_"), "{err}");
    let bad_name = "[ingress.sources.\"a.b\"]\nscheme = \"basic\"\nsecret_env = \"GH_SECRET\"\nusername = \"u\"\n";
    let err = Config::from_toml(bad_name, &[], &with)
        .unwrap()
        .validate_ingress()
        .unwrap_err()
        .to_string();
    assert!(err.contains("ingress.sources.a.b"), "{err}");
}

#[test]
fn retry_tiers_must_ascend() {
    let err = Config::from_toml("[amqp]\nretry_tiers = [\"5s\", \"1s\"]\n", &[], &no_env)
        .unwrap_err()
        .to_string();
    assert!(err.contains("amqp.retry_tiers"), "{err}");
}

#[test]
fn without_a_file_every_default_listener_is_loopback_and_a_warning_says_so() {
    let mut config = Config::from_toml("", &[], &|_: &str| None).unwrap();
    config.ingress.admin_listen = "0.0.0.0:9999".parse().unwrap(); // chosen: kept
    config.loopback_only();
    assert_eq!(config.ingress.listen.ip().to_string(), "127.0.0.1");
    assert_eq!(config.worker.admin_listen.ip().to_string(), "127.0.0.1");
    assert_eq!(config.delivery.admin_listen.ip().to_string(), "127.0.0.1");
    assert_eq!(config.ingress.admin_listen.to_string(), "0.0.0.0:9999");
    assert!(config.no_file_warning().unwrap().contains("127.0.0.1 only"));
    config.file = Some("relay.toml".into());
    assert!(config.no_file_warning().is_none());
}

#[test]
fn the_example_configuration_parses_with_no_warnings() {
    // Every struct of the tree denies unknown fields, so a key the example documents that
    // the schema lacks (a typo, a field since removed) fails here rather than being ignored.
    // Loading has one warning, the missing file's; relay-core logs nothing itself (it has
    // no `tracing`), nor does figment. No overrides: the developer's `RELAY__…` variables
    // must not mask a mistake of the file.
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../relay.example.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut config = Config::from_layers(&text, Some(&path), &[], &no_env)
        .unwrap_or_else(|error| panic!("{error}"));
    config.file = Some(path);
    assert_eq!(config.no_file_warning(), None);
}

#[test]
fn the_example_configuration_loads_from_its_file_as_is() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../relay.example.toml");
    let config = Config::load(Some(&path)).unwrap();
    assert_eq!(config.file.as_deref(), Some(path.as_path()));
    assert!(config.no_file_warning().is_none());
    // Its secret file is found beside it, wherever the test runs.
    let key = config.destinations["voximplant-api"]
        .secret_file
        .clone()
        .unwrap();
    assert!(key.exists(), "{}", key.display());
}
