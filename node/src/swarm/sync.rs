//! Full catalog sync over libp2p request-response (`/reelnet/catalog-sync/1`).
//!
//! A node that connects to a peer asks it for its whole catalog instead of waiting for the
//! next round of gossip, one page at a time. The frames, their limits and every decode rule
//! live in `reelnet_proto::sync` (the length prefix is checked before the body is read, the
//! decoder is bounded, trailing and non-canonical bytes are refused); this module is only the
//! libp2p glue that moves those frames over a stream.

use std::io;

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::StreamProtocol;
use reelnet_proto::codec::FRAME_PREFIX_LEN;
use reelnet_proto::sync::{SyncFrame, SYNC_PROTOCOL_NAME};

pub use reelnet_proto::sync::{
    SyncRequest, SyncResponse, MAX_SYNC_REQUEST_BYTES, MAX_SYNC_RESPONSE_BYTES, SYNC_PAGE_BYTES,
};

/// The protocol name.
pub const SYNC_PROTOCOL: StreamProtocol = StreamProtocol::new(SYNC_PROTOCOL_NAME);

/// The request-response codec for [`SYNC_PROTOCOL`].
#[derive(Debug, Clone, Default)]
pub struct SyncCodec;

fn invalid_data(e: reelnet_proto::DecodeError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

async fn read_frame<T: SyncFrame>(io: &mut (impl AsyncRead + Unpin + Send)) -> io::Result<T> {
    let mut prefix = [0u8; FRAME_PREFIX_LEN];
    io.read_exact(&mut prefix).await?;
    // Refused here, before reading (or allocating for) the body, when over the limit.
    let len = T::body_len(prefix).map_err(invalid_data)?;
    let mut body = Vec::new();
    io.take(len as u64).read_to_end(&mut body).await?;
    if body.len() != len {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    T::decode_body(&body).map_err(invalid_data)
}

async fn write_frame<T: SyncFrame>(
    io: &mut (impl AsyncWrite + Unpin + Send),
    value: &T,
) -> io::Result<()> {
    let frame = value
        .encode_frame()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    io.write_all(&frame).await?;
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
        read_frame(io).await
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<SyncResponse>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_frame(io).await
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
        write_frame(io, &req).await
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
        write_frame(io, &res).await
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
