//! Who is calling: the client address a request came from, with `Forwarded` and
//! `X-Forwarded-For` believed only when the peer is a trusted proxy.
//!
//! Anyone can send those headers, so taking their first entry (as before) let any caller choose
//! the `client.address` of its span, and the address anything keyed on it (fraud's rate limit for
//! anonymous shoppers). The rule here is the usual one for proxies (RFC 7239 section 8.1 and the
//! reverse-proxy guidance it cites): trust the chain only as far as the peers in
//! `TELEMETRY_TRUSTED_PROXIES`. Starting from the peer, walk the forwarded entries from the right
//! (nearest hop first); while the hop is a trusted proxy, believe the next one; the first address
//! that is not a trusted proxy is the client. A request whose peer is not trusted is its own
//! client, whatever it claims. There is no crate that does this with both headers; `ipnet`
//! parses the networks.

use std::net::{IpAddr, SocketAddr};
use std::sync::OnceLock;

use http::HeaderMap;
use ipnet::IpNet;

/// The caller of a request, as the server layer established it; handlers read it as a request
/// extension (`Extension<Caller>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    /// The TCP peer: whoever opened the connection (a proxy, or the client itself).
    pub peer: Option<IpAddr>,
    /// The client: the peer, or the address a trusted proxy forwarded for.
    pub client: Option<IpAddr>,
    /// Whether the caller is inside our trust boundary: always, on a service that is not the
    /// edge; on the edge ([`EdgeTrust`]), only a listed peer or one that knows the secret.
    pub trusted: bool,
}

/// Who the public edge trusts: peers in `callers` (a gateway's address; never a forwarded one,
/// which a client can write), and callers that send `token` in [`GATEWAY_TOKEN_HEADER`].
/// Everyone else is untrusted: handlers see `Caller::trusted == false`, and the caller's
/// `traceparent` is continued but its sampled flag is not obeyed, so a public caller cannot
/// switch tracing off for its own requests.
#[derive(Debug, Clone, Default)]
pub struct EdgeTrust {
    /// Trusted peers: networks or single addresses.
    pub callers: Vec<IpNet>,
    /// The shared secret of a trusted gateway.
    pub token: Option<SharedSecret>,
}

/// The header a trusted gateway sends its shared secret in.
pub const GATEWAY_TOKEN_HEADER: &str = "x-shopmax-gateway-token";

impl EdgeTrust {
    /// Whether a request from `peer` with `headers` comes from inside the trust boundary.
    pub fn trusts(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> bool {
        let by_address = peer.is_some_and(|ip| trusted(ip, &self.callers));
        // Exactly one token header: with two, which one a proxy or a parser honours is anyone's
        // guess, so neither is believed.
        let by_token = self.token.as_ref().is_some_and(|token| {
            let mut presented = headers.get_all(GATEWAY_TOKEN_HEADER).iter();
            match (presented.next(), presented.next()) {
                (Some(value), None) => token.matches(value.as_bytes()),
                _ => false,
            }
        });
        by_address || by_token
    }
}

/// A shared secret; never printed, compared in constant time.
#[derive(Clone, PartialEq, Eq)]
pub struct SharedSecret(String);

impl SharedSecret {
    /// Wraps a secret.
    pub fn new(secret: impl Into<String>) -> Self {
        Self(secret.into())
    }

    /// Its length in characters (to refuse one too short to be secret).
    pub fn len(&self) -> usize {
        self.0.chars().count()
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `presented` is the secret, in time that does not depend on where they differ.
    pub fn matches(&self, presented: &[u8]) -> bool {
        let expected = self.0.as_bytes();
        expected.len() == presented.len()
            && expected
                .iter()
                .zip(presented)
                .fold(0u8, |diff, (a, b)| diff | (a ^ b))
                == 0
    }
}

impl std::fmt::Debug for SharedSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedSecret(***)")
    }
}

/// Parses one network entry: a network (`10.0.0.0/8`) or a single address.
pub(crate) fn parse_network(entry: &str) -> Option<IpNet> {
    entry
        .parse::<IpNet>()
        .ok()
        .or_else(|| entry.parse::<IpAddr>().ok().map(IpNet::from))
}

/// Reads `key` as a comma-separated list of networks or addresses; an entry that is neither is
/// recorded as a problem of `key` and left out (a strict reader then refuses to start, a lenient
/// one warns).
pub fn read_networks(env: &mut env_config::Reader<'_>, key: &str) -> Vec<IpNet> {
    let mut networks = Vec::new();
    for entry in env.list(key).unwrap_or_default() {
        match parse_network(&entry) {
            Some(network) => networks.push(network),
            None => env.reject(
                key,
                format!("{entry:?} is not an IP address or network"),
                None,
            ),
        }
    }
    networks
}

/// Which forwarding header the trusted proxies write (`TELEMETRY_FORWARDED_HEADER`). Only that
/// one is read: a proxy that writes `X-Forwarded-For` passes a client's own `Forwarded` through
/// untouched, so reading both would let the client choose its address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ForwardedHeader {
    /// `X-Forwarded-For` (nginx, most load balancers).
    #[default]
    XForwardedFor,
    /// `Forwarded` (RFC 7239).
    Forwarded,
}

impl ForwardedHeader {
    /// Parses `x-forwarded-for` or `forwarded`, in any case.
    pub fn parse(value: &str) -> Option<Self> {
        if value.eq_ignore_ascii_case("x-forwarded-for") {
            Some(Self::XForwardedFor)
        } else if value.eq_ignore_ascii_case("forwarded") {
            Some(Self::Forwarded)
        } else {
            None
        }
    }
}

/// The proxies configured at [`crate::init`], for layers built after it.
static TRUSTED_PROXIES: OnceLock<(Vec<IpNet>, ForwardedHeader)> = OnceLock::new();

pub(crate) fn set_trusted_proxies(networks: Vec<IpNet>, header: ForwardedHeader) {
    let _ = TRUSTED_PROXIES.set((networks, header));
}

pub(crate) fn trusted_proxies() -> (Vec<IpNet>, ForwardedHeader) {
    TRUSTED_PROXIES.get().cloned().unwrap_or_default()
}

fn trusted(ip: IpAddr, proxies: &[IpNet]) -> bool {
    let ip = canonical(ip);
    proxies.iter().any(|net| net.contains(&ip))
}

/// An IPv4-mapped IPv6 address (`::ffff:10.0.0.1`) as the IPv4 address it is.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

/// The hops a proxy chain forwarded for, nearest last: every `for=` of `Forwarded` (RFC 7239)
/// or every entry of `X-Forwarded-For`, whichever `header` says the proxies write. An entry that
/// is not an address (`unknown`, an obfuscated identifier) is `None`: the chain cannot be
/// followed past it.
fn forwarded_hops(headers: &HeaderMap, header: ForwardedHeader) -> Vec<Option<IpAddr>> {
    let values = |name: &str| {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    if header == ForwardedHeader::Forwarded {
        return values("forwarded")
            .iter()
            .filter_map(|element| {
                element.split(';').map(str::trim).find_map(|pair| {
                    let (key, value) = pair.split_once('=')?;
                    key.trim()
                        .eq_ignore_ascii_case("for")
                        .then(|| forwarded_node(value.trim()))
                })
            })
            .collect();
    }
    values("x-forwarded-for")
        .iter()
        .map(|v| forwarded_node(v))
        .collect()
}

/// The address of a `for=` node or an `X-Forwarded-For` entry: `1.2.3.4`, `1.2.3.4:80`,
/// `"[2001:db8::1]:4711"` or a bare IPv6 address.
fn forwarded_node(value: &str) -> Option<IpAddr> {
    let value = value.trim_matches('"');
    if let Ok(ip) = value.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(socket) = value.parse::<SocketAddr>() {
        return Some(socket.ip());
    }
    let inner = value.strip_prefix('[')?;
    inner.split(']').next()?.parse().ok()
}

/// The caller of a request from its headers and TCP peer; `edge` decides whom to trust when this
/// service is the public edge.
pub(crate) fn caller(
    headers: &HeaderMap,
    peer: Option<SocketAddr>,
    (proxies, header): (&[IpNet], ForwardedHeader),
    edge: Option<&EdgeTrust>,
) -> Caller {
    let peer = peer.map(|p| canonical(p.ip()));
    let mut client = peer;
    if let Some(ip) = peer
        && trusted(ip, proxies)
    {
        for hop in forwarded_hops(headers, header).into_iter().rev() {
            match hop {
                Some(ip) => {
                    client = Some(canonical(ip));
                    if !trusted(ip, proxies) {
                        break;
                    }
                }
                // An opaque hop: the client is unknown beyond the last proxy we trust.
                None => break,
            }
        }
    }
    let trusted = edge.is_none_or(|edge| edge.trusts(peer, headers));
    Caller {
        peer,
        client,
        trusted,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use rstest::rstest;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(
                http::HeaderName::from_bytes(k.as_bytes()).expect("name"),
                HeaderValue::from_bytes(v.as_bytes()).expect("value"),
            );
        }
        map
    }

    const PROXIES: &str = "10.0.0.0/8,192.0.2.7";

    #[rstest]
    // An untrusted peer is the client, whatever it forwards.
    #[case(&[("x-forwarded-for", "203.0.113.9")], "198.51.100.1:5000", "198.51.100.1")]
    #[case(&[("forwarded", "for=203.0.113.9")], "198.51.100.1:5000", "198.51.100.1")]
    // The proxies write X-Forwarded-For (the default): a client's own Forwarded is not read.
    #[case(&[("forwarded", "for=5.5.5.5"), ("x-forwarded-for", "203.0.113.9")], "10.1.2.3:5000", "203.0.113.9")]
    #[case(&[("forwarded", "for=5.5.5.5")], "10.1.2.3:5000", "10.1.2.3")]
    // A trusted proxy's nearest untrusted hop is the client; what the client itself prepended
    // (the left-most entry) is not believed.
    #[case(&[("x-forwarded-for", "6.6.6.6, 203.0.113.9")], "10.1.2.3:5000", "203.0.113.9")]
    #[case(&[("x-forwarded-for", "6.6.6.6, 203.0.113.9, 10.9.9.9")], "10.1.2.3:5000", "203.0.113.9")]
    #[case(&[("x-forwarded-for", "203.0.113.9"), ("x-forwarded-for", "10.2.2.2")], "192.0.2.7:80", "203.0.113.9")]
    // An opaque hop stops the walk at the last trusted proxy.
    #[case(&[("x-forwarded-for", "unknown")], "10.1.2.3:5000", "10.1.2.3")]
    #[case(&[("x-forwarded-for", "_hidden, 10.4.4.4")], "10.1.2.3:5000", "10.4.4.4")]
    // A trusted proxy with no forwarding headers is itself the client; so is an all-proxy chain's
    // left-most hop.
    #[case(&[], "10.1.2.3:5000", "10.1.2.3")]
    #[case(&[("x-forwarded-for", "10.5.5.5")], "10.1.2.3:5000", "10.5.5.5")]
    // IPv4-mapped IPv6 peers are matched as IPv4.
    #[case(&[("x-forwarded-for", "203.0.113.9")], "[::ffff:10.1.2.3]:5000", "203.0.113.9")]
    fn the_client_is_the_nearest_hop_that_is_not_a_trusted_proxy(
        #[case] pairs: &[(&str, &str)],
        #[case] peer: &str,
        #[case] expected: &str,
    ) {
        let proxies: Vec<IpNet> = PROXIES.split(',').filter_map(parse_network).collect();
        let caller = caller(
            &headers(pairs),
            Some(peer.parse().expect("peer")),
            (&proxies, ForwardedHeader::XForwardedFor),
            None,
        );
        assert_eq!(caller.client, Some(expected.parse().expect("ip")));
    }

    #[rstest]
    #[case(&[("forwarded", "for=\"[2001:db8::1]:4711\";proto=https, for=10.3.3.3")], "2001:db8::1")]
    #[case(&[("forwarded", "For=198.51.100.17:80;by=10.0.0.1")], "198.51.100.17")]
    // The proxies write Forwarded: a client's own X-Forwarded-For is not read.
    #[case(&[("forwarded", "for=198.51.100.17"), ("x-forwarded-for", "203.0.113.9")], "198.51.100.17")]
    #[case(&[("x-forwarded-for", "203.0.113.9")], "10.1.2.3")]
    #[case(&[("forwarded", "for=unknown")], "10.1.2.3")]
    #[case(&[("forwarded", "for=_hidden, for=10.4.4.4")], "10.4.4.4")]
    fn with_forwarded_configured_only_forwarded_is_read(
        #[case] pairs: &[(&str, &str)],
        #[case] expected: &str,
    ) {
        let proxies: Vec<IpNet> = PROXIES.split(',').filter_map(parse_network).collect();
        let peer = Some("10.1.2.3:5000".parse().expect("peer"));
        let caller = caller(
            &headers(pairs),
            peer,
            (&proxies, ForwardedHeader::Forwarded),
            None,
        );
        assert_eq!(caller.client, Some(expected.parse().expect("ip")));
    }

    #[test]
    fn with_no_trusted_proxies_forwarding_headers_are_ignored() {
        let caller = caller(
            &headers(&[("x-forwarded-for", "203.0.113.9")]),
            Some("127.0.0.1:5000".parse().expect("peer")),
            (&[], ForwardedHeader::default()),
            None,
        );
        assert_eq!(caller.client, Some("127.0.0.1".parse().expect("ip")));
        assert_eq!(caller.peer, caller.client);
    }

    #[test]
    fn without_a_peer_there_is_no_client() {
        let caller = caller(
            &headers(&[("x-forwarded-for", "203.0.113.9")]),
            None,
            (&[], ForwardedHeader::default()),
            None,
        );
        assert_eq!(caller.client, None);
    }

    #[test]
    fn the_edge_trusts_listed_peers_and_the_secret_only() {
        let edge = EdgeTrust {
            callers: vec![parse_network("10.0.0.0/8").expect("net")],
            token: Some(SharedSecret::new("s3cret-s3cret-s3cret")),
        };
        let peer = |p: &str| Some(p.parse::<SocketAddr>().expect("peer"));
        let trusted = |pairs: &[(&str, &str)], p: &str| {
            let no_proxies = (&[][..], ForwardedHeader::default());
            caller(&headers(pairs), peer(p), no_proxies, Some(&edge)).trusted
        };
        assert!(trusted(&[], "10.1.1.1:1"));
        assert!(!trusted(&[], "203.0.113.9:1"));
        // A forwarded address is not a peer: claiming to be 10.x does not help.
        assert!(!trusted(
            &[("x-forwarded-for", "10.1.1.1")],
            "203.0.113.9:1"
        ));
        assert!(trusted(
            &[(GATEWAY_TOKEN_HEADER, "s3cret-s3cret-s3cret")],
            "203.0.113.9:1"
        ));
        assert!(!trusted(
            &[(GATEWAY_TOKEN_HEADER, "s3cret-s3cret-s3creT")],
            "203.0.113.9:1"
        ));
        assert!(!trusted(
            &[(GATEWAY_TOKEN_HEADER, "s3cret")],
            "203.0.113.9:1"
        ));
        // Not the edge: every caller is inside the boundary.
        let no_proxies = (&[][..], ForwardedHeader::default());
        assert!(caller(&headers(&[]), peer("203.0.113.9:1"), no_proxies, None).trusted);
        assert_eq!(format!("{:?}", edge.token), "Some(SharedSecret(***))");
    }

    #[rstest]
    #[case("10.0.0.0/8", true)]
    #[case("192.0.2.7", true)]
    #[case("::1", true)]
    #[case("fd00::/8", true)]
    #[case("10.0.0.0/33", false)]
    #[case("gateway.local", false)]
    fn networks_are_cidrs_or_single_addresses(#[case] entry: &str, #[case] valid: bool) {
        assert_eq!(parse_network(entry).is_some(), valid);
    }
}
