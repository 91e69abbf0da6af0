//! Minimal HTTP/1.0 requests to loopback ports, for probing the processes under test without
//! a client library.

use anyhow::Context;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// GET `path` on 127.0.0.1:`port` over HTTP/1.0: status and body.
pub async fn http_get(port: u16, path: &str) -> anyhow::Result<(u16, String)> {
    http_get_with_token(port, path, None).await
}

/// GET `path` on 127.0.0.1:`port` with an optional bearer token: status and body.
pub async fn http_get_with_token(
    port: u16,
    path: &str,
    token: Option<&str>,
) -> anyhow::Result<(u16, String)> {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    let authorization = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let request = format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n{authorization}\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .context("no status line")?;
    Ok((code, body.to_owned()))
}

/// POST JSON `body` to 127.0.0.1:`port``path` with an optional bearer token: status, body.
pub async fn http_post(
    port: u16,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> anyhow::Result<(u16, String)> {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    let authorization = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let request = format!(
        "POST {path} HTTP/1.0\r\nHost: localhost\r\nContent-Type: application/json\r\n{authorization}Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .context("no status line")?;
    Ok((code, body.to_owned()))
}
