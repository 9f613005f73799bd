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
        if message.get("method").and_then(Value::as_str) == Some("Inspector.targetCrashed") {
            route.crashed.cancel();
            return Delivered::Crashed(route.target.clone());
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
        let route = Route { target: target.clone(), pending: HashMap::new(), crashed: crashed.clone() };
        lock(&router.routes).insert(id.inner().clone(), route);
        let session = Session { id: id.inner().clone(), target, browser, router, crashed };
        session.call("Inspector.enable", Value::Object(Default::default())).await?;
        Ok(session)
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
        let route = Route { target: TargetId::new("T"), pending: HashMap::new(), crashed: crashed.clone() };
        lock(&router.routes).insert("S".into(), route);
        let message = r#"{"method":"Inspector.targetCrashed","params":{}}"#;
        assert_eq!(router.deliver(&event("S", message)), Delivered::Crashed(TargetId::new("T")));
        assert!(crashed.is_cancelled());
    }
}
