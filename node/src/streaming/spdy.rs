//! SPDY/3.1 as Kubernetes clients use it for port-forward (and, when
//! WebSockets are off, for exec): a connection carrying streams, each opened
//! by the client with a `SYN_STREAM` whose headers say what it is for.
//! Header blocks are zlib-compressed with the protocol's preset dictionary,
//! one compression context per direction for the whole connection.
//!
//! Kubernetes' clients send no flow-control updates and expect none: window
//! updates and settings are read and ignored, as the kubelet does.

use std::collections::HashMap;
use std::sync::LazyLock;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

/// A frame larger than this ends the connection (the protocol allows
/// 16 MiB; no Kubernetes client sends more than 32 KiB).
const MAX_FRAME: usize = 1 << 20;

/// The most streams one connection may have open at once (a port-forward
/// connection opens two per forwarded connection).
const MAX_STREAMS: usize = 2048;

/// The most a header block may inflate to.
const MAX_HEADERS: usize = 64 * 1024;

/// The preset dictionary of SPDY/3 header compression: header names as
/// length-prefixed strings, then common values run together.
static DICTIONARY: LazyLock<Vec<u8>> = LazyLock::new(|| {
    const NAMES: [&str; 65] = [
        "options",
        "head",
        "post",
        "put",
        "delete",
        "trace",
        "accept",
        "accept-charset",
        "accept-encoding",
        "accept-language",
        "accept-ranges",
        "age",
        "allow",
        "authorization",
        "cache-control",
        "connection",
        "content-base",
        "content-encoding",
        "content-language",
        "content-length",
        "content-location",
        "content-md5",
        "content-range",
        "content-type",
        "date",
        "etag",
        "expect",
        "expires",
        "from",
        "host",
        "if-match",
        "if-modified-since",
        "if-none-match",
        "if-range",
        "if-unmodified-since",
        "last-modified",
        "location",
        "max-forwards",
        "pragma",
        "proxy-authenticate",
        "proxy-authorization",
        "range",
        "referer",
        "retry-after",
        "server",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "user-agent",
        "vary",
        "via",
        "warning",
        "www-authenticate",
        "method",
        "get",
        "status",
        "200 OK",
        "version",
        "HTTP/1.1",
        "url",
        "public",
        "set-cookie",
        "keep-alive",
        "origin",
    ];
    const TAIL: &str = concat!(
        "100101201202205206300302303304305306307402405406407408409410411412413414415416417",
        "502504505203 Non-Authoritative Information204 No Content301 Moved Permanently",
        "400 Bad Request401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error",
        "501 Not Implemented503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct ",
        "Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,",
        "image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,",
        "text/javascript,publicprivatemax-age=gzip,deflate,sdchcharset=utf-8",
        "charset=iso-8859-1,utf-,*,enq=0.",
    );
    let mut d = Vec::with_capacity(1423);
    for n in NAMES {
        d.extend_from_slice(&(n.len() as u32).to_be_bytes());
        d.extend_from_slice(n.as_bytes());
    }
    d.extend_from_slice(TAIL.as_bytes());
    d
});

const SYN_STREAM: u16 = 1;
const SYN_REPLY: u16 = 2;
const RST_STREAM: u16 = 3;
const PING: u16 = 6;
const GOAWAY: u16 = 7;
const FLAG_FIN: u8 = 1;

/// One frame, as far as this server cares.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Frame {
    SynStream {
        id: u32,
        headers: Vec<(String, String)>,
        fin: bool,
    },
    SynReply {
        id: u32,
        headers: Vec<(String, String)>,
        fin: bool,
    },
    RstStream {
        id: u32,
        status: u32,
    },
    Data {
        id: u32,
        data: Bytes,
        fin: bool,
    },
    Ping(u32),
    GoAway {
        last: u32,
        status: u32,
    },
    /// Settings, window updates, headers: read and ignored.
    Ignored,
}

/// The header compression state of one direction.
pub(crate) struct Inflater(Decompress);

impl Default for Inflater {
    fn default() -> Self {
        Inflater(Decompress::new(true))
    }
}

impl Inflater {
    fn inflate(&mut self, mut input: &[u8]) -> Result<Vec<u8>, String> {
        let mut out = Vec::with_capacity(1024);
        loop {
            if out.len() == out.capacity() {
                if out.len() >= MAX_HEADERS {
                    return Err("a header block is too large".into());
                }
                out.reserve(out.len());
            }
            let before = self.0.total_in();
            let result = self
                .0
                .decompress_vec(input, &mut out, FlushDecompress::Sync);
            input = &input[(self.0.total_in() - before) as usize..];
            match result {
                Ok(Status::Ok | Status::BufError)
                    if input.is_empty() && out.len() < out.capacity() =>
                {
                    return Ok(out);
                }
                Ok(Status::StreamEnd) => return Ok(out),
                Ok(_) => {}
                Err(e) if e.needs_dictionary().is_some() => {
                    self.0
                        .set_dictionary(&DICTIONARY)
                        .map_err(|e| format!("header dictionary: {e}"))?;
                }
                Err(e) => return Err(format!("header block: {e}")),
            }
        }
    }
}

/// The header compression state of the other direction.
pub(crate) struct Deflater(Compress);

impl Default for Deflater {
    fn default() -> Self {
        let mut c = Compress::new(Compression::default(), true);
        c.set_dictionary(&DICTIONARY)
            .expect("a fresh stream takes a dictionary");
        Deflater(c)
    }
}

impl Deflater {
    fn deflate(&mut self, input: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(input.len() + 64);
        let mut rest = input;
        loop {
            if out.len() == out.capacity() {
                out.reserve(out.len().max(64));
            }
            let before = self.0.total_in();
            let _ = self.0.compress_vec(rest, &mut out, FlushCompress::Sync);
            rest = &rest[(self.0.total_in() - before) as usize..];
            // A sync flush is complete when output room is left over.
            if rest.is_empty() && out.len() < out.capacity() {
                return out;
            }
        }
    }
}

fn header_block(headers: &[(String, String)]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&(headers.len() as u32).to_be_bytes());
    for (k, v) in headers {
        b.extend_from_slice(&(k.len() as u32).to_be_bytes());
        b.extend_from_slice(k.as_bytes());
        b.extend_from_slice(&(v.len() as u32).to_be_bytes());
        b.extend_from_slice(v.as_bytes());
    }
    b
}

fn parse_headers(mut b: &[u8]) -> Result<Vec<(String, String)>, String> {
    let bad = || "a malformed header block".to_string();
    let take = |b: &mut &[u8]| -> Result<String, String> {
        if b.len() < 4 {
            return Err(bad());
        }
        let n = b.get_u32() as usize;
        if b.len() < n {
            return Err(bad());
        }
        let s = String::from_utf8_lossy(&b[..n]).into_owned();
        b.advance(n);
        Ok(s)
    };
    if b.len() < 4 {
        return Err(bad());
    }
    let count = b.get_u32() as usize;
    let mut headers = Vec::with_capacity(count.min(64));
    for _ in 0..count {
        let k = take(&mut b)?.to_ascii_lowercase();
        let v = take(&mut b)?;
        headers.push((k, v));
    }
    Ok(headers)
}

/// Takes one frame off the front of `buf`, if a whole one is there.
pub(crate) fn parse(buf: &mut BytesMut, inflater: &mut Inflater) -> Result<Option<Frame>, String> {
    if buf.len() < 8 {
        return Ok(None);
    }
    let len = u32::from_be_bytes([0, buf[5], buf[6], buf[7]]) as usize;
    if len > MAX_FRAME {
        return Err(format!("a frame of {len} bytes is too large"));
    }
    if buf.len() < 8 + len {
        return Ok(None);
    }
    let head = buf.split_to(8);
    let mut body = buf.split_to(len).freeze();
    let flags = head[4];
    let fin = flags & FLAG_FIN != 0;
    if head[0] & 0x80 == 0 {
        let id = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
        return Ok(Some(Frame::Data {
            id,
            data: body,
            fin,
        }));
    }
    let version = u16::from_be_bytes([head[0] & 0x7f, head[1]]);
    if version != 3 {
        return Err(format!("SPDY version {version} is not spoken; 3 is"));
    }
    let kind = u16::from_be_bytes([head[2], head[3]]);
    let short = || format!("a truncated control frame of type {kind}");
    Ok(Some(match kind {
        SYN_STREAM | SYN_REPLY => {
            let need = if kind == SYN_STREAM { 10 } else { 4 };
            if body.len() < need {
                return Err(short());
            }
            let id = body.get_u32() & 0x7fff_ffff;
            if kind == SYN_STREAM {
                body.advance(6);
            }
            let headers = parse_headers(&inflater.inflate(&body)?)?;
            if kind == SYN_STREAM {
                Frame::SynStream { id, headers, fin }
            } else {
                Frame::SynReply { id, headers, fin }
            }
        }
        RST_STREAM if body.len() >= 8 => Frame::RstStream {
            id: body.get_u32() & 0x7fff_ffff,
            status: body.get_u32(),
        },
        PING if body.len() >= 4 => Frame::Ping(body.get_u32()),
        GOAWAY if body.len() >= 8 => Frame::GoAway {
            last: body.get_u32() & 0x7fff_ffff,
            status: body.get_u32(),
        },
        RST_STREAM | PING | GOAWAY => return Err(short()),
        _ => {
            // Headers frames carry a compressed block that must still pass
            // through the shared inflater.
            if kind == 8 && body.len() >= 4 {
                body.advance(4);
                inflater.inflate(&body)?;
            }
            Frame::Ignored
        }
    }))
}

fn control(out: &mut BytesMut, kind: u16, flags: u8, body: &[u8]) {
    out.put_u16(0x8003);
    out.put_u16(kind);
    out.put_u32(((flags as u32) << 24) | body.len() as u32);
    out.put_slice(body);
}

/// Writes `frame` to `out`.
pub(crate) fn encode(frame: &Frame, deflater: &mut Deflater, out: &mut BytesMut) {
    match frame {
        Frame::Data { id, data, fin } => {
            // Split to the largest data frame a peer must take.
            let mut chunks = data.chunks(MAX_FRAME / 2).peekable();
            if data.is_empty() {
                out.put_u32(*id & 0x7fff_ffff);
                out.put_u32(u32::from(*fin) << 24);
            }
            while let Some(c) = chunks.next() {
                let last = chunks.peek().is_none();
                out.put_u32(*id & 0x7fff_ffff);
                out.put_u32((u32::from(*fin && last) << 24) | c.len() as u32);
                out.put_slice(c);
            }
        }
        Frame::SynReply { id, headers, fin } => {
            let mut body = id.to_be_bytes().to_vec();
            body.extend(deflater.deflate(&header_block(headers)));
            control(out, SYN_REPLY, u8::from(*fin), &body);
        }
        Frame::SynStream { id, headers, fin } => {
            let mut body = id.to_be_bytes().to_vec();
            body.extend_from_slice(&[0; 6]);
            body.extend(deflater.deflate(&header_block(headers)));
            control(out, SYN_STREAM, u8::from(*fin), &body);
        }
        Frame::RstStream { id, status } => {
            let mut body = id.to_be_bytes().to_vec();
            body.extend_from_slice(&status.to_be_bytes());
            control(out, RST_STREAM, 0, &body);
        }
        Frame::Ping(id) => control(out, PING, 0, &id.to_be_bytes()),
        Frame::GoAway { last, status } => {
            let mut body = last.to_be_bytes().to_vec();
            body.extend_from_slice(&status.to_be_bytes());
            control(out, GOAWAY, 0, &body);
        }
        Frame::Ignored => {}
    }
}

/// A stream the client opened.
pub(crate) struct Stream {
    /// Its headers, names in lower case.
    pub headers: Vec<(String, String)>,
    /// What the client sends on it; ends at its FIN or reset.
    pub data: mpsc::Receiver<Bytes>,
    /// The way back.
    pub writer: Writer,
}

impl Stream {
    /// The value of header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Sends on one stream.
#[derive(Clone)]
pub(crate) struct Writer {
    id: u32,
    out: mpsc::Sender<Frame>,
}

impl Writer {
    /// Sends data; false when the connection is gone.
    pub async fn send(&self, data: Bytes) -> bool {
        self.out
            .send(Frame::Data {
                id: self.id,
                data,
                fin: false,
            })
            .await
            .is_ok()
    }

    /// Ends the stream from this side.
    pub async fn finish(&self) {
        let _ = self
            .out
            .send(Frame::Data {
                id: self.id,
                data: Bytes::new(),
                fin: true,
            })
            .await;
    }
}

/// Serves a SPDY connection: every stream the client opens is accepted and
/// handed to `streams`. Returns when the connection ends.
pub(crate) async fn serve(
    io: impl AsyncRead + AsyncWrite + Send + 'static,
    streams: mpsc::Sender<Stream>,
) {
    let (mut rd, mut wr) = tokio::io::split(io);
    let (out_tx, mut out_rx) = mpsc::channel::<Frame>(64);
    let writer = tokio::spawn(async move {
        let mut deflater = Deflater::default();
        let mut buf = BytesMut::new();
        while let Some(frame) = out_rx.recv().await {
            encode(&frame, &mut deflater, &mut buf);
            // What else is ready goes in the same write.
            while let Ok(more) = out_rx.try_recv() {
                encode(&more, &mut deflater, &mut buf);
                if buf.len() > 256 * 1024 {
                    break;
                }
            }
            if wr.write_all(&buf).await.is_err() {
                return;
            }
            buf.clear();
        }
        let _ = wr.shutdown().await;
    });
    let mut inflater = Inflater::default();
    let mut buf = BytesMut::with_capacity(16 * 1024);
    let mut open: HashMap<u32, mpsc::Sender<Bytes>> = HashMap::new();
    'read: loop {
        loop {
            let frame = match parse(&mut buf, &mut inflater) {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => {
                    tracing::debug!("SPDY: {e}");
                    let _ = out_tx.send(Frame::GoAway { last: 0, status: 1 }).await;
                    break 'read;
                }
            };
            match frame {
                Frame::SynStream { id, headers, .. } if open.len() >= MAX_STREAMS => {
                    tracing::debug!(
                        "SPDY: stream {id} refused, {} open ({headers:?})",
                        open.len()
                    );
                    // REFUSED_STREAM
                    let _ = out_tx.send(Frame::RstStream { id, status: 3 }).await;
                }
                Frame::SynStream { id, headers, fin } => {
                    let (tx, rx) = mpsc::channel(16);
                    if !fin {
                        open.insert(id, tx);
                    }
                    let writer = Writer {
                        id,
                        out: out_tx.clone(),
                    };
                    let _ = out_tx
                        .send(Frame::SynReply {
                            id,
                            headers: Vec::new(),
                            fin: false,
                        })
                        .await;
                    if streams
                        .send(Stream {
                            headers,
                            data: rx,
                            writer,
                        })
                        .await
                        .is_err()
                    {
                        break 'read;
                    }
                }
                Frame::Data { id, data, fin } => {
                    if let Some(tx) = open.get(&id) {
                        if !data.is_empty() {
                            let _ = tx.send(data).await;
                        }
                        if fin {
                            open.remove(&id);
                        }
                    }
                }
                Frame::RstStream { id, .. } => {
                    open.remove(&id);
                }
                Frame::Ping(id) => {
                    let _ = out_tx.send(Frame::Ping(id)).await;
                }
                Frame::GoAway { .. } => break 'read,
                Frame::SynReply { .. } | Frame::Ignored => {}
            }
        }
        if buf.capacity() - buf.len() < 8 * 1024 {
            buf.reserve(16 * 1024);
        }
        match rd.read_buf(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
    drop(open);
    drop(out_tx);
    let _ = writer.await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dictionary_is_the_protocols() {
        assert_eq!(DICTIONARY.len(), 1423);
        assert!(DICTIONARY.ends_with(b"enq=0."));
    }

    #[test]
    fn frames_and_compressed_headers_round_trip() {
        let (mut d, mut i) = (Deflater::default(), Inflater::default());
        let mut wire = BytesMut::new();
        let headers = vec![
            ("streamtype".to_string(), "data".to_string()),
            ("port".to_string(), "8080".to_string()),
        ];
        for id in [1, 3] {
            encode(
                &Frame::SynStream {
                    id,
                    headers: headers.clone(),
                    fin: false,
                },
                &mut d,
                &mut wire,
            );
        }
        encode(
            &Frame::Data {
                id: 1,
                data: Bytes::from_static(b"hello"),
                fin: true,
            },
            &mut d,
            &mut wire,
        );
        encode(&Frame::Ping(7), &mut d, &mut wire);
        let mut got = Vec::new();
        // Fed a byte at a time: frames come out whole.
        let mut buf = BytesMut::new();
        for b in wire {
            buf.put_u8(b);
            while let Some(f) = parse(&mut buf, &mut i).unwrap() {
                got.push(f);
            }
        }
        assert_eq!(got.len(), 4);
        assert_eq!(
            got[1],
            Frame::SynStream {
                id: 3,
                headers,
                fin: false
            }
        );
        assert_eq!(
            got[2],
            Frame::Data {
                id: 1,
                data: Bytes::from_static(b"hello"),
                fin: true
            }
        );
        assert_eq!(got[3], Frame::Ping(7));
    }

    #[test]
    fn hostile_frames_are_refused() {
        let mut i = Inflater::default();
        let mut huge = BytesMut::from(&[0x80, 3, 0, 1, 0, 0xff, 0xff, 0xff][..]);
        assert!(parse(&mut huge, &mut i).is_err());
        let mut v2 = BytesMut::from(&[0x80, 2, 0, 6, 0, 0, 0, 4, 0, 0, 0, 1][..]);
        assert!(parse(&mut v2, &mut i).is_err());
        let mut junk = BytesMut::from(
            &[
                0x80, 3, 0, 1, 0, 0, 0, 12, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 2,
            ][..],
        );
        assert!(parse(&mut junk, &mut i).is_err());
    }
}
