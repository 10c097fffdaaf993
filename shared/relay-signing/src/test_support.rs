//! Shared proptest strategies: header text built around extreme numbers, for the never-panics
//! properties of every header parser.

use proptest::prelude::*;

/// Text a numeric header might carry, honestly or not: the `i64`/`u64` limits and their
/// neighbours, any `i64`, huge digit strings, stray signs, and any of them wrapped in spaces or
/// tabs.
pub(crate) fn numeric_text() -> impl Strategy<Value = String> {
    let core = prop_oneof![
        Just(i64::MIN.to_string()),
        Just(i64::MAX.to_string()),
        Just(u64::MAX.to_string()),
        Just("-9223372036854775809".to_owned()),
        Just("9223372036854775808".to_owned()),
        Just("18446744073709551616".to_owned()),
        Just("-0".to_owned()),
        Just("+".to_owned()),
        Just("-".to_owned()),
        Just(String::new()),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<i64>().prop_map(|n| format!("+{n}")),
        "[+-]{0,3}[0-9]{19,400}",
        "[+-]{0,2}0{0,30}[0-9]{0,25}",
        "[0-9]{1,20}[eE.,_ ][0-9]{1,5}",
    ];
    (core, "[ \t]{0,3}", "[ \t]{0,3}")
        .prop_map(|(core, before, after)| format!("{before}{core}{after}"))
}

/// The thirteen call parameters of Plivo's official V3 vectors (plivo-go `utils_test.go`,
/// plivo-ruby `signature_spec.rb`), in wire order.
pub(crate) fn plivo_vector_call() -> Vec<(String, String)> {
    [
        ("Direction", "outbound"),
        ("From", "19792014278"),
        ("ALegUUID", "3e82ae9d-2c78-4d85-b1a4-6eae7dbafb36"),
        ("CallStatus", "in-progress"),
        ("BillRate", "0.002"),
        ("ParentAuthID", "MANWVLYTK4ZWU1YTY4QA"),
        (
            "To",
            "sip:PlivoSignature382029104058171078704104@phone-qa.voice.plivodev.com",
        ),
        ("ALegRequestUUID", "3e82ae9d-2c78-4d85-b1a4-6eae7dbafb36"),
        ("CallUUID", "3e82ae9d-2c78-4d85-b1a4-6eae7dbafb36"),
        ("RequestUUID", "3e82ae9d-2c78-4d85-b1a4-6eae7dbafb36"),
        (
            "SIP-H-To",
            "<sip:PlivoSignature382029104058171078704104@52.9.11.55;transport=udp>;tag=1",
        ),
        ("SessionStart", "2020-04-08 11:34:33.238707"),
        ("Event", "StartApp"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect()
}
