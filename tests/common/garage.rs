//! Private Garage nodes for tests that kill servers (the shared test server must stay up).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn random_hex(n: usize) -> String {
    let mut b = vec![0u8; n];
    getrandom::fill(&mut b).unwrap();
    hex::encode(b)
}

pub struct Node {
    pub dir: PathBuf,
    pub config: PathBuf,
    pub s3_port: u16,
    pub rpc_port: u16,
    child: Option<Child>,
    env: Vec<(String, String)>,
    single: bool,
}

pub struct Cluster {
    pub bin: PathBuf,
    pub nodes: Vec<Node>,
    pub key_id: String,
    pub secret: String,
    pub bucket: String,
}

impl Node {
    fn new(dir: &Path, secret: &str, replication: usize) -> Node {
        std::fs::create_dir_all(dir).unwrap();
        let (s3_port, rpc_port, admin) = (free_port(), free_port(), free_port());
        let config = dir.join("garage.toml");
        let d = dir.display();
        std::fs::write(
            &config,
            format!(
                "metadata_dir = \"{d}/meta\"\ndata_dir = \"{d}/data\"\ndb_engine = \"lmdb\"\nreplication_factor = {replication}\n\
                 rpc_bind_addr = \"127.0.0.1:{rpc_port}\"\nrpc_public_addr = \"127.0.0.1:{rpc_port}\"\nrpc_secret = \"{secret}\"\n\
                 [s3_api]\ns3_region = \"garage\"\napi_bind_addr = \"127.0.0.1:{s3_port}\"\n\
                 [admin]\napi_bind_addr = \"127.0.0.1:{admin}\"\nadmin_token = \"{}\"\n",
                random_hex(16)
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o600)).unwrap();
        Node { dir: dir.to_path_buf(), config, s3_port, rpc_port, child: None, env: Vec::new(), single: false }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.s3_port)
    }

    pub fn start(&mut self, bin: &Path) {
        let mut c = Command::new(bin);
        c.arg("-c").arg(&self.config).arg("server");
        if self.single {
            c.args(["--single-node", "--default-bucket"]);
        }
        for (k, v) in &self.env {
            c.env(k, v);
        }
        let log = std::fs::File::create(self.dir.join("log")).unwrap();
        let child = c.stdout(Stdio::null()).stderr(log).spawn().expect("start garage");
        self.child = Some(child);
        let t = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.s3_port)).is_err() {
            assert!(t.elapsed() < Duration::from_secs(20), "garage did not start: {}", self.dir.display());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn cli(&self, bin: &Path, args: &[&str]) -> String {
        let out = Command::new(bin).arg("-c").arg(&self.config).args(args).output().unwrap();
        assert!(out.status.success(), "garage {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

impl Cluster {
    /// One node, its bucket and key made by `--single-node --default-bucket`.
    pub fn single(bin: &Path, dir: &Path) -> Cluster {
        let (key_id, secret) = (format!("GK{}", random_hex(12)), random_hex(32));
        let mut n = Node::new(&dir.join("n0"), &random_hex(32), 1);
        n.single = true;
        n.env = vec![
            ("GARAGE_DEFAULT_ACCESS_KEY".into(), key_id.clone()),
            ("GARAGE_DEFAULT_SECRET_KEY".into(), secret.clone()),
            ("GARAGE_DEFAULT_BUCKET".into(), "vault".into()),
        ];
        n.start(bin);
        let c = Cluster { bin: bin.to_path_buf(), nodes: vec![n], key_id, secret, bucket: "vault".into() };
        c.wait_ready(0);
        c
    }

    /// Three nodes, replication factor 3, one zone each.
    pub fn three(bin: &Path, dir: &Path) -> Cluster {
        let secret = random_hex(32);
        let mut nodes: Vec<Node> = (0..3).map(|i| Node::new(&dir.join(format!("n{i}")), &secret, 3)).collect();
        for n in &mut nodes {
            n.start(bin);
        }
        let ids: Vec<String> = nodes.iter().map(|n| n.cli(bin, &["node", "id", "-q"])).collect();
        for id in &ids[1..] {
            nodes[0].cli(bin, &["node", "connect", id]);
        }
        for (i, id) in ids.iter().enumerate() {
            let short = id.split('@').next().unwrap();
            nodes[0].cli(bin, &["layout", "assign", "-z", &format!("dc{i}"), "-c", "1G", short]);
        }
        nodes[0].cli(bin, &["layout", "apply", "--version", "1"]);
        let (key_id, key_secret) = (format!("GK{}", random_hex(12)), random_hex(32));
        nodes[0].cli(bin, &["key", "import", "--yes", "-n", "vault", &key_id, &key_secret]);
        nodes[0].cli(bin, &["bucket", "create", "vault"]);
        nodes[0].cli(bin, &["bucket", "allow", "--read", "--write", "--owner", "vault", "--key", &key_id]);
        let c = Cluster { bin: bin.to_path_buf(), nodes, key_id, secret: key_secret, bucket: "vault".into() };
        for i in 0..3 {
            c.wait_ready(i);
        }
        c
    }

    /// Reconnects a restarted node to its peers (else it answers 503 for ~30 s).
    pub fn reconnect(&self, i: usize) {
        for (j, n) in self.nodes.iter().enumerate() {
            if j != i {
                let id = n.cli(&self.bin, &["node", "id", "-q"]);
                let _ = Command::new(&self.bin)
                    .arg("-c")
                    .arg(&self.nodes[i].config)
                    .args(["node", "connect", &id])
                    .output();
            }
        }
    }

    /// Waits until node `i` answers a signed ListObjects.
    pub fn wait_ready(&self, i: usize) {
        let t = Instant::now();
        loop {
            let out = Command::new("curl")
                .args([
                    "-sf",
                    "--aws-sigv4",
                    "aws:amz:garage:s3",
                    "--user",
                    &format!("{}:{}", self.key_id, self.secret),
                ])
                .args(["-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD"])
                .arg(format!("{}/{}?list-type=2", self.nodes[i].endpoint(), self.bucket))
                .output()
                .unwrap();
            if out.status.success() {
                return;
            }
            assert!(t.elapsed() < Duration::from_secs(60), "garage node {i} not ready");
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}
