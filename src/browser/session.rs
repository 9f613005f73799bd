//! A raw DevTools session to one hidden tab, and the router that answers its calls.
//!
//! Why raw: a tab opened the usual way in a fresh incognito context gets a browser window of
//! its own, and every new window starts top-chrome WebUI renderers (omnibox popups, a new-tab
//! page). Measured here (Chromium 156, 2 cores): 530–900 ms of CPU per context that way, against
//! about 210 ms for a *hidden* target (`Target.createTarget { hidden: true }`, no window), the
//! render included. Chromium does not announce hidden targets, and chromiumoxide 0.9's handler
//! panics on a created target it was not told about, so hidden tabs are driven here: each call
//! is a JSON message wrapped in `Target.sendMessageToTarget` on the browser connection, and the
//! answers and events come back as `Target.receivedMessageFromTarget`.
//!
//! It owns message ids, pending calls and per-session crash tokens. It must not open or close
//! tabs (`instance.rs` does) nor know what a render is (`render.rs`).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chromiumoxide::Browser;
use chromiumoxide::cdp::browser_protocol::target::{
    AttachToTargetParams, EventReceivedMessageFromTarget, SessionId, TargetId,
};
use chromiumoxide::error::CdpError;
use serde::Serialize;
use serde_json::Value;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use super::lock::lock;

/// `Target.sendMessageToTarget`: chromiumoxide's generated protocol lacks it (deprecated in the
/// protocol, still served by Chromium 156, and the only way to reach a non-flattened session).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct SendMessageToTarget {
    session_id: String,
    message: String,
}

impl chromiumoxide::Method for SendMessageToTarget {
    fn identifier(&self) -> chromiumoxide::types::MethodId {
        "Target.sendMessageToTarget".into()
    }
}

impl chromiumoxide::Command for SendMessageToTarget {
    type Response = Value;
}

type Answer = Result<Value, String>;

/// One attached session's routing state.
#[derive(Debug)]
struct Route {
    target: TargetId,
    pending: HashMap<u64, oneshot::Sender<Answer>>,
    crashed: CancellationToken,
    /// The tab's main document as the network saw it.
    main: MainDocument,
}

/// The tab's main document, from the `Network` events of its main frame (frame id = target
/// id): what the server answered, which page script cannot change.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct MainDocument {
    /// The URL last requested for it (the end of the redirect chain so far).
    pub url: Option<String>,
    /// The HTTP status of its response, once received.
    pub status: Option<u16>,
    /// Its `Retry-After` header, verbatim.
    pub retry_after: Option<String>,
}

impl MainDocument {
    /// Applies one tab event; anything but the main frame's document requests is ignored.
    fn observe(&mut self, target: &TargetId, method: &str, params: &Value) {
        let is_main_document = params.get("type").and_then(Value::as_str) == Some("Document")
            && params.get("frameId").and_then(Value::as_str) == Some(target.as_ref());
        if !is_main_document {
            return;
        }
        match method {
            "Network.requestWillBeSent" => {
                let url = params.pointer("/request/url").and_then(Value::as_str);
                *self = MainDocument { url: url.map(str::to_owned), status: None, retry_after: None };
            }
            "Network.responseReceived" => {
                let response = params.get("response");
                let status = response.and_then(|r| r.get("status")).and_then(Value::as_f64);
                self.status = status.and_then(|s| u16::try_from(s as i64).ok());
                let headers = response.and_then(|r| r.get("headers")).and_then(Value::as_object);
                self.retry_after = headers.and_then(|headers| {
                    headers
                        .iter()
                        .find(|(name, _)| name.eq_ignore_ascii_case("retry-after"))
                        .and_then(|(_, value)| value.as_str().map(str::to_owned))
                });
                if let Some(url) = response.and_then(|r| r.get("url")).and_then(Value::as_str) {
                    self.url = Some(url.to_owned());
                }
            }
            _ => {}
        }
    }
}

/// Routes answers and events of every hidden tab of one browser. One per browser.
#[derive(Debug, Default)]
pub(crate) struct Router {
    routes: std::sync::Mutex<HashMap<String, Route>>,
    next_id: AtomicU64,
}

/// What a routed message meant for the browser as a whole.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Delivered {
    /// An answer to a call, or an event nobody needs.
    Nothing,
    /// The renderer of this tab crashed.
    Crashed(TargetId),
}

impl Router {
    /// Hands one message from a tab to its waiting caller, or turns a crash event into a
    /// cancelled token.
    pub(crate) fn deliver(&self, event: &EventReceivedMessageFromTarget) -> Delivered {
        let Ok(message) = serde_json::from_str::<Value>(&event.message) else { return Delivered::Nothing };
        let mut routes = lock(&self.routes);
        let Some(route) = routes.get_mut(event.session_id.inner()) else { return Delivered::Nothing };
        if let Some(id) = message.get("id").and_then(Value::as_u64) {
            if let Some(waiter) = route.pending.remove(&id) {
                let _ = waiter.send(answer(message));
            }
            return Delivered::Nothing;
        }
        let method = message.get("method").and_then(Value::as_str).unwrap_or_default();
        if method == "Inspector.targetCrashed" {
            route.crashed.cancel();
            return Delivered::Crashed(route.target.clone());
        }
        if let Some(params) = message.get("params") {
            let target = route.target.clone();
            route.main.observe(&target, method, params);
        }
        Delivered::Nothing
    }

    /// Forgets a session: its pending calls fail with "no response".
    fn detach(&self, session: &str) {
        lock(&self.routes).remove(session);
    }
}

/// `result`, or the protocol error's message.
fn answer(mut message: Value) -> Answer {
    if let Some(error) = message.get("error") {
        let text = error.get("message").and_then(Value::as_str).unwrap_or("unknown protocol error");
        return Err(text.to_owned());
    }
    Ok(message.get_mut("result").map(Value::take).unwrap_or(Value::Null))
}

/// A session to one hidden tab. Dropping it forgets the routing (the tab itself goes with its
/// context).
#[derive(Debug)]
pub(crate) struct Session {
    id: String,
    target: TargetId,
    browser: Arc<Browser>,
    router: Arc<Router>,
    crashed: CancellationToken,
}

impl Session {
    /// Attaches to `target` (non-flattened) and subscribes to its crash event.
    pub(crate) async fn attach(browser: Arc<Browser>, router: Arc<Router>, target: TargetId) -> Result<Self, CdpError> {
        let params = AttachToTargetParams { target_id: target.clone(), flatten: Some(false) };
        let attached = browser.execute(params).await?;
        let id: SessionId = attached.result.session_id;
        let crashed = CancellationToken::new();
        let route = Route {
            target: target.clone(),
            pending: HashMap::new(),
            crashed: crashed.clone(),
            main: MainDocument::default(),
        };
        lock(&router.routes).insert(id.inner().clone(), route);
        let session = Session { id: id.inner().clone(), target, browser, router, crashed };
        session.call("Inspector.enable", Value::Object(Default::default())).await?;
        // Network events carry the main document's status and headers (`MainDocument`).
        session.call("Network.enable", Value::Object(Default::default())).await?;
        Ok(session)
    }

    /// The main document as the network saw it so far.
    pub(crate) fn main_document(&self) -> MainDocument {
        lock(&self.router.routes).get(&self.id).map(|route| route.main.clone()).unwrap_or_default()
    }

    /// The tab's target id (also its main frame's id).
    pub(crate) fn target(&self) -> &TargetId {
        &self.target
    }

    /// Cancelled when this tab's renderer crashes.
    pub(crate) fn crashed(&self) -> &CancellationToken {
        &self.crashed
    }

    /// Sends one command to the tab and waits for its answer (callers bound the wait).
    pub(crate) async fn call(&self, method: &str, params: Value) -> Result<Value, CdpError> {
        let id = self.router.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        match lock(&self.router.routes).get_mut(&self.id) {
            Some(route) => route.pending.insert(id, tx),
            None => return Err(CdpError::NoResponse),
        };
        let message = serde_json::json!({ "id": id, "method": method, "params": params }).to_string();
        self.browser.execute(SendMessageToTarget { session_id: self.id.clone(), message }).await?;
        match rx.await {
            Ok(Ok(result)) => Ok(result),
            Ok(Err(text)) => Err(CdpError::ChromeMessage(format!("{method}: {text}"))),
            Err(_) => Err(CdpError::NoResponse),
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.router.detach(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_carry_the_result_or_the_protocol_error() {
        assert_eq!(answer(serde_json::json!({"id": 1, "result": {"a": 1}})), Ok(serde_json::json!({"a": 1})));
        assert_eq!(
            answer(serde_json::json!({"id": 1, "error": {"code": -32000, "message": "No frame"}})),
            Err("No frame".to_owned())
        );
    }

    #[test]
    fn unknown_sessions_and_garbage_are_ignored() {
        let router = Router::default();
        let event = |session: &str, message: &str| EventReceivedMessageFromTarget {
            session_id: SessionId::new(session),
            message: message.to_owned(),
        };
        assert_eq!(router.deliver(&event("nope", r#"{"id":1,"result":{}}"#)), Delivered::Nothing);
        assert_eq!(router.deliver(&event("nope", "not json")), Delivered::Nothing);
        let crashed = CancellationToken::new();
        let route = Route {
            target: TargetId::new("T"),
            pending: HashMap::new(),
            crashed: crashed.clone(),
            main: Default::default(),
        };
        lock(&router.routes).insert("S".into(), route);
        let message = r#"{"method":"Inspector.targetCrashed","params":{}}"#;
        assert_eq!(router.deliver(&event("S", message)), Delivered::Crashed(TargetId::new("T")));
        assert!(crashed.is_cancelled());
    }

    #[test]
    fn the_main_document_keeps_the_last_response_of_its_own_frame() {
        let (target, mut main) = (TargetId::new("T"), MainDocument::default());
        let request = serde_json::json!({"type": "Document", "frameId": "T", "request": {"url": "http://a/"}});
        main.observe(&target, "Network.requestWillBeSent", &request);
        let response = serde_json::json!({"type": "Document", "frameId": "T",
            "response": {"url": "http://a/", "status": 503, "headers": {"retry-after": "120"}}});
        main.observe(&target, "Network.responseReceived", &response);
        let iframe = serde_json::json!({"type": "Document", "frameId": "F", "response": {"status": 200}});
        main.observe(&target, "Network.responseReceived", &iframe);
        let script = serde_json::json!({"type": "Script", "frameId": "T", "response": {"status": 404}});
        main.observe(&target, "Network.responseReceived", &script);
        assert_eq!(main.status, Some(503));
        assert_eq!(main.retry_after.as_deref(), Some("120"));
        assert_eq!(main.url.as_deref(), Some("http://a/"));
    }
}
