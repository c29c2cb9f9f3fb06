//! The loopback HTTP server FFmpeg reads the torrent's file from: a random path token
//! (compared in constant time), `Range` requests ([`parse_range`]), and bodies streamed from a
//! fresh librqbit `FileStream` per request through a small channel, with at most
//! `MAX_CONCURRENT_STREAMS` streams open at once.

use super::*;

/// 128 random bits as 32 hex digits.
pub(super) fn random_token() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

/// Which bytes a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteRange {
    /// No (usable) Range header: the whole file, 200.
    Full,
    /// `start..=end`, 206.
    Partial { start: u64, end: u64 },
    /// Nothing of the file is in the range, 416.
    Unsatisfiable,
}

/// Interprets a `Range` header for a file of `len` bytes (RFC 9110 §14). Headers that are not
/// a single `bytes` range are ignored (the whole file is sent), as the RFC allows.
pub fn parse_range(header: Option<&str>, len: u64) -> ByteRange {
    let Some(value) = header else {
        return ByteRange::Full;
    };
    let value = value.trim();
    let Some((unit, spec)) = value.split_once('=') else {
        return ByteRange::Full;
    };
    if !unit.trim().eq_ignore_ascii_case("bytes") || spec.contains(',') {
        return ByteRange::Full;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return ByteRange::Full;
    };
    let (first, last) = (first.trim(), last.trim());
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    match (first.is_empty(), last.is_empty()) {
        // bytes=-N: the last N bytes.
        (true, false) => {
            if !digits(last) {
                return ByteRange::Full;
            }
            // Saturates on absurdly long numbers: "all of it".
            let n = last.parse::<u64>().unwrap_or(u64::MAX);
            if n == 0 || len == 0 {
                return ByteRange::Unsatisfiable;
            }
            ByteRange::Partial {
                start: len.saturating_sub(n),
                end: len - 1,
            }
        }
        // bytes=N- or bytes=N-M.
        (false, _) => {
            if !digits(first) || !(last.is_empty() || digits(last)) {
                return ByteRange::Full;
            }
            let start = first.parse::<u64>().unwrap_or(u64::MAX);
            let end = if last.is_empty() {
                u64::MAX
            } else {
                last.parse::<u64>().unwrap_or(u64::MAX)
            };
            if end < start {
                return ByteRange::Full;
            }
            if start >= len {
                return ByteRange::Unsatisfiable;
            }
            ByteRange::Partial {
                start,
                end: end.min(len - 1),
            }
        }
        (true, true) => ByteRange::Full,
    }
}

pub(super) struct ServerState {
    pub(super) path: String,
    pub(super) handle: Arc<ManagedTorrent>,
    pub(super) file_id: usize,
    pub(super) file_len: u64,
    pub(super) content_type: HeaderValue,
    pub(super) cancel: CancellationToken,
    pub(super) readers: TaskTracker,
    pub(super) slots: Arc<Semaphore>,
}

pub(super) type HttpResponse = warp::reply::Response;

pub(super) fn empty(status: StatusCode) -> HttpResponse {
    let mut resp = HttpResponse::default();
    *resp.status_mut() = status;
    resp
}

pub(super) async fn serve(
    state: Arc<ServerState>,
    method: Method,
    path: &str,
    headers: &HeaderMap,
) -> HttpResponse {
    if !reelnet_proto::sign::ct_eq(path.as_bytes(), state.path.as_bytes()) {
        return empty(StatusCode::NOT_FOUND);
    }
    let head = method == Method::HEAD;
    if method != Method::GET && !head {
        let mut resp = empty(StatusCode::METHOD_NOT_ALLOWED);
        resp.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return resp;
    }
    let len = state.file_len;
    let range_header = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    let (status, start, count) = match parse_range(range_header, len) {
        ByteRange::Full => (StatusCode::OK, 0, len),
        ByteRange::Partial { start, end } => (StatusCode::PARTIAL_CONTENT, start, end - start + 1),
        ByteRange::Unsatisfiable => {
            let mut resp = empty(StatusCode::RANGE_NOT_SATISFIABLE);
            insert_header(&mut resp, header::CONTENT_RANGE, format!("bytes */{len}"));
            resp.headers_mut()
                .insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
            return resp;
        }
    };
    tracing::debug!(?range_header, start, count, "torrent HTTP request");

    let mut resp = if head || count == 0 {
        HttpResponse::default()
    } else {
        match open_body(&state, start, count).await {
            Ok(body) => warp::reply::stream(body).into_response(),
            Err(status) => return empty(status),
        }
    };
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::CONTENT_TYPE, state.content_type.clone());
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    insert_header(&mut resp, header::CONTENT_LENGTH, count.to_string());
    if status == StatusCode::PARTIAL_CONTENT {
        insert_header(
            &mut resp,
            header::CONTENT_RANGE,
            format!("bytes {start}-{}/{len}", start + count - 1),
        );
    }
    resp
}

pub(super) fn insert_header(resp: &mut HttpResponse, name: header::HeaderName, value: String) {
    if let Ok(v) = HeaderValue::from_str(&value) {
        resp.headers_mut().insert(name, v);
    }
}

/// Opens a librqbit stream at `start` and spawns the task that pumps `count` bytes of it into
/// the returned body.
pub(super) async fn open_body(
    state: &Arc<ServerState>,
    start: u64,
    count: u64,
) -> Result<ChannelStream, StatusCode> {
    let permit = tokio::select! {
        p = state.slots.clone().acquire_owned() => p.map_err(|_| StatusCode::SERVICE_UNAVAILABLE)?,
        _ = state.cancel.cancelled() => return Err(StatusCode::SERVICE_UNAVAILABLE),
    };
    let mut stream = tokio::select! {
        s = state.handle.clone().stream(state.file_id) => s.map_err(|e| {
            tracing::warn!("cannot open torrent stream: {e:#}");
            StatusCode::INTERNAL_SERVER_ERROR
        })?,
        _ = state.cancel.cancelled() => return Err(StatusCode::SERVICE_UNAVAILABLE),
    };
    stream.seek(SeekFrom::Start(start)).await.map_err(|e| {
        tracing::warn!(start, "cannot seek torrent stream: {e}");
        StatusCode::INTERNAL_SERVER_ERROR
    })?;

    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(BODY_CHANNEL_CHUNKS);
    let cancel = state.cancel.clone();
    state.readers.spawn(async move {
        let _permit = permit;
        let mut remaining = count;
        let mut buf = vec![0u8; CHUNK_BYTES];
        while remaining > 0 {
            let want = usize::try_from(remaining).map_or(CHUNK_BYTES, |r| r.min(CHUNK_BYTES));
            let read = tokio::select! {
                biased;
                _ = cancel.cancelled() => Err(std::io::Error::other("torrent input shutting down")),
                _ = tx.closed() => return,
                r = stream.read(&mut buf[..want]) => r,
            };
            let chunk = match read {
                Ok(0) => Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "torrent stream ended early",
                )),
                Ok(n) => {
                    remaining -= n as u64;
                    Ok(Bytes::copy_from_slice(&buf[..n]))
                }
                Err(e) => Err(e),
            };
            let failed = chunk.is_err();
            if let Err(e) = &chunk {
                tracing::debug!("torrent stream read failed: {e}");
            }
            let sent = tokio::select! {
                biased;
                _ = cancel.cancelled() => false,
                r = tx.send(chunk) => r.is_ok(),
            };
            if !sent || failed {
                return;
            }
        }
    });
    Ok(ChannelStream { rx })
}

/// The receiving end of a body channel as a `Stream`.
pub(super) struct ChannelStream {
    pub(super) rx: mpsc::Receiver<Result<Bytes, std::io::Error>>,
}

impl futures::Stream for ChannelStream {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx)
    }
}
