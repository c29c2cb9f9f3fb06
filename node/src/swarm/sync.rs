//! Full catalog sync over libp2p request-response (`/reelnet/catalog-sync/1`).
//!
//! A node that connects to a peer asks it for its whole catalog instead of waiting for the
//! next round of gossip. The answer comes in pages ([`SyncResponse::next`] names where the
//! next one starts) so no single message grows with the size of the network: a page holds
//! about [`SYNC_PAGE_BYTES`] of encoded records and manifests.
//!
//! Frames are a 4-byte big-endian length and a bincode body encoded and decoded through
//! `reelnet_proto::codec`, so the usual rules hold: the length is checked against the limit
//! before anything is read, the decoder is bounded, trailing and non-canonical bytes are
//! refused. Every item inside is decoded again with its own limit and verified by the
//! catalog before use.

use std::io;

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::StreamProtocol;
use reelnet_proto::codec;
use serde::{Deserialize, Serialize};

use crate::catalog::SyncCursor;

/// The protocol name.
pub const SYNC_PROTOCOL: StreamProtocol = StreamProtocol::new("/reelnet/catalog-sync/1");

/// Target size of one page (the encoded items; a page holds at least one item, and one
/// manifest may be up to `MAX_SIGNED_MANIFEST_BYTES`).
pub const SYNC_PAGE_BYTES: usize = 16 << 20;

/// Largest request body.
pub const MAX_SYNC_REQUEST_BYTES: usize = 256;

/// Largest response body: a full page plus framing (a varint per item).
pub const MAX_SYNC_RESPONSE_BYTES: usize = SYNC_PAGE_BYTES + (4 << 20);

/// "Send me your catalog, starting at `after`" (`None`: from the beginning).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncRequest {
    pub after: Option<SyncCursor>,
}

/// One page of a peer's catalog.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncResponse {
    /// Encoded `SignedCatalogRecord`s.
    pub records: Vec<Vec<u8>>,
    /// Encoded `SignedManifest`s.
    pub manifests: Vec<Vec<u8>>,
    /// Ask again with this cursor for the next page; `None` on the last page.
    pub next: Option<SyncCursor>,
}

/// The request-response codec for [`SYNC_PROTOCOL`].
#[derive(Debug, Clone, Default)]
pub struct SyncCodec;

async fn read_frame<T, const N: usize>(io: &mut (impl AsyncRead + Unpin + Send)) -> io::Result<T>
where
    T: Serialize + serde::de::DeserializeOwned,
{
    let mut len = [0u8; 4];
    io.read_exact(&mut len).await?;
    let len = u32::from_be_bytes(len) as usize;
    if len > N {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("catalog sync frame of {len} bytes exceeds the limit of {N}"),
        ));
    }
    let mut body = Vec::new();
    io.take(len as u64).read_to_end(&mut body).await?;
    if body.len() != len {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    codec::decode::<T, N>(&body).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

async fn write_frame<T: Serialize, const N: usize>(
    io: &mut (impl AsyncWrite + Unpin + Send),
    value: &T,
) -> io::Result<()> {
    let body =
        codec::encode::<T, N>(value).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let len = u32::try_from(body.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "frame too large"))?;
    io.write_all(&len.to_be_bytes()).await?;
    io.write_all(&body).await?;
    io.close().await
}

impl libp2p::request_response::Codec for SyncCodec {
    type Protocol = StreamProtocol;
    type Request = SyncRequest;
    type Response = SyncResponse;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<SyncRequest>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_frame::<_, MAX_SYNC_REQUEST_BYTES>(io).await
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<SyncResponse>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_frame::<_, MAX_SYNC_RESPONSE_BYTES>(io).await
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        req: SyncRequest,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame::<_, MAX_SYNC_REQUEST_BYTES>(io, &req).await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        res: SyncResponse,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame::<_, MAX_SYNC_RESPONSE_BYTES>(io, &res).await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use libp2p::request_response::Codec;

    #[tokio::test]
    async fn roundtrip_and_limits() {
        let res = SyncResponse {
            records: vec![vec![1, 2, 3]],
            manifests: vec![vec![4; 300]],
            next: None,
        };
        let mut buf = futures::io::Cursor::new(Vec::new());
        SyncCodec
            .write_response(&SYNC_PROTOCOL, &mut buf, res.clone())
            .await
            .unwrap();
        let bytes = buf.into_inner();
        let mut rd = futures::io::Cursor::new(bytes.clone());
        let back = SyncCodec
            .read_response(&SYNC_PROTOCOL, &mut rd)
            .await
            .unwrap();
        assert_eq!(back, res);

        // A length prefix over the limit is refused before reading the body.
        let mut huge = (u32::MAX).to_be_bytes().to_vec();
        huge.extend_from_slice(&[0; 16]);
        let mut rd = futures::io::Cursor::new(huge);
        assert!(SyncCodec
            .read_request(&SYNC_PROTOCOL, &mut rd)
            .await
            .is_err());

        // Truncated bodies fail.
        let mut rd = futures::io::Cursor::new(bytes[..bytes.len() - 1].to_vec());
        assert!(SyncCodec
            .read_response(&SYNC_PROTOCOL, &mut rd)
            .await
            .is_err());
    }
}
