//! Helpers shared by the CLI tests: run the `unet` binary, path to &str.

#![allow(dead_code)]

use std::path::Path;
use std::process::Command;

/// Runs `unet` with `args`: (exit code, stdout, stderr).
pub fn unet(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_unet")).args(args).output().expect("runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

/// A path as &str.
pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}
