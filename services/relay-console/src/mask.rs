//! Phone numbers masked by default (`console.mask_numbers`): enough to recognise a number
//! (its country prefix and last three digits), not enough to call it.

/// `number` with its middle digits replaced by `•`: `+442071838750` → `+44•••••••750`. Text
/// with fewer than seven digits (a SIP user, a short code) keeps only its last two characters.
pub fn mask_number(number: &str) -> String {
    let digits = number.chars().filter(char::is_ascii_digit).count();
    if digits < 7 {
        let chars: Vec<char> = number.chars().collect();
        let keep = chars.len().min(2);
        let hidden = chars.len() - keep;
        return "•".repeat(hidden) + &chars[hidden..].iter().collect::<String>();
    }
    let mut seen = 0;
    number
        .chars()
        .map(|c| {
            if c.is_ascii_digit() {
                seen += 1;
                if seen <= 2 || seen > digits - 3 {
                    c
                } else {
                    '•'
                }
            } else {
                c
            }
        })
        .collect()
}

/// `number` as the page shows it: masked unless `reveal`.
pub(crate) fn shown(number: Option<&str>, reveal: bool) -> String {
    match number {
        None | Some("") => "—".to_owned(),
        Some(n) if reveal => n.to_owned(),
        Some(n) => mask_number(n),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_number_keeps_its_prefix_and_last_three_digits() {
        assert_eq!(mask_number("+442071838750"), "+44•••••••750");
        assert_eq!(mask_number("+1 (555) 010-0000"), "+1 (5••) •••-•000");
        assert_eq!(mask_number("alice"), "•••ce");
        assert_eq!(mask_number("12"), "12");
        assert_eq!(shown(None, false), "—");
        assert_eq!(shown(Some("+442071838750"), true), "+442071838750");
    }

    proptest! {
        #[test]
        fn a_masked_number_shows_at_most_five_of_its_digits(number in "\\+?[0-9 ()-]{0,24}") {
            let masked = mask_number(&number);
            let shown = masked.chars().filter(char::is_ascii_digit).count();
            let digits = number.chars().filter(char::is_ascii_digit).count();
            prop_assert!(shown <= 5.min(digits.max(2)));
            prop_assert_eq!(masked.chars().count(), number.chars().count());
        }
    }
}
