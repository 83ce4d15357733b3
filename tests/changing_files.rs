//! Files that change while a backup reads them are never stored as a state that did not
//! exist without a word: a file cut short during the read is read again; one that keeps
//! changing is stored as read with a warning and exit 3. Files that report another size
//! than reading gives (sysfs) are stored as read.

mod common;

use std::io::Write;
use std::time::Duration;

use common::scenarios::a_file_cut_short_while_read;
use common::*;

#[test]
fn a_file_cut_short_while_read_is_stored_as_it_is_afterwards() {
    a_file_cut_short_while_read(Kind::Local);
}

#[test]
fn a_file_that_keeps_changing_is_reported_and_stored_as_read() {
    let env = Env::new();
    env.init();
    let src = env.path("src");
    std::fs::create_dir(&src).unwrap();
    let file = src.join("busy");
    std::fs::write(&file, noise(48 << 20, 4)).unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (stop, file) = (stop.clone(), file.clone());
        std::thread::spawn(move || {
            let mut f = std::fs::OpenOptions::new().append(true).open(&file).unwrap();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                f.write_all(b"another line of a busy log\n").unwrap();
                std::thread::sleep(Duration::from_millis(2));
            }
        })
    };
    let out = env.run(&["backup", "--json", src.to_str().unwrap()]);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.join().unwrap();
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    assert!(stderr(&out).contains("changed while they were read"), "{}", stderr(&out));
    let summary: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).lines().last().unwrap()).unwrap();
    let errors = summary["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{summary}");
    assert_eq!(errors[0]["stored"], true);
    assert!(errors[0]["message"].as_str().unwrap().contains("changed while it was read"));
    // The snapshot holds the file, as read: its original content at least.
    let restored = env.path("out");
    env.ok(&["restore", "latest", "--target", restored.to_str().unwrap()]);
    let got = std::fs::read(restored.join(file.strip_prefix("/").unwrap())).unwrap();
    assert!(got.len() >= 48 << 20);
    assert!(got[..48 << 20] == noise(48 << 20, 4)[..]);
}

#[test]
fn a_sysfs_file_is_stored_as_read_not_padded() {
    let sys = std::path::Path::new("/sys/devices/system/cpu/online");
    let Ok(expected) = std::fs::read(sys) else { return };
    let env = Env::new();
    env.init();
    let out = env.run(&["backup", sys.to_str().unwrap()]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let restored = env.path("out");
    env.ok(&["restore", "latest", "--target", restored.to_str().unwrap()]);
    let got = std::fs::read(restored.join(sys.strip_prefix("/").unwrap())).unwrap();
    assert_eq!(got, expected, "stored {} bytes for a {}-byte read", got.len(), expected.len());
}
