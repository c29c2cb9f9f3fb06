//! The segment service over libp2p request-response (`/reelnet/segment/2`): the fallback for
//! peers whose QUIC address cannot be reached (a home node behind a NAT, whose quinn socket
//! libp2p's hole punch does not open).
//!
//! The frames are the QUIC service's (`reelnet_proto::transfer`): the request is a
//! [`P2pSegmentRequest`] (the same [`SegmentRequest`](reelnet_proto::SegmentRequest) plus the
//! requester's membership certificate, which QUIC carries in TLS), the answer a
//! [`ResponseHeader`] frame, the segment's outboard (`outboard_len(length)` bytes, see
//! `reelnet_proto::outboard`), then exactly `length` raw bytes. The same limits hold: the
//! request frame is bounded before its body is read, a header announcing more than
//! `MAX_SEGMENT_BYTES` is refused before any outboard or body byte is read, and an outboard
//! or body that runs short or long is an error. A request-response answer arrives whole, so
//! the requester checks it group by group only once it is all there. This module only moves the frames; whoever answers checks membership
//! and limits ([`crate::transfer::SegmentService`]) and whoever asks verifies every byte
//! ([`crate::transfer::Fetcher`]).

use std::io;

use bytes::Bytes;
use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::StreamProtocol;
use reelnet_proto::codec::{frame_body_len, FRAME_PREFIX_LEN, MAX_RESPONSE_HEADER};
use reelnet_proto::outboard::outboard_len;
use reelnet_proto::transfer::{
    MAX_P2P_REQUEST_FRAME, MAX_SEGMENT_BYTES, SEGMENT_P2P_PROTOCOL_NAME,
};
use reelnet_proto::{
    decode_p2p_request, decode_response_header, encode_p2p_request, encode_response_header,
    P2pSegmentRequest, ResponseHeader,
};

/// The protocol name.
pub const SEGMENT_PROTOCOL: StreamProtocol = StreamProtocol::new(SEGMENT_P2P_PROTOCOL_NAME);

/// An answer: the header and (when `Ok`) the outboard and body it announces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentResponse {
    pub header: ResponseHeader,
    /// `outboard_len(header.length)` bytes (empty on an error answer).
    pub outboard: Bytes,
    pub body: Bytes,
}

impl SegmentResponse {
    /// An answer without a body.
    pub fn error(status: reelnet_proto::Status) -> Self {
        Self {
            header: ResponseHeader::error(status),
            outboard: Bytes::new(),
            body: Bytes::new(),
        }
    }
}

/// The request-response codec for [`SEGMENT_PROTOCOL`].
#[derive(Debug, Clone, Default)]
pub struct SegmentCodec;

fn invalid(e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e.to_string())
}

/// Reads one frame with a body of at most `N` bytes; the prefix is checked before the body
/// is read.
async fn read_frame<const N: usize>(
    io: &mut (impl AsyncRead + Unpin + Send),
) -> io::Result<Vec<u8>> {
    let mut prefix = [0u8; FRAME_PREFIX_LEN];
    io.read_exact(&mut prefix).await?;
    let len = frame_body_len::<N>(prefix).map_err(invalid)?;
    let mut frame = Vec::with_capacity(FRAME_PREFIX_LEN + len);
    frame.extend_from_slice(&prefix);
    io.take(len as u64).read_to_end(&mut frame).await?;
    if frame.len() != FRAME_PREFIX_LEN + len {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    Ok(frame)
}

impl libp2p::request_response::Codec for SegmentCodec {
    type Protocol = StreamProtocol;
    type Request = P2pSegmentRequest;
    type Response = SegmentResponse;

    async fn read_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<P2pSegmentRequest>
    where
        T: AsyncRead + Unpin + Send,
    {
        let frame = read_frame::<MAX_P2P_REQUEST_FRAME>(io).await?;
        match decode_p2p_request(&frame).map_err(invalid)? {
            Some((req, used)) if used == frame.len() => Ok(req),
            _ => Err(invalid("malformed segment request frame")),
        }
    }

    async fn read_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<SegmentResponse>
    where
        T: AsyncRead + Unpin + Send,
    {
        let frame = read_frame::<MAX_RESPONSE_HEADER>(io).await?;
        let header = match decode_response_header(&frame).map_err(invalid)? {
            Some((header, used)) if used == frame.len() => header,
            _ => return Err(invalid("malformed response header frame")),
        };
        // decode_response_header refuses lengths above MAX_SEGMENT_BYTES; checked again
        // because the read below depends on it. The body grows with what arrives.
        if header.length > MAX_SEGMENT_BYTES {
            return Err(invalid("response length above MAX_SEGMENT_BYTES"));
        }
        let ob_len = outboard_len(header.length);
        let mut outboard = vec![0u8; ob_len];
        io.read_exact(&mut outboard).await?;
        let mut body = Vec::with_capacity(header.length.min(1 << 20) as usize);
        (&mut *io)
            .take(header.length)
            .read_to_end(&mut body)
            .await?;
        if body.len() as u64 != header.length {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let mut extra = [0u8; 1];
        if io.read(&mut extra).await? != 0 {
            return Err(invalid("more bytes than the header announced"));
        }
        Ok(SegmentResponse {
            header,
            outboard: Bytes::from(outboard),
            body: Bytes::from(body),
        })
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        req: P2pSegmentRequest,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        let frame = encode_p2p_request(&req).map_err(invalid)?;
        io.write_all(&frame).await?;
        io.close().await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        res: SegmentResponse,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        let frame = encode_response_header(&res.header).map_err(invalid)?;
        if res.outboard.len() != outboard_len(res.header.length) {
            return Err(invalid("outboard length does not match the body"));
        }
        io.write_all(&frame).await?;
        io.write_all(&res.outboard).await?;
        io.write_all(&res.body).await?;
        io.close().await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use libp2p::request_response::Codec;
    use reelnet_proto::{ManifestId, SegmentRef, SegmentRequest, Status};

    #[tokio::test]
    async fn roundtrip_and_limits() {
        let body = Bytes::from(vec![5u8; 40_000]);
        let (hash, ob) = reelnet_proto::Outboard::compute(&body);
        let res = SegmentResponse {
            header: ResponseHeader::ok(40_000, hash),
            outboard: Bytes::from(ob.to_bytes()),
            body,
        };
        assert_eq!(res.outboard.len(), 3 * 32);
        let mut buf = futures::io::Cursor::new(Vec::new());
        SegmentCodec
            .write_response(&SEGMENT_PROTOCOL, &mut buf, res.clone())
            .await
            .unwrap();
        let bytes = buf.into_inner();
        let back = SegmentCodec
            .read_response(
                &SEGMENT_PROTOCOL,
                &mut futures::io::Cursor::new(bytes.clone()),
            )
            .await
            .unwrap();
        assert_eq!(back, res);

        // Short and long bodies are refused.
        let short = bytes[..bytes.len() - 1].to_vec();
        assert!(SegmentCodec
            .read_response(&SEGMENT_PROTOCOL, &mut futures::io::Cursor::new(short))
            .await
            .is_err());
        let mut long = bytes.clone();
        long.push(0);
        assert!(SegmentCodec
            .read_response(&SEGMENT_PROTOCOL, &mut futures::io::Cursor::new(long))
            .await
            .is_err());

        // An error answer has no body.
        let busy = encode_response_header(&ResponseHeader::error(Status::Busy)).unwrap();
        let back = SegmentCodec
            .read_response(&SEGMENT_PROTOCOL, &mut futures::io::Cursor::new(busy))
            .await
            .unwrap();
        assert_eq!(back.header.status, Status::Busy);
        assert!(back.body.is_empty());

        // Requests: roundtrip, and an oversized prefix is refused before the body.
        let req = P2pSegmentRequest {
            request: SegmentRequest {
                manifest: ManifestId([1; 32]),
                track: 0,
                segment: SegmentRef::Init,
            },
            certificate: vec![9; 64],
        };
        let mut buf = futures::io::Cursor::new(Vec::new());
        SegmentCodec
            .write_request(&SEGMENT_PROTOCOL, &mut buf, req.clone())
            .await
            .unwrap();
        let back = SegmentCodec
            .read_request(
                &SEGMENT_PROTOCOL,
                &mut futures::io::Cursor::new(buf.into_inner()),
            )
            .await
            .unwrap();
        assert_eq!(back, req);
        let mut huge = u32::MAX.to_be_bytes().to_vec();
        huge.extend_from_slice(&[0; 16]);
        assert!(SegmentCodec
            .read_request(&SEGMENT_PROTOCOL, &mut futures::io::Cursor::new(huge))
            .await
            .is_err());
    }
}
