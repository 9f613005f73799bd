//! Keeping secrets out of logs, error messages, Redis `last_error`, dead-letter headers and
//! what `riptide dlq show` prints: URL credentials and query values, and the values of
//! credential headers. The job body itself keeps them (a replay needs them).
//!
//! Pure string handling; it must not decide what a job may send (that is `job.rs`).

/// Request headers whose values are credentials: shown as `***`.
pub const CREDENTIAL_HEADERS: &[&str] = &["authorization", "cookie", "proxy-authorization", "x-api-key"];

/// Shown in place of a secret.
const HIDDEN: &str = "***";

/// A URL fit for a log line: its password and every query value replaced by `***` (the keys
/// stay, so an operator still sees the shape), the fragment dropped. A URL that does not
/// parse is not shown at all.
pub fn url(raw: &str) -> String {
    let Ok(mut parsed) = url::Url::parse(raw) else { return "<unparseable url>".to_string() };
    if parsed.password().is_some() {
        // set_password only fails for URLs that cannot have one, which we ruled out.
        let _ = parsed.set_password(Some(HIDDEN));
    }
    if parsed.query().is_some() {
        let keys: Vec<String> = parsed.query_pairs().map(|(key, _)| key.into_owned()).collect();
        let mut pairs = parsed.query_pairs_mut();
        pairs.clear();
        for key in keys {
            pairs.append_pair(&key, HIDDEN);
        }
        drop(pairs);
    }
    parsed.set_fragment(None);
    parsed.to_string()
}

/// Whether a header's value is a credential.
pub fn is_credential_header(name: &str) -> bool {
    CREDENTIAL_HEADERS.iter().any(|h| h.eq_ignore_ascii_case(name))
}

/// A JSON job body for display: credential header values and the URL's secrets hidden.
/// Anything that is not a JSON object is not shown, only its size: a body that is almost a
/// job (cut short, trailing bytes, a bad escape) is exactly what is dead-lettered as
/// `undecodable`, and it still carries the job's `Cookie` or `Authorization` values in clear.
pub fn job_json(text: &str) -> String {
    let Ok(serde_json::Value::Object(mut job)) = serde_json::from_str::<serde_json::Value>(text) else {
        return format!("<{} bytes that are not a JSON object: not shown, they may hold credentials>", text.len());
    };
    if let Some(serde_json::Value::String(raw)) = job.get_mut("url") {
        *raw = url(raw);
    }
    if let Some(serde_json::Value::Object(headers)) = job.get_mut("headers") {
        for (name, value) in headers.iter_mut() {
            if is_credential_header(name) {
                *value = serde_json::Value::String(HIDDEN.to_string());
            }
        }
    }
    serde_json::to_string(&job).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_passwords_query_values_and_fragments() {
        assert_eq!(url("amqp://guest:secret@127.0.0.1:5672/%2f"), "amqp://guest:***@127.0.0.1:5672/%2f");
        assert_eq!(url("https://a.example/p?token=abc&page=2#frag"), "https://a.example/p?token=***&page=***");
        assert_eq!(url("https://a.example/plain"), "https://a.example/plain");
        assert_eq!(url("not a url"), "<unparseable url>");
    }

    #[test]
    fn job_bodies_hide_credentials() {
        let shown = job_json(
            r#"{"url":"https://a.example/?key=k1","headers":{"Cookie":"sid=1","Authorization":"Bearer t","Accept":"x"}}"#,
        );
        assert!(!shown.contains("sid=1") && !shown.contains("Bearer") && !shown.contains("k1"), "{shown}");
        assert!(shown.contains(r#""Accept":"x""#), "{shown}");
        assert!(!job_json("not json").contains("not json"));
        // Almost a job: still hidden (found by tests/fuzz_inputs.rs).
        let broken = job_json(r#"{"url":"https://a.example/","headers":{"Cookie":"sid=1"}} x"#);
        assert!(!broken.contains("sid=1"), "{broken}");
    }
}
