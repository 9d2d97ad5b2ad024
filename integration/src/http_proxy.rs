//! A fault-injecting HTTP/1.1 proxy in front of a real server (Elasticsearch/OpenSearch in the
//! tests). Every request goes to a handler that answers it itself (a refusal, an injected error)
//! or forwards it, whole or changed, to the upstream server. It can terminate TLS with a
//! certificate made for the test ([`TestTls`]), and it decompresses gzip request bodies, so a
//! handler sees both what arrived on the wire and what it means. It stops when dropped.

use flate2::read::GzDecoder;
use std::future::Future;
use std::io::Read as _;
use std::pin::Pin;
use std::sync::Arc;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// One request as the client sent it.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    /// Path and query, e.g. `/_bulk?refresh=false`.
    pub path: String,
    /// Headers in arrival order, names in lower case.
    pub headers: Vec<(String, String)>,
    /// The body bytes as they came over the wire (compressed when the client gzipped them).
    pub raw_body: Vec<u8>,
    /// The body, decompressed when `Content-Encoding: gzip`.
    pub body: Vec<u8>,
}

impl Request {
    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Whether the body came gzip-compressed (`Content-Encoding: gzip`).
    pub fn gzipped(&self) -> bool {
        self.header("content-encoding")
            .is_some_and(|v| v.eq_ignore_ascii_case("gzip"))
    }
}

/// The proxy's answer to one request.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub content_type: String,
    pub body: Vec<u8>,
}

impl Response {
    /// A JSON answer.
    pub fn json(status: u16, body: &serde_json::Value) -> Response {
        Response {
            status,
            content_type: "application/json".into(),
            body: serde_json::to_vec(body).unwrap_or_default(),
        }
    }
}

/// The server behind the proxy.
#[derive(Clone)]
pub struct Upstream {
    base: String,
    http: reqwest::Client,
}

impl Upstream {
    /// Base URL, e.g. `http://127.0.0.1:9200`.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Sends `request` on unchanged but for its body, which goes decompressed, and without
    /// its `Authorization` (the upstream is the open test server).
    pub async fn forward(&self, request: &Request) -> Response {
        let content_type = request
            .header("content-type")
            .unwrap_or("application/json")
            .to_owned();
        self.send(
            &request.method,
            &request.path,
            &content_type,
            request.body.clone(),
        )
        .await
    }

    /// Sends a request to the upstream; a failure to reach it is answered as a 502.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> Response {
        let method = match reqwest::Method::from_bytes(method.as_bytes()) {
            Ok(m) => m,
            Err(e) => return bad_gateway(format!("method {method}: {e}")),
        };
        let sent = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await;
        match sent {
            Ok(r) => {
                let status = r.status().as_u16();
                let content_type = r
                    .headers()
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("application/json")
                    .to_owned();
                match r.bytes().await {
                    Ok(b) => Response {
                        status,
                        content_type,
                        body: b.to_vec(),
                    },
                    Err(e) => bad_gateway(format!("reading the upstream's answer: {e}")),
                }
            }
            Err(e) => bad_gateway(format!("upstream {}: {e}", self.base)),
        }
    }
}

fn bad_gateway(reason: String) -> Response {
    Response::json(
        502,
        &serde_json::json!({"error": {"type": "proxy_error", "reason": reason}, "status": 502}),
    )
}

/// What the proxy does with each request.
pub type Handler =
    Arc<dyn Fn(Request, Upstream) -> Pin<Box<dyn Future<Output = Response> + Send>> + Send + Sync>;

/// Makes a [`Handler`] from an async closure.
pub fn handler<F, Fut>(f: F) -> Handler
where
    F: Fn(Request, Upstream) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Response> + Send + 'static,
{
    Arc::new(move |req, up| Box::pin(f(req, up)))
}

/// A handler that forwards everything unchanged.
pub fn pass_through() -> Handler {
    handler(|req, up| async move { up.forward(&req).await })
}

/// A running proxy on a free loopback port.
pub struct HttpProxy {
    url: String,
    stop: CancellationToken,
}

impl HttpProxy {
    /// Listens on `127.0.0.1:<free port>` (with TLS when `tls` is given) and serves every
    /// connection with `handler`, forwarding to `upstream` (a base URL).
    pub async fn start(
        upstream: &str,
        tls: Option<&TestTls>,
        handler: Handler,
    ) -> Result<HttpProxy, String> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| format!("proxy: bind a loopback port: {e}"))?;
        let addr = listener
            .local_addr()
            .map_err(|e| format!("proxy: local address: {e}"))?;
        let upstream = Upstream {
            base: upstream.trim_end_matches('/').to_owned(),
            http: reqwest::Client::new(),
        };
        let acceptor = tls.map(|t| tokio_rustls::TlsAcceptor::from(Arc::clone(&t.server)));
        let stop = CancellationToken::new();
        let scheme = if acceptor.is_some() { "https" } else { "http" };
        let url = format!("{scheme}://{addr}");
        let token = stop.clone();
        tokio::spawn(async move {
            loop {
                let conn = tokio::select! {
                    _ = token.cancelled() => return,
                    c = listener.accept() => c,
                };
                let Ok((tcp, _)) = conn else { continue };
                let (handler, upstream, acceptor, token) = (
                    Arc::clone(&handler),
                    upstream.clone(),
                    acceptor.clone(),
                    token.clone(),
                );
                tokio::spawn(async move {
                    match acceptor {
                        // A failed handshake (a client that does not trust the CA) just closes.
                        Some(a) => {
                            if let Ok(tls) = a.accept(tcp).await {
                                serve(tls, handler, upstream, token).await
                            }
                        }
                        None => serve(tcp, handler, upstream, token).await,
                    }
                });
            }
        });
        Ok(HttpProxy { url, stop })
    }

    /// `http://127.0.0.1:<port>` or `https://...`.
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for HttpProxy {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Serves one keep-alive connection until the client closes it or the proxy stops.
async fn serve<S>(stream: S, handler: Handler, upstream: Upstream, stop: CancellationToken)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut conn = BufReader::new(stream);
    loop {
        let request = tokio::select! {
            _ = stop.cancelled() => return,
            r = read_request(&mut conn) => r,
        };
        let Ok(Some(request)) = request else { return };
        let head_only = request.method == "HEAD";
        let answer = handler(request, upstream.clone()).await;
        let head = format!(
            "HTTP/1.1 {} {}\r\ncontent-type: {}\r\ncontent-length: {}\r\n\r\n",
            answer.status,
            reason(answer.status),
            answer.content_type,
            answer.body.len()
        );
        let stream = conn.get_mut();
        let written = async {
            stream.write_all(head.as_bytes()).await?;
            if !head_only {
                stream.write_all(&answer.body).await?;
            }
            stream.flush().await
        };
        if written.await.is_err() {
            return;
        }
    }
}

/// Reads one request; `None` when the client closed the connection between requests.
async fn read_request<S>(conn: &mut BufReader<S>) -> std::io::Result<Option<Request>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut line = String::new();
    if conn.read_line(&mut line).await? == 0 {
        return Ok(None);
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("GET").to_owned();
    let path = parts.next().unwrap_or("/").to_owned();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if conn.read_line(&mut h).await? == 0 {
            return Ok(None);
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
        }
    }
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let raw_body = if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        read_chunked(conn).await?
    } else {
        let length: usize = header("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; length];
        conn.read_exact(&mut body).await?;
        body
    };
    let gzipped = header("content-encoding").is_some_and(|v| v.eq_ignore_ascii_case("gzip"));
    let body = if gzipped {
        let mut out = Vec::new();
        GzDecoder::new(raw_body.as_slice())
            .read_to_end(&mut out)
            .map_err(|e| {
                std::io::Error::new(e.kind(), format!("Content-Encoding: gzip, but {e}"))
            })?;
        out
    } else {
        raw_body.clone()
    };
    Ok(Some(Request {
        method,
        path,
        headers,
        raw_body,
        body,
    }))
}

async fn read_chunked<S>(conn: &mut BufReader<S>) -> std::io::Result<Vec<u8>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut body = Vec::new();
    loop {
        let mut size = String::new();
        conn.read_line(&mut size).await?;
        let size = usize::from_str_radix(size.trim().split(';').next().unwrap_or("0"), 16)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        if size == 0 {
            // The last chunk: trailers (none expected) end with an empty line.
            let mut end = String::new();
            conn.read_line(&mut end).await?;
            return Ok(body);
        }
        let mut chunk = vec![0; size + 2];
        conn.read_exact(&mut chunk).await?;
        body.extend_from_slice(&chunk[..size]);
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        429 => "Too Many Requests",
        502 => "Bad Gateway",
        _ => "Status",
    }
}

/// A certificate authority and a server certificate for `127.0.0.1` and `localhost` signed by
/// it, made fresh for a test; the proxy serves TLS with the server certificate and clients trust
/// [`TestTls::ca_pem`].
pub struct TestTls {
    /// The CA certificate, PEM, for the client's trust store (`ca_file`).
    pub ca_pem: String,
    server: Arc<rustls::ServerConfig>,
}

impl TestTls {
    /// Generates the CA and the server certificate.
    pub fn new() -> Result<TestTls, String> {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
        let fail = |what: &str, e: rcgen::Error| format!("test TLS: {what}: {e}");
        let ca_key = KeyPair::generate().map_err(|e| fail("CA key", e))?;
        let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(|e| fail("CA", e))?;
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "sluice test CA");
        let ca_cert = ca.self_signed(&ca_key).map_err(|e| fail("CA", e))?;
        let issuer = Issuer::new(ca, ca_key);
        let key = KeyPair::generate().map_err(|e| fail("server key", e))?;
        let mut params = CertificateParams::new(vec!["127.0.0.1".into(), "localhost".into()])
            .map_err(|e| fail("server certificate", e))?;
        params
            .distinguished_name
            .push(DnType::CommonName, "127.0.0.1");
        let cert = params
            .signed_by(&key, &issuer)
            .map_err(|e| fail("server certificate", e))?;
        let chain = vec![cert.der().clone(), ca_cert.der().clone()];
        let private = rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der())
            .map_err(|e| format!("test TLS: server key: {e}"))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let server = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("test TLS: {e}"))?
            .with_no_client_auth()
            .with_single_cert(chain, private)
            .map_err(|e| format!("test TLS: server config: {e}"))?;
        Ok(TestTls {
            ca_pem: ca_cert.pem(),
            server: Arc::new(server),
        })
    }
}
