//! The V3 and V2 schemes on the vectors PROTOCOLS.md quotes, their layouts and negatives.

use super::*;
use proptest::prelude::*;

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// plivo-go `utils_test.go` and plivo-ruby `signature_spec.rb`: V3 GET.
#[test]
fn official_v3_get_vector() {
    let params = pairs(&[
        ("CallUUID", "97ceeb52-58b6-11e1-86da-77300b68f8bb"),
        ("Duration", "300"),
    ]);
    let sig = "rXj4UwTSVxH6Kj+W0qX8LaCvVOOvmzPGzY8sQVn3d1I=";
    assert_eq!(
        verify_v3(
            "my_auth_token",
            "https://answer.url",
            Method::Get,
            &params,
            Some("12345"),
            Some(sig)
        ),
        Ok(())
    );
    // The SDKs' failing case: the last character changed.
    let bad = "rXj4UwTSVxH6Kj+W0qX8LaCvVOOvmzPGzY8sQVn3d1I+";
    assert_eq!(
        verify_v3(
            "my_auth_token",
            "https://answer.url",
            Method::Get,
            &params,
            Some("12345"),
            Some(bad)
        ),
        Err(VerifyError::Mismatch)
    );
}

fn post_vector_params() -> Vec<(String, String)> {
    crate::test_support::plivo_vector_call()
}

const POST_URL: &str = "https://plivobin.non-prod.plivops.com/api/v1/validate_signature03.xml";
const POST_TOKEN: &str = "Y2Q2ZDgxZmY5YWRiOTI5YmQ1Njg0MTAxZWIyOTc4";
const POST_NONCE: &str = "31627761595286130198";
const POST_SIG: &str = "iAjE5QqI37mbkYe4w3jTMudqEzbDufdqi7sYwTu64e0=";

/// plivo-go / plivo-ruby: V3 POST (PROTOCOLS.md).
#[test]
fn official_v3_post_vector() {
    let params = post_vector_params();
    assert_eq!(
        sign_v3(POST_TOKEN, POST_URL, Method::Post, &params, POST_NONCE).as_deref(),
        Some(POST_SIG)
    );
    // Several signatures in the header: any match.
    let header = format!("aW52YWxpZA==,{POST_SIG}");
    assert_eq!(
        verify_v3(
            POST_TOKEN,
            POST_URL,
            Method::Post,
            &params,
            Some(POST_NONCE),
            Some(&header)
        ),
        Ok(())
    );
}

#[test]
fn v3_negatives() {
    let params = post_vector_params();
    let check =
        |token: &str,
         url: &str,
         params: &[(String, String)],
         nonce: Option<&str>,
         sig: Option<&str>| { verify_v3(token, url, Method::Post, params, nonce, sig) };
    assert_eq!(
        check("wrong", POST_URL, &params, Some(POST_NONCE), Some(POST_SIG)),
        Err(VerifyError::Mismatch)
    );
    assert_eq!(
        check(POST_TOKEN, POST_URL, &params, Some("1"), Some(POST_SIG)),
        Err(VerifyError::Mismatch)
    );
    assert_eq!(
        check(
            POST_TOKEN,
            &format!("{POST_URL}?x=1"),
            &params,
            Some(POST_NONCE),
            Some(POST_SIG)
        ),
        Err(VerifyError::Mismatch)
    );
    let mut changed = params.clone();
    changed[0].1.push('x');
    assert_eq!(
        check(
            POST_TOKEN,
            POST_URL,
            &changed,
            Some(POST_NONCE),
            Some(POST_SIG)
        ),
        Err(VerifyError::Mismatch)
    );
    let mut extra = params.clone();
    extra.push(("Extra".into(), "1".into()));
    assert_eq!(
        check(
            POST_TOKEN,
            POST_URL,
            &extra,
            Some(POST_NONCE),
            Some(POST_SIG)
        ),
        Err(VerifyError::Mismatch)
    );
    assert_eq!(
        check(POST_TOKEN, POST_URL, &params, None, Some(POST_SIG)),
        Err(VerifyError::Missing)
    );
    assert_eq!(
        check(POST_TOKEN, POST_URL, &params, Some(POST_NONCE), None),
        Err(VerifyError::Missing)
    );
    assert!(matches!(
        check(
            POST_TOKEN,
            "relative/path",
            &params,
            Some(POST_NONCE),
            Some(POST_SIG)
        ),
        Err(VerifyError::Malformed(_))
    ));
    // GET and POST lay the same params out differently.
    assert_eq!(
        verify_v3(
            POST_TOKEN,
            POST_URL,
            Method::Get,
            &params,
            Some(POST_NONCE),
            Some(POST_SIG)
        ),
        Err(VerifyError::Mismatch)
    );
}

#[test]
fn v3_layouts_with_a_query() {
    let params = pairs(&[("b", "2"), ("a", "1")]);
    let first = |url: &str, method, params: &[(String, String)]| {
        v3_base_strings(url, method, params).unwrap()[0].clone()
    };
    assert_eq!(
        first("https://h.example/p?z=9&y=8", Method::Post, &params),
        "https://h.example/p?y=8&z=9.a1b2"
    );
    assert_eq!(
        first("https://h.example/p?z=9&a=0", Method::Get, &params),
        "https://h.example/p?a=0&a=1&b=2&z=9",
        "GET keeps a key's values from the query and from the params (plivo-node)"
    );
    assert_eq!(
        first("https://h.example:8443/p", Method::Post, &[]),
        "https://h.example:8443/p"
    );
    assert_eq!(
        first("https://h.example/p?q=a%20b", Method::Get, &[]),
        "https://h.example/p?q=a b",
        "query values are decoded, not re-encoded"
    );
    // The legacy GET layout of plivo-go and plivo-ruby is a candidate too.
    let get = v3_base_strings("https://h.example/p", Method::Get, &params).unwrap();
    assert!(
        get.contains(&"https://h.example/p/?a=1&b=2&".to_owned()),
        "{get:?}"
    );
    // A POST with a query and no params: with and without the separator.
    let post = v3_base_strings("https://h.example/p?y=8", Method::Post, &[]).unwrap();
    assert_eq!(
        post,
        vec![
            "https://h.example/p?y=8".to_owned(),
            "https://h.example/p?y=8.".to_owned()
        ]
    );
}

/// plivo-python, -go, -node, -ruby, -php: V2.
#[test]
fn official_v2_vector() {
    let sig = "ehV3IKhLysWBxC1sy8INm0qGoQYdYsHwuoKjsX7FsXc=";
    assert_eq!(
        sign_v2("my_auth_token", "https://answer.url", "12345").as_deref(),
        Some(sig)
    );
    assert_eq!(
        verify_v2(
            "my_auth_token",
            "https://answer.url",
            Some("12345"),
            Some(sig)
        ),
        Ok(())
    );
    assert_eq!(
        verify_v2(
            "my_auth_tokens",
            "https://answer.url",
            Some("12345"),
            Some(sig)
        ),
        Err(VerifyError::Mismatch)
    );
    // The query is dropped; the port and a trailing slash are not.
    assert_eq!(
        verify_v2(
            "my_auth_token",
            "https://answer.url?a=1",
            Some("12345"),
            Some(sig)
        ),
        Ok(())
    );
    assert_eq!(
        verify_v2(
            "my_auth_token",
            "https://answer.url/",
            Some("12345"),
            Some(sig)
        ),
        Err(VerifyError::Mismatch)
    );
    assert_eq!(
        verify_v2(
            "my_auth_token",
            "https://answer.url:443",
            Some("12345"),
            Some(sig)
        ),
        Err(VerifyError::Mismatch)
    );
}

proptest! {
    #[test]
    fn any_single_bit_flip_in_a_param_fails(index in 0usize..13, pos in 0usize..8, bit in 0u8..7) {
        let mut params = post_vector_params();
        let value = params[index].1.clone().into_bytes();
        let pos = pos % value.len();
        let mut flipped = value.clone();
        flipped[pos] ^= 1 << bit;
        prop_assume!(flipped.is_ascii());
        params[index].1 = String::from_utf8(flipped).unwrap();
        prop_assert_eq!(
            verify_v3(POST_TOKEN, POST_URL, Method::Post, &params, Some(POST_NONCE), Some(POST_SIG)),
            Err(VerifyError::Mismatch)
        );
    }

    #[test]
    fn never_panics(url in ".{0,60}", k in ".{0,10}", v in ".{0,10}", nonce in ".{0,10}", sig in ".{0,60}") {
        let params = vec![(k, v)];
        let _ = verify_v3("t", &url, Method::Get, &params, Some(&nonce), Some(&sig));
        let _ = verify_v3("t", &url, Method::Post, &params, Some(&nonce), Some(&sig));
        let _ = verify_v2("t", &url, Some(&nonce), Some(&sig));
    }
}

/// The signature of the canonical base string is the official POST vector's.
#[test]
fn sign_v3_base_signs_one_layout() {
    let bases = v3_base_strings(POST_URL, Method::Post, &post_vector_params()).unwrap();
    assert_eq!(sign_v3_base(POST_TOKEN, &bases[0], POST_NONCE), POST_SIG);
    assert_ne!(sign_v3_base("wrong", &bases[0], POST_NONCE), POST_SIG);
}
