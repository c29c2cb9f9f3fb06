//! Resolving and starting a torrent: `.torrent` files (size-limited), magnet links (and the
//! `x.pe` peers librqbit ignores), the librqbit session (no DHT, trackers, LSD or UPnP unless
//! asked), picking the file to ingest ([`pick_file`]) and downloading only it.

use super::*;

/// Reads a `.torrent` file, refusing oversized ones.
pub(super) fn read_torrent_file(path: &Path) -> Result<Bytes, TorrentError> {
    use std::io::Read;
    let file = std::fs::File::open(path)
        .map_err(|e| TorrentError::io(format!("cannot open {}", path.display()), e))?;
    let mut buf = Vec::new();
    file.take(MAX_TORRENT_FILE_BYTES + 1)
        .read_to_end(&mut buf)
        .map_err(|e| TorrentError::io(format!("cannot read {}", path.display()), e))?;
    if buf.len() as u64 > MAX_TORRENT_FILE_BYTES {
        return Err(TorrentError::BadTorrent(format!(
            "{} is larger than {MAX_TORRENT_FILE_BYTES} bytes",
            path.display()
        )));
    }
    if buf.is_empty() {
        return Err(TorrentError::BadTorrent(format!(
            "{} is empty",
            path.display()
        )));
    }
    Ok(buf.into())
}

/// Peer addresses given in a magnet link's `x.pe` parameters (BEP 9); librqbit ignores them.
/// Values that are not `ip:port` (host names) are skipped.
pub fn magnet_peers(link: &str) -> Vec<SocketAddr> {
    magnet_peer_params(link)
        .iter()
        .filter_map(|v| v.parse::<SocketAddr>().ok())
        .collect()
}

/// Every `x.pe` value of a magnet link, percent-decoded (undecodable ones as they are).
pub fn magnet_peer_params(link: &str) -> Vec<String> {
    let Some((_, query)) = link.split_once('?') else {
        return Vec::new();
    };
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .filter(|(k, _)| *k == "x.pe")
        .map(|(_, v)| percent_decode(v).unwrap_or_else(|| v.to_owned()))
        .collect()
}

/// For a user's torrent: every tracker URL and `x.pe` peer must be on a public address
/// (see `netguard`); checked before any session exists, so a refused source has
/// connected nowhere. Tracker URLs librqbit would not use (unparsable, a scheme other than
/// http, https or udp, no host or port) are skipped: nothing contacts them. `x.pe` values
/// must be `ip:port`: host names are not resolved for a user's peers.
pub(super) async fn check_sources(
    trackers: &[String],
    peer_params: &[String],
) -> Result<(), TorrentError> {
    use crate::netguard::{check_addr, check_host, SourceRefused};
    for raw in peer_params {
        let addr = raw
            .parse::<SocketAddr>()
            .map_err(|_| SourceRefused::Unusable {
                what: format!("x.pe peer {:?}", raw.chars().take(80).collect::<String>()),
                problem: "a movie request's peers must be ip:port (host names are not resolved)"
                    .to_owned(),
            })?;
        check_addr(&format!("x.pe peer {addr}"), addr.ip())?;
    }
    for raw in trackers {
        let Ok(url) = reqwest::Url::parse(raw) else {
            continue;
        };
        if !matches!(url.scheme(), "http" | "https" | "udp") {
            continue;
        }
        let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default()) else {
            continue;
        };
        let what = format!("tracker {}://{host}:{port}", url.scheme());
        if !check_host(&what, host, port).await? {
            // Not resolvable now: nothing is reached through it now either. If it resolves
            // later, librqbit resolves it itself (see the module docs: DNS rebinding).
            tracing::warn!(tracker = %what, "a requested torrent's tracker does not resolve");
        }
    }
    Ok(())
}

pub(super) fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = s.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

pub(super) fn dedup(peers: &mut Vec<SocketAddr>) {
    let mut seen = std::collections::HashSet::new();
    peers.retain(|p| seen.insert(*p));
}

/// Writes the peer blocklist of a user's torrent (every non-public range except the
/// operator's peers) into `dir` and returns its path and `file://` URL for librqbit, which
/// reads it when the session starts.
async fn write_blocklist(
    dir: &Path,
    operator_peers: &[SocketAddr],
) -> Result<(PathBuf, String), TorrentError> {
    let dir = tokio::fs::canonicalize(dir)
        .await
        .map_err(|e| TorrentError::io(format!("cannot resolve {}", dir.display()), e))?;
    let path = dir.join(format!(".peer-blocklist-{}.txt", random_token()));
    let except: Vec<IpAddr> = operator_peers.iter().map(SocketAddr::ip).collect();
    tokio::fs::write(&path, crate::netguard::blocklist(&except))
        .await
        .map_err(|e| TorrentError::io(format!("cannot write {}", path.display()), e))?;
    let url = reqwest::Url::from_file_path(&path)
        .map_err(|()| TorrentError::Session(format!("{} is not an absolute path", path.display())))?
        .to_string();
    Ok((path, url))
}

pub(super) async fn new_session(opts: &TorrentOptions) -> Result<Arc<Session>, TorrentError> {
    let blocklist = if opts.refuse_private_sources {
        Some(write_blocklist(&opts.download_dir, &opts.peers).await?)
    } else {
        None
    };
    let session = new_session_with(opts, blocklist.as_ref().map(|(_, url)| url.clone())).await;
    if let Some((path, _)) = blocklist {
        // Loaded when the session started (or it failed): the file is not needed again.
        if let Err(e) = tokio::fs::remove_file(&path).await {
            tracing::debug!(path = %path.display(), %e, "cannot remove the peer blocklist");
        }
    }
    session
}

async fn new_session_with(
    opts: &TorrentOptions,
    blocklist_url: Option<String>,
) -> Result<Arc<Session>, TorrentError> {
    let public = opts.use_dht_and_trackers;
    let listen = opts.listen_port.map(|port| ListenerOptions {
        listen_addr: SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port),
        enable_upnp_port_forwarding: false,
        ..ListenerOptions::default()
    });
    let session_opts = SessionOptions {
        dht: public.then(|| librqbit::DhtSessionConfig {
            // Keep DHT state out of the user's config dir.
            persistence: None,
            ..librqbit::DhtSessionConfig::default()
        }),
        disable_trackers: !public,
        disable_local_service_discovery: !public,
        listen,
        // Persistence would re-add torrents on start without our initial peers; resume relies
        // on the initial check of the files already in `download_dir` instead.
        persistence: None,
        fastresume: false,
        runtime_worker_threads: Some(RQBIT_BLOCKING_PERMITS + MAX_CONCURRENT_STREAMS),
        ratelimits: librqbit::limits::LimitsConfig {
            upload_bps: None,
            // The limiter admits one 16 KiB block at a time; a smaller quota would never pass.
            download_bps: opts.download_limit_bps.map(|b| b.max(MIN_RATE_LIMIT_BPS)),
        },
        // Non-public peers (from a public tracker or the DHT) are never dialled for a
        // user's torrent; librqbit checks every peer it is about to connect to, and every
        // incoming one, against this list.
        blocklist_url,
        ..SessionOptions::default()
    };
    Session::new_with_opts(opts.download_dir.clone(), session_opts)
        .await
        .map_err(|e| TorrentError::Session(format!("{e:#}")))
}

pub(super) async fn open_in_session(
    session: &Arc<Session>,
    add: AddTorrent<'static>,
    spec: &TorrentSpec,
    opts: &TorrentOptions,
    peers: Vec<SocketAddr>,
) -> Result<TorrentInput, TorrentError> {
    let is_magnet = matches!(spec, TorrentSpec::Magnet(_));
    let initial_peers = (!peers.is_empty()).then(|| peers.clone());

    // 1. Metadata only: parses a .torrent locally, or fetches a magnet's info from peers.
    let list_opts = AddTorrentOptions {
        list_only: true,
        disable_trackers: !opts.use_dht_and_trackers,
        initial_peers: initial_peers.clone(),
        ..AddTorrentOptions::default()
    };
    let listed = if is_magnet {
        match tokio::time::timeout(
            opts.metadata_timeout,
            session.add_torrent(add, Some(list_opts)),
        )
        .await
        {
            Err(_) => return Err(TorrentError::MetadataTimeout(opts.metadata_timeout)),
            Ok(Err(e)) => return Err(classify_magnet_error(e)),
            Ok(Ok(r)) => r,
        }
    } else {
        session
            .add_torrent(add, Some(list_opts))
            .await
            .map_err(|e| TorrentError::BadTorrent(format!("{e:#}")))?
    };
    let ListOnlyResponse {
        info,
        torrent_bytes,
        seen_peers,
        output_folder,
        ..
    } = match listed {
        AddTorrentResponse::ListOnly(l) => l,
        _ => {
            return Err(TorrentError::Session(
                "librqbit did not list the torrent".into(),
            ))
        }
    };

    // 2. Pick the file.
    let files: Vec<FileEntry> = info
        .iter_file_details()
        .map(|d| FileEntry {
            name: d.filename.to_vec().join("/"),
            len: d.len,
            padding: d.attrs().padding,
        })
        .collect();
    let file_id = pick_file(&files).ok_or(TorrentError::NoFiles)?;
    let (file_name, file_len) = (files[file_id].name.clone(), files[file_id].len);
    let sidecars = pick_sidecars(&files, file_id);
    // Nothing of the file is downloaded yet: refuse it here when it is too big.
    if let Some(max) = opts.max_file_bytes {
        if file_len > max {
            return Err(TorrentError::TooLarge { len: file_len, max });
        }
    }
    let admitted = match &opts.admit {
        Some(admit) => Some(
            (admit.0)(file_len).map_err(|reason| TorrentError::NotAdmitted {
                len: file_len,
                reason,
            })?,
        ),
        None => None,
    };
    tracing::info!(
        file = %file_name,
        len = file_len,
        files = files.len(),
        folder = %output_folder.display(),
        "torrent file selected"
    );

    // 3. Download only that file; existing data in the output folder is checked and kept.
    let mut all_peers = peers;
    all_peers.extend(seen_peers);
    dedup(&mut all_peers);
    let add_opts = AddTorrentOptions {
        only_files: Some(
            std::iter::once(file_id)
                .chain(sidecars.iter().map(|(id, _, _)| *id))
                .collect(),
        ),
        overwrite: true,
        disable_trackers: !opts.use_dht_and_trackers,
        initial_peers: (!all_peers.is_empty()).then_some(all_peers),
        ..AddTorrentOptions::default()
    };
    let handle = session
        .add_torrent(AddTorrent::from_bytes(torrent_bytes), Some(add_opts))
        .await
        .map_err(|e| TorrentError::Session(format!("{e:#}")))?
        .into_handle()
        .ok_or_else(|| TorrentError::Session("librqbit returned no torrent handle".into()))?;
    handle
        .wait_until_initialized()
        .await
        .map_err(|e| TorrentError::Session(format!("checking existing data: {e:#}")))?;

    // 4. Serve it.
    let cancel = CancellationToken::new();
    let readers = TaskTracker::new();
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .map_err(|e| TorrentError::io("cannot bind the torrent HTTP server", e))?;
    let http_addr = listener
        .local_addr()
        .map_err(|e| TorrentError::io("torrent HTTP server address", e))?;
    let token = random_token();
    let url = format!("http://{http_addr}/{token}");
    let server_state = Arc::new(ServerState {
        path: format!("/{token}"),
        handle: handle.clone(),
        file_id,
        file_len,
        content_type: content_type(&file_name),
        cancel: cancel.clone(),
        readers: readers.clone(),
        slots: Arc::new(Semaphore::new(MAX_CONCURRENT_STREAMS)),
    });
    let routes = warp::any()
        .and(warp::method())
        .and(warp::path::full())
        .and(warp::header::headers_cloned())
        .then(
            move |method: Method, path: warp::path::FullPath, headers: HeaderMap| {
                let state = server_state.clone();
                async move { serve(state, method, path.as_str(), &headers).await }
            },
        );
    // Owned by the `TorrentInput`: its stop waits for the server (bounded) or aborts it.
    let server = tokio::spawn(reelnet_runtime::serve::serve_until(
        listener,
        routes,
        cancel.clone(),
    ));
    tracing::debug!(%http_addr, file = %file_name, "torrent HTTP server started");

    Ok(TorrentInput {
        session: session.clone(),
        handle,
        file_id,
        file_name,
        file_len,
        url,
        http_addr,
        cancel,
        server: Some(server),
        readers,
        sidecars,
        _admitted: admitted,
    })
}

pub(super) fn classify_magnet_error(e: anyhow::Error) -> TorrentError {
    let msg = format!("{e:#}");
    if msg.contains("not a valid magnet") || msg.contains("infohash") {
        TorrentError::BadTorrent(msg)
    } else {
        TorrentError::Metadata(msg)
    }
}

/// One file of a torrent, as seen when picking the file to ingest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    /// Path inside the torrent, components joined with `/`.
    pub name: String,
    pub len: u64,
    /// BEP 47 padding file (never picked).
    pub padding: bool,
}

/// Index of the largest video file (by extension), else of the largest file; `None` when no
/// file has any bytes. Ties go to the first.
pub fn pick_file(files: &[FileEntry]) -> Option<usize> {
    let largest = |video_only: bool| {
        files
            .iter()
            .enumerate()
            .filter(|(_, f)| !f.padding && f.len > 0 && (!video_only || is_video(&f.name)))
            .fold(None::<(usize, u64)>, |best, (i, f)| match best {
                Some((_, len)) if len >= f.len => best,
                _ => Some((i, f.len)),
            })
            .map(|(i, _)| i)
    };
    largest(true).or_else(|| largest(false))
}

/// The torrent's subtitle files (small `.srt`/`.vtt`/`.ass`/`.ssa`), downloaded with the
/// video `video`: (file id, path, length), at most `MAX_SIDECARS`, by path.
pub fn pick_sidecars(files: &[FileEntry], video: usize) -> Vec<(usize, String, u64)> {
    use reelnet_proto::subtitles::{SubtitleFormat, MAX_SIDECAR_BYTES};
    let mut out: Vec<(usize, String, u64)> = files
        .iter()
        .enumerate()
        .filter(|(i, f)| {
            *i != video
                && !f.padding
                && f.len > 0
                && f.len <= MAX_SIDECAR_BYTES as u64
                && Path::new(&f.name)
                    .extension()
                    .and_then(|e| e.to_str())
                    .and_then(SubtitleFormat::from_extension)
                    .is_some()
        })
        .map(|(i, f)| (i, f.name.clone(), f.len))
        .collect();
    out.sort_by(|a, b| a.1.cmp(&b.1));
    out.truncate(crate::ingest::sidecar::MAX_SIDECARS);
    out
}

pub(super) fn is_video(name: &str) -> bool {
    Path::new(name)
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| VIDEO_EXTENSIONS.iter().any(|v| v.eq_ignore_ascii_case(e)))
}

pub(super) fn content_type(name: &str) -> HeaderValue {
    let ext = Path::new(name)
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    HeaderValue::from_static(match ext.as_deref() {
        Some("mp4" | "m4v") => "video/mp4",
        Some("mkv") => "video/x-matroska",
        Some("webm") => "video/webm",
        Some("avi") => "video/x-msvideo",
        Some("mov") => "video/quicktime",
        Some("ts" | "m2ts") => "video/mp2t",
        Some("mpg" | "mpeg") => "video/mpeg",
        Some("wmv") => "video/x-ms-wmv",
        Some("flv") => "video/x-flv",
        _ => "application/octet-stream",
    })
}
