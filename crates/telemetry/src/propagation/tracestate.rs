//! `tracestate` header parsing and formatting, per W3C Trace Context Level 2,
//! "Trace Context HTTP Request Headers Format" > "Tracestate Header"
//! (subsections "tracestate Header Field Values": list / key / value ABNF,
//! "Combined Header Value" > "tracestate Limits") and "Mutating the
//! tracestate Field".
//!
//! Cross-checked against the conformance harness `w3c/trace-context`
//! `test/test.py` (`test_tracestate_*`, including the #584 key-grammar fix);
//! every tracestate request there is a row in the tables below.
//!
//! "Tracestate Header" also says: "If the vendor failed to parse
//! `traceparent`, it MUST NOT attempt to parse `tracestate`", and "Processing
//! Model" > "No traceparent Received" step 3 says a `tracestate` without
//! `traceparent` MUST be discarded. Both are the propagator's job; this
//! module only knows about the `tracestate` text.

/// "There can be a maximum of 32 `list-member`s in a `list`."
const MAX_MEMBERS: usize = 32;
/// "tracestate Limits": "Vendors SHOULD propagate at least 512 characters of a
/// combined header. This length includes commas ... and optional white space".
/// We propagate exactly that minimum; a longer received header is discarded
/// whole (product decision: never truncate what we received).
const MAX_LEN: usize = 512;
/// Both key and value are limited to 256 characters by the ABNF.
const MAX_KEY_LEN: usize = 256;
const MAX_VALUE_LEN: usize = 256;
/// "tracestate Limits": "Entries larger than 128 characters long SHOULD be removed
/// first" when the header has to be shortened.
const LARGE_ENTRY_LEN: usize = 128;

/// `values` = all `tracestate` header values in order; they are joined as one list (RFC 9110 combining).
/// Returns None when the combined list is invalid in any way (then the whole tracestate is discarded, never truncated);
/// Some(vec![]) when empty/only empty members. Order preserved.
///
/// Duplicate keys are not an error: the first (left-most, i.e. most recently
/// written) occurrence is kept and later ones dropped. "Only one entry per key
/// is allowed" binds senders; for receivers "Mutating the tracestate Field"
/// says "vendors MAY also discard duplicate keys", and test.py
/// `test_tracestate_duplicated_keys` requires the tracestate to be inherited,
/// so discarding the whole list would fail the conformance harness.
pub(crate) fn parse_tracestate(values: &[&str]) -> Option<Vec<(String, String)>> {
    // Length is checked on the raw text before anything is parsed or
    // allocated, so an oversized header costs O(number of header values).
    // Combining per RFC 9110 5.3 puts one ',' between field values; an empty
    // field line still contributes its separator, like in the combined text.
    let mut combined_len = 0usize;
    for (i, v) in values.iter().enumerate() {
        combined_len = combined_len
            .saturating_add(v.len())
            .saturating_add(usize::from(i > 0));
        if combined_len > MAX_LEN {
            return None;
        }
    }

    let mut out: Vec<(String, String)> = Vec::new();
    // Splitting every field value on ',' is equivalent to splitting the
    // combined value, because ',' can occur in neither key nor value; this
    // avoids building the joined string.
    for raw in values.iter().flat_map(|v| v.split(',')) {
        // "Spaces and horizontal tabs surrounding list-members are ignored."
        let member = raw.trim_matches(is_ows);
        // `list-member = (key "=" value) / OWS`: empty members are allowed
        // because combining several (possibly empty) headers produces them.
        if member.is_empty() {
            continue;
        }
        // The key cannot contain '=', so the first '=' is the separator; any
        // further '=' lands in the value, where it is invalid (test.py
        // "foo=bar=baz"). No OWS is allowed between key and '=' ("foo =1").
        let (key, value) = member.split_once('=')?;
        // Trailing OWS was trimmed above ("trailing spaces are considered to
        // be optional whitespace"); leading spaces stay part of the value
        // ("All leading spaces MUST be preserved").
        if !is_valid_key(key) || !is_valid_value(value) {
            return None;
        }
        if out.iter().any(|(k, _)| k == key) {
            continue;
        }
        // Bound the work on hostile input: a 33rd member already makes the
        // list invalid (test.py test_tracestate_member_count_limit discards it).
        if out.len() == MAX_MEMBERS {
            return None;
        }
        out.push((key.to_owned(), value.to_owned()));
    }
    Some(out)
}

/// Serializes `members` in order (the caller puts its own, newest entry first,
/// per "Mutating the tracestate Field"). Returns None if nothing is left to send ("Vendors ... SHOULD
/// avoid sending" empty headers).
///
/// Because this builds the header that goes on the wire, it enforces the
/// sender-side rules rather than rejecting the whole list:
/// - invalid pairs are skipped (they would make receivers discard everything);
/// - a repeated key is skipped, keeping the first: "Adding a key/value pair
///   MUST NOT result in the same key being present multiple times";
/// - beyond 32 members "the right-most list-member should be removed";
/// - beyond 512 characters whole entries are removed, entries over 128
///   characters first, then from the end ("tracestate Limits").
pub(crate) fn format_tracestate<'a>(
    members: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Option<String> {
    let mut kept: Vec<(&str, &str)> = Vec::new();
    for (key, value) in members {
        if kept.len() == MAX_MEMBERS {
            break;
        }
        if !is_valid_key(key) || !is_valid_value(value) || kept.iter().any(|(k, _)| *k == key) {
            continue;
        }
        kept.push((key, value));
    }

    let entry_len = |(k, v): &(&str, &str)| k.len() + 1 + v.len();
    let total_len = |list: &[(&str, &str)]| {
        list.iter().map(entry_len).sum::<usize>() + list.len().saturating_sub(1)
    };
    while total_len(&kept) > MAX_LEN {
        // The spec orders large entries first but does not say which large
        // one; removing from the right matches its "then from the end" rule
        // and keeps the newest (left-most) entries.
        let victim = kept
            .iter()
            .rposition(|e| entry_len(e) > LARGE_ENTRY_LEN)
            .unwrap_or(kept.len().saturating_sub(1));
        kept.remove(victim);
    }

    if kept.is_empty() {
        return None;
    }
    let mut out = String::with_capacity(total_len(&kept));
    for (i, (k, v)) in kept.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(k);
        out.push('=');
        out.push_str(v);
    }
    Some(out)
}

/// `key = ( lcalpha / DIGIT ) 0*255 ( keychar )`,
/// `keychar = lcalpha / DIGIT / "_" / "-"/ "*" / "/" / "@"`.
///
/// Level 2 replaced Level 1's `simple-key` / `multi-tenant-key` split (with
/// its 241/14 tenant/system length limits) by this single rule; '@' may now
/// appear anywhere but first and any number of times. test.py was aligned
/// with that in #584 ("foo@", "foo@@bar", "t"*242+"@v" are all accepted).
pub(crate) fn is_valid_key(key: &str) -> bool {
    let b = key.as_bytes();
    let Some((&first, rest)) = b.split_first() else {
        return false;
    };
    b.len() <= MAX_KEY_LEN
        && (first.is_ascii_lowercase() || first.is_ascii_digit())
        && rest.iter().all(|&c| {
            c.is_ascii_lowercase()
                || c.is_ascii_digit()
                || matches!(c, b'_' | b'-' | b'*' | b'/' | b'@')
        })
}

/// `value = 0*255(chr) nblk-chr`, `nblk-chr = %x21-2B / %x2D-3C / %x3E-7E`,
/// `chr = %x20 / nblk-chr`: 1..=256 printable ASCII chars except ',' and '=',
/// not ending in a space. An empty value is invalid (test.py "foo=,bar=3").
pub(crate) fn is_valid_value(value: &str) -> bool {
    let b = value.as_bytes();
    let Some(&last) = b.last() else {
        return false;
    };
    b.len() <= MAX_VALUE_LEN && last != b' ' && b.iter().all(|&c| is_chr(c))
}

fn is_chr(c: u8) -> bool {
    matches!(c, 0x20..=0x7e) && c != b',' && c != b'='
}

/// HTTP OWS (RFC 9110 5.6.3): SP / HTAB.
fn is_ows(c: char) -> bool {
    c == ' ' || c == '\t'
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    type Members = Vec<(String, String)>;

    fn m(pairs: &[(&str, &str)]) -> Option<Members> {
        Some(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        )
    }

    /// test_tracestate_all_allowed_characters: every lcalpha/DIGIT/keychar.
    const ALL_KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789_-*/";
    const ALL_KEY_AT: &str = "abcdefghijklmnopqrstuvwxyz0123456789_-*/@a-z0-9_-*/";

    /// Every `chr` value char, in order (0x20-0x2B, 0x2D-0x3C, 0x3E-0x7E).
    fn all_value_chars() -> String {
        (0x20u8..=0x7e)
            .filter(|&c| c != b',' && c != b'=')
            .map(char::from)
            .collect()
    }

    fn numbered(from: usize, to: usize) -> String {
        (from..=to)
            .map(|i| format!("bar{i:02}={i:02}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    #[rstest]
    // --- test.py: test_tracestate_included_traceparent_included
    #[case::two(&["foo=1,bar=2"], m(&[("foo", "1"), ("bar", "2")]))]
    // --- test.py: test_tracestate_empty_header
    #[case::empty_header(&[""], m(&[]))]
    #[case::value_then_empty(&["foo=1", ""], m(&[("foo", "1")]))]
    #[case::empty_then_value(&["", "foo=1"], m(&[("foo", "1")]))]
    #[case::no_headers(&[], m(&[]))]
    // --- test.py: test_tracestate_multiple_headers_different_keys (order kept)
    #[case::multi_header(
        &["foo=1,bar=2", "rojo=1,congo=2", "baz=3"],
        m(&[("foo", "1"), ("bar", "2"), ("rojo", "1"), ("congo", "2"), ("baz", "3")])
    )]
    // --- test.py: test_tracestate_duplicated_keys: "expects the tracestate to
    // be inherited, and the duplicated keys to be either kept as-is or one of
    // them to be discarded" -- so discarding everything would fail the
    // harness. We keep the first (left-most = most recent) one.
    #[case::dup_same(&["foo=1,foo=1"], m(&[("foo", "1")]))]
    #[case::dup_diff(&["foo=1,foo=2"], m(&[("foo", "1")]))]
    #[case::dup_same_headers(&["foo=1", "foo=1"], m(&[("foo", "1")]))]
    #[case::dup_diff_headers(&["foo=1", "foo=2"], m(&[("foo", "1")]))]
    #[case::dup_order(&["a=1,b=2,a=3,c=4"], m(&[("a", "1"), ("b", "2"), ("c", "4")]))]
    // --- test.py: test_tracestate_ows_handling
    #[case::ows_1(&["foo=1 \t , \t bar=2, \t baz=3"], m(&[("foo", "1"), ("bar", "2"), ("baz", "3")]))]
    #[case::ows_2(&["foo=1\t \t,\t \tbar=2,\t \tbaz=3"], m(&[("foo", "1"), ("bar", "2"), ("baz", "3")]))]
    #[case::ows_lead_sp(&[" foo=1"], m(&[("foo", "1")]))]
    #[case::ows_lead_tab(&["\tfoo=1"], m(&[("foo", "1")]))]
    #[case::ows_trail_sp(&["foo=1 "], m(&[("foo", "1")]))]
    #[case::ows_trail_tab(&["foo=1\t"], m(&[("foo", "1")]))]
    #[case::ows_both(&["\t foo=1 \t"], m(&[("foo", "1")]))]
    // empty / whitespace-only members are allowed and skipped
    #[case::empty_members(&[",, ,\t,foo=1,,"], m(&[("foo", "1")]))]
    #[case::only_commas(&[" , , "], m(&[]))]
    // leading spaces of a value are part of it; tabs are not chr
    #[case::value_lead_space(&["foo= 1"], m(&[("foo", " 1")]))]
    #[case::value_inner_space(&["foo=a b"], m(&[("foo", "a b")]))]
    #[case::value_lead_tab(&["foo=\t1"], None)]
    #[case::value_only_spaces(&["foo=   "], None)]
    // --- test.py: test_tracestate_key_illegal_characters
    #[case::key_space(&["foo =1"], None)]
    #[case::key_upper(&["FOO=1"], None)]
    #[case::key_dot(&["foo.bar=1"], None)]
    // --- test.py: test_tracestate_key_illegal_vendor_format (after #584)
    #[case::at_trailing(&["foo@=1,bar=2"], m(&[("foo@", "1"), ("bar", "2")]))]
    #[case::at_leading(&["@foo=1,bar=2"], None)]
    #[case::at_double(&["foo@@bar=1,bar=2"], m(&[("foo@@bar", "1"), ("bar", "2")]))]
    #[case::at_twice(&["foo@bar@baz=1,bar=2"], m(&[("foo@bar@baz", "1"), ("bar", "2")]))]
    // --- test.py: test_tracestate_value_illegal_characters
    #[case::value_eq(&["foo=bar=baz"], None)]
    #[case::value_empty(&["foo=,bar=3"], None)]
    // one bad member discards the whole list, wherever it is
    #[case::bad_last(&["foo=1,bar=2,BAD=3"], None)]
    #[case::bad_in_second_header(&["foo=1", "bar"], None)]
    #[case::no_eq(&["foobarbaz"], None)]
    #[case::no_key(&["=1"], None)]
    #[case::digit_first(&["1special=x"], m(&[("1special", "x")]))]
    #[case::spec_example(&["rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"], m(&[("rojo", "00f067aa0ba902b7"), ("congo", "t61rcWkgMzE")]))]
    // non-ASCII anywhere is invalid, and must not panic
    #[case::non_ascii_key(&["fôo=1"], None)]
    #[case::non_ascii_value(&["foo=é"], None)]
    #[case::emoji(&["😀=😀"], None)]
    #[case::nbsp_ows(&["\u{a0}foo=1"], None)]
    #[case::ctl(&["foo=1\u{7f}"], None)]
    #[case::newline(&["foo=1\n"], None)]
    fn parse(#[case] values: &[&str], #[case] expected: Option<Members>) {
        assert_eq!(parse_tracestate(values), expected);
    }

    // --- test.py: test_tracestate_all_allowed_characters
    #[rstest]
    #[case::without_at(ALL_KEY)]
    #[case::with_at(ALL_KEY_AT)]
    fn parse_all_allowed_characters(#[case] key: &str) {
        let value = all_value_chars();
        let header = format!("{key}={value}");
        assert_eq!(parse_tracestate(&[&header]), m(&[(key, &value)]));
        // and it survives a round trip byte for byte
        assert_eq!(
            format_tracestate([(key, value.as_str())]).as_deref(),
            Some(header.as_str())
        );
    }

    // --- test.py: test_tracestate_member_count_limit
    #[rstest]
    #[case::exactly_32(
        vec![numbered(1, 10), numbered(11, 20), numbered(21, 30), numbered(31, 32)],
        Some(32)
    )]
    #[case::members_33(
        vec![numbered(1, 10), numbered(11, 20), numbered(21, 30), numbered(31, 33)],
        None
    )]
    // empty members do not count toward the 32
    #[case::padding_does_not_count(vec![format!("{},,,,,,", numbered(1, 32))], Some(32))]
    // duplicates are dropped, so they do not count either
    #[case::dups_do_not_count(vec![numbered(1, 32), "bar01=01".to_owned()], Some(32))]
    fn parse_member_count(#[case] values: Vec<String>, #[case] expected_len: Option<usize>) {
        let refs: Vec<&str> = values.iter().map(String::as_str).collect();
        let got = parse_tracestate(&refs);
        assert_eq!(got.as_ref().map(Vec::len), expected_len);
        if let Some(list) = got {
            assert_eq!(list[0], ("bar01".to_owned(), "01".to_owned()));
        }
    }

    // --- test.py: test_tracestate_key_length_limit (after #584)
    #[rstest]
    #[case::key_256("z".repeat(256), true)]
    #[case::key_257("z".repeat(257), false)]
    #[case::tenant_241_system_14(format!("{}@{}", "t".repeat(241), "v".repeat(14)), true)]
    #[case::tenant_242_system_1(format!("{}@v", "t".repeat(242)), true)]
    #[case::tenant_1_system_15(format!("t@{}", "v".repeat(15)), true)]
    fn parse_key_length(#[case] key: String, #[case] accepted: bool) {
        let second = format!("{key}=1");
        let expected = accepted.then(|| {
            vec![
                ("foo".to_owned(), "1".to_owned()),
                (key.clone(), "1".to_owned()),
            ]
        });
        assert_eq!(parse_tracestate(&["foo=1", &second]), expected);
    }

    #[rstest]
    #[case::value_256("x".repeat(256), true)]
    #[case::value_257("x".repeat(257), false)]
    fn parse_value_length(#[case] value: String, #[case] accepted: bool) {
        let header = format!("foo={value}");
        assert_eq!(parse_tracestate(&[&header]).is_some(), accepted);
    }

    // "tracestate Limits": limit on the combined header, OWS and commas included.
    #[rstest]
    // "k=" + 510 chars = 512: but a value is at most 256, so build it from members
    #[case::exactly_512(512, true)]
    #[case::len_513(513, false)]
    fn parse_total_length(#[case] len: usize, #[case] accepted: bool) {
        // two members of 255 bytes joined by "," plus trailing OWS padding
        let member_a = format!("a={}", "x".repeat(252)); // 254
        let member_b = format!("b={}", "y".repeat(252)); // 254
        let pad = " ".repeat(len - 254 - 1 - 254);
        let header = format!("{member_a},{member_b}{pad}");
        assert_eq!(header.len(), len);
        assert_eq!(parse_tracestate(&[&header]).is_some(), accepted);
        // the same text split over two header fields (the separator counts)
        let second = format!("{member_b}{pad}");
        assert_eq!(parse_tracestate(&[&member_a, &second]).is_some(), accepted);
    }

    #[rstest]
    #[case::huge_single("a=1,".repeat(1 << 18))]
    #[case::huge_ows(format!("foo=1{}", " ".repeat(1 << 20)))]
    #[case::huge_non_ascii("é".repeat(1 << 19))]
    #[case::huge_value(format!("foo={}", "x".repeat(1 << 20)))]
    fn parse_huge_is_discarded(#[case] header: String) {
        assert_eq!(parse_tracestate(&[&header]), None);
    }

    #[test]
    fn parse_many_header_values_is_bounded() {
        // a million empty field lines: rejected by the length check alone
        let values = vec![""; 1_000_000];
        assert_eq!(parse_tracestate(&values), None);
    }

    #[rstest]
    #[case::simple("foo", true)]
    #[case::digit_first("1foo", true)]
    #[case::all(ALL_KEY_AT, true)]
    #[case::at_end("special@", true)]
    #[case::at_start("@vendor", false)]
    #[case::underscore_first("_foo", false)]
    #[case::dot("special.vendor", false)]
    #[case::upper("Foo", false)]
    #[case::empty("", false)]
    #[case::space("fo o", false)]
    #[case::non_ascii("fé", false)]
    fn key_grammar(#[case] key: &str, #[case] valid: bool) {
        assert_eq!(is_valid_key(key), valid);
    }

    #[rstest]
    #[case::simple("abc", true)]
    #[case::lead_space(" abc", true)]
    #[case::trail_space("abc ", false)]
    #[case::comma("a,b", false)]
    #[case::eq("a=b", false)]
    #[case::tab("a\tb", false)]
    #[case::empty("", false)]
    #[case::tilde("~", true)]
    #[case::del("\u{7f}", false)]
    #[case::non_ascii("é", false)]
    fn value_grammar(#[case] value: &str, #[case] valid: bool) {
        assert_eq!(is_valid_value(value), valid);
    }

    #[rstest]
    #[case::empty(vec![], None)]
    #[case::one(vec![("foo", "1")], Some("foo=1"))]
    #[case::order(vec![("congo", "t61rcWkgMzE"), ("rojo", "00f067aa0ba902b7")], Some("congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"))]
    #[case::skip_invalid(vec![("FOO", "1"), ("bar", "2"), ("baz", ""), ("qux", "a,b")], Some("bar=2"))]
    #[case::all_invalid(vec![("FOO", "1")], None)]
    #[case::dup_keeps_first(vec![("foo", "new"), ("bar", "2"), ("foo", "old")], Some("foo=new,bar=2"))]
    fn format(#[case] members: Vec<(&str, &str)>, #[case] expected: Option<&str>) {
        assert_eq!(format_tracestate(members).as_deref(), expected);
    }

    #[rstest]
    // "the right-most list-member should be removed"
    #[case::members_33(33, 32)]
    #[case::members_32(32, 32)]
    #[case::members_1000(1000, 32)]
    fn format_member_limit(#[case] n: usize, #[case] expected: usize) {
        let keys: Vec<String> = (0..n).map(|i| format!("k{i}")).collect();
        let out = format_tracestate(keys.iter().map(|k| (k.as_str(), "v"))).expect("non-empty");
        let got: Vec<&str> = out.split(',').collect();
        assert_eq!(got.len(), expected);
        assert_eq!(got[0], "k0=v");
        assert_eq!(got[expected - 1], format!("k{}=v", expected - 1));
    }

    #[rstest]
    // a 200-char entry in the middle goes first, even though it is not last
    #[case::large_entry_first(
        vec![
            ("new".to_owned(), "x".repeat(200)),
            ("big".to_owned(), "y".repeat(200)),
            ("s1".to_owned(), "z".repeat(60)),
            ("s2".to_owned(), "z".repeat(60)),
        ],
        vec!["new", "s1", "s2"]
    )]
    // with no large entries, remove from the end
    #[case::from_the_end(
        (0..6).map(|i| (format!("k{i}"), "v".repeat(100))).collect(),
        vec!["k0", "k1", "k2", "k3"]
    )]
    // 255 + 1 + 256 = exactly 512
    #[case::exactly_512(vec![("a".to_owned(), "v".repeat(253)), ("b".to_owned(), "w".repeat(254))], vec!["a", "b"])]
    fn format_length_limit(
        #[case] members: Vec<(String, String)>,
        #[case] expected_keys: Vec<&str>,
    ) {
        let out = format_tracestate(members.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .expect("non-empty");
        assert!(out.len() <= MAX_LEN, "{} > {MAX_LEN}", out.len());
        let keys: Vec<&str> = out
            .split(',')
            .filter_map(|e| e.split_once('='))
            .map(|(k, _)| k)
            .collect();
        assert_eq!(keys, expected_keys);
        // whatever we send, we accept
        assert!(parse_tracestate(&[&out]).is_some());
    }

    #[test]
    fn round_trip() {
        let parsed = parse_tracestate(&["rojo=00f067aa0ba902b7 , congo=t61rcWkgMzE", "a@b= x"])
            .expect("valid");
        let out = format_tracestate(parsed.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .expect("non-empty");
        assert_eq!(out, "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE,a@b= x");
        assert_eq!(parse_tracestate(&[&out]), Some(parsed));
    }
}
