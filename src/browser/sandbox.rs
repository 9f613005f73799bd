//! Who Chromium runs as and whether its sandbox is on: the `browser.sandbox` policy and
//! `browser.run_as` resolved against this machine, once per pool.
//!
//! It owns the detection (user namespaces or a setuid `chrome-sandbox` helper), the user
//! lookup (`/etc/passwd`, no libc calls) and the decision. It must not launch anything
//! (`process.rs` applies the decision to the command line and the profile directories).
//!
//! Chromium refuses its sandbox as root, and workers often run as root (containers, these
//! VMs); so a root worker starts Chromium as an unprivileged user (`nobody` by default). The
//! sandbox is only ever off because the config says `off`, or says `auto` and the machine
//! offers neither user namespaces nor the setuid helper (then the reason is logged).

use std::path::Path;

use super::config::{BrowserConfig, SandboxPolicy};

/// The user Chromium runs as when it is not this process's user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RunAs {
    /// As configured or defaulted (`nobody`), for logs.
    pub name: String,
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
}

/// The decision for one pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Isolation {
    /// Whether Chromium runs with its sandbox.
    pub sandbox: bool,
    /// Why, for the log line.
    pub reason: &'static str,
    /// The user to switch to, when not this process's user.
    pub run_as: Option<RunAs>,
}

impl Isolation {
    /// The user id Chromium runs as.
    pub(crate) fn uid(&self) -> u32 {
        self.run_as.as_ref().map_or_else(|| rustix::process::geteuid().as_raw(), |user| user.uid)
    }
}

/// Why the configured isolation cannot be had here.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum IsolationError {
    /// `run_as` names no user of this machine.
    #[error("browser.run_as {0:?} is not a user of this machine (a name in /etc/passwd, or uid[:gid])")]
    UnknownUser(String),
    /// `run_as` asks for another user, but only root can switch.
    #[error("browser.run_as {0:?} needs the worker to run as root")]
    NotRoot(String),
    /// `sandbox = "required"` but Chromium would run as root.
    #[error("browser.sandbox = \"required\", but Chromium would run as root (set browser.run_as)")]
    RequiredAsRoot,
    /// `sandbox = "required"` but the machine offers no sandbox.
    #[error("browser.sandbox = \"required\", but {0}")]
    RequiredUnavailable(&'static str),
}

/// Decides who Chromium runs as and whether its sandbox is on.
/// Whether `config`'s sandbox policy and `run_as` can work on this machine, as a problem to
/// report at start (before any job), or `None`.
pub fn isolation_problem(config: &BrowserConfig) -> Option<String> {
    decide(config).err().map(|error| error.to_string())
}

pub(crate) fn decide(config: &BrowserConfig) -> Result<Isolation, IsolationError> {
    let root = rustix::process::geteuid().is_root();
    let run_as = match (&config.run_as, root) {
        (Some(name), _) => {
            let user = lookup_user(name, Path::new("/etc/passwd"))?;
            match (user.uid == rustix::process::geteuid().as_raw(), root) {
                (true, _) => None,
                (false, true) => Some(user),
                (false, false) => return Err(IsolationError::NotRoot(name.clone())),
            }
        }
        (None, true) => Some(lookup_user("nobody", Path::new("/etc/passwd"))?),
        (None, false) => None,
    };
    let as_root = run_as.as_ref().map_or(root, |user| user.uid == 0);
    let available = available();
    let (sandbox, reason) = match (config.sandbox, as_root, available) {
        (SandboxPolicy::Off, _, _) => (false, "browser.sandbox = \"off\""),
        (SandboxPolicy::Required, true, _) => return Err(IsolationError::RequiredAsRoot),
        (SandboxPolicy::Required, false, Err(why)) => return Err(IsolationError::RequiredUnavailable(why)),
        (SandboxPolicy::Auto, true, _) => (false, "Chromium runs as root, which its sandbox refuses"),
        (SandboxPolicy::Auto, false, Err(why)) => (false, why),
        (_, false, Ok(how)) => (true, how),
    };
    Ok(Isolation { sandbox, reason, run_as })
}

/// How this machine can run Chromium's sandbox, or why it cannot. Evidence only: a setuid
/// root `chrome-sandbox` beside the usual binaries, or unprivileged user namespaces.
fn available() -> Result<&'static str, &'static str> {
    let helper = ["/usr/lib/chromium/chrome-sandbox", "/opt/google/chrome/chrome-sandbox"].iter().any(|path| {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(path).is_ok_and(|meta| meta.uid() == 0 && meta.mode() & 0o4000 != 0)
    });
    if helper {
        return Ok("setuid chrome-sandbox helper");
    }
    let read = |path: &str| std::fs::read_to_string(path).ok().map(|text| text.trim().to_owned());
    if read("/proc/sys/user/max_user_namespaces").is_none_or(|max| max == "0") {
        return Err("user namespaces are disabled (user.max_user_namespaces)");
    }
    if read("/proc/sys/kernel/unprivileged_userns_clone").is_some_and(|value| value == "0") {
        return Err("unprivileged user namespaces are disabled (kernel.unprivileged_userns_clone)");
    }
    if read("/proc/sys/kernel/apparmor_restrict_unprivileged_userns").is_some_and(|value| value == "1") {
        return Err("AppArmor restricts unprivileged user namespaces");
    }
    Ok("user namespaces")
}

/// Resolves `name` (a user name in `passwd`, or `uid` or `uid:gid`).
pub(crate) fn lookup_user(name: &str, passwd: &Path) -> Result<RunAs, IsolationError> {
    let unknown = || IsolationError::UnknownUser(name.to_owned());
    let numeric = |text: &str| text.parse::<u32>().ok();
    if let Some((uid, gid)) = name.split_once(':') {
        let (uid, gid) = numeric(uid).zip(numeric(gid)).ok_or_else(unknown)?;
        return Ok(RunAs { name: name.to_owned(), uid, gid });
    }
    if let Some(uid) = numeric(name) {
        return Ok(RunAs { name: name.to_owned(), uid, gid: uid });
    }
    let text = std::fs::read_to_string(passwd).map_err(|_| unknown())?;
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split(':');
            let (user, _, uid, gid) = (fields.next()?, fields.next()?, fields.next()?, fields.next()?);
            (user == name).then(|| Some(RunAs { name: name.to_owned(), uid: numeric(uid)?, gid: numeric(gid)? }))?
        })
        .next()
        .ok_or_else(unknown)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_resolve_by_name_or_number() {
        let dir = std::env::temp_dir().join(format!("riptide-passwd-{}", std::process::id()));
        std::fs::write(&dir, "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")
            .unwrap_or_default();
        let nobody = lookup_user("nobody", &dir).ok();
        assert_eq!(nobody.map(|u| (u.uid, u.gid)), Some((65534, 65534)));
        assert_eq!(lookup_user("1000:100", &dir).ok().map(|u| (u.uid, u.gid)), Some((1000, 100)));
        assert_eq!(lookup_user("ghost", &dir), Err(IsolationError::UnknownUser("ghost".into())));
        let _ = std::fs::remove_file(&dir);
    }

    #[test]
    fn root_never_gets_the_sandbox_and_required_refuses_it() {
        if !rustix::process::geteuid().is_root() {
            return; // the rules below are about a root worker
        }
        let root = BrowserConfig { run_as: Some("root".into()), ..BrowserConfig::default() };
        assert_eq!(decide(&root).map(|i| i.sandbox).ok(), Some(false));
        let required = BrowserConfig { sandbox: SandboxPolicy::Required, ..root };
        assert_eq!(decide(&required), Err(IsolationError::RequiredAsRoot));
        let off = BrowserConfig { sandbox: SandboxPolicy::Off, ..BrowserConfig::default() };
        assert_eq!(decide(&off).map(|i| i.sandbox).ok(), Some(false));
        let default = decide(&BrowserConfig::default()).ok();
        assert_eq!(default.as_ref().and_then(|i| i.run_as.as_ref()).map(|u| u.name.as_str()), Some("nobody"));
    }
}
