//! `HttpPoster` against a local HTTP listener that answers as each test tells
//! it and records what it was sent.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;
use std::time::{Duration, Instant};
use zibrato_backend_api::settings::Secret;
use zibrato_push::http::{header, Auth, HttpPoster, PosterError, MAX_ERROR_BODY, USER_AGENT};
use zibrato_push::Outcome;

/// A request as the listener read it.
#[derive(Debug)]
struct Request {
    head: String,
    body: Vec<u8>,
}

impl Request {
    /// The value of header `name`, if sent.
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    fn request_line(&self) -> &str {
        self.head.lines().next().unwrap_or("")
    }
}

/// Answers one connection after another with `answers` (raw HTTP), then
/// stops; returns its URL and the requests it reads.
fn listener(answers: Vec<&'static str>) -> (String, mpsc::Receiver<Request>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1/write", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for answer in answers {
            let Ok((mut stream, _)) = listener.accept() else {
                return;
            };
            let Some(request) = read_request(&mut stream) else {
                continue;
            };
            let _ = tx.send(request);
            let _ = stream.write_all(answer.as_bytes());
        }
    });
    (url, rx)
}

fn read_request(stream: &mut std::net::TcpStream) -> Option<Request> {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    let end = loop {
        if let Some(at) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break at;
        }
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return None,
            Ok(n) => data.extend_from_slice(&buf[..n]),
        }
    };
    let head = String::from_utf8_lossy(&data[..end]).into_owned();
    let mut request = Request {
        head,
        body: data[end + 4..].to_vec(),
    };
    let length: usize = request
        .header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    while request.body.len() < length {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => request.body.extend_from_slice(&buf[..n]),
        }
    }
    Some(request)
}

fn next(rx: &mpsc::Receiver<Request>) -> Request {
    rx.recv_timeout(Duration::from_secs(30)).expect("a request")
}

fn poster(url: &str) -> HttpPoster {
    HttpPoster::new(url, Duration::from_secs(10)).unwrap()
}

fn post(poster: &HttpPoster) -> Outcome {
    poster.post(b"body".to_vec(), &[], Auth::None, Duration::from_secs(10))
}

#[test]
fn a_2xx_is_accepted_and_the_request_carries_body_headers_auth_and_user_agent() {
    let (url, rx) = listener(vec!["HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n"]);
    let token = Secret::new("tok-SECRET");
    let headers = [
        (
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("application/x-protobuf"),
        ),
        (
            header::HeaderName::from_static("x-prometheus-remote-write-version"),
            header::HeaderValue::from_static("0.1.0"),
        ),
    ];
    let auth = Auth::Basic {
        username: "me",
        password: &token,
    };
    let outcome = poster(&url).post(vec![1, 2, 3], &headers, auth, Duration::from_secs(10));
    assert_eq!(outcome, Outcome::Accepted);
    let request = next(&rx);
    assert_eq!(request.request_line(), "POST /v1/write HTTP/1.1");
    assert_eq!(request.body, vec![1, 2, 3]);
    assert_eq!(
        request.header("content-type"),
        Some("application/x-protobuf")
    );
    assert_eq!(
        request.header("x-prometheus-remote-write-version"),
        Some("0.1.0")
    );
    assert_eq!(request.header("user-agent"), Some(USER_AGENT));
    assert_eq!(USER_AGENT, format!("zibrato/{}", env!("CARGO_PKG_VERSION")));
    // base64("me:tok-SECRET")
    assert_eq!(
        request.header("authorization"),
        Some("Basic bWU6dG9rLVNFQ1JFVA==")
    );
}

#[test]
fn get_adds_its_query_to_the_url_and_bearer_auth_is_sent() {
    let (url, rx) = listener(vec!["HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"]);
    let token = Secret::new("bearer-1");
    let outcome = poster(&format!("{url}?a=1")).get(
        &[("length", "1")],
        &[],
        Auth::Bearer(&token),
        Duration::from_secs(10),
    );
    assert_eq!(outcome, Outcome::Accepted);
    let request = next(&rx);
    assert_eq!(
        request.request_line(),
        "GET /v1/write?a=1&length=1 HTTP/1.1"
    );
    assert_eq!(request.header("authorization"), Some("Bearer bearer-1"));
}

#[test]
fn server_errors_408_and_429_are_retried_with_their_retry_after() {
    let (url, _rx) = listener(vec![
        "HTTP/1.1 500 Internal Server Error\r\ncontent-length: 4\r\n\r\noops",
        "HTTP/1.1 503 Service Unavailable\r\nretry-after: 7\r\ncontent-length: 0\r\n\r\n",
        "HTTP/1.1 429 Too Many Requests\r\nretry-after: Wed, 21 Oct 2015 07:28:00 GMT\r\ncontent-length: 0\r\n\r\n",
        "HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\n\r\n",
    ]);
    let poster = poster(&url);
    assert_eq!(
        post(&poster),
        Outcome::Retry {
            why: "HTTP 500 Internal Server Error: oops".into(),
            after: None
        }
    );
    assert_eq!(
        post(&poster),
        Outcome::Retry {
            why: "HTTP 503 Service Unavailable".into(),
            after: Some(Duration::from_secs(7))
        }
    );
    // A date in the past: no wait beyond the backoff.
    assert_eq!(
        post(&poster),
        Outcome::Retry {
            why: "HTTP 429 Too Many Requests".into(),
            after: Some(Duration::ZERO)
        }
    );
    assert!(matches!(post(&poster), Outcome::Retry { after: None, .. }));
}

#[test]
fn other_4xx_are_refused_with_the_status_and_the_text_the_reader_makes_of_the_body() {
    let (url, _rx) = listener(vec![
        "HTTP/1.1 400 Bad Request\r\ncontent-length: 11\r\n\r\n  bad\nbody ",
        "HTTP/1.1 413 Payload Too Large\r\ncontent-length: 5\r\n\r\nlarge",
    ]);
    let plain = poster(&url);
    assert_eq!(
        post(&plain),
        Outcome::Refused {
            status: 400,
            why: "HTTP 400 Bad Request: bad body".into()
        }
    );
    fn shout(body: &[u8]) -> String {
        String::from_utf8_lossy(body).to_uppercase()
    }
    let own = plain.with_error_text(shout);
    assert_eq!(
        post(&own),
        Outcome::Refused {
            status: 413,
            why: "HTTP 413 Payload Too Large: LARGE".into()
        }
    );
}

#[test]
fn a_redirect_is_refused_with_its_location_not_followed() {
    let (url, rx) = listener(vec![
        "HTTP/1.1 301 Moved Permanently\r\nlocation: https://example.com/retired\r\ncontent-length: 0\r\n\r\n",
        "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n",
    ]);
    assert_eq!(
        post(&poster(&url)),
        Outcome::Refused {
            status: 301,
            why: "HTTP 301 Moved Permanently (redirected to https://example.com/retired)".into()
        }
    );
    next(&rx);
    assert!(rx.recv_timeout(Duration::from_millis(200)).is_err());
}

#[test]
fn no_listener_and_no_answer_in_time_are_retried() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let closed = poster(&format!("http://127.0.0.1:{port}/"));
    assert!(matches!(post(&closed), Outcome::Retry { after: None, .. }));

    // Takes the request and never answers.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let _ = read_request(&mut stream);
        std::thread::sleep(Duration::from_secs(30));
    });
    let started = Instant::now();
    let outcome = poster(&url).post(vec![], &[], Auth::None, Duration::from_millis(300));
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(
        outcome,
        Outcome::Retry {
            why: "no answer within 0.3s".into(),
            after: None
        }
    );
}

#[test]
fn an_endless_error_body_is_read_no_further_than_the_cap() {
    // Answers 400 with a body announced at 1 GB, sends more than the cap of
    // it, then stalls with the connection open.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let _ = read_request(&mut stream);
        let _ = stream.write_all(
            b"HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain\r\ncontent-length: 1000000000\r\n\r\n",
        );
        let _ = stream.write_all(&vec![b'x'; MAX_ERROR_BODY as usize + 6 * 1024]);
        let _ = stream.flush();
        std::thread::sleep(Duration::from_secs(30));
    });
    fn length(body: &[u8]) -> String {
        body.len().to_string()
    }
    let poster = HttpPoster::new(&url, Duration::from_secs(5))
        .unwrap()
        .with_error_text(length);
    let started = Instant::now();
    let outcome = poster.post(vec![], &[], Auth::None, Duration::from_secs(5));
    let took = started.elapsed();
    assert!(took < Duration::from_secs(3), "took {took:?}");
    assert_eq!(
        outcome,
        Outcome::Refused {
            status: 400,
            why: format!("HTTP 400 Bad Request: {MAX_ERROR_BODY}")
        }
    );
}

#[test]
fn bad_urls_are_refused_without_echoing_them() {
    let new = |url| HttpPoster::new(url, Duration::from_secs(1)).unwrap_err();
    let e = new("https://me:hunter2@example.com/v1/metrics");
    assert_eq!(e, PosterError::Credentials);
    assert!(!e.to_string().contains("hunter2"));
    assert_eq!(
        new("https://hunter2@example.com/"),
        PosterError::Credentials
    );
    let e = new("ftp://x/");
    assert_eq!(e, PosterError::Scheme);
    assert!(e.to_string().contains("https://"), "{e}");
    let e = new("hunter2 is no URL").to_string();
    assert!(
        e.starts_with("not a URL (") && !e.contains("hunter2"),
        "{e}"
    );
}

#[test]
fn the_url_is_shown_without_its_query_but_requests_carry_it() {
    let (url, rx) = listener(vec!["HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"]);
    let poster = poster(&format!("{url}?api_key=QS-SECRET-9&x=1#FRAG"));
    assert_eq!(poster.url(), url);
    assert_eq!(poster.timeout(), Duration::from_secs(10));
    let shown = format!("{poster:?}");
    assert!(
        !shown.contains("QS-SECRET-9") && !shown.contains("FRAG"),
        "{shown}"
    );
    assert_eq!(post(&poster), Outcome::Accepted);
    assert_eq!(
        next(&rx).request_line(),
        "POST /v1/write?api_key=QS-SECRET-9&x=1 HTTP/1.1"
    );
}
