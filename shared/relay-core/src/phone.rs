//! Phone numbers in E.164 (`+` and 8 to 15 digits, no leading zero in the country code).

/// Normalises `input` to E.164: spaces, dashes, dots and parentheses are dropped and a leading
/// `00` becomes `+`. A number without its country code (no `+`/`00`) is refused: the relay
/// cannot guess the country.
pub fn normalize_e164(input: &str) -> Option<String> {
    let compact: String = input
        .trim()
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')' | '\u{a0}'))
        .collect();
    let digits = compact
        .strip_prefix('+')
        .or_else(|| compact.strip_prefix("00"))?;
    let valid = (8..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0');
    valid.then(|| format!("+{digits}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_common_forms() {
        assert_eq!(
            normalize_e164("+15551231234").as_deref(),
            Some("+15551231234")
        );
        assert_eq!(
            normalize_e164(" +1 (555) 123-1234 ").as_deref(),
            Some("+15551231234")
        );
        assert_eq!(
            normalize_e164("0044 20 7946 0958").as_deref(),
            Some("+442079460958")
        );
        assert_eq!(
            normalize_e164("+7.495.123.45.67").as_deref(),
            Some("+74951234567")
        );
    }

    #[test]
    fn refuses_what_is_not_a_full_number() {
        for bad in [
            "5551231234",
            "+0123456789",
            "+1234",
            "+1234567890123456",
            "+1555abc1234",
            "",
            "+",
            "sip:alice@example.com",
        ] {
            assert_eq!(normalize_e164(bad), None, "{bad}");
        }
    }

    proptest::proptest! {
        #[test]
        fn output_is_always_canonical(input in ".{0,40}") {
            if let Some(n) = normalize_e164(&input) {
                proptest::prop_assert!(n.starts_with('+'));
                proptest::prop_assert!(n[1..].bytes().all(|b| b.is_ascii_digit()));
                proptest::prop_assert_eq!(normalize_e164(&n), Some(n.clone()));
            }
        }
    }
}
