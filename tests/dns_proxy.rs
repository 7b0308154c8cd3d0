//! The PROXY protocol v2 from a trusted load balancer: a TCP connection from a peer in
//! `[dns] proxy_protocol_from` starts with a header naming the real client, and the hit is
//! recorded against that client, not the balancer. A trusted peer without a valid header is
//! closed unanswered; an untrusted peer's header is never believed.

mod common;

use std::net::SocketAddr;

use common::{TestBed, request, sha256_hex};
use hickory_proto::op::Message;
use hickory_proto::rr::RecordType;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

const TOKEN: &str = "viewer-token-for-proxy-tests";

async fn bed() -> TestBed {
    TestBed::builder()
        .allow_clients(&["127.0.0.0/8", "10.0.0.0/8"])
        .dns_option("proxy_protocol_from", "[\"127.0.0.1/32\"]")
        .toml(&format!(
            "[api]\nlisten = \"127.0.0.1:0\"\n[[api.tokens]]\nname = \"t\"\nrole = \"viewer\"\nsha256 = \"{}\"\n\
             [store]\npath = \"data/e.db\"\nflush_interval_ms = 20\n",
            sha256_hex(TOKEN)
        ))
        .start()
        .await
}

/// A TCP connection to `server` from `from` (a loopback address).
async fn connect(from: &str, server: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    socket
        .bind(SocketAddr::new(from.parse().expect("ip"), 0))
        .expect("bind");
    socket.connect(server).await.expect("connect")
}

/// Writes `prefix` then one framed query; the answer, or None when the server closed.
async fn ask(stream: &mut TcpStream, prefix: &[u8], name: &str) -> Option<Message> {
    let q = request(name, RecordType::A, true).to_vec().expect("encode");
    let mut out = prefix.to_vec();
    out.extend_from_slice(&u16::try_from(q.len()).expect("len").to_be_bytes());
    out.extend_from_slice(&q);
    stream.write_all(&out).await.ok()?;
    let mut len = [0u8; 2];
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read_exact(&mut len),
    )
    .await
    .expect("the server answers or closes within 10 s");
    read.ok()?;
    let mut body = vec![0u8; usize::from(u16::from_be_bytes(len))];
    stream.read_exact(&mut body).await.ok()?;
    Some(Message::from_vec(&body).expect("decode"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trusted_balancer_names_the_client_and_nobody_else_can() {
    let bed = bed().await;
    let client: SocketAddr = "10.99.0.7:40123".parse().unwrap();
    let header = poolguard::dns::proxy::header(client, bed.dns);

    // Through the balancer (127.0.0.1): answered, and the hit is the client's.
    let mut lb = connect("127.0.0.1", bed.dns).await;
    let answer = ask(&mut lb, &header, "xmr.pool.minergate.com.").await;
    assert!(answer.is_some_and(|a| !a.answers.is_empty()), "answered");
    bed.running().flush().await.expect("flush");
    let (status, hits) = bed.api_get("/api/v1/hits?client=10.99.0.7", TOKEN).await;
    assert_eq!(status, 200, "{hits}");
    assert_eq!(hits["items"].as_array().map(Vec::len), Some(1), "{hits}");
    assert_eq!(hits["items"][0]["port"], 40123, "{hits}");
    let (_, by_lb) = bed.api_get("/api/v1/hits?client=127.0.0.1", TOKEN).await;
    assert_eq!(by_lb["items"].as_array().map(Vec::len), Some(0), "{by_lb}");

    // The balancer without a header: closed unanswered.
    let mut bare = connect("127.0.0.1", bed.dns).await;
    assert!(
        ask(&mut bare, &[], "xmr.pool.minergate.com.")
            .await
            .is_none()
    );

    // Anyone else claiming an address with a header: never believed (the bytes are not a
    // DNS message; nothing is recorded for the claimed address).
    let mut liar = connect("127.0.0.2", bed.dns).await;
    let forged = poolguard::dns::proxy::header("10.99.0.8:1".parse().unwrap(), bed.dns);
    liar.write_all(&forged).await.expect("write");
    // Read as a frame length, the header asks for more bytes than follow: end the stream.
    liar.shutdown().await.expect("shutdown");
    let mut rest = Vec::new();
    let _ = liar.read_to_end(&mut rest).await;
    assert!(
        rest.is_empty(),
        "nothing answered to a forged header: {rest:?}"
    );
    bed.running().flush().await.expect("flush");
    let (_, claimed) = bed.api_get("/api/v1/hits?client=10.99.0.8", TOKEN).await;
    assert_eq!(
        claimed["items"].as_array().map(Vec::len),
        Some(0),
        "{claimed}"
    );

    // A plain client from another address still gets answered.
    let mut plain = connect("127.0.0.3", bed.dns).await;
    assert!(ask(&mut plain, &[], "www.example.test.").await.is_some());
    bed.shutdown().await;
}
