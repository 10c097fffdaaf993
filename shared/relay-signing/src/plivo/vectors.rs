//! The V3 vectors: Plivo's official ones (plivo-go `utils_test.go` `TestValidateSignatureV3Pass1`
//! to `Pass4`, the same four in plivo-ruby `spec/signature_spec.rb`) and the derived D01–D20 of
//! `research/plivo-v3-repeated-keys.md`, computed by running plivo-python's and plivo-node's
//! own V3 code on those inputs (reproduced by `research/plivo_v3_reference.py`). No Plivo test
//! holds a repeated key; the derived vectors are what pin them down.

use super::*;

const TOKEN: &str = "Y2Q2ZDgxZmY5YWRiOTI5YmQ1Njg0MTAxZWIyOTc4";
const NONCE: &str = "31627761595286130198";
const U1: &str = "https://plivobin.non-prod.plivops.com/api/v1/validate_signature03.xml/?a=b&c=d";
const U2: &str = "https://plivobin.non-prod.plivops.com/api/v1/validate_signature03.xml";

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn call() -> Vec<(String, String)> {
    crate::test_support::plivo_vector_call()
}

fn verifies(method: Method, url: &str, params: &[(String, String)], sig: &str) -> bool {
    verify_v3(TOKEN, url, method, params, Some(NONCE), Some(sig)).is_ok()
}

#[test]
fn official_vectors_v1_to_v4() {
    for (name, method, url, sig) in [
        (
            "V1",
            Method::Post,
            U1,
            "k7Pusd4OxCIjR5IfA9iedDNu/h/gbdYqdzG/MiYtd1c=",
        ),
        (
            "V2",
            Method::Get,
            U1,
            "UBq8jAtd32wR8EK9VgxbBn4n5rpI/l1H9iN4WfSEHFQ=",
        ),
        (
            "V3",
            Method::Post,
            U2,
            "iAjE5QqI37mbkYe4w3jTMudqEzbDufdqi7sYwTu64e0=",
        ),
        (
            "V4",
            Method::Get,
            U2,
            "i/MQsaQSAd6fiKhOh2qeeeLHZ9faldADSb3/7+Akfbc=",
        ),
    ] {
        assert!(verifies(method, url, &call(), sig), "{name}");
        assert_eq!(
            sign_v3(TOKEN, url, method, &call(), NONCE).as_deref(),
            Some(sig),
            "{name} is the canonical layout"
        );
    }
}

/// One derived vector: method, URL, params in wire order, the plivo-python/-node signature.
type Vector = (
    &'static str,
    Method,
    &'static str,
    &'static [(&'static str, &'static str)],
    &'static str,
);

/// The derived vectors with a repeated key. plivo-python and plivo-node sign each of them the
/// same way: every value kept, URL-decoded, a key's values sorted; `k=v1&k=v2` in a query,
/// `kv1kv2` in a POST body. (D05 and D06, a GET key both in the URL and in separate params,
/// take plivo-node's union; see [`query_param_collisions_sign_every_value`].)
const REPEATED: &[Vector] = &[
    (
        "D01",
        Method::Get,
        "https://example.com/cb?tag=b&tag=a&x=1",
        &[],
        "ZCbpC0yjP1ta2AX+WvoQRU7mqTtl/vG3buxHH4Qwaec=",
    ),
    (
        "D02",
        Method::Post,
        "https://example.com/cb?tag=b&tag=a",
        &[("From", "123"), ("To", "456")],
        "ySxhSKftsdv3qJUFCnttGJzdAyS4EdIO3RkhASttt7c=",
    ),
    (
        "D03",
        Method::Post,
        "https://example.com/cb",
        &[("Tag", "b"), ("Tag", "a"), ("From", "123")],
        "NQ7E8zCA4qVP/buXedc6DiaUniXGUSI2sfkRMPF0Obs=",
    ),
    (
        "D04",
        Method::Get,
        "https://example.com/cb",
        &[("Tag", "b"), ("Tag", "a"), ("From", "123")],
        "bz6Mm0saVhOIqXqP41b6aquJJWEq1r22bTHHvn5mxnM=",
    ),
    (
        "D05 (node)",
        Method::Get,
        "https://example.com/cb?From=q",
        &[("From", "p"), ("To", "456")],
        "Q1VdqGSmgsIE5T87RF6Ojq4aemP3UjrSwi3HQ2kfOLk=",
    ),
    (
        "D06 (node)",
        Method::Get,
        "https://example.com/cb?tag=b&tag=a",
        &[("tag", "c")],
        "Ktt0MiD1nnINolft74/YgivGcovUVz5QTHwcaqRJKD4=",
    ),
    (
        "D14",
        Method::Get,
        "https://example.com/cb?n=10&n=9",
        &[],
        "0B6AUjVaNyfdbb0K4ZUBZjJR1pPidY3jnGGQN1yZmWY=",
    ),
    (
        "D15",
        Method::Post,
        "https://example.com/cb?n=10&n=9",
        &[],
        "0B6AUjVaNyfdbb0K4ZUBZjJR1pPidY3jnGGQN1yZmWY=",
    ),
    (
        "D20",
        Method::Get,
        "https://example.com/cb?x=2&x=10&x=1",
        &[("y", "1")],
        "1ltMs6DqyeVO8V5OEfMOgAtQh3PZULKPOeJ+1Lgj0kg=",
    ),
];

/// The derived vectors without a repeated key: edge cases of decoding, ports, sorting.
const SINGLE: &[Vector] = &[
    (
        "D07",
        Method::Get,
        "https://example.com/cb?name=J%C3%B6rg+M&x=a%26b",
        &[],
        "khYqs1c8ItqekHvPrXU6bmaqOTmzAU5A17aB5k4oRm4=",
    ),
    (
        "D08",
        Method::Post,
        "https://example.com/cb?x=1",
        &[],
        "JAGFHLBf7mm2rZ6rLrnKCppaEaL9U0pGj0maseMQukQ=",
    ),
    (
        "D09",
        Method::Post,
        "https://example.com:8443/cb/",
        &[("A", "1")],
        "K7mXUb/ZA1k6+Zrre81PTPRWXquOUpsQZvf9bs9RdxE=",
    ),
    (
        "D10",
        Method::Get,
        "https://example.com/cb",
        &[],
        "FQ2X9YjScS+t2pb5/P+aGykMTfX2zE7KKlG3V+kkvug=",
    ),
    (
        "D11",
        Method::Post,
        "https://example.com/cb",
        &[],
        "FQ2X9YjScS+t2pb5/P+aGykMTfX2zE7KKlG3V+kkvug=",
    ),
    (
        "D12",
        Method::Post,
        "https://example.com/cb",
        &[("a10", "x"), ("a9", "y")],
        "iQahWzvus58EcZPc/WyotMqVqNmYjDm8bAB80twrbtg=",
    ),
    (
        "D13",
        Method::Get,
        "https://example.com/cb?flag&x=",
        &[],
        "eQq3WZxf0f4fi8FLzvhIu/L3eQ2NoVcR2U90suhzgnw=",
    ),
    (
        "D16",
        Method::Post,
        "https://example.com/a%20b/cb?q=%2B1+2",
        &[("From", "+1")],
        "XuFj8NYOK6iFH/Bz8JGASZ7smtwq4ChXSdZPKlJLeSE=",
    ),
    (
        "D17",
        Method::Post,
        "https://user:pw@example.com/cb",
        &[("A", "1")],
        "EWgQ8BnAns7mn9Ha1g5KSY6qOcjfEI2crhLZ5QE0+Dg=",
    ),
    (
        "D18",
        Method::Post,
        "https://example.com/cb",
        &[("Text", "h\u{e9}llo")],
        "aa61rXLgMkYdaaiSS/OBnBKRPSb8NTnnnKDl+Z7sgK0=",
    ),
    (
        "D19",
        Method::Post,
        "https://example.com/cb",
        &[("B", "2"), ("a", "1"), ("_", "3")],
        "W2OYukvr+k8GhMgEUm4WkQMoYMZo5FwLYdrICCYD/Mo=",
    ),
];

#[test]
fn repeated_keys_verify_as_plivo_python_and_node_sign_them() {
    for (name, method, url, params, sig) in REPEATED {
        let params = pairs(params);
        assert!(verifies(*method, url, &params, sig), "{name}");
        assert_eq!(
            sign_v3(TOKEN, url, *method, &params, NONCE).as_deref(),
            Some(*sig),
            "{name} is the canonical layout"
        );
        // The wire order of a key's values is not part of what is signed.
        let mut reversed = params.clone();
        reversed.reverse();
        assert!(verifies(*method, url, &reversed, sig), "{name} reversed");
    }
}

#[test]
fn derived_edge_cases_verify() {
    for (name, method, url, params, sig) in SINGLE {
        assert!(verifies(*method, url, &pairs(params), sig), "{name}");
    }
}

/// What each single-valued SDK signs for a repeated key (plivo-go the first value, plivo-ruby
/// the last, plivo-dotnet the greatest `k=v`) covers only one of the values: accepting it would
/// let a captured request be replayed with another value added. None of them verifies.
#[test]
fn one_value_of_a_repeated_key_is_never_enough() {
    for (name, method, url, params, sig) in [
        // D01 as plivo-go and -dotnet sign it (`tag=b`), then as plivo-ruby (`tag=a`).
        (
            "D01 go",
            Method::Get,
            "https://example.com/cb?tag=b&tag=a&x=1",
            &[][..],
            "/4XOdf1TSROmTBeFQfqxCnnInJ/Iz5CTRuM43N7sj9k=",
        ),
        (
            "D01 ruby",
            Method::Get,
            "https://example.com/cb?tag=b&tag=a&x=1",
            &[][..],
            "EiSJTJY4tnjb30Obf5ZyV4HnfU+m5d2UR14IiswdcGc=",
        ),
        (
            "D02 go",
            Method::Post,
            "https://example.com/cb?tag=b&tag=a",
            &[("From", "123"), ("To", "456")][..],
            "gFaF35jVi51psG0DD7D0x2xfQQhFG0ReY8iQcEPKuGU=",
        ),
        (
            "D14 go",
            Method::Get,
            "https://example.com/cb?n=10&n=9",
            &[][..],
            "Xc1KJvuWJyaK0lAooDgbgEVj0j2T0lKHPNIXrTSbQSk=",
        ),
        (
            "D20 go",
            Method::Get,
            "https://example.com/cb?x=2&x=10&x=1",
            &[("y", "1")][..],
            "/5KMe4W5TBpp0kA9CthzNSEj4KfIIfd9GvEedEQPKi4=",
        ),
    ] {
        assert!(!verifies(method, url, &pairs(params), sig), "{name}");
    }
}

/// A GET key both in the URL's query and in separate params: plivo-python lets the query
/// replace the param, plivo-go the param replace the query; either way one value goes unsigned.
/// Only plivo-node's union (every value, sorted) verifies. The relay itself never splits a GET
/// this way: it verifies the URL as called, where Plivo put every parameter.
#[test]
fn query_param_collisions_sign_every_value() {
    let d05 = pairs(&[("From", "p"), ("To", "456")]);
    let d05_url = "https://example.com/cb?From=q";
    // plivo-python (`From=q&To=456`) and plivo-go (`From=p&To=456`).
    assert!(!verifies(
        Method::Get,
        d05_url,
        &d05,
        "G79j8/7rtbW5IoVf8n9wrGKObj+hAQyn+1LVeuFqn/g="
    ));
    assert!(!verifies(
        Method::Get,
        d05_url,
        &d05,
        "2iwvhPAz5O/AVsgfdaYAfTf4WYpnv0M80Aw5r9sQH0A="
    ));
    // plivo-python's D06 (`tag=a&tag=b`, the param `tag=c` dropped).
    assert!(!verifies(
        Method::Get,
        "https://example.com/cb?tag=b&tag=a",
        &pairs(&[("tag", "c")]),
        "r5mrceMF+m2m/K9NA7P0sTV+NR2wVQZ0ijvxv7a/tO0="
    ));
}
