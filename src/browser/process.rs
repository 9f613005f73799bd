//! Chromium as an operating-system process tree: launch, find, measure, kill, reap.
//!
//! It owns the command line, the process group, the /proc walks (tree and PSS) and the
//! kill-and-reap sequence. It must not speak CDP (`instance.rs` does) nor decide when to kill
//! (`pool.rs` does).
//!
//! Each browser is started in its own process group, so one `kill(-pgid)` reaches every
//! helper; helpers orphaned by the kill are re-parented to this process when it is a child
//! subreaper and reaped here, since the init of these VMs reaps nothing.
//!
//! A browser's life is tied to this process: it is started through `setpriv --pdeathsig KILL`
//! (util-linux; setting `PR_SET_PDEATHSIG` in our own child needs `pre_exec`, which is
//! `unsafe`), from one dedicated launcher thread (the death signal fires when the *thread*
//! that forked it ends, so it must not be an async or blocking-pool thread that may retire).
//! What a killed process leaves anyway (helpers outside the browser's tree, a host without
//! `setpriv`) is reaped by the next pool's start: every profile directory names its owner
//! (`riptide-owner-PID-STARTTIME-`), and processes whose owner is gone are killed.

use std::collections::{HashMap, HashSet};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use rustix::process::{Pid, Signal, WaitOptions};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStderr, Command};

use super::config::BrowserConfig;
use super::error::BrowserError;
use super::sandbox::Isolation;

/// The line Chromium prints on stderr once its DevTools socket listens.
const DEVTOOLS_PREFIX: &str = "DevTools listening on ";

/// Switches every pooled browser gets (without `--`; see `infra-limits.md` §5 for why each).
const BASE_ARGS: &[&str] = &[
    "headless",
    "disable-gpu",
    "disable-dev-shm-usage",
    "no-first-run",
    "no-default-browser-check",
    "disable-background-networking",
    "disable-component-update",
    "disable-sync",
    "disable-breakpad",
    "disable-crash-reporter",
    "disable-extensions",
    "disable-default-apps",
    "disable-popup-blocking",
    "disable-prompt-on-repost",
    "disable-hang-monitor",
    "disable-client-side-phishing-detection",
    "disable-background-timer-throttling",
    "disable-renderer-backgrounding",
    "disable-backgrounding-occluded-windows",
    // The spare renderer is pre-started for the default context, so with a fresh incognito
    // context per job it is thrown away unused: one wasted process start per page.
    "disable-features=TranslateUI,MediaRouter,OptimizationHints,AcceptCHFrame,SpareRendererForSitePerProcess",
    "metrics-recording-only",
    "mute-audio",
    "hide-scrollbars",
    "password-store=basic",
    "use-mock-keychain",
    "remote-debugging-address=127.0.0.1",
    // Port 0: Chromium picks a free port and prints it, so browsers never collide.
    "remote-debugging-port=0",
];

/// A started Chromium whose DevTools socket answers.
#[derive(Debug)]
pub(crate) struct Launched {
    /// The browser process (its own process group leader).
    pub child: Child,
    /// Its PID, which is also the process group id.
    pub pid: u32,
    /// The DevTools websocket URL.
    pub ws_url: String,
    /// The rest of stderr, to be drained so Chromium never blocks on a full pipe.
    pub stderr: Option<BufReader<ChildStderr>>,
}

/// Where util-linux's `setpriv` may be; the first that exists is used.
const SETPRIV: &[&str] = &["/usr/bin/setpriv", "/bin/setpriv"];
/// Marker in every profile directory name, followed by `PID-STARTTIME-` of the owning process.
const OWNER_TAG: &str = "riptide-owner-";

/// Spawns the pool's browsers from one dedicated thread, which ends when the pool (the last
/// `Launcher` handle) is gone. Chromium gets SIGKILL from the kernel when that thread ends,
/// for any reason: pool dropped, process exited, process killed.
#[derive(Debug)]
pub(crate) struct Launcher {
    requests: std::sync::mpsc::SyncSender<SpawnRequest>,
    /// `setpriv`, when present; without it browsers are not tied to this process (logged once).
    setpriv: Option<&'static str>,
    /// Who the browsers run as and whether their sandbox is on (`sandbox.rs`).
    isolation: Isolation,
    /// The egress proxy every browser must use (`proxy.rs`).
    proxy: std::net::SocketAddr,
    /// The browsers' temp directory, owned by their user. Short on purpose: Chromium puts a
    /// UNIX socket in it, and a socket path over 107 bytes kills the browser at start.
    tmp_dir: std::path::PathBuf,
}

type SpawnRequest = (std::process::Command, tokio::sync::oneshot::Sender<std::io::Result<Child>>);

/// Spawns in flight at once: launches are serialised by the pool, so one suffices; a few
/// more only avoid refusing a spawn while the thread hands back the last one.
const SPAWN_QUEUE: usize = 4;

impl Launcher {
    /// Starts the launcher thread, bound to the current tokio runtime (whose driver reaps the
    /// children).
    pub(crate) fn start(
        isolation: Isolation,
        tmp_dir: std::path::PathBuf,
        proxy: std::net::SocketAddr,
    ) -> std::io::Result<Launcher> {
        std::fs::create_dir_all(&tmp_dir)?;
        if let Some(user) = &isolation.run_as {
            std::os::unix::fs::chown(&tmp_dir, Some(user.uid), Some(user.gid))?;
        }
        let runtime = tokio::runtime::Handle::current();
        let (requests, incoming) = std::sync::mpsc::sync_channel::<SpawnRequest>(SPAWN_QUEUE);
        std::thread::Builder::new().name("riptide-chromium-launcher".into()).spawn(move || {
            let _entered = runtime.enter();
            while let Ok((command, reply)) = incoming.recv() {
                let mut command = Command::from(command);
                command.kill_on_drop(true);
                let _ = reply.send(command.spawn());
            }
        })?;
        let setpriv = SETPRIV.iter().copied().find(|path| Path::new(path).exists());
        if setpriv.is_none() {
            tracing::warn!(
                "setpriv (util-linux) not found: browsers are not killed with this process; leftovers are reaped at the next start."
            );
        }
        Ok(Launcher { requests, setpriv, isolation, proxy, tmp_dir })
    }

    /// The browsers' temp directory (removed by the pool's `close`).
    pub(crate) fn tmp_dir(&self) -> &Path {
        &self.tmp_dir
    }

    /// Who the browsers run as and whether their sandbox is on.
    pub(crate) fn isolation(&self) -> &Isolation {
        &self.isolation
    }

    /// A command running `executable` with the parent-death signal set, when possible.
    fn command(&self, executable: &Path) -> std::process::Command {
        match self.setpriv {
            Some(setpriv) => {
                let mut command = std::process::Command::new(setpriv);
                command.args(["--pdeathsig", "KILL", "--"]).arg(executable);
                command
            }
            None => std::process::Command::new(executable),
        }
    }

    async fn spawn(&self, command: std::process::Command) -> std::io::Result<Child> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.requests.try_send((command, reply)).map_err(|_| std::io::Error::other("launcher thread busy or gone"))?;
        answer.await.map_err(|_| std::io::Error::other("launcher thread gone"))?
    }
}

/// The owner marker of this process: `riptide-owner-PID-STARTTIME-`. The start time (clock
/// ticks since boot, from /proc) tells a live owner from a recycled PID.
pub(crate) fn owner_tag() -> String {
    let me = std::process::id();
    format!("{OWNER_TAG}{me}-{}-", start_time(me).unwrap_or(0))
}

/// Field 22 of `/proc/PID/stat`: when the process started, in clock ticks since boot.
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let close = stat.rfind(')')?;
    // Fields after the command name start at field 3 (state); field 22 is the 20th of them.
    stat.get(close + 1..)?.split_whitespace().nth(19)?.parse().ok()
}

/// The owner (PID, start time) named by a command line, if it carries the marker.
fn owner_of(cmdline: &str) -> Option<(u32, u64)> {
    let rest = cmdline.split(OWNER_TAG).nth(1)?;
    let mut parts = rest.splitn(3, '-');
    let pid = parts.next()?.parse().ok()?;
    let start = parts.next()?.parse().ok()?;
    Some((pid, start))
}

/// Kills every browser process whose owning riptide process is gone (killed before it could
/// close its pool), and removes such owners' temp directories. Blocking: scans /proc and the
/// temp dir. Returns how many processes were killed.
pub(crate) fn reap_abandoned() -> usize {
    let gone = |owner: Option<(u32, u64)>| owner.is_some_and(|(pid, started)| start_time(pid) != Some(started));
    let mut killed = 0;
    for (stat, _) in all_processes() {
        let Ok(raw) = std::fs::read(format!("/proc/{}/cmdline", stat.pid)) else { continue };
        let Some((owner, started)) = owner_of(&String::from_utf8_lossy(&raw)) else { continue };
        if start_time(owner) == Some(started) {
            continue; // its pool is alive (this process, or another riptide on the machine)
        }
        if let Some(process) = pid(stat.pid)
            && rustix::process::kill_process(process, Signal::KILL).is_ok()
        {
            killed += 1;
        }
    }
    if let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) {
        for entry in entries.filter_map(Result::ok) {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(OWNER_TAG) && gone(owner_of(&name)) {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
    killed
}

/// Starts Chromium with its own profile directory and process group and waits for its
/// DevTools address. On failure the process group is killed before returning.
pub(crate) async fn launch(
    config: &BrowserConfig,
    launcher: &Launcher,
    profile_dir: &Path,
) -> Result<Launched, BrowserError> {
    let executable = config.executable.display().to_string();
    let launch_error = |source| BrowserError::Launch { executable: executable.clone(), source };
    tokio::fs::create_dir_all(profile_dir).await.map_err(launch_error)?;
    let mut command = launcher.command(&config.executable);
    if let Some(user) = &launcher.isolation.run_as {
        // The browser writes its profile as that user; the profile root above stays ours
        // (mode 0755: traversable, not writable).
        std::os::unix::fs::chown(profile_dir, Some(user.uid), Some(user.gid)).map_err(launch_error)?;
        command.uid(user.uid).gid(user.gid);
    }
    if !launcher.isolation.sandbox {
        command.arg("--no-sandbox");
    }
    // Everything through the egress proxy, loopback included (Chromium bypasses the proxy for
    // loopback unless told `<-loopback>`), and no UDP around it (WebRTC).
    command
        .arg(format!("--proxy-server=http://{}", launcher.proxy))
        .arg("--proxy-bypass-list=<-loopback>")
        .arg("--force-webrtc-ip-handling-policy=disable_non_proxied_udp");
    command
        .args(BASE_ARGS.iter().map(|arg| format!("--{arg}")))
        .args(config.extra_args.iter().map(|arg| format!("--{arg}")))
        .arg(format!("--user-data-dir={}", profile_dir.display()))
        .arg("about:blank")
        // Debian's build double-forks two crashpad handlers out of the browser's tree and
        // process group (and `--disable-crashpad-for-testing` breaks navigation); pointing
        // their database into the profile puts the profile path on their command line, which
        // is how `process_tree` finds them.
        .env("XDG_CONFIG_HOME", profile_dir.join("xdg"))
        // Another user's HOME (nobody's is /nonexistent) and the shared temp dir are not for it.
        .env("HOME", profile_dir)
        .env("TMPDIR", &launcher.tmp_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut child = launcher.spawn(command).await.map_err(launch_error)?;
    let pid = child.id().unwrap_or_default();
    let timeout = Duration::from_millis(config.launch_timeout_ms);
    let mut stderr = child.stderr.take().map(BufReader::new);
    match tokio::time::timeout(timeout, read_ws_url(stderr.as_mut())).await {
        Ok(Some(ws_url)) => Ok(Launched { child, pid, ws_url, stderr }),
        Ok(None) | Err(_) => {
            let tree = tree(pid, profile_dir).await;
            kill_tree(pid, &tree);
            // The child was never handed out: reap it here so it does not linger.
            let _ = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
            reap(&tree, pid);
            Err(BrowserError::LaunchTimeout(timeout))
        }
    }
}

/// Reads stderr lines until the DevTools address; `None` when stderr ends first (exit).
async fn read_ws_url(stderr: Option<&mut BufReader<ChildStderr>>) -> Option<String> {
    let mut lines = stderr?.lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if let Some(url) = line.trim().strip_prefix(DEVTOOLS_PREFIX) {
            return Some(url.to_string());
        }
        // A browser that fails to start says why here; shown when launches are debugged.
        tracing::debug!(line, "Chromium stderr before DevTools.");
    }
    None
}

/// Drains Chromium's remaining stderr at trace level until the process closes it.
pub(crate) async fn drain_stderr(stderr: BufReader<ChildStderr>, pid: u32) {
    let mut lines = stderr.lines();
    while let Ok(Some(line)) = lines.next_line().await {
        tracing::trace!(pid, line, "Chromium stderr.");
    }
}

/// One row of `/proc/PID/stat`.
#[derive(Debug, Clone, Copy)]
struct ProcStat {
    pid: u32,
    ppid: u32,
    pgrp: u32,
    zombie: bool,
}

/// Parses `/proc/PID/stat`; the command name may hold spaces and parentheses, so the fields
/// are read after the last `)`.
fn parse_stat(text: &str) -> Option<(ProcStat, String)> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let pid = text.get(..open)?.trim().parse().ok()?;
    let comm = text.get(open + 1..close)?.to_string();
    let mut fields = text.get(close + 1..)?.split_whitespace();
    let state = fields.next()?;
    let ppid = fields.next()?.parse().ok()?;
    let pgrp = fields.next()?.parse().ok()?;
    Some((ProcStat { pid, ppid, pgrp, zombie: state == "Z" }, comm))
}

/// Every process on the machine, as (stat, command name).
fn all_processes() -> Vec<(ProcStat, String)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter(|entry| entry.file_name().to_str().is_some_and(|name| name.bytes().all(|b| b.is_ascii_digit())))
        .filter_map(|entry| std::fs::read_to_string(entry.path().join("stat")).ok())
        .filter_map(|text| parse_stat(&text))
        .collect()
}

/// The browser's process tree: `root`, its descendants, anything else still in its process
/// group (helpers orphaned by a dead parent), and any process whose command line names
/// `profile_dir` (the crashpad handlers, which leave both). Root first.
pub(crate) fn process_tree(root: u32, profile_dir: &Path) -> Vec<u32> {
    let processes = all_processes();
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    for (stat, _) in &processes {
        children.entry(stat.ppid).or_default().push(stat.pid);
    }
    let mut tree = vec![root];
    let mut seen: HashSet<u32> = tree.iter().copied().collect();
    let mut next = 0;
    while let Some(&pid) = tree.get(next) {
        for &child in children.get(&pid).map(Vec::as_slice).unwrap_or_default() {
            if seen.insert(child) {
                tree.push(child);
            }
        }
        next += 1;
    }
    let marker = profile_dir.display().to_string();
    for (stat, _) in &processes {
        if !seen.contains(&stat.pid) && (stat.pgrp == root || names(stat.pid, &marker)) {
            seen.insert(stat.pid);
            tree.push(stat.pid);
        }
    }
    tree
}

/// [`process_tree`] on a blocking thread: it scans every process in /proc, which must not
/// hold an async worker thread. Empty if the blocking task could not run (runtime closing).
pub(crate) async fn tree(root: u32, profile_dir: &Path) -> Vec<u32> {
    let profile_dir = profile_dir.to_path_buf();
    tokio::task::spawn_blocking(move || process_tree(root, &profile_dir)).await.unwrap_or_else(|_| vec![root])
}

/// Whether the command line of `pid` contains `marker`.
fn names(pid: u32, marker: &str) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|raw| String::from_utf8_lossy(&raw).contains(marker))
}

/// Proportional set size of `pids` in bytes (`Pss:` of `/proc/PID/smaps_rollup`): shared
/// pages are split between sharers, so summing over a tree does not count them ~2.7x over
/// the way RSS does. Processes that vanished count 0.
pub(crate) fn pss_bytes(pids: &[u32]) -> u64 {
    pids.iter()
        .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok())
        .map(|text| parse_pss_kib(&text) * 1024)
        .sum()
}

fn parse_pss_kib(smaps_rollup: &str) -> u64 {
    smaps_rollup
        .lines()
        .find_map(|line| line.strip_prefix("Pss:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// SIGKILLs the process group of `root` and every PID in `tree` (a helper may have left the
/// group). Errors are ignored: a process that is already gone is what we want.
pub(crate) fn kill_tree(root: u32, tree: &[u32]) {
    if let Some(group) = pid(root) {
        let _ = rustix::process::kill_process_group(group, Signal::KILL);
    }
    for process in tree.iter().filter_map(|&p| pid(p)) {
        let _ = rustix::process::kill_process(process, Signal::KILL);
    }
}

/// Reaps the PIDs of `tree` that became zombie children of this process (re-parented here as
/// subreaper). `skip` is the browser PID itself, which its `Child` handle reaps. Returns how
/// many were still running (not yet reapable) and are ours.
pub(crate) fn reap(tree: &[u32], skip: u32) -> usize {
    let mut pending = 0;
    for process in tree.iter().filter(|&&p| p != skip).filter_map(|&p| pid(p)) {
        // ECHILD: not our child (never re-parented here, or already reaped).
        if let Ok(None) = rustix::process::waitpid(Some(process), WaitOptions::NOHANG) {
            pending += 1;
        }
    }
    pending
}

/// Whether none of `tree` exists any more (a zombie still exists until it is reaped).
pub(crate) fn all_gone(tree: &[u32]) -> bool {
    tree.iter().all(|pid| !Path::new(&format!("/proc/{pid}")).exists())
}

/// Reaps zombie Chromium helpers that were re-parented to this process and that no `Child`
/// handle owns (`owned` are the browser PIDs whose handles reap them).
pub(crate) fn sweep_zombies(owned: &HashSet<u32>) -> usize {
    let me = std::process::id();
    let mut reaped = 0;
    for (stat, comm) in all_processes() {
        let ours = stat.ppid == me && stat.zombie && comm.starts_with("chrom") && !owned.contains(&stat.pid);
        if ours
            && let Some(process) = pid(stat.pid)
            && let Ok(Some(_)) = rustix::process::waitpid(Some(process), WaitOptions::NOHANG)
        {
            reaped += 1;
        }
    }
    reaped
}

/// Makes this process the subreaper of its descendants, so orphans come here, not to init.
pub(crate) fn become_subreaper() -> std::io::Result<()> {
    rustix::process::set_child_subreaper(Some(rustix::process::getpid())).map_err(std::io::Error::from)
}

fn pid(raw: u32) -> Option<Pid> {
    i32::try_from(raw).ok().and_then(Pid::from_raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_with_odd_names_parse() {
        let text = "4242 (chrom (x) y) S 4200 4200 4200 0 -1 4194560 1 0 0 0";
        let (stat, comm) =
            parse_stat(text).unwrap_or_else(|| (ProcStat { pid: 0, ppid: 0, pgrp: 0, zombie: true }, String::new()));
        assert_eq!((stat.pid, stat.ppid, stat.pgrp, stat.zombie), (4242, 4200, 4200, false));
        assert_eq!(comm, "chrom (x) y");
    }

    #[test]
    fn owners_are_read_from_profile_paths() {
        let cmdline = "chromium\0--user-data-dir=/tmp/r/riptide-owner-4242-987654-slot-0-3.profile\0about:blank";
        assert_eq!(owner_of(cmdline), Some((4242, 987654)));
        assert_eq!(owner_of("chromium --user-data-dir=/tmp/other"), None);
        let mine = owner_tag();
        assert_eq!(owner_of(&format!("{mine}slot-1-1.profile")).map(|(pid, _)| pid), Some(std::process::id()));
        let (_, start) = owner_of(&mine).unwrap_or_default();
        assert_eq!(start_time(std::process::id()), Some(start));
    }

    #[test]
    fn pss_is_read_in_kib() {
        let rollup = "00400000-7ffd [rollup]\nRss:              2048 kB\nPss:               1024 kB\n";
        assert_eq!(parse_pss_kib(rollup), 1024);
        assert_eq!(parse_pss_kib("garbage"), 0);
    }

    #[test]
    fn own_tree_has_itself_and_some_pss() {
        let me = std::process::id();
        let tree = process_tree(me, Path::new("/nonexistent-riptide-marker"));
        assert_eq!(tree.first(), Some(&me));
        assert!(pss_bytes(&tree) > 0);
    }
}
