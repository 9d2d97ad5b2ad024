//! A fault-injecting TCP proxy for tests: clients connect to it instead of a server, and the test
//! delays what passes through, cuts every open connection, or refuses new ones for a while, as a
//! flaky network would.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// A running proxy to one server; it stops when dropped.
pub struct TcpProxy {
    port: u16,
    state: Arc<State>,
    /// Bumped to cut every connection open now.
    cuts: watch::Sender<u64>,
    task: tokio::task::JoinHandle<()>,
}

struct State {
    /// Milliseconds added before each chunk is passed on.
    delay_ms: AtomicU64,
    /// New connections are closed at once while set.
    refusing: AtomicBool,
}

impl TcpProxy {
    /// Listens on a free loopback port and forwards every connection to `target`
    /// (`host:port`).
    pub async fn start(target: &str) -> Result<TcpProxy, String> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| format!("bind a proxy port: {e}"))?;
        let port = listener.local_addr().map_err(|e| e.to_string())?.port();
        let state = Arc::new(State {
            delay_ms: AtomicU64::new(0),
            refusing: AtomicBool::new(false),
        });
        let (cuts, cut_rx) = watch::channel(0u64);
        let target = target.to_owned();
        let st = Arc::clone(&state);
        let task = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                if st.refusing.load(Ordering::Relaxed) {
                    drop(client);
                    continue;
                }
                let target = target.clone();
                let st = Arc::clone(&st);
                let mut cut = cut_rx.clone();
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(&target).await else {
                        return;
                    };
                    let _ = client.set_nodelay(true);
                    let _ = server.set_nodelay(true);
                    let (cr, cw) = client.into_split();
                    let (sr, sw) = server.into_split();
                    let up = pipe(cr, sw, Arc::clone(&st));
                    let down = pipe(sr, cw, st);
                    cut.borrow_and_update();
                    tokio::select! {
                        _ = async { tokio::join!(up, down) } => {}
                        _ = cut.changed() => {}
                    }
                });
            }
        });
        Ok(TcpProxy {
            port,
            state,
            cuts,
            task,
        })
    }

    /// `127.0.0.1:<port>`: where clients connect.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The proxy's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Adds `ms` milliseconds before each chunk passes (0: none).
    pub fn delay(&self, ms: u64) {
        self.state.delay_ms.store(ms, Ordering::Relaxed);
    }

    /// Closes every connection open now (clients see a reset or an end of stream).
    pub fn cut(&self) {
        self.cuts.send_modify(|n| *n += 1);
    }

    /// Closes new connections at once while `on`.
    pub fn refuse(&self, on: bool) {
        self.state.refusing.store(on, Ordering::Relaxed);
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.cut();
        self.task.abort();
    }
}

/// Copies `from` to `to`, delayed as `state` says, until either side ends.
async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    state: Arc<State>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let delay = state.delay_ms.load(Ordering::Relaxed);
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}
