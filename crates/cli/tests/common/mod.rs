//! Helpers for the CLI's integration and interop tests: run the real `medsign` binary, OpenSSL
//! and the independent Python SM2 checker (tests/interop/sm2_check.py) in a temporary folder.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub struct Dir(pub tempfile::TempDir);

impl Dir {
    pub fn new() -> Self {
        Dir(tempfile::tempdir().expect("temp dir"))
    }
    pub fn path(&self, name: &str) -> PathBuf {
        self.0.path().join(name)
    }
    pub fn p(&self, name: &str) -> String {
        self.path(name).to_string_lossy().into_owned()
    }
    pub fn write(&self, name: &str, data: &[u8]) -> String {
        std::fs::write(self.path(name), data).unwrap();
        self.p(name)
    }
    pub fn read(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.path(name)).unwrap()
    }
    /// Run a program in this folder.
    pub fn run(&self, prog: &str, args: &[&str]) -> Output {
        Command::new(prog)
            .args(args)
            .current_dir(self.0.path())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {prog}: {e} (scripts/test installs the test tools)"))
    }
    pub fn medsign(&self, args: &[&str]) -> Output {
        self.run(env!("CARGO_BIN_EXE_medsign"), args)
    }
    /// Run medsign and require success.
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.medsign(args);
        assert!(o.status.success(), "medsign {args:?} failed: {}{}", text(&o.stdout), text(&o.stderr));
        text(&o.stdout)
    }
    pub fn openssl(&self, args: &[&str]) -> Output {
        self.run("openssl", args)
    }
    /// Run the independent SM2 checker.
    pub fn sm2_check(&self, args: &[&str]) -> Output {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/interop/sm2_check.py");
        let mut all = vec![script.to_str().unwrap()];
        all.extend_from_slice(args);
        self.run(&python(), &all)
    }

    /// root CA → issuing CA → staff signer, all made by the medsign CLI; returns nothing,
    /// files are root.pem/key, ca.pem/key, leaf.pem/key.
    pub fn make_pki(&self, alg: &str) {
        self.ok(&["keygen", "--alg", alg, "--out", "root.key"]);
        self.ok(&[
            "cert",
            "new-ca",
            "--key",
            "root.key",
            "--subject",
            "CN=某县人民医院根CA,O=某县人民医院,C=CN",
            "--days",
            "3650",
            "--path-len",
            "1",
            "--out",
            "root.pem",
        ]);
        self.ok(&["keygen", "--alg", alg, "--out", "ca.key"]);
        self.ok(&[
            "cert",
            "issue",
            "--ca",
            "root.pem",
            "--ca-key",
            "root.key",
            "--key-pub",
            "ca.key",
            "--subject",
            "CN=某县人民医院签发CA,O=某县人民医院,C=CN",
            "--profile",
            "ca",
            "--days",
            "1825",
            "--out",
            "ca.pem",
        ]);
        self.ok(&["keygen", "--alg", alg, "--out", "leaf.key"]);
        self.ok(&[
            "cert",
            "issue",
            "--ca",
            "ca.pem",
            "--ca-key",
            "ca.key",
            "--key-pub",
            "leaf.key",
            "--subject",
            "CN=张三,OU=心内科,O=某县人民医院,C=CN",
            "--profile",
            "signer",
            "--days",
            "365",
            "--out",
            "leaf.pem",
            "--crl-url",
            "http://127.0.0.1:7080/pki/crl",
            "--ocsp-url",
            "http://127.0.0.1:7080/pki/ocsp",
        ]);
    }
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The Python with gmssl + asn1crypto: `MEDSIGN_TEST_PYTHON`, else the venv scripts/test makes.
pub fn python() -> String {
    if let Ok(p) = std::env::var("MEDSIGN_TEST_PYTHON") {
        return p;
    }
    let home = std::env::var("HOME").unwrap_or_default();
    let p = format!("{home}/.cache/medsign-test-tools/venv/bin/python3");
    assert!(
        Path::new(&p).exists(),
        "the interop tests need Python with gmssl and asn1crypto: run scripts/test (it installs them)"
    );
    p
}

pub fn assert_ok(o: &Output, what: &str) {
    assert!(o.status.success(), "{what} failed:\n{}{}", text(&o.stdout), text(&o.stderr));
}

pub fn assert_fails(o: &Output, what: &str) {
    assert!(!o.status.success(), "{what} should have failed:\n{}{}", text(&o.stdout), text(&o.stderr));
}
