//! A small blocking HTTP/1.1 client over one kept-alive connection (hyper), with rustls for
//! https: trusting `--ca FILE`, else the system's bundle.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper::{HeaderMap, Method, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// Where Debian (and most Linux) keep the system's trusted CAs.
const SYSTEM_CAS: &str = "/etc/ssl/certs/ca-certificates.crt";
/// No answer within this time is an error (the request may still have been applied; a
/// retry with the same signed request is answered with the original receipt).
const TIMEOUT: Duration = Duration::from_secs(30);

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

pub struct Client {
    rt: tokio::runtime::Runtime,
    host: String,
    port: u16,
    authority: String,
    tls: Option<(TlsConnector, ServerName<'static>)>,
    sender: Option<SendRequest<Full<Bytes>>>,
    /// An answer longer than this is refused, not held in memory.
    max_body: usize,
}

/// The longest answer a client takes by default.
pub const MAX_REPLY: usize = 64 << 20;

impl Client {
    /// A client of `url` (`http://HOST:PORT` or `https://HOST:PORT`); connects lazily.
    pub fn new(url: &str, ca: Option<&Path>) -> Result<Client, String> {
        let uri: Uri = url.parse().map_err(|e| {
            format!("{url:?} is not a server URL ({e}); give http://HOST:PORT or https://HOST:PORT")
        })?;
        let https = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            _ => {
                return Err(format!(
                    "{url:?}: the server URL starts with http:// or https://"
                ));
            }
        };
        if uri.path() != "/" && !uri.path().is_empty() || uri.query().is_some() {
            return Err(format!(
                "{url:?}: give the server's address only, without a path"
            ));
        }
        let host = uri
            .host()
            .ok_or_else(|| format!("{url:?} names no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let authority = uri
            .authority()
            .map(|a| a.as_str().to_owned())
            .unwrap_or_default();
        let tls = if https {
            let name = ServerName::try_from(host.clone())
                .map_err(|e| format!("{host:?} is not a TLS server name: {e}"))?;
            Some((connector(ca)?, name))
        } else {
            if ca.is_some() {
                return Err("--ca is for an https:// server".into());
            }
            None
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("starting the client: {e}"))?;
        Ok(Client {
            rt,
            host,
            port,
            authority,
            tls,
            sender: None,
            max_body: MAX_REPLY,
        })
    }

    /// Answers longer than `bytes` are refused from now on.
    pub fn set_max_body(&mut self, bytes: usize) {
        self.max_body = bytes;
    }

    /// Sends one request, on the kept-alive connection or a new one (once more on a new
    /// one if the kept-alive connection turns out closed).
    pub fn request(
        &mut self,
        method: Method,
        path: &str,
        headers: &[(&str, String)],
        body: Vec<u8>,
    ) -> Result<Reply, String> {
        let mut last = String::new();
        for _ in 0..2 {
            if self.sender.as_ref().is_none_or(|s| s.is_closed()) {
                self.sender = Some(self.connect()?);
            }
            let mut req = hyper::Request::builder()
                .method(method.clone())
                .uri(path)
                .header(hyper::header::HOST, &self.authority);
            for (k, v) in headers {
                req = req.header(*k, v);
            }
            let typed = headers
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case("content-type"));
            if !body.is_empty() && !typed {
                req = req.header(hyper::header::CONTENT_TYPE, "application/json");
            }
            let req = req
                .body(Full::new(Bytes::from(body.clone())))
                .map_err(|e| e.to_string())?;
            let sender = self.sender.as_mut().expect("connected above");
            let max = self.max_body;
            let sent = self.rt.block_on(async {
                tokio::time::timeout(TIMEOUT, async {
                    let res = sender.send_request(req).await.map_err(|e| e.to_string())?;
                    let (parts, body) = res.into_parts();
                    let body = http_body_util::Limited::new(body, max)
                        .collect()
                        .await
                        .map_err(|e| format!("the answer: {e} (at most {max} bytes are taken)"))?
                        .to_bytes();
                    Ok::<_, String>((parts, body))
                })
                .await
            });
            match sent {
                Ok(Ok((parts, body))) => {
                    return Ok(Reply {
                        status: parts.status,
                        headers: parts.headers,
                        body: body.to_vec(),
                    });
                }
                Ok(Err(e)) => {
                    self.sender = None;
                    last = e;
                }
                Err(_) => {
                    self.sender = None;
                    return Err(format!(
                        "no answer from {} within {} s",
                        self.authority,
                        TIMEOUT.as_secs()
                    ));
                }
            }
        }
        Err(format!(
            "the connection to {} failed: {last}",
            self.authority
        ))
    }

    fn connect(&mut self) -> Result<SendRequest<Full<Bytes>>, String> {
        let (host, port, tls) = (self.host.clone(), self.port, self.tls.clone());
        let authority = self.authority.clone();
        self.rt.block_on(async move {
            let tcp = tokio::time::timeout(TIMEOUT, TcpStream::connect((host.as_str(), port)))
                .await
                .map_err(|_| format!("connecting to {authority} timed out"))?
                .map_err(|e| {
                    format!(
                        "cannot connect to {authority}: {e}; is `keyledger serve` running there?"
                    )
                })?;
            let _ = tcp.set_nodelay(true);
            match tls {
                None => {
                    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
                        .await
                        .map_err(|e| format!("{authority}: {e}"))?;
                    tokio::spawn(conn);
                    Ok(sender)
                }
                Some((connector, name)) => {
                    let stream = connector
                        .connect(name, tcp)
                        .await
                        .map_err(|e| format!("TLS with {authority}: {e}"))?;
                    let (sender, conn) =
                        hyper::client::conn::http1::handshake(TokioIo::new(stream))
                            .await
                            .map_err(|e| format!("{authority}: {e}"))?;
                    tokio::spawn(conn);
                    Ok(sender)
                }
            }
        })
    }
}

fn connector(ca: Option<&Path>) -> Result<TlsConnector, String> {
    let path = ca.unwrap_or(Path::new(SYSTEM_CAS));
    let mut roots = rustls::RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("{}: cannot read CA certificates: {e}", path.display()))?;
    for c in certs {
        let c = c.map_err(|e| format!("{}: not PEM certificates: {e}", path.display()))?;
        roots
            .add(c)
            .map_err(|e| format!("{}: a CA certificate is not usable: {e}", path.display()))?;
    }
    if roots.is_empty() {
        return Err(format!("{}: holds no CA certificate", path.display()));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(config)))
}
