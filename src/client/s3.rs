//! A small S3 client for the WORM archive (issue 16, `archive`): path-style requests signed with AWS
//! Signature Version 4, only the calls the archive needs. Written here rather than taken
//! from an SDK: the archive's correctness rests on a handful of exact headers (Object Lock
//! mode and date, the SHA-256 checksum S3 requires with them, If-None-Match), which are
//! plain to see in one file, and it costs no build time (hyper, ring and sha2 are built for
//! the server already; aws-sdk-s3 would add some hundred crates on 2 cores).
//!
//! Credentials come from the environment as for every AWS tool: AWS_ACCESS_KEY_ID,
//! AWS_SECRET_ACCESS_KEY, optional AWS_SESSION_TOKEN, and AWS_REGION (or
//! AWS_DEFAULT_REGION; default us-east-1). The secret never leaves this module.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hyper::Method;
use sha2::{Digest, Sha256};
use thiserror::Error;
use zeroize::Zeroizing;

use crate::client::http::{Client, Reply};
use crate::core::types::{Timestamp, to_hex};

#[derive(Debug, Error)]
pub enum S3Error {
    #[error(
        "S3 credentials: set {0} (and AWS_SECRET_ACCESS_KEY / AWS_ACCESS_KEY_ID) in the environment"
    )]
    NoCredentials(&'static str),
    #[error("{0}")]
    Usage(String),
    #[error("S3 at {endpoint}: {message}")]
    Connection { endpoint: String, message: String },
    #[error("S3 {op} {key}: HTTP {status} {code}: {message}")]
    Refused {
        op: &'static str,
        key: String,
        status: u16,
        code: String,
        message: String,
    },
    #[error("S3 {op} {key}: the answer is not what S3 sends: {why}")]
    Garbled {
        op: &'static str,
        key: String,
        why: String,
    },
}

pub struct Credentials {
    access_key: String,
    secret: Zeroizing<String>,
    token: Option<Zeroizing<String>>,
    region: String,
}

impl Credentials {
    pub fn new(access_key: &str, secret: &str, region: &str) -> Self {
        Credentials {
            access_key: access_key.to_owned(),
            secret: Zeroizing::new(secret.to_owned()),
            token: None,
            region: region.to_owned(),
        }
    }

    pub fn from_env() -> Result<Self, S3Error> {
        let get = |n: &'static str| std::env::var(n).ok().filter(|v| !v.is_empty());
        Ok(Credentials {
            access_key: get("AWS_ACCESS_KEY_ID")
                .ok_or(S3Error::NoCredentials("AWS_ACCESS_KEY_ID"))?,
            secret: Zeroizing::new(
                get("AWS_SECRET_ACCESS_KEY")
                    .ok_or(S3Error::NoCredentials("AWS_SECRET_ACCESS_KEY"))?,
            ),
            token: get("AWS_SESSION_TOKEN").map(Zeroizing::new),
            region: get("AWS_REGION")
                .or_else(|| get("AWS_DEFAULT_REGION"))
                .unwrap_or_else(|| "us-east-1".into()),
        })
    }
}

/// One version of an object, as ListObjectVersions gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    pub key: String,
    pub version_id: String,
    pub size: u64,
    /// A delete marker, not data.
    pub delete_marker: bool,
}

/// A bucket reached at an endpoint.
pub struct Bucket {
    client: Client,
    endpoint: String,
    host: String,
    pub name: String,
    creds: Credentials,
}

/// RFC 3986 percent-encoding as SigV4 asks: every byte but unreserved ones (and `/` in a
/// path when `path` is set).
fn uri_encode(s: &str, path: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b'/' if path => out.push('/'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let k = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
    ring::hmac::sign(&k, data).as_ref().to_vec()
}

fn sha256_hex(data: &[u8]) -> String {
    to_hex(&Sha256::digest(data))
}

/// `YYYYMMDDTHHMMSSZ` and `YYYY-MM-DDTHH:MM:SSZ` of `t`.
fn amz_date(t: Timestamp) -> (String, String) {
    let dt = chrono::DateTime::from_timestamp_micros(t.0).unwrap_or_default();
    (
        dt.format("%Y%m%dT%H%M%SZ").to_string(),
        dt.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
    )
}

/// The text between `<tag>` and `</tag>` of every such element of `xml`, entities decoded.
fn elements<'a>(xml: &'a str, tag: &str) -> Vec<String> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    let mut out = Vec::new();
    let mut rest: &'a str = xml;
    while let Some(i) = rest.find(&open) {
        let after = &rest[i + open.len()..];
        let Some(j) = after.find(&close) else { break };
        out.push(
            after[..j]
                .replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&quot;", "\"")
                .replace("&apos;", "'")
                .replace("&amp;", "&"),
        );
        rest = &after[j + close.len()..];
    }
    out
}

impl Bucket {
    /// Bucket `name` at `endpoint` (`http://HOST:PORT` or `https://…`; default AWS's
    /// regional endpoint), with credentials from the environment.
    pub fn open(name: &str, endpoint: Option<&str>) -> Result<Bucket, S3Error> {
        Self::open_with(name, endpoint, Credentials::from_env()?)
    }

    pub fn open_with(
        name: &str,
        endpoint: Option<&str>,
        creds: Credentials,
    ) -> Result<Bucket, S3Error> {
        let endpoint = endpoint
            .map(|e| e.trim_end_matches('/').to_owned())
            .unwrap_or_else(|| format!("https://s3.{}.amazonaws.com", creds.region));
        let mut client = Client::new(&endpoint, None).map_err(S3Error::Usage)?;
        // A segment is at most 256 MiB (archive::MAX_SEGMENT_BYTES); nothing larger is held.
        client.set_max_body((256 << 20) + (1 << 20));
        let host = endpoint
            .split_once("://")
            .map_or(endpoint.as_str(), |(_, h)| h)
            .to_owned();
        Ok(Bucket {
            client,
            endpoint,
            host,
            name: name.to_owned(),
            creds,
        })
    }

    /// A signed request for `key` (empty: the bucket) with `query` (sorted pairs) and
    /// extra `headers` (lower-case names, all signed); tests use it to try what the store
    /// must refuse.
    pub fn raw(
        &mut self,
        method: Method,
        key: &str,
        query: &[(&str, &str)],
        headers: &[(&str, String)],
        body: Vec<u8>,
    ) -> Result<Reply, S3Error> {
        let (stamp, _) = amz_date(Timestamp::now());
        let date = &stamp[..8];
        let payload = sha256_hex(&body);
        let path = match key {
            "" => format!("/{}", uri_encode(&self.name, false)),
            k => format!("/{}/{}", uri_encode(&self.name, false), uri_encode(k, true)),
        };
        let mut q: Vec<(String, String)> = query
            .iter()
            .map(|(k, v)| (uri_encode(k, false), uri_encode(v, false)))
            .collect();
        q.sort();
        let query = q
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&");
        let mut signed: Vec<(String, String)> = vec![
            ("host".into(), self.host.clone()),
            ("x-amz-content-sha256".into(), payload.clone()),
            ("x-amz-date".into(), stamp.clone()),
        ];
        if let Some(t) = &self.creds.token {
            signed.push(("x-amz-security-token".into(), t.to_string()));
        }
        signed.extend(
            headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.trim().to_owned())),
        );
        signed.sort();
        let names = signed
            .iter()
            .map(|(k, _)| k.as_str())
            .collect::<Vec<_>>()
            .join(";");
        let canonical = format!(
            "{method}\n{path}\n{query}\n{}\n{names}\n{payload}",
            signed
                .iter()
                .map(|(k, v)| format!("{k}:{v}\n"))
                .collect::<String>()
        );
        let scope = format!("{date}/{}/s3/aws4_request", self.creds.region);
        let to_sign = format!(
            "AWS4-HMAC-SHA256\n{stamp}\n{scope}\n{}",
            sha256_hex(canonical.as_bytes())
        );
        let secret = Zeroizing::new(format!("AWS4{}", self.creds.secret.as_str()));
        let mut k = Zeroizing::new(hmac(secret.as_bytes(), date.as_bytes()));
        for part in [self.creds.region.as_bytes(), b"s3", b"aws4_request"] {
            k = Zeroizing::new(hmac(&k, part));
        }
        let signature = to_hex(&hmac(&k, to_sign.as_bytes()));
        let auth = format!(
            "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={names}, Signature={signature}",
            self.creds.access_key
        );
        let mut all: Vec<(&str, String)> = signed
            .iter()
            .filter(|(k, _)| k != "host")
            .map(|(k, v)| (k.as_str(), v.clone()))
            .collect();
        all.push(("authorization", auth));
        let target = match query.is_empty() {
            true => path,
            false => format!("{path}?{query}"),
        };
        self.client
            .request(method, &target, &all, body)
            .map_err(|message| S3Error::Connection {
                endpoint: self.endpoint.clone(),
                message,
            })
    }

    fn refused(op: &'static str, key: &str, r: &Reply) -> S3Error {
        let text = String::from_utf8_lossy(&r.body);
        let first = |t: &str| elements(&text, t).into_iter().next().unwrap_or_default();
        S3Error::Refused {
            op,
            key: key.to_owned(),
            status: r.status.as_u16(),
            code: first("Code"),
            message: first("Message").chars().take(200).collect(),
        }
    }

    /// Whether the bucket has Object Lock enabled (`GET ?object-lock`).
    pub fn object_lock_enabled(&mut self) -> Result<bool, S3Error> {
        let r = self.raw(Method::GET, "", &[("object-lock", "")], &[], Vec::new())?;
        match r.status.as_u16() {
            200 => Ok(
                elements(&String::from_utf8_lossy(&r.body), "ObjectLockEnabled")
                    .iter()
                    .any(|v| v == "Enabled"),
            ),
            404 if String::from_utf8_lossy(&r.body).contains("ObjectLockConfigurationNotFound") => {
                Ok(false)
            }
            _ => Err(Self::refused(
                "GetObjectLockConfiguration",
                &self.name.clone(),
                &r,
            )),
        }
    }

    /// Writes `body` at `key` once, under COMPLIANCE retention until `until`, with the
    /// SHA-256 checksum S3 checks (and requires with Object Lock). Returns false if the key
    /// already existed (If-None-Match: *), writing nothing.
    pub fn put_locked(
        &mut self,
        key: &str,
        body: Vec<u8>,
        until: Timestamp,
    ) -> Result<bool, S3Error> {
        let (_, iso) = amz_date(until);
        let headers = [
            ("content-type", "application/octet-stream".to_owned()),
            ("if-none-match", "*".to_owned()),
            ("x-amz-checksum-sha256", B64.encode(Sha256::digest(&body))),
            ("x-amz-object-lock-mode", "COMPLIANCE".to_owned()),
            ("x-amz-object-lock-retain-until-date", iso),
            ("x-amz-sdk-checksum-algorithm", "SHA256".to_owned()),
        ];
        let r = self.raw(Method::PUT, key, &[], &headers, body)?;
        match r.status.as_u16() {
            200 => Ok(true),
            412 => Ok(false),
            _ => Err(Self::refused("PutObject", key, &r)),
        }
    }

    /// The object at `key` (its `version`, else the latest), or `None` if there is none.
    pub fn get(&mut self, key: &str, version: Option<&str>) -> Result<Option<Vec<u8>>, S3Error> {
        let q: Vec<(&str, &str)> = version.map(|v| ("versionId", v)).into_iter().collect();
        let r = self.raw(Method::GET, key, &q, &[], Vec::new())?;
        match r.status.as_u16() {
            200 => Ok(Some(r.body)),
            404 => Ok(None),
            _ => Err(Self::refused("GetObject", key, &r)),
        }
    }

    /// The retention of `version` of the object at `key`: its mode and retain-until date.
    pub fn retention(
        &mut self,
        key: &str,
        version: &str,
    ) -> Result<Option<(String, String)>, S3Error> {
        let r = self.raw(
            Method::HEAD,
            key,
            &[("versionId", version)],
            &[],
            Vec::new(),
        )?;
        if r.status.as_u16() != 200 {
            return Err(Self::refused("HeadObject", key, &r));
        }
        let h = |n: &str| {
            r.headers
                .get(n)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        Ok(h("x-amz-object-lock-mode").zip(h("x-amz-object-lock-retain-until-date")))
    }

    /// Every version of every object under `prefix`, delete markers included, in S3's
    /// order: by key, and for one key newest first (ListObjectVersions, page after page).
    pub fn versions(&mut self, prefix: &str) -> Result<Vec<Version>, S3Error> {
        let mut out = Vec::new();
        let mut marker: Option<(String, String)> = None;
        loop {
            let mut q = vec![("versions", ""), ("prefix", prefix)];
            if let Some((k, v)) = &marker {
                q.push(("key-marker", k.as_str()));
                q.push(("version-id-marker", v.as_str()));
            }
            let r = self.raw(Method::GET, "", &q, &[], Vec::new())?;
            if r.status.as_u16() != 200 {
                return Err(Self::refused("ListObjectVersions", prefix, &r));
            }
            let xml = String::from_utf8_lossy(&r.body).into_owned();
            // Versions and delete markers, in the order given.
            let mut rest = xml.as_str();
            loop {
                let v = rest.find("<Version>");
                let d = rest.find("<DeleteMarker>");
                let (at, tag, marker) = match (v, d) {
                    (Some(v), Some(d)) if d < v => (d, "DeleteMarker", true),
                    (Some(v), _) => (v, "Version", false),
                    (None, Some(d)) => (d, "DeleteMarker", true),
                    (None, None) => break,
                };
                let close = format!("</{tag}>");
                let Some(end) = rest[at..].find(&close) else {
                    break;
                };
                let item = &rest[at..at + end];
                let one = |t: &str| elements(item, t).pop();
                let (Some(key), Some(version_id)) = (one("Key"), one("VersionId")) else {
                    return Err(S3Error::Garbled {
                        op: "ListObjectVersions",
                        key: prefix.to_owned(),
                        why: "a version without a Key or VersionId".into(),
                    });
                };
                let size = one("Size").and_then(|s| s.parse().ok()).unwrap_or(0);
                out.push(Version {
                    key,
                    version_id,
                    size,
                    delete_marker: marker,
                });
                rest = &rest[at + end + close.len()..];
            }
            let more = elements(&xml, "IsTruncated")
                .first()
                .is_some_and(|t| t == "true");
            if !more {
                return Ok(out);
            }
            let next = elements(&xml, "NextKeyMarker")
                .pop()
                .zip(elements(&xml, "NextVersionIdMarker").pop());
            if next.is_none() || next == marker {
                // A listing that says there is more but not where: not all of it is known.
                return Err(S3Error::Garbled {
                    op: "ListObjectVersions",
                    key: prefix.to_owned(),
                    why: "a truncated listing without a new marker to go on from".into(),
                });
            }
            marker = next;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// AWS's published SigV4 example key derivation (Signature Version 4 docs, "Examples of
    /// how to derive a signing key"): secret wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY,
    /// 20120215, us-east-1, iam.
    #[test]
    fn signing_key_derivation_matches_the_published_example() {
        let mut k = hmac(b"AWS4wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", b"20120215");
        for part in [&b"us-east-1"[..], b"iam", b"aws4_request"] {
            k = hmac(&k, part);
        }
        assert_eq!(
            to_hex(&k),
            "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d"
        );
    }

    #[test]
    fn encoding_and_xml() {
        assert_eq!(uri_encode("a b/c~d", true), "a%20b/c~d");
        assert_eq!(uri_encode("a/b", false), "a%2Fb");
        assert_eq!(
            elements("<K>a&amp;b</K><K>c</K>", "K"),
            vec!["a&b".to_owned(), "c".to_owned()]
        );
    }
}
