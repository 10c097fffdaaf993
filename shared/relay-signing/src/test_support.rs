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
