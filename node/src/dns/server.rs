//! The DNS server (hickory-server) in front of the zone: answers the
//! cluster's names itself and forwards other names to the node's resolvers.

use std::net::SocketAddr;
use std::time::Duration;

use hickory_server::net::runtime::Time;
use hickory_server::proto::op::{Message, MessageType, Metadata, OpCode, ResponseCode};
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
async fn forward(upstreams: &[SocketAddr], query: &[u8]) -> Option<Message> {
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

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response: R,
    ) -> ResponseInfo {
        let builder = MessageResponseBuilder::from_message_request(request);
        let fail = |code| {
            let mut m = Metadata::response_from_request(&request.metadata);
            m.response_code = code;
            m
        };
        if request.metadata.message_type != MessageType::Query
            || request.metadata.op_code != OpCode::Query
        {
            let msg = builder.error_msg(&request.metadata, ResponseCode::NotImp);
            return sent(
                response.send_response(msg).await,
                fail(ResponseCode::NotImp),
            );
        }
        let Ok(info) = request.request_info() else {
            let msg = builder.error_msg(&request.metadata, ResponseCode::FormErr);
            return sent(
                response.send_response(msg).await,
                fail(ResponseCode::FormErr),
            );
        };
        let name: Name = info.query.name().into();
        let qtype = info.query.query_type();
        let first = self.names.lookup(&name.to_ascii());
        if !matches!(first, Lookup::NotOurs) {
            let (code, answers) = answer(&self.names, &name, first, qtype);
            let mut meta = Metadata::response_from_request(&request.metadata);
            meta.authoritative = true;
            meta.recursion_available = true;
            meta.response_code = code;
            let negative: Vec<Record> = if answers.is_empty() {
                soa(&self.names.domain()).into_iter().collect()
            } else {
                Vec::new()
            };
            let msg = builder.build(meta, answers.iter(), [], negative.iter(), []);
            return sent(response.send_response(msg).await, fail(code));
        }
        match forward(&self.upstreams, request.as_slice()).await {
            Some(up) => {
                let mut meta = Metadata::response_from_request(&request.metadata);
                meta.recursion_available = true;
                meta.response_code = up.metadata.response_code;
                meta.truncation = up.metadata.truncation;
                let msg = builder.build(
                    meta,
                    up.answers.iter(),
                    up.authorities.iter(),
                    [],
                    up.additionals
                        .iter()
                        .filter(|r| r.record_type() != RecordType::OPT),
                );
                sent(
                    response.send_response(msg).await,
                    fail(ResponseCode::ServFail),
                )
            }
            None => {
                let msg = builder.error_msg(&request.metadata, ResponseCode::ServFail);
                sent(
                    response.send_response(msg).await,
                    fail(ResponseCode::ServFail),
                )
            }
        }
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
