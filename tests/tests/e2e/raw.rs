//! A raw HTTP/1.1 client on a TCP socket, for what reqwest hides: a head sent byte by byte, a
//! body that stops half way, a kept-alive connection watched for how it ends.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The longest any step here waits for the server before the test fails.
pub(crate) const DEADLINE: Duration = Duration::from_secs(15);

/// One answer read off the socket.
#[derive(Debug)]
pub(crate) struct Answer {
    /// Status code.
    pub(crate) status: u16,
    /// Header lines, names lowercased.
    pub(crate) headers: Vec<(String, String)>,
    /// The body (by `Content-Length`).
    pub(crate) body: Vec<u8>,
}

impl Answer {
    /// A header's value.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON.
    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }
}

/// How a connection ended, seen from the client.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum End {
    /// The server closed cleanly (FIN): a read returned 0 bytes.
    Eof,
    /// The connection was reset.
    Reset,
}

/// A client connection.
pub(crate) struct Conn {
    stream: TcpStream,
    buffered: Vec<u8>,
}

impl Conn {
    /// Connects to `addr`.
    pub(crate) async fn open(addr: SocketAddr) -> Self {
        Self {
            stream: TcpStream::connect(addr).await.expect("connect"),
            buffered: Vec::new(),
        }
    }

    /// Sends `bytes` as they are.
    pub(crate) async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("send");
    }

    /// Sends `bytes`, reporting whether the socket took them (false once the server is gone).
    pub(crate) async fn try_send(&mut self, bytes: &[u8]) -> bool {
        self.stream.write_all(bytes).await.is_ok()
    }

    /// Reads one answer (head, then a `Content-Length` body); interim `1xx` answers included.
    pub(crate) async fn answer(&mut self) -> Answer {
        tokio::time::timeout(DEADLINE, self.read_answer())
            .await
            .expect("an answer before the deadline")
    }

    async fn read_answer(&mut self) -> Answer {
        let head_end = loop {
            if let Some(i) = find(&self.buffered, b"\r\n\r\n") {
                break i;
            }
            assert!(self.fill().await > 0, "connection closed before an answer");
        };
        let head = String::from_utf8(self.buffered[..head_end].to_vec()).expect("ASCII head");
        self.buffered.drain(..head_end + 4);
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|s| s.parse().ok())
            .expect("a status line");
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        let length: usize = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .map_or(0, |(_, v)| v.parse().expect("a length"));
        while self.buffered.len() < length {
            assert!(self.fill().await > 0, "connection closed inside a body");
        }
        let body = self.buffered.drain(..length).collect();
        Answer {
            status,
            headers,
            body,
        }
    }

    /// Waits until the server ends the connection (or [`DEADLINE`] passes: a test failure);
    /// whatever arrives meanwhile is an error too.
    pub(crate) async fn end(&mut self) -> End {
        let mut byte = [0u8; 1];
        let read = tokio::time::timeout(DEADLINE, self.stream.read(&mut byte))
            .await
            .expect("the server ends the connection before the deadline");
        match read {
            Ok(0) => End::Eof,
            Ok(_) => panic!("unexpected bytes from the server: {:?}", byte[0] as char),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => End::Reset,
            Err(e) => panic!("read failed: {e}"),
        }
    }

    /// Whether the server has ended the connection: a read that returns at once with 0 bytes
    /// or an error (nothing may be pending: any byte is an error).
    pub(crate) fn ended_now(&mut self) -> bool {
        let mut byte = [0u8; 1];
        match self.stream.try_read(&mut byte) {
            Ok(0) => true,
            Ok(_) => panic!("unexpected bytes from the server"),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => false,
            Err(_) => true,
        }
    }

    async fn fill(&mut self) -> usize {
        let mut chunk = [0u8; 4096];
        let n = self.stream.read(&mut chunk).await.expect("read");
        self.buffered.extend_from_slice(&chunk[..n]);
        n
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A request head for `POST path` with a JSON body of `length` bytes and extra header lines.
pub(crate) fn post_head(path: &str, length: usize, extra: &[&str]) -> Vec<u8> {
    let mut head = format!(
        "POST {path} HTTP/1.1\r\nhost: relay.test\r\ncontent-type: application/json\r\ncontent-length: {length}\r\n"
    );
    for line in extra {
        head.push_str(line);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    head.into_bytes()
}

/// A whole request that matches no route: the cheapest round trip (404).
pub(crate) fn nowhere() -> Vec<u8> {
    b"GET /nowhere HTTP/1.1\r\nhost: relay.test\r\n\r\n".to_vec()
}
