//! Properties of the V3 canonicalisation with repeated keys: no input panics; the order of a
//! key's values does not matter (the SDKs sort them) but every value does: changing one, or
//! adding a duplicate, even an identical one, fails verification; and what a caller reads from
//! a [`SignedRequest`] does not depend on the wire order either.

use proptest::prelude::*;

use super::*;

const TOKEN: &str = "prop-token";
const NONCE: &str = "prop-nonce";

fn method() -> impl Strategy<Value = Method> {
    prop_oneof![Just(Method::Get), Just(Method::Post)]
}

/// Params whose keys repeat often. Keys are one uppercase letter and values lowercase letters
/// and digits, so no two different multisets of pairs share a canonical string (a POST body
/// concatenates `kv` without separators, so that needs the alphabets apart).
fn params() -> impl Strategy<Value = Vec<(String, String)>> {
    proptest::collection::vec(("[A-D]", "[a-z0-9]{0,4}"), 0..8)
}

fn non_empty_params() -> impl Strategy<Value = Vec<(String, String)>> {
    proptest::collection::vec(("[A-D]", "[a-z0-9]{0,4}"), 1..8)
}

/// `(query, form)`: `target` where the change goes, `other` the other side.
fn split<T>(target_is_query: bool, target: T, other: T) -> (T, T) {
    if target_is_query {
        (target, other)
    } else {
        (other, target)
    }
}

/// A URL whose query (form-encoded, so any text survives) carries `query`.
fn url_with(path: &str, query: &[(String, String)]) -> String {
    if query.is_empty() {
        return format!("https://relay.example.com{path}");
    }
    let encoded = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(query)
        .finish();
    format!("https://relay.example.com{path}?{encoded}")
}

fn verifies(url: &str, method: Method, form: &[(String, String)], sig: &str) -> bool {
    verify_v3(TOKEN, url, method, form, Some(NONCE), Some(sig)).is_ok()
}

proptest! {
    #[test]
    fn arbitrary_input_never_panics(
        url in ".{0,80}",
        raw_query in ".{0,40}",
        form in proptest::collection::vec((".{0,8}", ".{0,8}"), 0..6),
        method in method(),
        nonce in ".{0,12}",
        sig in ".{0,60}",
    ) {
        for url in [url.clone(), format!("https://h.example/p?{raw_query}"), format!("{url}?{raw_query}")] {
            let _ = verify_v3(TOKEN, &url, method, &form, Some(&nonce), Some(&sig));
            let _ = sign_v3(TOKEN, &url, method, &form, "n");
            let _ = v3_base_strings(&url, method, &form);
            let _ = SignedRequest::from_body(&url, method, raw_query.as_bytes());
        }
    }

    /// Any text in keys and values (form-encoded on the wire) signs and verifies, in any order.
    #[test]
    fn any_text_round_trips_in_any_order(
        query in proptest::collection::vec((".{0,6}", ".{0,6}"), 0..5),
        form in proptest::collection::vec((".{0,6}", ".{0,6}"), 0..5),
        method in method(),
    ) {
        let url = url_with("/v1/plivo/status", &query);
        let sig = sign_v3(TOKEN, &url, method, &form, NONCE).unwrap();
        let mut reversed = form.clone();
        reversed.reverse();
        prop_assert!(verifies(&url, method, &reversed, &sig));
        let mut query_reversed = query.clone();
        query_reversed.reverse();
        prop_assert!(verifies(&url_with("/v1/plivo/status", &query_reversed), method, &form, &sig));
    }

    #[test]
    fn a_single_changed_value_fails(
        target in non_empty_params(),
        other in params(),
        method in method(),
        in_query in any::<bool>(),
        index in any::<prop::sample::Index>(),
        value in "[a-z0-9]{0,4}",
    ) {
        let (query, form) = split(in_query, target.clone(), other.clone());
        let url = url_with("/v1/plivo/hangup", &query);
        let sig = sign_v3(TOKEN, &url, method, &form, NONCE).unwrap();
        let mut changed = target;
        let i = index.index(changed.len());
        // Always a different value: the drawn one, or the old one with a digit more.
        changed[i].1 = if changed[i].1 == value { format!("{value}0") } else { value };
        let (query, form) = split(in_query, changed, other);
        prop_assert!(!verifies(&url_with("/v1/plivo/hangup", &query), method, &form, &sig));
    }

    #[test]
    fn an_added_duplicate_fails(
        target in non_empty_params(),
        other in params(),
        method in method(),
        in_query in any::<bool>(),
        index in any::<prop::sample::Index>(),
        position in any::<prop::sample::Index>(),
        value in prop_oneof![Just(None), "[a-z0-9]{0,4}".prop_map(Some)],
    ) {
        let (query, form) = split(in_query, target.clone(), other.clone());
        let url = url_with("/v1/plivo/hangup", &query);
        let sig = sign_v3(TOKEN, &url, method, &form, NONCE).unwrap();
        let mut added = target;
        // A key already there, with a new value or (None) the very same value again.
        let (key, same) = added[index.index(added.len())].clone();
        let at = position.index(added.len() + 1);
        added.insert(at, (key, value.unwrap_or(same)));
        let (query, form) = split(in_query, added, other);
        prop_assert!(!verifies(&url_with("/v1/plivo/hangup", &query), method, &form, &sig));
    }

    /// What a handler reads is the signed view: the same for every wire order.
    #[test]
    fn the_parameters_read_do_not_depend_on_wire_order(
        query in params(),
        form in params(),
        method in method(),
    ) {
        let request = SignedRequest::new(&url_with("/p", &query), method, form.clone()).unwrap();
        let (mut q, mut f) = (query, form);
        q.reverse();
        f.reverse();
        let reordered = SignedRequest::new(&url_with("/p", &q), method, f).unwrap();
        prop_assert_eq!(request.query(), reordered.query());
        prop_assert_eq!(request.form(), reordered.form());
        prop_assert!(request.query().windows(2).all(|w| w[0] <= w[1]));
        prop_assert!(request.form().windows(2).all(|w| w[0] <= w[1]));
    }

    /// Text a numeric header might carry (limits, huge digit strings, signs, whitespace) as the
    /// nonce or the signature: nothing panics and nothing verifies.
    #[test]
    fn numeric_header_text_never_panics_or_verifies(
        nonce in crate::test_support::numeric_text(),
        sig in crate::test_support::numeric_text(),
    ) {
        let url = "https://relay.example.com/v1/plivo/hangup";
        let form = vec![("CallUUID".to_owned(), "u".to_owned())];
        for method in [Method::Get, Method::Post] {
            prop_assert!(verify_v3(TOKEN, url, method, &form, Some(&nonce), Some(&sig)).is_err());
        }
        prop_assert!(verify_v2(TOKEN, url, Some(&nonce), Some(&sig)).is_err());
    }
}
