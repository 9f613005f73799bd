//! Builds the default `article` extractor component (`extractor-component/guest`) for
//! `wasm32-wasip2` and leaves it in `OUT_DIR/article.wasm`, where `src/wasm/embedded.rs`
//! includes it: a plain `cargo build` (the README's commands, CI) yields a worker that needs no
//! file beside it. It must not build anything else.
//!
//! The nested cargo uses its own target directory (`<target>/riptide-guest`) so it never waits
//! on the outer build's lock, and the `wasm` profile the component is measured with.
//! `RIPTIDE_GUEST_WASM=/path/to/component.wasm` embeds a prebuilt file instead (Docker, offline
//! builds); `RIPTIDE_GUEST_WASM=none` embeds nothing (then `wasm.default_component` is required).

use std::path::{Path, PathBuf};
use std::process::Command;

/// Inputs of the component: a change to any reruns this script.
const INPUTS: &[&str] = &[
    "extractor-component/core/src",
    "extractor-component/core/Cargo.toml",
    "extractor-component/guest",
    "wit",
    "Cargo.lock",
];

fn main() {
    for input in INPUTS {
        println!("cargo:rerun-if-changed={input}");
    }
    println!("cargo:rerun-if-env-changed=RIPTIDE_GUEST_WASM");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").unwrap_or_default()).join("article.wasm");
    let result = match std::env::var("RIPTIDE_GUEST_WASM") {
        Ok(v) if v == "none" => std::fs::write(&out, b"").map_err(|e| e.to_string()),
        Ok(path) => std::fs::copy(&path, &out).map(drop).map_err(|e| format!("RIPTIDE_GUEST_WASM={path}: {e}")),
        Err(_) => build_guest(&out),
    };
    if let Err(message) = result {
        println!("cargo:warning=riptide: could not build the extractor component: {message}");
        std::process::exit(1);
    }
}

fn build_guest(out: &Path) -> Result<(), String> {
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let out_dir = out.parent().map(Path::to_path_buf).unwrap_or_default();
    // OUT_DIR is <target>/<profile>/build/<pkg>-<hash>/out (or one level deeper with --target).
    let target = out_dir
        .ancestors()
        .find(|p| p.join("CACHEDIR.TAG").exists())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| out_dir.join("guest-target"));
    let guest_target = target.join("riptide-guest");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&manifest_dir)
        .args(["build", "--quiet", "--profile", "wasm", "--target", "wasm32-wasip2", "-p", "riptide-extractor-guest"])
        .arg("--target-dir")
        .arg(&guest_target);
    // The outer build's settings are for the host (and clippy's wrapper would lint the guest).
    for var in [
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTC_WRAPPER",
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "CARGO_MAKEFLAGS",
        "MAKEFLAGS",
        "MFLAGS",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd.status().map_err(|e| format!("running cargo: {e}"))?;
    if !status.success() {
        return Err(format!(
            "`cargo build --profile wasm --target wasm32-wasip2 -p riptide-extractor-guest` failed ({status}); \
             is the target installed? `rustup target add wasm32-wasip2` (scripts/setup.sh does it)"
        ));
    }
    let built = guest_target.join("wasm32-wasip2/wasm/riptide_extractor_guest.wasm");
    std::fs::copy(&built, out).map(drop).map_err(|e| format!("{}: {e}", built.display()))
}
