//! `baggage` header parsing and formatting, per W3C Baggage, "Baggage HTTP
//! Header Format" > "Header Content" ("Definition" ABNF; "baggage-string",
//! "key", "value", "property" rules; "Limits"); behaviour for malformed input
//! follows "Mutating baggage".
//!
//! Cross-checked against `w3c/baggage` `test/test_baggage.py` (parser and
//! limit tests of the reference implementation); its cases are rows below.
//!
//! ```abnf
//! baggage-string = list-member 0*179( OWS "," OWS list-member )
//! list-member    = key OWS "=" OWS value *( OWS ";" OWS property )
//! property       = key OWS "=" OWS value
//! property       =/ key OWS
//! key            = token
//! value          = *baggage-octet
//! baggage-octet  = %x21 / %x23-2B / %x2D-3A / %x3C-5B / %x5D-7E
//! ```

use percent_encoding::{AsciiSet, CONTROLS, percent_decode_str, utf8_percent_encode};

/// "Limits", condition 1: a platform MUST propagate up to 64 members.
/// That is the minimum; we use it as our maximum.
pub(crate) const MAX_MEMBERS: usize = 64;
/// "Limits", condition 2: ... and up to 8192 bytes of `baggage-string`.
pub(crate) const MAX_BYTES: usize = 8192;

/// Everything that is not a `baggage-octet` (CTLs, SP, DQUOTE, ',', ';',
/// '\'; non-ASCII is always encoded by `utf8_percent_encode`), plus '%'
/// itself: "The percent code point (U+0025) MUST be percent-encoded."
/// Encoding nothing else keeps values readable and as short as possible.
const ENCODE_SET: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b',')
    .add(b';')
    .add(b'\\')
    .add(b'%');

/// Received size of a value above which its re-encoded form cannot fit:
/// decoding turns at most 3 received bytes ("%XX") into 1 emitted byte.
/// Checked before decoding so a hostile value never costs a large allocation.
const MAX_RAW_VALUE: usize = 3 * MAX_BYTES;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Member {
    pub(crate) key: String,
    /// Percent-decoded.
    pub(crate) value: String,
    /// Normalized, e.g. "p1;p2=v2", empty if none, values kept encoded as received.
    pub(crate) properties: String,
}

/// All baggage header values in order (joined as one list). Malformed members are skipped (others kept);
/// keys are RFC 9110 tokens; value is baggage-octet* with percent-decoding to UTF-8;
/// values may contain '=' (split on the first '='); properties (`;k=v` or `;k`) are kept; OWS allowed per the ABNF.
/// Limits: at most MAX_MEMBERS members, and the encoded size of kept members (as format_baggage would emit them,
/// including separators) at most MAX_BYTES; beyond that whole members are dropped (never truncated mid-member).
///
/// Decisions, with the spec text behind them:
/// - Malformed members are skipped, the rest kept. "Mutating baggage": for input not in
///   the format "the behavior is undefined. For example, it MAY remove an
///   offending list-member before propagating the rest".
/// - Percent-decoded bytes that are not UTF-8 become U+FFFD; the member is
///   kept. "value": "percent-encoded octet sequences that do not match the
///   UTF-8 encoding scheme MUST be replaced with the replacement code point".
/// - A '%' not followed by two hex digits makes the member malformed:
///   "The percent code point (U+0025) MUST be percent-encoded", so such a value
///   has no defined decoding. Same for property values, which follow "the
///   rules for baggage values".
/// - Duplicate keys are all kept, in received order. "baggage-string": "Uniqueness of
///   keys ... is not guaranteed. The order of duplicate entries SHOULD be
///   preserved"; deduplication is only a MAY ("Mutating baggage"). A consumer needing
///   one value per key should take the last one, as a map insert would.
/// - A member that does not fit in the remaining byte budget is dropped whole
///   and scanning continues, so later smaller members may still be kept.
///   "Limits": "The selection of which list-members to drop ... is left to the
///   implementer", "SHOULD propagate as much baggage information as is
///   reasonable", "MUST NOT propagate any partial list-members". Once 64
///   members are kept, scanning stops.
pub(crate) fn parse_baggage(values: &[&str]) -> Vec<Member> {
    let mut out: Vec<Member> = Vec::new();
    let mut used = 0usize;
    // Splitting each field value on ',' equals splitting the RFC 9110
    // combined value (',' cannot occur inside a member) and is lazy, so a huge
    // header is never materialized as a list.
    for raw in values.iter().flat_map(|v| v.split(',')) {
        if out.len() == MAX_MEMBERS {
            break;
        }
        let Some(m) = split_member(raw) else {
            continue;
        };
        if m.raw_value.len() > MAX_RAW_VALUE {
            continue;
        }
        let value = percent_decode_str(m.raw_value).decode_utf8_lossy();
        let size = emitted_len(m.key, &value, m.props_len);
        let Some(new_used) = admit(used, out.is_empty(), size) else {
            continue;
        };
        used = new_used;
        let mut properties = String::with_capacity(m.props_len);
        push_properties(m.raw_props, &mut properties);
        out.push(Member {
            key: m.key.to_owned(),
            value: value.into_owned(),
            properties,
        });
    }
    out
}

/// Percent-encodes values (everything outside baggage-octet, plus '%'); applies the same limits, dropping whole members.
/// Input is `(key, value, properties)`, properties in the `Member::properties`
/// form ("p1;p2=v2", no leading ';'; OWS is tolerated and removed).
/// A member with an invalid key or properties is dropped: emitting it would
/// make receivers drop it anyway, or worse, misparse its neighbours.
/// Returns None if nothing is left.
pub(crate) fn format_baggage<'a>(
    members: impl IntoIterator<Item = (&'a str, &'a str, &'a str)>,
) -> Option<String> {
    let mut out = String::new();
    let mut count = 0usize;
    for (key, value, props) in members {
        if count == MAX_MEMBERS {
            break;
        }
        if !is_token(key) {
            continue;
        }
        let raw_props = (!props.is_empty()).then_some(props);
        let Some(props_len) = properties_len(raw_props) else {
            continue;
        };
        let size = emitted_len(key, value, props_len);
        // `out` is the emitted text itself, so its length is the budget used.
        if admit(out.len(), count == 0, size).is_none() {
            continue;
        }
        if count > 0 {
            out.push(',');
        }
        out.push_str(key);
        out.push('=');
        out.extend(utf8_percent_encode(value, ENCODE_SET));
        if props_len > 0 {
            out.push(';');
            push_properties(raw_props, &mut out);
        }
        count += 1;
    }
    (count > 0).then_some(out)
}

/// A syntactically valid member, still borrowed from the header.
struct RawMember<'a> {
    key: &'a str,
    raw_value: &'a str,
    /// Everything after the first ';', if any.
    raw_props: Option<&'a str>,
    /// Length of the normalized properties string.
    props_len: usize,
}

/// `list-member = key OWS "=" OWS value *( OWS ";" OWS property )`, with the
/// surrounding `OWS` of the list rule. None = malformed or empty.
fn split_member(raw: &str) -> Option<RawMember<'_>> {
    let member = raw.trim_matches(is_ows);
    // ';' is neither in a value nor in a token, so the first ';' ends the
    // key/value part exactly.
    let (kv, raw_props) = match member.split_once(';') {
        Some((kv, props)) => (kv, Some(props)),
        None => (member, None),
    };
    // A token cannot contain '=', so the first '=' is the separator and
    // later ones belong to the value ("value": "Parsers MUST NOT assume that
    // the equal sign is only used to separate key and value").
    let (key, value) = kv.split_once('=')?;
    let key = key.trim_end_matches(is_ows);
    let raw_value = value.trim_matches(is_ows);
    if !is_token(key) || !is_encoded_value(raw_value) {
        return None;
    }
    let props_len = properties_len(raw_props)?;
    Some(RawMember {
        key,
        raw_value,
        raw_props,
        props_len,
    })
}

/// One `property` (text between ';'), OWS allowed around key, '=' and value.
/// The ABNF has no empty property, so "k=v;" and "k=v;;p" are malformed.
fn split_property(raw: &str) -> Option<(&str, Option<&str>)> {
    let p = raw.trim_matches(is_ows);
    match p.split_once('=') {
        None => is_token(p).then_some((p, None)),
        Some((k, v)) => {
            let k = k.trim_end_matches(is_ows);
            let v = v.trim_start_matches(is_ows);
            (is_token(k) && is_encoded_value(v)).then_some((k, Some(v)))
        }
    }
}

/// Validates every property and returns the normalized length
/// (`k` or `k=v`, joined by ';'); 0 when there are none.
fn properties_len(raw: Option<&str>) -> Option<usize> {
    let Some(raw) = raw else {
        return Some(0);
    };
    let mut len = 0usize;
    for (i, p) in raw.split(';').enumerate() {
        let (k, v) = split_property(p)?;
        len += usize::from(i > 0) + k.len() + v.map_or(0, |v| 1 + v.len());
    }
    Some(len)
}

/// Appends the normalized form of properties already validated by
/// `properties_len`. Values stay as received (encoded), as the caller
/// forwards them opaquely.
fn push_properties(raw: Option<&str>, out: &mut String) {
    let Some(raw) = raw else { return };
    for (i, (k, v)) in raw.split(';').filter_map(split_property).enumerate() {
        if i > 0 {
            out.push(';');
        }
        out.push_str(k);
        if let Some(v) = v {
            out.push('=');
            out.push_str(v);
        }
    }
}

/// Bytes `format_baggage` emits for this member, separator excluded.
fn emitted_len(key: &str, decoded_value: &str, props_len: usize) -> usize {
    let value_len: usize = utf8_percent_encode(decoded_value, ENCODE_SET)
        .map(str::len)
        .sum();
    let props = if props_len > 0 { 1 + props_len } else { 0 };
    key.len() + 1 + value_len + props
}

/// New total if a member of `size` bytes still fits, counting its ','
/// separator: the 8192 limit is on the whole `baggage-string`.
fn admit(used: usize, first: bool, size: usize) -> Option<usize> {
    let total = used + usize::from(!first) + size;
    (total <= MAX_BYTES).then_some(total)
}

/// `value = *baggage-octet`, and every '%' starts a valid `pct-encoded`
/// (RFC 3986 2.1: '%' HEXDIG HEXDIG, either case).
fn is_encoded_value(v: &str) -> bool {
    let mut bytes = v.bytes();
    while let Some(b) = bytes.next() {
        if b == b'%' {
            let hi = bytes.next();
            let lo = bytes.next();
            if !(hi.is_some_and(|c| c.is_ascii_hexdigit())
                && lo.is_some_and(|c| c.is_ascii_hexdigit()))
            {
                return false;
            }
        } else if !is_baggage_octet(b) {
            return false;
        }
    }
    true
}

/// `baggage-octet = %x21 / %x23-2B / %x2D-3A / %x3C-5B / %x5D-7E`:
/// printable ASCII except SP, DQUOTE, ',', ';' and '\'.
fn is_baggage_octet(b: u8) -> bool {
    matches!(b, 0x21 | 0x23..=0x2b | 0x2d..=0x3a | 0x3c..=0x5b | 0x5d..=0x7e)
}

/// RFC 9110 5.6.2 `token = 1*tchar` (the spec cites RFC 7230 3.2.6, same rule).
fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_tchar)
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'!' | b'#'
                | b'$'
                | b'%'
                | b'&'
                | b'\''
                | b'*'
                | b'+'
                | b'-'
                | b'.'
                | b'^'
                | b'_'
                | b'`'
                | b'|'
                | b'~'
        )
}

/// HTTP OWS (RFC 9110 5.6.3): SP / HTAB.
fn is_ows(c: char) -> bool {
    c == ' ' || c == '\t'
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn mem(key: &str, value: &str, properties: &str) -> Member {
        Member {
            key: key.to_owned(),
            value: value.to_owned(),
            properties: properties.to_owned(),
        }
    }

    /// The value the reference tests percent-encode with Python's `urllib.parse.quote`.
    const PY_RAW: &str = "\t \"';=asdf!@#$%^&*()";

    #[rstest]
    // --- test_baggage.py: BaggageTest / BaggageEntryTest parsing cases
    #[case::simple(&["SomeKey=SomeValue"], vec![mem("SomeKey", "SomeValue", "")])]
    #[case::multiple(
        &["SomeKey=SomeValue;SomeProp,SomeKey2=SomeValue2;ValueProp=PropVal"],
        vec![mem("SomeKey", "SomeValue", "SomeProp"), mem("SomeKey2", "SomeValue2", "ValueProp=PropVal")]
    )]
    #[case::multiple_ows(
        &["SomeKey \t = \t SomeValue \t ; \t SomeProp \t , \t SomeKey2 \t = \t SomeValue2 \t ; \t ValueProp \t = \t PropVal"],
        vec![mem("SomeKey", "SomeValue", "SomeProp"), mem("SomeKey2", "SomeValue2", "ValueProp=PropVal")]
    )]
    #[case::multiple_kv_property(
        &["SomeKey=SomeValue;SomePropKey=SomePropValue,SomeKey2=SomeValue2;SomePropKey2=SomePropValue2"],
        vec![mem("SomeKey", "SomeValue", "SomePropKey=SomePropValue"), mem("SomeKey2", "SomeValue2", "SomePropKey2=SomePropValue2")]
    )]
    #[case::multiple_kv_property_ows(
        &["SomeKey \t = \t SomeValue \t ; \t SomePropKey=SomePropValue \t , \t SomeKey2 \t = \t SomeValue2 \t ; \t SomePropKey2 \t = \t SomePropValue2"],
        vec![mem("SomeKey", "SomeValue", "SomePropKey=SomePropValue"), mem("SomeKey2", "SomeValue2", "SomePropKey2=SomePropValue2")]
    )]
    #[case::multiple_equals(&["SomeKey=SomeValue=equals"], vec![mem("SomeKey", "SomeValue=equals", "")])]
    #[case::percent_encoded(&["SomeKey=%09%20%22%27%3B%3Dasdf%21%40%23%24%25%5E%26%2A%28%29"], vec![mem("SomeKey", PY_RAW, "")])]
    #[case::percent_encoded_ows(
        &["SomeKey \t = \t %09%20%22%27%3B%3Dasdf%21%40%23%24%25%5E%26%2A%28%29 \t "],
        vec![mem("SomeKey", PY_RAW, "")]
    )]
    #[case::property(&["SomeKey=SomeValue;SomeProp"], vec![mem("SomeKey", "SomeValue", "SomeProp")])]
    #[case::multi_property(
        &["SomeKey=SomeValue;SomeProp;SecondProp=PropValue"],
        vec![mem("SomeKey", "SomeValue", "SomeProp;SecondProp=PropValue")]
    )]
    #[case::same_name_properties(
        &["SomeKey=SomeValue;SomeProp;SomeProp=PropValue;SomeProp=AnotherPropValue"],
        vec![mem("SomeKey", "SomeValue", "SomeProp;SomeProp=PropValue;SomeProp=AnotherPropValue")]
    )]
    #[case::kv_property(&["SomeKey=SomeValue;SomePropKey=SomePropValue"], vec![mem("SomeKey", "SomeValue", "SomePropKey=SomePropValue")])]
    #[case::simple_ows(&["SomeKey \t = \t SomeValue \t "], vec![mem("SomeKey", "SomeValue", "")])]
    #[case::property_ows(&["SomeKey \t = \t SomeValue \t ; \t SomeProp"], vec![mem("SomeKey", "SomeValue", "SomeProp")])]
    #[case::multi_property_ows(
        &["SomeKey \t = \t SomeValue \t ; \t SomeProp \t ; \t SecondProp \t = \t PropValue"],
        vec![mem("SomeKey", "SomeValue", "SomeProp;SecondProp=PropValue")]
    )]
    #[case::kv_property_ows(
        &["SomeKey \t = \t SomeValue \t ; \t SomePropKey \t = \t SomePropValue"],
        vec![mem("SomeKey", "SomeValue", "SomePropKey=SomePropValue")]
    )]
    // property values stay encoded as received
    #[case::percent_encoded_property(
        &["SomeKey=SomeValue;SomePropKey=%09%20%22%27%3B%3Dasdf%21%40%23%24%25%5E%26%2A%28%29"],
        vec![mem("SomeKey", "SomeValue", "SomePropKey=%09%20%22%27%3B%3Dasdf%21%40%23%24%25%5E%26%2A%28%29")]
    )]
    // an encoded '=' does not turn a key-only property into key=value
    #[case::property_without_value_no_decoding(
        &["SomeKey=SomeValue;ValueProp%20%09%20%3D%20%09%20PropVal"],
        vec![mem("SomeKey", "SomeValue", "ValueProp%20%09%20%3D%20%09%20PropVal")]
    )]
    // --- spec examples ("Limits" > "Example" and "Examples of HTTP headers")
    #[case::spec_limits_example(
        &["key1=value1;property1;property2, key2 = value2, key3=value3; propertyKey=propertyValue"],
        vec![
            mem("key1", "value1", "property1;property2"),
            mem("key2", "value2", ""),
            mem("key3", "value3", "propertyKey=propertyValue"),
        ]
    )]
    #[case::spec_amelie(
        &["userId=Am%C3%A9lie,serverNode=DF%2028,isProduction=false"],
        vec![mem("userId", "Amélie", ""), mem("serverNode", "DF 28", ""), mem("isProduction", "false", "")]
    )]
    #[case::spec_multi_header(
        &["userId=alice", "serverNode=DF%2028,isProduction=false"],
        vec![mem("userId", "alice", ""), mem("serverNode", "DF 28", ""), mem("isProduction", "false", "")]
    )]
    #[case::spec_spaces(
        &["userId =   alice", "serverNode = DF%2028, isProduction = false"],
        vec![mem("userId", "alice", ""), mem("serverNode", "DF 28", ""), mem("isProduction", "false", "")]
    )]
    // --- percent decoding
    #[case::multibyte_utf8(&["k=%E2%82%AC%F0%9F%98%80"], vec![mem("k", "€😀", "")])]
    #[case::percent_itself(&["k=100%25"], vec![mem("k", "100%", "")])]
    #[case::lowercase_hex(&["k=%c3%a9"], vec![mem("k", "é", "")])]
    #[case::plus_is_not_space(&["k=a+b"], vec![mem("k", "a+b", "")])]
    #[case::raw_equals_and_encoded(&["k==%3D="], vec![mem("k", "===", "")])]
    // invalid UTF-8 after decoding: U+FFFD, member kept (spec MUST)
    #[case::invalid_utf8(&["k=a%FFb"], vec![mem("k", "a\u{FFFD}b", "")])]
    #[case::truncated_utf8(&["k=%F0%9F%98"], vec![mem("k", "\u{FFFD}", "")])]
    #[case::overlong_utf8(&["k=%C0%AF"], vec![mem("k", "\u{FFFD}\u{FFFD}", "")])]
    // --- values
    #[case::empty_value(&["k="], vec![mem("k", "", "")])]
    #[case::empty_value_ows(&["k = ;p"], vec![mem("k", "", "p")])]
    #[case::empty_property_value(&["k=v;p="], vec![mem("k", "v", "p=")])]
    #[case::all_octets(&["k=!#$&'()*+-./0123456789:<=>?@AZ[]^_`az{|}~"], vec![mem("k", "!#$&'()*+-./0123456789:<=>?@AZ[]^_`az{|}~", "")])]
    #[case::token_key_chars(&["!#$%&'*+-.^_`|~09azAZ=v"], vec![mem("!#$%&'*+-.^_`|~09azAZ", "v", "")])]
    // --- duplicates: all kept, in order
    #[case::duplicates(&["k=1,j=2,k=3"], vec![mem("k", "1", ""), mem("j", "2", ""), mem("k", "3", "")])]
    // --- malformed members are skipped, the others kept
    #[case::bad_key_char(&["a=1,k@y=2,b=3"], vec![mem("a", "1", ""), mem("b", "3", "")])]
    #[case::key_with_space(&["a=1,k y=2"], vec![mem("a", "1", "")])]
    #[case::key_with_quote(&["\"k\"=2,a=1"], vec![mem("a", "1", "")])]
    #[case::empty_key(&["=v,a=1"], vec![mem("a", "1", "")])]
    #[case::missing_eq(&["novalue,a=1"], vec![mem("a", "1", "")])]
    #[case::dquote_in_value(&["a=1,k=x\"y,b=2"], vec![mem("a", "1", ""), mem("b", "2", "")])]
    #[case::backslash_in_value(&["a=1,k=x\\y,b=2"], vec![mem("a", "1", ""), mem("b", "2", "")])]
    #[case::space_in_value(&["k=x y,a=1"], vec![mem("a", "1", "")])]
    #[case::tab_in_value(&["k=x\ty,a=1"], vec![mem("a", "1", "")])]
    #[case::ctl_in_value(&["k=x\u{1}y,a=1"], vec![mem("a", "1", "")])]
    #[case::del_in_value(&["k=x\u{7f},a=1"], vec![mem("a", "1", "")])]
    #[case::raw_utf8_in_value(&["k=Amélie,a=1"], vec![mem("a", "1", "")])]
    #[case::raw_utf8_in_key(&["é=1,a=1"], vec![mem("a", "1", "")])]
    #[case::bad_escape_letters(&["k=%zz,a=1"], vec![mem("a", "1", "")])]
    #[case::bad_escape_short(&["k=%4,a=1"], vec![mem("a", "1", "")])]
    #[case::bad_escape_end(&["k=abc%,a=1"], vec![mem("a", "1", "")])]
    #[case::bad_escape_double(&["k=%%41,a=1"], vec![mem("a", "1", "")])]
    #[case::bad_escape_multibyte(&["k=%é1,a=1"], vec![mem("a", "1", "")])]
    #[case::bad_property_key(&["k=v;p@q,a=1"], vec![mem("a", "1", "")])]
    #[case::bad_property_value(&["k=v;p=x\"y,a=1"], vec![mem("a", "1", "")])]
    #[case::bad_property_escape(&["k=v;p=%g0,a=1"], vec![mem("a", "1", "")])]
    #[case::empty_property(&["k=v;,a=1"], vec![mem("a", "1", "")])]
    #[case::empty_property_middle(&["k=v;p;;q,a=1"], vec![mem("a", "1", "")])]
    #[case::property_no_key(&["k=v;=x,a=1"], vec![mem("a", "1", "")])]
    #[case::only_property(&[";p=1,a=1"], vec![mem("a", "1", "")])]
    // empty members (e.g. from combining an empty header) are skipped
    #[case::empty_members(&[",,a=1, ,\t,"], vec![mem("a", "1", "")])]
    #[case::empty_headers(&["", "a=1", ""], vec![mem("a", "1", "")])]
    #[case::no_headers(&[], vec![])]
    #[case::only_ows(&[" \t "], vec![])]
    // OWS is SP/HTAB only
    #[case::newline_is_not_ows(&["k=v\n,a=1"], vec![mem("a", "1", "")])]
    #[case::nbsp_is_not_ows(&["\u{a0}k=v,a=1"], vec![mem("a", "1", "")])]
    fn parse(#[case] values: &[&str], #[case] expected: Vec<Member>) {
        assert_eq!(parse_baggage(values), expected);
    }

    fn members(n: usize) -> String {
        (0..n)
            .map(|i| format!("k{i}=v"))
            .collect::<Vec<_>>()
            .join(",")
    }

    #[rstest]
    #[case::members_64(members(64), 64, "k63")]
    #[case::members_65(members(65), 64, "k63")]
    // skipped (malformed) members do not count toward the 64
    #[case::malformed_do_not_count(format!("bad,{},=x", members(64)), 64, "k63")]
    fn parse_member_limit(#[case] header: String, #[case] expected: usize, #[case] last_key: &str) {
        let got = parse_baggage(&[&header]);
        assert_eq!(got.len(), expected);
        assert_eq!(got.last().map(|m| m.key.as_str()), Some(last_key));
    }

    #[test]
    fn parse_member_limit_across_headers() {
        let first = members(40);
        let second = (40..80)
            .map(|i| format!("k{i}=v"))
            .collect::<Vec<_>>()
            .join(",");
        let got = parse_baggage(&[&first, &second]);
        assert_eq!(got.len(), MAX_MEMBERS);
        assert_eq!(got[63].key, "k63");
    }

    #[rstest]
    // --- test_baggage.py: test_serialize_long_entry ("a=" + 8190 bytes = 8192)
    #[case::exactly_8192(vec![format!("a={}", "0123456789".repeat(819))], vec![8192])]
    #[case::bytes_8193(vec![format!("a={}", "0123456789".repeat(819) + "x")], vec![])]
    // --- test_serialize_many_entries: 512 x "NNN=0123456789a" (15 + ',' = 16), 8192 total incl. commas
    #[case::many_entries(
        vec![(0..512).map(|x| format!("{x:03}=0123456789a")).collect::<Vec<_>>().join(",")],
        vec![15; 64]
    )]
    // a member that would cross 8192 is dropped whole; a later small one still fits
    #[case::big_dropped_small_kept(
        vec![format!("a={},b={},c=1", "x".repeat(4000), "y".repeat(5000))],
        vec![4002, 3]
    )]
    // the separator counts: 8190 + ',' + "c=" = 8193, but "c" alone can't be shorter
    #[case::separator_counts(vec![format!("a={}", "x".repeat(8188)), "c=".to_owned()], vec![8190])]
    #[case::separator_fits(vec![format!("a={}", "x".repeat(8187)), "c=".to_owned()], vec![8189, 2])]
    // size is measured as re-emitted: "%41" is sent as "A", OWS is not sent
    #[case::measured_reencoded(vec![format!("a = {}", "%41".repeat(8190))], vec![8192])]
    // ... and a raw "%25" stays 3 bytes
    #[case::percent_stays_encoded(vec![format!("a={}", "%25".repeat(2730))], vec![8192])]
    #[case::percent_too_big(vec![format!("a={}x", "%25".repeat(2730))], vec![])]
    // properties count too
    #[case::properties_count(vec![format!("a={};p={}", "x".repeat(4000), "y".repeat(4187))], vec![8192])]
    #[case::properties_too_big(vec![format!("a={};p={}", "x".repeat(4000), "y".repeat(4188))], vec![])]
    fn parse_byte_limit(#[case] values: Vec<String>, #[case] expected_sizes: Vec<usize>) {
        let refs: Vec<&str> = values.iter().map(String::as_str).collect();
        let got = parse_baggage(&refs);
        let emitted = format_baggage(
            got.iter()
                .map(|m| (m.key.as_str(), m.value.as_str(), m.properties.as_str())),
        );
        let sizes: Vec<usize> = emitted
            .as_deref()
            .map(|s| s.split(',').map(str::len).collect())
            .unwrap_or_default();
        assert_eq!(sizes, expected_sizes);
        // what we keep is exactly what we can send: nothing is dropped on re-emit
        assert_eq!(sizes.len(), got.len());
        assert!(emitted.map_or(0, |s| s.len()) <= MAX_BYTES);
    }

    #[rstest]
    #[case::huge_members("k=v,".repeat(1 << 18), 64)]
    #[case::huge_value(format!("a=1,k={},b=2", "x".repeat(1 << 20)), 2)]
    #[case::huge_encoded_value(format!("a=1,k={},b=2", "%41".repeat(1 << 19)), 2)]
    #[case::huge_key(format!("{}=v,b=2", "k".repeat(1 << 20)), 1)]
    #[case::huge_properties(format!("a=1;{}b=2", "p;".repeat(1 << 19)), 0)]
    #[case::huge_ows(format!("a{}={}1", " ".repeat(1 << 19), "\t".repeat(1 << 19)), 1)]
    #[case::huge_commas(",".repeat(1 << 20), 0)]
    #[case::huge_garbage("é\"\\;".repeat(1 << 18), 0)]
    #[case::huge_non_ascii("😀".repeat(1 << 18), 0)]
    fn parse_huge(#[case] header: String, #[case] expected: usize) {
        let got = parse_baggage(&[&header]);
        assert_eq!(got.len(), expected);
        let total: usize = got
            .iter()
            .map(|m| m.key.len() + m.value.len() + m.properties.len())
            .sum();
        assert!(total <= MAX_BYTES);
    }

    #[rstest]
    #[case::simple(vec![("k", "v", "")], Some("k=v"))]
    #[case::empty(vec![], None)]
    #[case::all_dropped(vec![("bad key", "v", "")], None)]
    #[case::spec_example(
        vec![("userId", "Amélie", ""), ("serverNode", "DF 28", ""), ("isProduction", "false", "")],
        Some("userId=Am%C3%A9lie,serverNode=DF%2028,isProduction=false")
    )]
    // only non-baggage-octets and '%' are encoded; '=' is left alone
    #[case::encode_set(vec![("k", PY_RAW, "")], Some("k=%09%20%22'%3B=asdf!@#$%25^&*()"))]
    #[case::encode_specials(vec![("k", "a,b;c\\d\"e f%g", "")], Some("k=a%2Cb%3Bc%5Cd%22e%20f%25g"))]
    #[case::control_and_del(vec![("k", "\u{0}\u{1f}\u{7f}", "")], Some("k=%00%1F%7F"))]
    #[case::properties(vec![("k", "v", "p1;p2=v2")], Some("k=v;p1;p2=v2"))]
    #[case::properties_normalized(vec![("k", "v", " p1 ; p2 = v2 ")], Some("k=v;p1;p2=v2"))]
    #[case::bad_properties_dropped(vec![("k", "v", ";p1"), ("j", "v", "p=\"")], None)]
    #[case::empty_value(vec![("k", "", "")], Some("k="))]
    #[case::duplicates_kept(vec![("k", "1", ""), ("k", "2", "")], Some("k=1,k=2"))]
    #[case::invalid_key_skipped(vec![("a", "1", ""), ("k=", "2", ""), ("", "3", ""), ("b", "4", "")], Some("a=1,b=4"))]
    fn format(#[case] members: Vec<(&str, &str, &str)>, #[case] expected: Option<&str>) {
        assert_eq!(format_baggage(members).as_deref(), expected);
    }

    #[rstest]
    // --- test_baggage.py: test_serialize_at_least_64
    #[case::members_64(64, 64)]
    #[case::members_65(65, 64)]
    #[case::members_1000(1000, 64)]
    fn format_member_limit(#[case] n: usize, #[case] expected: usize) {
        let keys: Vec<String> = (0..n).map(|i| format!("key{i}")).collect();
        let out =
            format_baggage(keys.iter().map(|k| (k.as_str(), "value", ""))).expect("non-empty");
        assert_eq!(out.split(',').count(), expected);
    }

    #[rstest]
    #[case::exactly_8192(vec![("a".to_owned(), "0123456789".repeat(819))], Some(8192))]
    #[case::bytes_8193(vec![("a".to_owned(), "0123456789".repeat(819) + "x")], None)]
    // encoding expands the value: 2730 * "%" -> 8190 bytes
    #[case::encoding_counts(vec![("a".to_owned(), "%".repeat(2730))], Some(8192))]
    #[case::encoding_too_big(vec![("a".to_owned(), "%".repeat(2731))], None)]
    #[case::big_dropped_small_kept(
        vec![("a".to_owned(), "x".repeat(4000)), ("b".to_owned(), "y".repeat(5000)), ("c".to_owned(), "1".to_owned())],
        Some(4002 + 1 + 3)
    )]
    fn format_byte_limit(
        #[case] members: Vec<(String, String)>,
        #[case] expected_len: Option<usize>,
    ) {
        let out = format_baggage(members.iter().map(|(k, v)| (k.as_str(), v.as_str(), "")));
        assert_eq!(out.as_ref().map(String::len), expected_len);
    }

    #[rstest]
    #[case::percent("100%")]
    #[case::python(PY_RAW)]
    #[case::multibyte("Amélie € 😀 日本")]
    #[case::equals("a=b==c")]
    #[case::all_ascii(&(0u8..=0x7f).map(char::from).collect::<String>())]
    #[case::empty("")]
    #[case::replacement("\u{FFFD}")]
    fn value_round_trip(#[case] value: &str) {
        let header = format_baggage([("k", value, "p1;p2=%25x")]).expect("non-empty");
        assert_eq!(
            parse_baggage(&[&header]),
            vec![mem("k", value, "p1;p2=%25x")]
        );
    }

    #[test]
    fn properties_round_trip() {
        let parsed = parse_baggage(&["a = 1 ; p1 ; p2 = v%202 , b=2;q"]);
        let out = format_baggage(
            parsed
                .iter()
                .map(|m| (m.key.as_str(), m.value.as_str(), m.properties.as_str())),
        )
        .expect("non-empty");
        assert_eq!(out, "a=1;p1;p2=v%202,b=2;q");
        assert_eq!(parse_baggage(&[&out]), parsed);
    }

    #[test]
    fn encode_set_is_complement_of_baggage_octet_plus_percent() {
        for b in 0u8..=0x7f {
            let s = char::from(b).to_string();
            let encoded = utf8_percent_encode(&s, ENCODE_SET).to_string() != s;
            assert_eq!(encoded, !is_baggage_octet(b) || b == b'%', "byte {b:#04x}");
        }
    }
}
