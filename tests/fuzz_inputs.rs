//! Property tests (proptest, stable) of the worker's parsers of outside input: the job decoder
//! (arbitrary bytes, and near-valid JSON and MessagePack jobs with wrong types, huge numbers,
//! deep nesting and CR/LF in ids and headers), the redaction of URLs and job bodies, and the
//! reading of AMQP headers (DLQ and retry metadata) out of arbitrary field tables.
//!
//! The worker crate is not built for libFuzzer (its dependency tree is too heavy to instrument);
//! the extractor core has coverage-guided targets in `extractor-component/core/fuzz/`. Cases per
//! property: `PROPTEST_CASES` (proptest's own variable; 256 when unset, the CI smoke size).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use lapin::BasicProperties;
use lapin::types::{AMQPValue, ByteArray, DecimalValue, FieldArray, FieldTable, LongString, ShortString};
use proptest::prelude::*;
use proptest::test_runner::Config;
use riptide::broker::headers;
use riptide::config::JobLimits;
use riptide::job::{CrawlJob, RejectReason, decode_request, id_from_bytes};
use riptide::redact;
use serde_json::{Map, Value, json};

/// The shipped defaults (`config/default.toml` `[job]`).
fn limits() -> JobLimits {
    JobLimits {
        default_timeout_ms: 15_000,
        max_timeout_ms: 120_000,
        default_max_attempts: 5,
        max_attempts_limit: 20,
        max_message_bytes: 1024 * 1024,
        max_url_bytes: 2048,
    }
}

/// proptest's defaults (which read `PROPTEST_CASES`), without writing regression files into
/// the source tree: a failure prints its minimal input, which becomes a named test.
fn config() -> Config {
    Config { failure_persistence: None, ..Config::default() }
}

/// Decodes and validates like the worker does, and checks what may come out: a job within every
/// bound, or a rejection with a reason and a detail.
fn decode_and_check(bytes: &[u8], content_type: Option<&str>) -> Result<CrawlJob, (RejectReason, String)> {
    let limits = limits();
    let request = decode_request(bytes, content_type, &limits).map_err(|r| (r.reason, r.detail))?;
    match request.validate(&limits, || id_from_bytes(bytes)) {
        Ok(job) => {
            check_job(&job);
            Ok(job)
        }
        Err(rejection) => {
            assert_eq!(rejection.reason, RejectReason::InvalidJob, "{rejection}");
            Err((rejection.reason, rejection.detail))
        }
    }
}

fn check_job(job: &CrawlJob) {
    let clean = |s: &str| !s.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0));
    assert!(!job.id.is_empty() && job.id.len() <= 128 && clean(&job.id), "id {:?}", job.id);
    assert!(matches!(job.url.scheme(), "http" | "https"), "{}", job.url);
    assert!(job.url.username().is_empty() && job.url.password().is_none(), "{}", job.url);
    assert!(job.priority <= 9);
    assert!((1..=20).contains(&job.max_attempts));
    assert!((100..=120_000).contains(&job.timeout_ms));
    assert!(job.headers.len() <= 32);
    for (name, value) in &job.headers {
        assert!(clean(name) && clean(value), "header {name:?}: {value:?}");
        assert!(
            !["host", "transfer-encoding", "content-length", "connection", "proxy-authorization"]
                .contains(&name.to_ascii_lowercase().as_str())
        );
    }
}

fn content_type() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        Just(None),
        Just(Some("application/json".to_string())),
        Just(Some("application/msgpack".to_string())),
        Just(Some("application/json; charset=utf-8".to_string())),
        Just(Some(String::new())),
        "[ -~]{0,40}".prop_map(Some),
    ]
}

// ---- near-valid jobs ----------------------------------------------------------------------

/// The fields of a job, each with a value a producer could legitimately send.
const FIELDS: [&str; 13] = [
    "v",
    "id",
    "url",
    "mode",
    "render",
    "priority",
    "max_attempts",
    "timeout_ms",
    "max_age_secs",
    "headers",
    "wait_for",
    "extractor",
    "meta",
];

fn valid_job() -> Map<String, Value> {
    let job = json!({
        "v": 1, "id": "job-1", "url": "https://news.example/a?b=1", "mode": "article", "render": "auto",
        "priority": 3, "max_attempts": 4, "timeout_ms": 10_000, "max_age_secs": 60,
        "headers": {"Accept-Language": "de"}, "wait_for": "#main", "extractor": "article", "meta": {"k": [1, "x"]}
    });
    match job {
        Value::Object(map) => map,
        _ => unreachable!(),
    }
}

/// Values that are wrong for most fields, or right only at the edge.
fn hostile_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        Just(json!(u64::MAX)),
        Just(json!(i64::MIN)),
        Just(json!(-1)),
        Just(json!(0)),
        Just(json!(256)),
        Just(json!(1e308)),
        Just(json!(-0.5)),
        any::<f64>().prop_map(|f| json!(f)),
        Just(json!("high")),
        Just(json!("HEADLESS")),
        Just(json!("")),
        // CR/LF and NUL where ids and header values go.
        "[a-z]{0,6}[\r\n\0][a-zA-Z: ]{0,12}".prop_map(Value::String),
        "\\PC{0,40}".prop_map(Value::String),
        Just(json!("javascript:alert(1)")),
        Just(json!("http://user:pw@h.example/")),
        Just(json!("http://[::127.0.0.1]/")),
        Just(json!({"Transfer-Encoding": "chunked"})),
        Just(json!({"X-A": "b\r\nHost: evil.example"})),
        Just(json!({"": "x"})),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map("[a-zA-Z_-]{0,10}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A change to a valid job: one field replaced by a hostile value, or removed.
#[derive(Debug, Clone)]
enum Mutation {
    Set(usize, Value),
    Remove(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (0..FIELDS.len(), hostile_value()).prop_map(|(i, v)| Mutation::Set(i, v)),
        1 => (0..FIELDS.len()).prop_map(Mutation::Remove),
    ]
}

fn mutated_job(mutations: &[Mutation]) -> Map<String, Value> {
    let mut job = valid_job();
    for m in mutations {
        match m {
            Mutation::Set(i, v) => {
                job.insert(FIELDS[*i].to_string(), v.clone());
            }
            Mutation::Remove(i) => {
                job.remove(FIELDS[*i]);
            }
        }
    }
    job
}

/// The field a single mutation touched, as the rejection should name it (`headers` errors say
/// `header`).
fn field_word(m: &Mutation) -> &'static str {
    let i = match m {
        Mutation::Set(i, _) | Mutation::Remove(i) => *i,
    };
    match FIELDS[i] {
        "headers" => "header",
        other => other,
    }
}

/// JSON number literals no serde type holds, spliced into a valid job's text.
const HUGE_NUMBERS: [&str; 8] = [
    "1e999",
    "-1e999",
    "18446744073709551616",
    "-9223372036854775809",
    "340282366920938463463374607431768211456",
    "0.0000000000000000000000000001",
    "-0",
    "1E+2",
];

/// MessagePack `meta: [[[...null...]]]`, `depth` arrays deep, after a valid url.
fn deep_msgpack(depth: usize) -> Vec<u8> {
    let mut bytes = rmp_serde::to_vec_named(&json!({"url": "https://a.example/"})).unwrap();
    // Turn the one-entry map into a two-entry one: fixmap 0x81 -> 0x82.
    bytes[0] = 0x82;
    bytes.push(0xa4);
    bytes.extend_from_slice(b"meta");
    bytes.extend(std::iter::repeat_n(0x91u8, depth));
    bytes.push(0xc0);
    bytes
}

fn deep_json(depth: usize, open: &str, close: &str) -> Vec<u8> {
    format!(r#"{{"url":"https://a.example/","meta":{{"x":{}1{}}}}}"#, open.repeat(depth), close.repeat(depth))
        .into_bytes()
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_bytes_never_panic_the_decoder(
        bytes in prop::collection::vec(any::<u8>(), 0..512),
        ct in content_type(),
    ) {
        if let Err((_, detail)) = decode_and_check(&bytes, ct.as_deref()) {
            prop_assert!(!detail.is_empty());
        }
    }

    #[test]
    fn bytes_that_start_like_a_job_never_panic_the_decoder(
        prefix in prop_oneof![Just(&b"{\"url\":"[..]), Just(&b"\x81\xa3url"[..]), Just(&b"\xde\x00\x02"[..])],
        tail in prop::collection::vec(any::<u8>(), 0..256),
        ct in content_type(),
    ) {
        let bytes = [prefix, &tail[..]].concat();
        if let Err((_, detail)) = decode_and_check(&bytes, ct.as_deref()) {
            prop_assert!(!detail.is_empty());
        }
    }

    #[test]
    fn near_valid_json_jobs_are_accepted_or_refused_naming_the_field(m in mutation()) {
        let bytes = serde_json::to_vec(&Value::Object(mutated_job(std::slice::from_ref(&m)))).unwrap();
        if let Err((reason, detail)) = decode_and_check(&bytes, Some("application/json")) {
            prop_assert!(!detail.is_empty());
            if reason == RejectReason::InvalidJob {
                prop_assert!(detail.contains(field_word(&m)), "{m:?}: {detail}");
            }
        }
    }

    #[test]
    fn near_valid_msgpack_jobs_are_accepted_or_refused_naming_the_field(m in mutation()) {
        let bytes = rmp_serde::to_vec_named(&Value::Object(mutated_job(std::slice::from_ref(&m)))).unwrap();
        if let Err((reason, detail)) = decode_and_check(&bytes, Some("application/msgpack")) {
            prop_assert!(!detail.is_empty());
            if reason == RejectReason::InvalidJob {
                prop_assert!(detail.contains(field_word(&m)), "{m:?}: {detail}");
            }
        }
    }

    #[test]
    fn jobs_with_several_bad_fields_never_panic(
        ms in prop::collection::vec(mutation(), 1..6),
        msgpack in any::<bool>(),
    ) {
        let job = Value::Object(mutated_job(&ms));
        let (bytes, ct) = if msgpack {
            (rmp_serde::to_vec_named(&job).unwrap(), None)
        } else {
            (serde_json::to_vec(&job).unwrap(), None)
        };
        let _ = decode_and_check(&bytes, ct);
    }

    #[test]
    fn huge_json_numbers_are_refused_naming_the_field(
        field in prop::sample::select(vec!["v", "priority", "max_attempts", "timeout_ms", "max_age_secs"]),
        number in prop::sample::select(HUGE_NUMBERS.to_vec()),
    ) {
        let mut job = valid_job();
        job.insert(field.to_string(), json!("PLACEHOLDER"));
        let text = serde_json::to_string(&Value::Object(job)).unwrap().replace("\"PLACEHOLDER\"", number);
        match decode_and_check(text.as_bytes(), Some("application/json")) {
            // `-0` and `1E+2` fit some fields; every accepted job was checked in range above.
            Ok(_) => {}
            Err((reason, detail)) => {
                // serde_json refuses `1e999` while parsing (`undecodable`), MessagePack's
                // out-of-range integers after it (`invalid_job`): either way the field is named.
                prop_assert!(matches!(reason, RejectReason::InvalidJob | RejectReason::Undecodable), "{}", detail);
                prop_assert!(detail.contains(field), "{}: {}", field, detail);
            }
        }
    }

    #[test]
    fn deep_nesting_is_refused_without_overflowing_the_stack(
        depth in prop_oneof![1usize..40, 100usize..5_000, Just(100_000usize)],
    ) {
        for (bytes, ct) in [
            (deep_msgpack(depth), "application/msgpack"),
            (deep_json(depth, "[", "]"), "application/json"),
            (deep_json(depth, "{\"a\":", "}"), "application/json"),
        ] {
            let result = decode_and_check(&bytes, Some(ct));
            if depth > 130 {
                prop_assert!(result.is_err(), "{ct} nested {depth} deep was accepted");
            }
        }
    }

    #[test]
    fn ids_and_header_values_with_cr_lf_are_refused(
        before in "[a-zA-Z0-9-]{0,10}",
        breaker in prop::sample::select(vec!["\r", "\n", "\r\n", "\0"]),
        after in "[a-zA-Z0-9: -]{0,20}",
        in_header in any::<bool>(),
        msgpack in any::<bool>(),
    ) {
        let dirty = format!("{before}{breaker}{after}");
        let mut job = valid_job();
        if in_header {
            job.insert("headers".into(), json!({ "X-Trace": dirty }));
        } else {
            job.insert("id".into(), json!(dirty));
        }
        let job = Value::Object(job);
        let bytes = if msgpack { rmp_serde::to_vec_named(&job).unwrap() } else { serde_json::to_vec(&job).unwrap() };
        let (reason, detail) = decode_and_check(&bytes, None).expect_err("CR/LF/NUL accepted");
        prop_assert_eq!(reason, RejectReason::InvalidJob);
        prop_assert!(detail.contains(if in_header { "header" } else { "id" }), "{}", detail);
    }
}

// ---- redaction ----------------------------------------------------------------------------

/// A secret no generated host, path or key can contain (they are lowercase, secrets start `ZQ`).
fn secret() -> impl Strategy<Value = String> {
    "[A-Za-z0-9_.~-]{6,16}".prop_map(|s| format!("ZQ{s}"))
}

/// A URL with secrets in its password, query values and fragment, and the secrets.
fn secret_url() -> impl Strategy<Value = (String, Vec<String>)> {
    (
        prop::sample::select(vec!["http", "https", "amqp", "redis", "ftp"]),
        prop::option::of(("[a-z]{1,6}", secret())),
        "[a-z]{1,10}(\\.[a-z]{1,6}){0,2}",
        prop::option::of(1u16..65535),
        prop::collection::vec("[a-z0-9%]{0,8}", 0..4),
        prop::collection::vec(("[a-z_]{1,6}", secret()), 0..4),
        prop::option::of(secret()),
    )
        .prop_map(|(scheme, userinfo, host, port, path, query, fragment)| {
            let mut secrets = Vec::new();
            let mut url = format!("{scheme}://");
            if let Some((user, pw)) = userinfo {
                url.push_str(&format!("{user}:{pw}@"));
                secrets.push(pw);
            }
            url.push_str(&host);
            if let Some(port) = port {
                url.push_str(&format!(":{port}"));
            }
            for segment in path {
                url.push('/');
                url.push_str(&segment);
            }
            if !query.is_empty() {
                url.push('?');
                let pairs: Vec<String> = query.iter().map(|(k, v)| format!("{k}={v}")).collect();
                url.push_str(&pairs.join("&"));
                secrets.extend(query.into_iter().map(|(_, v)| v));
            }
            if let Some(fragment) = fragment {
                url.push('#');
                url.push_str(&fragment);
                secrets.push(fragment);
            }
            (url, secrets)
        })
}

/// Header names in any case: credentials (whose values must not show) and others.
fn header_name() -> impl Strategy<Value = (String, bool)> {
    (
        prop::sample::select(vec!["Authorization", "Cookie", "Proxy-Authorization", "X-Api-Key", "Accept", "X-Trace"]),
        prop::collection::vec(any::<bool>(), 20),
    )
        .prop_map(|(name, upper)| {
            let cased: String = name
                .chars()
                .zip(upper)
                .map(|(c, up)| if up { c.to_ascii_uppercase() } else { c.to_ascii_lowercase() })
                .collect();
            let credential = redact::is_credential_header(&cased);
            (cased, credential)
        })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn redacting_any_string_never_panics(raw in prop_oneof![
        any::<String>(),
        "[a-z+]{1,6}://[\\PC]{0,60}",
        "https?://[a-z0-9.:@%/?&=#\\[\\]-]{0,60}",
    ]) {
        let shown = redact::url(&raw);
        prop_assert!(!shown.is_empty());
        let _ = redact::job_json(&raw);
    }

    #[test]
    fn redacted_urls_keep_no_password_query_value_or_fragment((url, secrets) in secret_url()) {
        let shown = redact::url(&url);
        for secret in &secrets {
            prop_assert!(!shown.contains(secret.as_str()), "{url} shown as {shown}");
        }
    }

    #[test]
    fn redacted_job_bodies_keep_no_credential_or_url_secret(
        (url, mut secrets) in secret_url(),
        headers in prop::collection::vec((header_name(), secret()), 0..6),
        extra in prop::collection::btree_map("[a-z_]{1,8}", hostile_value(), 0..4),
    ) {
        let mut job: Map<String, Value> = extra.into_iter().collect();
        job.insert("url".into(), json!(url));
        let mut header_map = Map::new();
        for ((name, credential), value) in headers {
            if credential {
                secrets.push(value.clone());
                header_map.insert(name, json!(value));
            } else {
                header_map.insert(name, json!("visible"));
            }
        }
        job.insert("headers".into(), Value::Object(header_map));
        let text = serde_json::to_string(&Value::Object(job)).unwrap();
        let shown = redact::job_json(&text);
        for secret in &secrets {
            prop_assert!(!shown.contains(secret.as_str()), "{text} shown as {shown}");
        }
    }

    /// A body that is almost a job (cut short, trailing bytes, a bad escape) is what reaches the
    /// DLQ as `undecodable`, and `dlq show` prints it: its secrets must stay hidden too.
    #[test]
    fn redacted_broken_job_bodies_keep_no_credential(
        secret in secret(),
        credential in prop::sample::select(vec!["Cookie", "authorization", "X-API-KEY"]),
        damage in prop_oneof![
            Just("trailing"),
            Just("truncated"),
            Just("bad-escape"),
            Just("comment"),
        ],
    ) {
        let body = json!({"url": "https://a.example/p", "headers": {credential: secret}}).to_string();
        let text = match damage {
            "trailing" => format!("{body} x"),
            "truncated" => body.trim_end_matches('}').to_string(),
            "bad-escape" => body.replacen("https", "\\ud800https", 1),
            _ => format!("/* job */ {body}"),
        };
        let shown = redact::job_json(&text);
        prop_assert!(!shown.contains(secret.as_str()), "{text} shown as {shown}");
    }
}

// ---- AMQP headers -------------------------------------------------------------------------

fn short_string() -> impl Strategy<Value = ShortString> {
    prop_oneof![
        prop::sample::select(vec![
            headers::ATTEMPT,
            headers::ATTEMPTS,
            headers::REASON,
            headers::ERROR,
            headers::JOB_ID,
            headers::ENQUEUED_MS,
            headers::DELIVERY_COUNT,
            "x-death",
        ])
        .prop_map(ShortString::from),
        // At most 255 bytes: what the wire format allows (longer does not decode).
        "\\PC{0,60}".prop_map(|s| ShortString::try_new(s).unwrap_or_else(|_| ShortString::from(""))),
    ]
}

fn amqp_value() -> impl Strategy<Value = AMQPValue> {
    let leaf = prop_oneof![
        any::<bool>().prop_map(AMQPValue::Boolean),
        any::<i8>().prop_map(AMQPValue::ShortShortInt),
        any::<u8>().prop_map(AMQPValue::ShortShortUInt),
        any::<i16>().prop_map(AMQPValue::ShortInt),
        any::<u16>().prop_map(AMQPValue::ShortUInt),
        any::<i32>().prop_map(AMQPValue::LongInt),
        any::<u32>().prop_map(AMQPValue::LongUInt),
        any::<i64>().prop_map(AMQPValue::LongLongInt),
        any::<f32>().prop_map(AMQPValue::Float),
        any::<f64>().prop_map(AMQPValue::Double),
        (any::<u8>(), any::<u32>()).prop_map(|(scale, value)| AMQPValue::DecimalValue(DecimalValue { scale, value })),
        short_string().prop_map(AMQPValue::ShortString),
        // Long strings are bytes on the wire: not always UTF-8, sometimes a number.
        prop::collection::vec(any::<u8>(), 0..64).prop_map(|b| AMQPValue::LongString(LongString::from(b))),
        "-?[0-9]{1,25}".prop_map(|s| AMQPValue::LongString(LongString::from(s))),
        any::<u64>().prop_map(AMQPValue::Timestamp),
        prop::collection::vec(any::<u8>(), 0..32).prop_map(|b| AMQPValue::ByteArray(ByteArray::from(b))),
        Just(AMQPValue::Void),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(|v| AMQPValue::FieldArray(FieldArray::from(v))),
            prop::collection::btree_map(short_string(), inner, 0..4)
                .prop_map(|m| AMQPValue::FieldTable(FieldTable::from(m))),
        ]
    })
}

fn field_table() -> impl Strategy<Value = FieldTable> {
    prop::collection::btree_map(short_string(), amqp_value(), 0..8).prop_map(FieldTable::from)
}

/// The integer a header value stands for, by the documented rule of `headers::get_u64`.
fn expected_u64(value: &AMQPValue) -> Option<u64> {
    match value {
        AMQPValue::ShortShortUInt(v) => Some(u64::from(*v)),
        AMQPValue::ShortUInt(v) => Some(u64::from(*v)),
        AMQPValue::LongUInt(v) => Some(u64::from(*v)),
        AMQPValue::ShortShortInt(v) => u64::try_from(*v).ok(),
        AMQPValue::ShortInt(v) => u64::try_from(*v).ok(),
        AMQPValue::LongInt(v) => u64::try_from(*v).ok(),
        AMQPValue::LongLongInt(v) => u64::try_from(*v).ok(),
        AMQPValue::Timestamp(v) => Some(*v),
        AMQPValue::LongString(s) => s.to_string().parse().ok(),
        AMQPValue::ShortString(s) => s.as_str().parse().ok(),
        _ => None,
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn header_readers_take_any_field_table(table in field_table(), probe in short_string()) {
        let properties = BasicProperties::default().with_headers(table.clone());
        for key in table.inner().keys().chain([&probe]) {
            let value = table.inner().get(key);
            let n = headers::get_u64(&properties, key.as_str());
            prop_assert_eq!(n, value.and_then(expected_u64), "{:?}", value);
            let s = headers::get_str(&properties, key.as_str());
            let is_string = matches!(value, Some(AMQPValue::LongString(_) | AMQPValue::ShortString(_)));
            prop_assert_eq!(s.is_some(), is_string, "{:?}", value);
        }
        let shown = headers::to_strings(&properties);
        prop_assert_eq!(shown.len(), table.inner().len());
        for ((key, _), (shown_key, _)) in table.inner().iter().zip(&shown) {
            prop_assert_eq!(key.as_str(), shown_key.as_str());
        }
        // What a retry copies onto the next attempt never carries the broker's own bookkeeping.
        let carried = headers::carry_over(&properties);
        prop_assert!(carried.inner().keys().all(|k| !k.as_str().starts_with("x-death") && k.as_str() != "x-delivery-count"));
        // Headers without a table: every reader answers "absent".
        let bare = BasicProperties::default();
        prop_assert_eq!(headers::get_u64(&bare, probe.as_str()), None);
        prop_assert!(headers::to_strings(&bare).is_empty());
    }

    #[test]
    fn integer_headers_round_trip(value in any::<u64>()) {
        let mut table = FieldTable::default();
        headers::set_u64(&mut table, headers::ATTEMPTS, value);
        let properties = BasicProperties::default().with_headers(table);
        // Stored as a signed 64-bit integer: values above i64::MAX saturate.
        prop_assert_eq!(headers::get_u64(&properties, headers::ATTEMPTS), Some(value.min(i64::MAX as u64)));
    }
}
