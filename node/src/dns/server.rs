//! The DNS server (hickory-server) in front of the zone: answers the
//! cluster's names itself and forwards other names to the node's resolvers.

use std::net::SocketAddr;
use std::time::Duration;

use hickory_server::net::runtime::Time;
use hickory_server::proto::op::{Edns, Message, MessageType, Metadata, OpCode, ResponseCode};
use hickory_server::proto::rr::rdata::{A, CNAME, PTR, SOA, SRV, TXT};
use hickory_server::proto::rr::{Name, RData, Record, RecordType};
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;

use super::Names;
use super::zone::{Lookup, Rr};

/// Seconds a cluster answer may be cached (CoreDNS's default).
const TTL: u32 = 5;

/// How long an upstream resolver has to answer.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);

/// Answers queries from the zone, and forwards the rest.
pub(crate) struct Handler {
    pub names: Names,
    /// The node's resolvers (from its `/etc/resolv.conf`).
    pub upstreams: Vec<SocketAddr>,
}

fn record(name: &Name, rr: &Rr) -> Option<Record> {
    let target = |t: &str| Name::from_ascii(format!("{t}.")).ok();
    let data = match rr {
        Rr::A(ip) => RData::A(A(*ip)),
        Rr::Cname(t) => RData::CNAME(CNAME(target(t)?)),
        Rr::Srv { port, target: t } => RData::SRV(SRV::new(0, 100, *port, target(t)?)),
        Rr::Txt(t) => RData::TXT(TXT::new(vec![t.clone()])),
        Rr::Ptr(t) => RData::PTR(PTR(target(t)?)),
    };
    Some(Record::from_rdata(name.clone(), TTL, data))
}

fn matches(rr: &Rr, qtype: RecordType) -> bool {
    matches!(
        (rr, qtype),
        (Rr::A(_), RecordType::A)
            | (Rr::Srv { .. }, RecordType::SRV)
            | (Rr::Txt(_), RecordType::TXT)
            | (Rr::Ptr(_), RecordType::PTR)
            | (_, RecordType::ANY)
    )
}

/// The answer to `qtype` at `name` from the zone: its records of that
/// type, or its CNAME (followed while the target is in the zone).
fn answer(
    names: &Names,
    name: &Name,
    first: Lookup,
    qtype: RecordType,
) -> (ResponseCode, Vec<Record>) {
    let mut out = Vec::new();
    let mut at = name.clone();
    let mut found = Some(first);
    for _ in 0..8 {
        let lookup = found.take().unwrap_or_else(|| names.lookup(&at.to_ascii()));
        match lookup {
            Lookup::Found(rrs) => {
                if let Some(Rr::Cname(t)) = rrs.first()
                    && qtype != RecordType::CNAME
                {
                    out.extend(record(&at, &rrs[0]));
                    let Ok(next) = Name::from_ascii(format!("{t}.")) else {
                        break;
                    };
                    at = next;
                    continue;
                }
                out.extend(
                    rrs.iter()
                        .filter(|r| {
                            matches(r, qtype)
                                || (qtype == RecordType::CNAME && matches!(r, Rr::Cname(_)))
                        })
                        .filter_map(|r| record(&at, r)),
                );
                return (ResponseCode::NoError, out);
            }
            Lookup::NxDomain if out.is_empty() => return (ResponseCode::NXDomain, out),
            // A CNAME out of the zone: the client resolves its target.
            Lookup::NxDomain | Lookup::NotOurs => return (ResponseCode::NoError, out),
        }
    }
    (ResponseCode::NoError, out)
}

/// The zone's SOA, for negative answers.
fn soa(domain: &str) -> Option<Record> {
    let apex = Name::from_ascii(format!("{domain}.")).ok()?;
    let ns = Name::from_ascii(format!("ns.dns.{domain}.")).ok()?;
    let mbox = Name::from_ascii(format!("hostmaster.{domain}.")).ok()?;
    Some(Record::from_rdata(
        apex,
        TTL,
        RData::SOA(SOA::new(ns, mbox, 1, 7200, 1800, 86400, TTL)),
    ))
}

/// Sends `query` (a whole DNS message) to each upstream in turn; the first
/// answer wins.
pub(crate) async fn forward(upstreams: &[SocketAddr], query: &[u8]) -> Option<Message> {
    for up in upstreams {
        let bind: SocketAddr = if up.is_ipv4() {
            ([0, 0, 0, 0], 0).into()
        } else {
            ([0u16; 8], 0).into()
        };
        let Ok(sock) = tokio::net::UdpSocket::bind(bind).await else {
            continue;
        };
        if sock.connect(up).await.is_err() || sock.send(query).await.is_err() {
            continue;
        }
        let mut buf = vec![0u8; 4096];
        match tokio::time::timeout(UPSTREAM_TIMEOUT, sock.recv(&mut buf)).await {
            Ok(Ok(n)) => {
                if let Ok(m) = Message::from_vec(&buf[..n]) {
                    return Some(m);
                }
            }
            _ => tracing::debug!("DNS upstream {up} did not answer"),
        }
    }
    None
}

/// The response to `request` from the zone, or `None` when its name is
/// not the cluster's (it is forwarded).
pub(crate) fn zone_response(names: &Names, request: &Message) -> Option<Message> {
    let meta = &request.metadata;
    if meta.message_type != MessageType::Query || meta.op_code != OpCode::Query {
        return Some(error_response(request, ResponseCode::NotImp));
    }
    let [query] = request.queries.as_slice() else {
        return Some(error_response(request, ResponseCode::FormErr));
    };
    let name = query.name();
    let qtype = query.query_type();
    let first = names.lookup(&name.to_ascii());
    if matches!(first, Lookup::NotOurs) {
        return None;
    }
    let (code, answers) = answer(names, name, first, qtype);
    let mut m = response(request);
    m.metadata.authoritative = true;
    m.metadata.recursion_available = true;
    m.metadata.response_code = code;
    if answers.is_empty() {
        m.authorities.extend(soa(&names.domain()));
    }
    m.answers = answers;
    Some(m)
}

/// The response to `request` from an upstream's answer, or a failure.
pub(crate) fn forwarded_response(request: &Message, upstream: Option<Message>) -> Message {
    let Some(up) = upstream else {
        return error_response(request, ResponseCode::ServFail);
    };
    let mut m = response(request);
    m.metadata.recursion_available = true;
    m.metadata.response_code = up.metadata.response_code;
    m.metadata.truncation = up.metadata.truncation;
    m.answers = up.answers;
    m.authorities = up.authorities;
    m.additionals = up.additionals;
    m
}

/// An empty response to `request`: its id, flags and question, and EDNS
/// when it used EDNS.
fn response(request: &Message) -> Message {
    let mut m = Message::response(request.metadata.id, request.metadata.op_code);
    m.metadata = Metadata::response_from_request(&request.metadata);
    m.queries = request.queries.clone();
    if request.edns.is_some() {
        let mut edns = Edns::new();
        edns.set_max_payload(MAX_PAYLOAD);
        m.set_edns(edns);
    }
    m
}

fn error_response(request: &Message, code: ResponseCode) -> Message {
    let mut m = response(request);
    m.metadata.response_code = code;
    m
}

/// The largest UDP answer shoal sends (the DNS flag day's 1,232 bytes).
const MAX_PAYLOAD: u16 = 1232;

/// How large a UDP answer to `request` may be: 512 bytes without EDNS.
pub(crate) fn udp_limit(request: &Message) -> usize {
    request
        .edns
        .as_ref()
        .map_or(512, |e| e.max_payload().clamp(512, MAX_PAYLOAD))
        .into()
}

/// `response` as bytes of at most `limit`: a larger one is sent truncated
/// (its question only, `TC` set), so the client asks again over TCP.
pub(crate) fn encode(response: &Message, limit: usize) -> Option<Vec<u8>> {
    let bytes = response.to_vec().ok()?;
    if bytes.len() <= limit {
        return Some(bytes);
    }
    response.truncate().to_vec().ok()
}

/// A FormErr answer to a datagram that is not a DNS message, when its
/// header can be read (it is dropped otherwise).
pub(crate) fn malformed(datagram: &[u8]) -> Option<Vec<u8>> {
    let id = u16::from_be_bytes([*datagram.first()?, *datagram.get(1)?]);
    let flags = *datagram.get(2)?;
    if flags & 0x80 != 0 {
        // A response: never answered.
        return None;
    }
    let op_code = OpCode::from_u8((flags >> 3) & 0x0f);
    Message::error_msg(id, op_code, ResponseCode::FormErr)
        .to_vec()
        .ok()
}

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response: R,
    ) -> ResponseInfo {
        let builder = MessageResponseBuilder::from_message_request(request);
        let mut fail = Metadata::response_from_request(&request.metadata);
        fail.response_code = ResponseCode::ServFail;
        let Ok(message) = Message::from_vec(request.as_slice()) else {
            let msg = builder.error_msg(&request.metadata, ResponseCode::FormErr);
            return sent(response.send_response(msg).await, fail);
        };
        let answer = match zone_response(&self.names, &message) {
            Some(m) => m,
            None => {
                forwarded_response(&message, forward(&self.upstreams, request.as_slice()).await)
            }
        };
        let msg = builder.build(
            answer.metadata,
            answer.answers.iter(),
            answer.authorities.iter(),
            [],
            answer
                .additionals
                .iter()
                .filter(|r| r.record_type() != RecordType::OPT),
        );
        sent(response.send_response(msg).await, fail)
    }
}

/// The info of a sent response, or of the failure to send it.
fn sent(
    result: Result<ResponseInfo, hickory_server::net::NetError>,
    otherwise: Metadata,
) -> ResponseInfo {
    result.unwrap_or_else(|e| {
        tracing::debug!("sending a DNS response: {e}");
        let mut m = otherwise;
        m.response_code = ResponseCode::ServFail;
        hickory_server::proto::op::Header {
            metadata: m,
            counts: Default::default(),
        }
        .into()
    })
}

/// The node's resolvers, from a `resolv.conf` text (port 53), without
/// `skip` (the cluster DNS address itself).
pub(crate) fn upstreams(resolv_conf: &str, skip: std::net::IpAddr) -> Vec<SocketAddr> {
    resolv_conf
        .lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            (words.next() == Some("nameserver"))
                .then(|| words.next())
                .flatten()
        })
        .filter_map(|a| a.parse::<std::net::IpAddr>().ok())
        .filter(|a| *a != skip)
        .map(|a| SocketAddr::new(a, 53))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_server::proto::op::Query;

    /// A query's bytes, by hand: id 0x1234, recursion desired, one
    /// question of `labels` for an A record.
    fn raw_query(labels: &[&str]) -> Vec<u8> {
        let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        for l in labels {
            q.push(l.len() as u8);
            q.extend_from_slice(l.as_bytes());
        }
        q.extend_from_slice(&[0, 0, 1, 0, 1]);
        q
    }

    #[test]
    fn a_name_longer_than_allowed_gets_a_format_error() {
        let label = "a".repeat(63);
        let datagram = raw_query(&[&label, &label, &label, &label, &label]);
        assert!(Message::from_vec(&datagram).is_err());
        let answer = Message::from_vec(&malformed(&datagram).unwrap()).unwrap();
        assert_eq!(answer.metadata.id, 0x1234);
        assert_eq!(answer.metadata.message_type, MessageType::Response);
        assert_eq!(answer.metadata.response_code, ResponseCode::FormErr);
        // Answers are never answered.
        let mut response = datagram.clone();
        response[2] |= 0x80;
        assert!(malformed(&response).is_none());
        assert!(malformed(&[0x12]).is_none());
    }

    #[test]
    fn the_zone_answers_and_other_names_are_left_to_forward() {
        let names = Names::new("cluster.local");
        let ask = |name: &str| {
            let mut m = Message::query();
            m.metadata.id = 7;
            m.add_query(Query::query(Name::from_ascii(name).unwrap(), RecordType::A));
            m
        };
        let r = zone_response(&names, &ask("nope.default.svc.cluster.local.")).unwrap();
        assert_eq!(r.metadata.id, 7);
        assert_eq!(r.metadata.response_code, ResponseCode::NXDomain);
        assert!(r.metadata.authoritative);
        assert_eq!(r.authorities.len(), 1, "the SOA");
        assert!(zone_response(&names, &ask("example.org.")).is_none());
        let failed = forwarded_response(&ask("example.org."), None);
        assert_eq!(failed.metadata.response_code, ResponseCode::ServFail);
    }

    #[test]
    fn answers_too_large_for_udp_are_truncated() {
        let mut request = Message::query();
        request.add_query(Query::query(
            Name::from_ascii("db.default.svc.cluster.local.").unwrap(),
            RecordType::A,
        ));
        let mut big = response(&request);
        for i in 0..60u8 {
            big.answers.push(Record::from_rdata(
                Name::from_ascii("db.default.svc.cluster.local.").unwrap(),
                TTL,
                RData::A(A::new(10, 244, 0, i)),
            ));
        }
        assert_eq!(udp_limit(&request), 512);
        let bytes = encode(&big, udp_limit(&request)).unwrap();
        let sent = Message::from_vec(&bytes).unwrap();
        assert!(sent.metadata.truncation && sent.answers.is_empty());
        assert_eq!(sent.queries.len(), 1);
        // With EDNS the client takes up to 1,232 bytes.
        let mut edns = Edns::new();
        edns.set_max_payload(4096);
        request.set_edns(edns);
        assert_eq!(udp_limit(&request), 1232);
        let sent = Message::from_vec(&encode(&big, 1232).unwrap()).unwrap();
        assert_eq!(sent.answers.len(), 60);
    }

    #[test]
    fn upstreams_come_from_resolv_conf() {
        let text = "# generated\nsearch example.org\nnameserver 192.0.2.53\nnameserver 10.96.0.10\nnameserver fd00::53\noptions ndots:2\n";
        assert_eq!(
            upstreams(text, "10.96.0.10".parse().unwrap()),
            [
                "192.0.2.53:53".parse::<SocketAddr>().unwrap(),
                "[fd00::53]:53".parse().unwrap()
            ]
        );
    }
}
