//! Accepting connections for both servers: plain TCP, or TLS handshakes run concurrently (a slow
//! or silent client never holds up the others) with a deadline. Each accepted connection
//! carries its [`Peer`].

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::tls::{Peer, Protocol, RefusalReason, Transport, certificate_names};

/// How long a client has to complete its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

/// An accepted connection and who is on the other end.
pub(crate) struct Accepted {
    stream: Stream,
    pub(crate) peer: Peer,
}

impl tonic::transport::server::Connected for Accepted {
    type ConnectInfo = Peer;

    fn connect_info(&self) -> Peer {
        self.peer.clone()
    }
}

impl AsyncRead for Accepted {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().stream {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Accepted {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().stream {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().stream {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().stream {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// Accepts on `listener` in a background task until the receiver is dropped.
pub(crate) fn incoming(
    listener: TcpListener,
    transport: Transport,
    server: &'static str,
    protocol: Protocol,
) -> mpsc::Receiver<Accepted> {
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(async move {
        loop {
            let (tcp, addr) = match listener.accept().await {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(server, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            if tx.is_closed() {
                return;
            }
            let _ = tcp.set_nodelay(true);
            match &transport {
                Transport::Plaintext => {
                    let peer = Peer { addr, names: None };
                    if tx.send(Accepted { stream: Stream::Plain(tcp), peer }).await.is_err() {
                        return;
                    }
                }
                Transport::Mtls { tls, .. } => {
                    let acceptor = TlsAcceptor::from(tls.config(protocol));
                    let (tx, transport) = (tx.clone(), transport.clone());
                    tokio::spawn(async move {
                        match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                            Ok(Ok(stream)) => {
                                let names = stream
                                    .get_ref()
                                    .1
                                    .peer_certificates()
                                    .and_then(|c| c.first())
                                    .map(|leaf| certificate_names(leaf))
                                    .unwrap_or_default();
                                let peer = Peer { addr, names: Some(names) };
                                let _ = tx.send(Accepted { stream: Stream::Tls(Box::new(stream)), peer }).await;
                            }
                            Ok(Err(e)) => transport.refused(server, addr, RefusalReason::Handshake, &e.to_string()),
                            Err(_) => transport.refused(server, addr, RefusalReason::Handshake, "handshake timed out"),
                        }
                    });
                }
            }
        }
    });
    rx
}

/// The accepted connections as an axum listener.
pub(crate) struct AxumListener {
    pub(crate) rx: mpsc::Receiver<Accepted>,
    pub(crate) local: SocketAddr,
}

impl axum::serve::Listener for AxumListener {
    type Io = Accepted;
    type Addr = Peer;

    async fn accept(&mut self) -> (Accepted, Peer) {
        match self.rx.recv().await {
            Some(a) => {
                let peer = a.peer.clone();
                (a, peer)
            }
            // The accept task only ends with the listener; nothing more will come.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Peer> {
        Ok(Peer { addr: self.local, names: None })
    }
}

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, AxumListener>> for Peer {
    fn connect_info(stream: axum::serve::IncomingStream<'_, AxumListener>) -> Peer {
        stream.remote_addr().clone()
    }
}
