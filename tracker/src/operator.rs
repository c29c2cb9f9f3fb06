//! The machine operator's way into a running tracker, and the `node`, `movie`, `user add`
//! and `admin bootstrap` commands.
//!
//! On start the tracker writes `<data_dir>/operator.json` (mode 0600): the loopback URL of
//! its API and a random token. The `reelnet-tracker node …` and `movie …` commands read it and call the
//! admin routes with the token in `Reelnet-Operator-Token` (the same routes an admin's
//! session uses), so they work while the tracker runs even though sled locks its database.
//! When no tracker answers there, they open the store themselves and run the same
//! [`Membership`] code offline. Either way the change is durable when the command returns.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use reelnet_proto::membership::RoleName;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::accounts::UserView;
use crate::config::TrackerConfig;
use crate::error::ApiError;
use crate::keysource::KeySource;
use crate::network::bindings::{BindRequest, MovieView, MoviesView};
use crate::network::{
    InviteCreated, InviteRequest, Membership, NodeView, NodesView, Operator, RolesRequest,
};
use crate::users::{with_store, AddUserRequest, BootstrapLink, BootstrapRequest, OfflineError};

/// The operator file's name in the data directory.
pub const OPERATOR_FILE: &str = "operator.json";
/// The header carrying the operator token.
pub const OPERATOR_HEADER: &str = "reelnet-operator-token";

/// What `operator.json` holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OperatorFile {
    pub url: String,
    pub token: String,
}

/// Writes a fresh operator file for a tracker listening on `addr`; returns the token.
pub fn write(data_dir: &Path, addr: SocketAddr) -> std::io::Result<String> {
    let mut addr = addr;
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let file = OperatorFile {
        url: format!("http://{addr}"),
        token: hex::encode(rand::random::<[u8; 32]>()),
    };
    let json = serde_json::to_vec_pretty(&file).map_err(std::io::Error::other)?;
    reelnet_runtime::fs::write_private(&data_dir.join(OPERATOR_FILE), &json)?;
    Ok(file.token)
}

/// Why an operator command failed.
#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    #[error("the tracker refused: {0}")]
    Refused(String),
    #[error("cannot reach the running tracker at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error(transparent)]
    Offline(#[from] OfflineError),
    #[error("{}", .0.message)]
    Api(ApiError),
    #[error("cannot load the network keys: {0}")]
    Keys(#[from] crate::keys::KeyError),
    #[error("cannot read {path}: {reason}")]
    File { path: PathBuf, reason: String },
}

impl From<ApiError> for OperatorError {
    fn from(e: ApiError) -> Self {
        OperatorError::Api(e)
    }
}

/// One `reelnet-tracker node …` or `movie …` command.
#[derive(Debug, Clone)]
pub enum NodeCommand {
    Invite(InviteRequest),
    List,
    Revoke(String),
    SetRole(String, Vec<RoleName>),
    /// `movie list`
    Movies,
    /// `movie bind MOVIE_ID --manifest MANIFEST_ID`
    Bind(String, BindRequest),
    /// `user add`
    AddUser(AddUserRequest),
    /// `admin bootstrap`
    Bootstrap(BootstrapRequest),
}

/// What a command answers.
#[derive(Debug, Clone)]
pub enum NodeOutput {
    Invite(InviteCreated),
    List(NodesView),
    Node(NodeView),
    Movies(MoviesView),
    Movie(MovieView),
    User(UserView),
    Bootstrap(BootstrapLink),
}

fn read_file(data_dir: &Path) -> Result<Option<OperatorFile>, OperatorError> {
    let path = data_dir.join(OPERATOR_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| OperatorError::File {
                path,
                reason: e.to_string(),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(OperatorError::File {
            path,
            reason: e.to_string(),
        }),
    }
}

/// Runs `cmd` through the running tracker, or offline when none answers.
pub async fn run(config: &TrackerConfig, cmd: NodeCommand) -> Result<NodeOutput, OperatorError> {
    if let Some(file) = read_file(&config.data_dir)? {
        match online(&file, &cmd).await {
            Err(OperatorError::Unreachable { url, reason }) => {
                tracing::debug!(%url, %reason, "no tracker answers; running the command offline");
            }
            other => return other,
        }
    }
    offline(config, cmd).await
}

async fn call<T: DeserializeOwned>(
    file: &OperatorFile,
    req: reqwest::RequestBuilder,
) -> Result<T, OperatorError> {
    let res = req
        .header(OPERATOR_HEADER, &file.token)
        .send()
        .await
        .map_err(|e| OperatorError::Unreachable {
            url: file.url.clone(),
            reason: e.to_string(),
        })?;
    let status = res.status();
    let bytes = res.bytes().await.map_err(|e| OperatorError::Unreachable {
        url: file.url.clone(),
        reason: e.to_string(),
    })?;
    if !status.is_success() {
        let msg = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| v["message"].as_str().map(str::to_owned))
            .unwrap_or_else(|| status.to_string());
        return Err(OperatorError::Refused(msg));
    }
    serde_json::from_slice(&bytes).map_err(|e| OperatorError::Refused(e.to_string()))
}

async fn online(file: &OperatorFile, cmd: &NodeCommand) -> Result<NodeOutput, OperatorError> {
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .map_err(|e| OperatorError::Unreachable {
            url: file.url.clone(),
            reason: e.to_string(),
        })?;
    let admin = format!("{}/api/v1/admin", file.url.trim_end_matches('/'));
    let base = format!("{admin}/nodes");
    Ok(match cmd {
        NodeCommand::Movies => {
            NodeOutput::Movies(call(file, http.get(format!("{admin}/movies"))).await?)
        }
        NodeCommand::Bind(movie, req) => {
            // The movie id goes into the path: refuse what is not one before it gets there.
            reelnet_proto::MovieId::new(movie.as_str())
                .map_err(|e| ApiError::bad_request("invalid_movie_id", e.to_string()))?;
            NodeOutput::Movie(
                call(
                    file,
                    http.post(format!("{admin}/movies/{movie}/bind")).json(req),
                )
                .await?,
            )
        }
        NodeCommand::Invite(req) => {
            NodeOutput::Invite(call(file, http.post(format!("{base}/invites")).json(req)).await?)
        }
        NodeCommand::AddUser(req) => {
            NodeOutput::User(call(file, http.post(format!("{admin}/users")).json(req)).await?)
        }
        NodeCommand::Bootstrap(req) => NodeOutput::Bootstrap(
            call(file, http.post(format!("{admin}/bootstrap")).json(req)).await?,
        ),
        NodeCommand::List => NodeOutput::List(call(file, http.get(&base)).await?),
        NodeCommand::Revoke(id) => NodeOutput::Node(
            call(
                file,
                http.post(format!("{base}/{id}/revoke"))
                    .json(&serde_json::json!({})),
            )
            .await?,
        ),
        NodeCommand::SetRole(id, roles) => NodeOutput::Node(
            call(
                file,
                http.put(format!("{base}/{id}/roles")).json(&RolesRequest {
                    roles: roles.clone(),
                }),
            )
            .await?,
        ),
    })
}

async fn offline(config: &TrackerConfig, cmd: NodeCommand) -> Result<NodeOutput, OperatorError> {
    let network = config.network.clone();
    let public_url = config.public_origin();
    let (data_dir, storage, config) = (
        config.data_dir.clone(),
        config.storage.clone(),
        config.clone(),
    );
    let out = with_store(&data_dir, &storage, move |store| async move {
        // The network keys where the engine keeps them (files, or the shared database).
        let ring = KeySource::for_config(&config, &store)
            .network(&config.network.id, crate::clock::now_secs())
            .await;
        let ring = match ring {
            Ok(ring) => ring,
            Err(e) => return Ok(Err(OperatorError::Keys(e))),
        };
        let (_keys_tx, keys) = watch::channel(Arc::new(ring));
        let accounts = store.clone();
        let m = Membership::new(store, keys, network).with_public_url(&public_url);
        let by = Operator::Local;
        let out = match cmd {
            NodeCommand::Invite(req) => m.create_invite(&by, req).await.map(NodeOutput::Invite),
            NodeCommand::List => m.list().map(NodeOutput::List),
            NodeCommand::Revoke(id) => m.revoke(&by, &id).await.map(NodeOutput::Node),
            NodeCommand::SetRole(id, roles) => {
                m.set_roles(&by, &id, &roles).await.map(NodeOutput::Node)
            }
            NodeCommand::Movies => m.movies().map(NodeOutput::Movies),
            NodeCommand::Bind(movie, req) => m.bind(&by, &movie, req).await.map(NodeOutput::Movie),
            NodeCommand::AddUser(req) => crate::users::create(&accounts, req)
                .await
                .map(NodeOutput::User),
            NodeCommand::Bootstrap(req) => crate::users::bootstrap(&accounts, &public_url, req)
                .await
                .map(NodeOutput::Bootstrap),
        }
        .map_err(OperatorError::from);
        drop(m);
        drop(accounts);
        Ok(out)
    })
    .await?;
    out
}
