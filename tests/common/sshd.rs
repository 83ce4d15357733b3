//! A private OpenSSH sshd for tests that kill or re-key the server.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

pub struct Sshd {
    pub port: u16,
    pub dir: PathBuf,
    pid_file: PathBuf,
}

impl Sshd {
    /// Starts sshd on a new port (or `port`), trusting `client_key`.pub, with `host_key`.
    pub fn start(dir: &Path, client_key: &Path, host_key: &Path, port: Option<u16>) -> Sshd {
        std::fs::create_dir_all(dir).unwrap();
        let port = port.unwrap_or_else(super::garage::free_port);
        let config = dir.join("sshd_config");
        let pid_file = dir.join("sshd.pid");
        std::fs::write(
            &config,
            format!(
                "ListenAddress 127.0.0.1\nPort {port}\nHostKey {}\nPidFile {}\nAuthorizedKeysFile {}.pub\nStrictModes no\n\
                 UsePAM no\nPasswordAuthentication no\nPermitRootLogin prohibit-password\nSubsystem sftp internal-sftp\nMaxSessions 64\n",
                host_key.display(),
                pid_file.display(),
                client_key.display()
            ),
        )
        .unwrap();
        let sshd =
            ["/usr/sbin/sshd", "/usr/bin/sshd"].into_iter().find(|p| Path::new(p).exists()).expect("sshd installed");
        let st = Command::new(sshd).arg("-f").arg(&config).arg("-E").arg(dir.join("sshd.log")).status().unwrap();
        assert!(st.success(), "sshd did not start");
        let t = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(t.elapsed() < Duration::from_secs(10), "sshd not listening");
            std::thread::sleep(Duration::from_millis(20));
        }
        Sshd { port, dir: dir.to_path_buf(), pid_file }
    }

    /// Stops the listener and every session it started.
    pub fn kill(&self) {
        if let Ok(pid) = std::fs::read_to_string(&self.pid_file) {
            let _ = Command::new("pkill").args(["-KILL", "-P", pid.trim()]).status();
            let _ = Command::new("kill").args(["-KILL", pid.trim()]).status();
        }
        let _ = std::fs::remove_file(&self.pid_file);
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn host_key(path: &Path) {
    let _ = std::fs::remove_file(path);
    let st = Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", ""]).arg("-f").arg(path).status().unwrap();
    assert!(st.success());
}
