//! Writes under process-wide conditions: a file-size limit that makes the disk "full"
//! part-way through a write (setrlimit(RLIMIT_FSIZE), no root needed) and the umask.
//! Both are process-wide, so the tests of this file take a lock and run one at a time
//! (other test files are other processes).
#![cfg(target_os = "linux")]
// setrlimit, signal and umask are libc calls.
#![allow(unsafe_code)]

use std::os::unix::fs::PermissionsExt;
use std::sync::Mutex;

use unet_io::*;

static PROCESS: Mutex<()> = Mutex::new(());

fn noise(w: usize, h: usize) -> Image {
    let mut x = 12345u32;
    let data = (0..w * h)
        .map(|_| {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            ((x >> 16) & 0xff) as f32
        })
        .collect();
    Image::gray(w, h, SampleKind::U8, data)
}

/// Runs `f` with writes limited to files of at most `bytes` bytes (EFBIG beyond, as a full
/// disk gives ENOSPC), then restores the limit.
fn with_file_size_limit<T>(bytes: u64, f: impl FnOnce() -> T) -> T {
    // SAFETY: libc calls with valid pointers to local rlimits; the callers hold PROCESS,
    // so no other test of this process changes the limits meanwhile.
    unsafe {
        // Without this, exceeding the limit kills the process with SIGXFSZ.
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
        let mut old = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        assert_eq!(libc::getrlimit(libc::RLIMIT_FSIZE, &mut old), 0);
        let new = libc::rlimit { rlim_cur: bytes, rlim_max: old.rlim_max };
        assert_eq!(libc::setrlimit(libc::RLIMIT_FSIZE, &new), 0);
        let out = f();
        assert_eq!(libc::setrlimit(libc::RLIMIT_FSIZE, &old), 0);
        out
    }
}

fn temp_files(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".unet-tmp"))
        .collect()
}

/// The disk runs full while the last bytes of the encoder's buffer are flushed: the write
/// fails, and the good file it was to replace (with `force`) is left as it was.
#[test]
fn a_full_disk_fails_the_write_and_keeps_the_old_file() {
    let _lock = PROCESS.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let small = noise(8, 8);
    let big = noise(64, 64); // incompressible: a PNG of about 4.2 kB, less than one buffer
    for name in ["out.png", "out.tif"] {
        let out = dir.path().join(name);
        write_image(&out, std::slice::from_ref(&small), BitDepth::U8, false).unwrap();
        let good = std::fs::read(&out).unwrap();
        let r = with_file_size_limit(1000, || write_image(&out, std::slice::from_ref(&big), BitDepth::U8, true));
        let e = r.expect_err("a write past the end of the disk must fail");
        assert!(e.to_string().contains(name), "{e}");
        assert_eq!(std::fs::read(&out).unwrap(), good, "{name}: the good file was replaced");
        assert_eq!(read_image(&out, ColorMode::Gray).unwrap(), small);
        // Labels and raw bytes go the same way.
        let r = with_file_size_limit(1000, || AtomicFile::write_bytes(&out, &[7u8; 5000], true));
        assert!(r.is_err());
        assert_eq!(std::fs::read(&out).unwrap(), good);
        let lab = Label::new(64, 64, big.data.iter().map(|&v| v as u32 * 300).collect());
        let r = with_file_size_limit(1000, || write_labels(&out, std::slice::from_ref(&lab), true));
        assert!(r.is_err());
        assert_eq!(std::fs::read(&out).unwrap(), good);
    }
    assert!(temp_files(dir.path()).is_empty(), "{:?}", temp_files(dir.path()));
}

/// Outputs get the mode a plain `File::create` gives under the umask, not 0600.
#[test]
fn outputs_follow_the_umask() {
    let _lock = PROCESS.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    for umask in [0o022, 0o027, 0o002] {
        // SAFETY: umask only swaps the process's mask; PROCESS is held.
        let old = unsafe { libc::umask(umask) };
        let plain = dir.path().join(format!("plain{umask:o}"));
        std::fs::File::create(&plain).unwrap();
        let png = dir.path().join(format!("m{umask:o}.png"));
        write_image(&png, &[noise(4, 4)], BitDepth::U8, false).unwrap();
        let bytes = dir.path().join(format!("b{umask:o}.json"));
        AtomicFile::write_bytes(&bytes, b"{}", false).unwrap();
        // SAFETY: as above.
        unsafe { libc::umask(old) };
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&plain), 0o666 & !umask);
        assert_eq!(mode(&png), mode(&plain), "umask {umask:o}");
        assert_eq!(mode(&bytes), mode(&plain), "umask {umask:o}");
    }
}

/// A killed writer's temporary file of the same target is removed by the next write of
/// that target once its process is gone and it is old; anything else stays.
#[test]
fn orphaned_temp_files_of_the_target_are_removed() {
    let _lock = PROCESS.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // PIDs above Linux's largest pid_max (2^22) never belong to a process.
    let dead = 999_999_999u32;
    let live = std::process::id();
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    let make = |name: &str, mtime: Option<std::time::SystemTime>| {
        let f = std::fs::File::create(d.join(name)).unwrap();
        if let Some(t) = mtime {
            f.set_modified(t).unwrap();
        }
    };
    let orphan = format!(".unet-tmp-{dead}.Ab12Cd.out.png");
    let other_target = format!(".unet-tmp-{dead}.Ab12Cd.other.png");
    let alive = format!(".unet-tmp-{live}.Ab12Cd.out.png");
    let recent = format!(".unet-tmp-{dead}.Xy98Zw.out.png");
    let old_scheme = ".unet-tmp-Qw3rTy".to_string();
    make(&orphan, Some(old));
    make(&other_target, Some(old));
    make(&alive, Some(old));
    make(&recent, None);
    make(&old_scheme, Some(old));
    write_image(&d.join("out.png"), &[noise(4, 4)], BitDepth::U8, false).unwrap();
    let mut left = temp_files(d);
    left.sort();
    let mut expected = vec![other_target, alive, recent, old_scheme];
    expected.sort();
    assert_eq!(left, expected);
}
