//! Phone numbers in E.164, parsed with `phonenumber` (Google's libphonenumber metadata) rather
//! than by hand.
//!
//! Parsing is structural: a known country code and a national number of a possible length.
//! Whether a number is *assigned* (libphonenumber's `is_valid`) is deliberately not checked:
//! test and fictional ranges such as +1 555 must pass, and the providers have already placed
//! the call.

use phonenumber::{Mode, PhoneNumber, country};

fn e164(number: &PhoneNumber) -> String {
    number.format().mode(Mode::E164).to_string()
}

/// Separators people and providers put in numbers.
fn compact(input: &str) -> String {
    input
        .trim()
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')' | '\u{a0}'))
        .collect()
}

/// Parses an international number (`+…` or `00…`) to E.164. A number without its country code
/// is refused: the relay cannot guess the country.
pub fn normalize_e164(input: &str) -> Option<String> {
    let compact = compact(input);
    let digits = compact
        .strip_prefix('+')
        .or_else(|| compact.strip_prefix("00"))?;
    if digits.is_empty() || digits.len() > 15 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let number = phonenumber::parse(None, format!("+{digits}")).ok()?;
    // libphonenumber accepts a national number of any length it can split off; E.164 allows 15
    // digits at most, country code included, and no country has numbers under 4 digits.
    let formatted = e164(&number);
    (9..=16).contains(&formatted.len()).then_some(formatted)
}

/// Normalises a number as a telephony provider sent it: international with `+` or `00`;
/// digits only with a leading `0` (a trunk prefix) or of 10 digits at most, national in
/// `region` (an ISO 3166 code such as `US`) when one is given; other digit strings as
/// international digits without the `+` (Plivo's habit). `None` when it is no phone number at
/// all (a SIP URI, a user name, garbage).
pub fn normalize_provider(input: &str, region: Option<&str>) -> Option<String> {
    if let Some(number) = normalize_e164(input) {
        return Some(number);
    }
    let compact = compact(input);
    if compact.is_empty() || compact.len() > 17 || !compact.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let national = || {
        let region = region?.parse::<country::Id>().ok()?;
        let number = phonenumber::parse(Some(region), &compact).ok()?;
        let formatted = e164(&number);
        (9..=16).contains(&formatted.len()).then_some(formatted)
    };
    if compact.starts_with('0') || compact.len() <= 10 {
        national()
    } else {
        normalize_e164(&format!("+{compact}")).or_else(national)
    }
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

    #[test]
    fn provider_numbers_without_plus_and_national_numbers() {
        // Plivo sends international numbers without the plus.
        assert_eq!(
            normalize_provider("19792014278", None).as_deref(),
            Some("+19792014278")
        );
        assert_eq!(
            normalize_provider("447496026874", Some("US")).as_deref(),
            Some("+447496026874")
        );
        // A national number in the configured region.
        assert_eq!(
            normalize_provider("(202) 555-0123", Some("US")).as_deref(),
            Some("+12025550123")
        );
        assert_eq!(
            normalize_provider("19792014278", Some("US")).as_deref(),
            Some("+19792014278")
        );
        assert_eq!(
            normalize_provider("020 7946 0958", Some("GB")).as_deref(),
            Some("+442079460958")
        );
        // Without a region a national number stays unknown.
        assert_eq!(normalize_provider("2025550123", None), None);
        for not_a_number in ["sip:alice@phone.plivo.com", "alice", "", "+"] {
            assert_eq!(normalize_provider(not_a_number, Some("US")), None);
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

        #[test]
        fn provider_output_is_canonical(input in "[+0-9 ()-]{0,20}", region in "US|GB|DE|RU") {
            if let Some(n) = normalize_provider(&input, Some(&region)) {
                proptest::prop_assert!(n.starts_with('+'));
                proptest::prop_assert_eq!(normalize_e164(&n), Some(n.clone()));
            }
        }
    }
}
