//! `traceparent` header parsing and formatting, per W3C Trace Context Level 2,
//! "Trace Context HTTP Request Headers Format" > "Traceparent Header"
//! (subsections "traceparent Header Field Values", "trace-flags" and
//! "Versioning of traceparent"), plus the receive steps 2.2 / 2.3 of
//! "Processing Model" > "A traceparent is Received".
//!
//! Cross-checked against the conformance harness `w3c/trace-context`
//! `test/test.py` (`test_traceparent_*`); every traceparent request there is a
//! row in the tables below.

/// Trace-flags bit 0: the caller may have recorded trace data.
pub(crate) const FLAG_SAMPLED: u8 = 0x01;
/// Trace-flags bit 1 (Level 2): the right-most 7 bytes of the trace-id are random.
pub(crate) const FLAG_RANDOM: u8 = 0x02;

/// The only flags this level of the spec defines; everything else is reserved
/// ("Vendors MUST set those to zero").
const KNOWN_FLAGS: u8 = FLAG_SAMPLED | FLAG_RANDOM;

/// `version "-" trace-id "-" parent-id "-" trace-flags` = 2+1+32+1+16+1+2.
const V00_LEN: usize = 55;
const VERSION_INVALID: u8 = 0xff;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TraceParent {
    pub(crate) version: u8,
    pub(crate) trace_id: u128,
    pub(crate) parent_id: u64,
    pub(crate) flags: u8,
}

/// `values` = all `traceparent` header values received, in order. More than one header => None.
pub(crate) fn parse_traceparent(values: &[&str]) -> Option<TraceParent> {
    // traceparent is a single-valued field; two of them cannot be combined
    // into one, so the harness (test_traceparent_duplicated) expects a restart.
    let [value] = values else {
        return None;
    };
    // The header value may carry HTTP OWS (test_traceparent_ows_handling);
    // it is not part of the field.
    let b = value.trim_matches(is_ows).as_bytes();

    // Everything below works on bytes and only ever accepts ASCII hex and '-',
    // so non-ASCII input is rejected without caring about char boundaries.
    let version = hex_u8(b.get(0..2)?)?;
    if version == VERSION_INVALID {
        return None;
    }
    if version == 0 {
        // Version 00 is fully specified: anything after the flags (even
        // "-more") is an error (test_traceparent_version_0x00).
        if b.len() != V00_LEN {
            return None;
        }
    } else {
        // "Versioning of traceparent": a higher version is assumed to be additive: shorter than 55
        // means "restart"; longer must continue with '-' after the flags
        // ("either at the end of the string or followed by a dash").
        if b.len() < V00_LEN {
            return None;
        }
        if b.len() > V00_LEN && b.get(V00_LEN) != Some(&b'-') {
            return None;
        }
    }

    // Delimiters are checked explicitly so that a too-long field (e.g. a
    // 33-char trace-id) cannot be mistaken for a neighbouring field.
    if b.get(2) != Some(&b'-') || b.get(35) != Some(&b'-') || b.get(52) != Some(&b'-') {
        return None;
    }
    let trace_id = hex_u128(b.get(3..35)?)?;
    let parent_id = hex_u64(b.get(36..52)?)?;
    let raw_flags = hex_u8(b.get(53..55)?)?;

    // All-zero ids are explicitly invalid: "vendors MUST ignore the entire header".
    if trace_id == 0 || parent_id == 0 {
        return None;
    }

    // For version 00 the caller gets the byte exactly as received and decides
    // what to forward. For a higher version, processing model step 2.2 says the
    // vendor "will only parse the trace-flags values supported by this version
    // ... Vendors will set all unparsed / unknown trace-flags to 0", so bits
    // whose meaning may differ in that version are dropped here.
    let flags = if version == 0 {
        raw_flags
    } else {
        raw_flags & KNOWN_FLAGS
    };

    Some(TraceParent {
        version,
        trace_id,
        parent_id,
        flags,
    })
}

/// Always emits version 00; only the defined flag bits (sampled 0x01, random 0x02) are kept,
/// others zeroed (spec: vendors MUST set reserved flags to zero).
///
/// The caller must not pass all-zero ids: they would produce a header every
/// receiver is required to ignore. This function cannot fail, so it does not
/// check (and never panics).
pub(crate) fn format_traceparent(trace_id: u128, parent_id: u64, flags: u8) -> String {
    // "Versioning of traceparent": "construct the new traceparent field according to the highest
    // version of the specification known to the implementation": 00. The `x`
    // formatter emits lowercase, which HEXDIGLC requires.
    format!(
        "00-{trace_id:032x}-{parent_id:016x}-{:02x}",
        flags & KNOWN_FLAGS
    )
}

/// HTTP OWS (RFC 9110 5.6.3) is SP / HTAB only; other whitespace is an error.
fn is_ows(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// HEXDIGLC only: uppercase hex is not a valid encoding of these fields.
fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

// Hand-written instead of `from_str_radix`, which would also accept a leading
// '+' and uppercase digits.
fn hex_u128(s: &[u8]) -> Option<u128> {
    s.iter().try_fold(0u128, |acc, &c| {
        Some((acc << 4) | u128::from(hex_digit(c)?))
    })
}

fn hex_u64(s: &[u8]) -> Option<u64> {
    s.iter()
        .try_fold(0u64, |acc, &c| Some((acc << 4) | u64::from(hex_digit(c)?)))
}

fn hex_u8(s: &[u8]) -> Option<u8> {
    s.iter()
        .try_fold(0u8, |acc, &c| Some((acc << 4) | hex_digit(c)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    const TID: u128 = 0x1234_5678_9012_3456_7890_1234_5678_9012;
    const PID: u64 = 0x1234_5678_9012_3456;

    fn tp(version: u8, flags: u8) -> Option<TraceParent> {
        Some(TraceParent {
            version,
            trace_id: TID,
            parent_id: PID,
            flags,
        })
    }

    #[rstest]
    // --- test.py: test_traceparent_included_tracestate_missing / header_name_valid_casing
    #[case::valid("00-12345678901234567890123456789012-1234567890123456-01", tp(0, 1))]
    #[case::valid_unsampled("00-12345678901234567890123456789012-1234567890123456-00", tp(0, 0))]
    // --- test.py: test_propagates_random_flag (Level 2)
    #[case::random_flag("00-12345678901234567890123456789012-1234567890123456-02", tp(0, 2))]
    // version 00: flags byte is returned as received (reserved bits included)
    #[case::v00_flags_ff("00-12345678901234567890123456789012-1234567890123456-ff", tp(0, 0xff))]
    #[case::v00_flags_03("00-12345678901234567890123456789012-1234567890123456-03", tp(0, 3))]
    // --- test.py: test_traceparent_version_0x00
    #[case::v00_trailing_dot("00-12345678901234567890123456789012-1234567890123456-01.", None)]
    #[case::v00_future_suffix(
        "00-12345678901234567890123456789012-1234567890123456-01-what-the-future-will-be-like",
        None
    )]
    // --- test.py: test_traceparent_version_0xcc
    #[case::vcc("cc-12345678901234567890123456789012-1234567890123456-01", tp(0xcc, 1))]
    #[case::vcc_suffix(
        "cc-12345678901234567890123456789012-1234567890123456-01-what-the-future-will-be-like",
        tp(0xcc, 1)
    )]
    #[case::vcc_dot_suffix(
        "cc-12345678901234567890123456789012-1234567890123456-01.what-the-future-will-be-like",
        None
    )]
    // future version: unknown flag bits are zeroed (processing model 2.2)
    #[case::vcc_flags_ff("cc-12345678901234567890123456789012-1234567890123456-ff", tp(0xcc, 3))]
    #[case::vcc_flags_04("cc-12345678901234567890123456789012-1234567890123456-04", tp(0xcc, 0))]
    #[case::v01_suffix_dash_only(
        "01-12345678901234567890123456789012-1234567890123456-01-",
        tp(1, 1)
    )]
    #[case::vfe("fe-12345678901234567890123456789012-1234567890123456-00", tp(0xfe, 0))]
    // future version still needs the version-00 layout in its first 55 chars
    #[case::vcc_short("cc-12345678901234567890123456789012-1234567890123456-0", None)]
    #[case::vcc_bad_flags("cc-12345678901234567890123456789012-1234567890123456-0g-x", None)]
    #[case::vcc_zero_trace("cc-00000000000000000000000000000000-1234567890123456-01", None)]
    #[case::vcc_long_trace("cc-123456789012345678901234567890123-1234567890123456-01", None)]
    // --- test.py: test_traceparent_version_0xff
    #[case::vff("ff-12345678901234567890123456789012-1234567890123456-01", None)]
    // --- test.py: test_traceparent_version_illegal_characters
    #[case::version_dot0(".0-12345678901234567890123456789012-1234567890123456-01", None)]
    #[case::version_0dot("0.-12345678901234567890123456789012-1234567890123456-01", None)]
    // --- test.py: test_traceparent_version_too_long / too_short
    #[case::version_3("000-12345678901234567890123456789012-1234567890123456-01", None)]
    #[case::version_4("0000-12345678901234567890123456789012-1234567890123456-01", None)]
    #[case::version_1("0-12345678901234567890123456789012-1234567890123456-01", None)]
    // --- test.py: test_traceparent_trace_id_all_zero
    #[case::trace_zero("00-00000000000000000000000000000000-1234567890123456-01", None)]
    // --- test.py: test_traceparent_trace_id_illegal_characters
    #[case::trace_dot_first("00-.2345678901234567890123456789012-1234567890123456-01", None)]
    #[case::trace_dot_last("00-1234567890123456789012345678901.-1234567890123456-01", None)]
    // --- test.py: test_traceparent_trace_id_too_long / too_short
    #[case::trace_33("00-123456789012345678901234567890123-1234567890123456-01", None)]
    #[case::trace_31("00-1234567890123456789012345678901-1234567890123456-01", None)]
    // --- test.py: test_traceparent_parent_id_all_zero
    #[case::parent_zero("00-12345678901234567890123456789012-0000000000000000-01", None)]
    // --- test.py: test_traceparent_parent_id_illegal_characters
    #[case::parent_dot_first("00-12345678901234567890123456789012-.234567890123456-01", None)]
    #[case::parent_dot_last("00-12345678901234567890123456789012-123456789012345.-01", None)]
    // --- test.py: test_traceparent_parent_id_too_long / too_short
    #[case::parent_17("00-12345678901234567890123456789012-12345678901234567-01", None)]
    #[case::parent_15("00-12345678901234567890123456789012-123456789012345-01", None)]
    // --- test.py: test_traceparent_trace_flags_illegal_characters / too_long / too_short
    #[case::flags_dot_first("00-12345678901234567890123456789012-1234567890123456-.0", None)]
    #[case::flags_dot_last("00-12345678901234567890123456789012-1234567890123456-0.", None)]
    #[case::flags_3("00-12345678901234567890123456789012-1234567890123456-001", None)]
    #[case::flags_1("00-12345678901234567890123456789012-1234567890123456-1", None)]
    // --- test.py: test_traceparent_ows_handling
    #[case::ows_sp_lead(" 00-12345678901234567890123456789012-1234567890123456-01", tp(0, 1))]
    #[case::ows_tab_lead("\t00-12345678901234567890123456789012-1234567890123456-01", tp(0, 1))]
    #[case::ows_sp_trail("00-12345678901234567890123456789012-1234567890123456-01 ", tp(0, 1))]
    #[case::ows_tab_trail("00-12345678901234567890123456789012-1234567890123456-01\t", tp(0, 1))]
    #[case::ows_both(
        "\t 00-12345678901234567890123456789012-1234567890123456-01 \t",
        tp(0, 1)
    )]
    // only SP/HTAB are OWS
    #[case::newline("00-12345678901234567890123456789012-1234567890123456-01\n", None)]
    #[case::inner_space("00-12345678901234567890123456789012 -1234567890123456-01", None)]
    // HEXDIGLC: uppercase is invalid in every field
    #[case::upper_trace("00-ABCDEF78901234567890123456789012-1234567890123456-01", None)]
    #[case::upper_parent("00-12345678901234567890123456789012-ABCDEF7890123456-01", None)]
    #[case::upper_flags("00-12345678901234567890123456789012-1234567890123456-0A", None)]
    #[case::upper_version("0A-12345678901234567890123456789012-1234567890123456-01", None)]
    // from_str_radix would accept these; we must not
    #[case::plus_sign("00-+2345678901234567890123456789012-1234567890123456-01", None)]
    #[case::plus_flags("00-12345678901234567890123456789012-1234567890123456-+1", None)]
    // wrong delimiters
    #[case::underscore("00_12345678901234567890123456789012_1234567890123456_01", None)]
    #[case::missing_last_dash("00-12345678901234567890123456789012-1234567890123456001", None)]
    // degenerate input
    #[case::empty("", None)]
    #[case::only_ows(" \t ", None)]
    #[case::dashes("---------------------------------------------------------", None)]
    // non-ASCII, including multibyte chars straddling every field boundary
    #[case::non_ascii_trace("00-1234567890123456789012345678901é-1234567890123456-01", None)]
    #[case::non_ascii_version("é-12345678901234567890123456789012-1234567890123456-01", None)]
    #[case::non_ascii_delim("00€12345678901234567890123456789012-123456789012345-01", None)]
    #[case::non_ascii_flags("00-12345678901234567890123456789012-1234567890123456-é", None)]
    #[case::emoji_suffix(
        "cc-12345678901234567890123456789012-1234567890123456-01-😀",
        tp(0xcc, 1)
    )]
    #[case::emoji_at_55("cc-12345678901234567890123456789012-1234567890123456-01😀", None)]
    #[case::max_ids(
        "00-ffffffffffffffffffffffffffffffff-ffffffffffffffff-01",
        Some(TraceParent { version: 0, trace_id: u128::MAX, parent_id: u64::MAX, flags: 1 })
    )]
    #[case::min_ids(
        "00-00000000000000000000000000000001-0000000000000001-00",
        Some(TraceParent { version: 0, trace_id: 1, parent_id: 1, flags: 0 })
    )]
    #[case::spec_example(
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        Some(TraceParent {
            version: 0,
            trace_id: 0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736,
            parent_id: 0x00f0_67aa_0ba9_02b7,
            flags: 1,
        })
    )]
    fn parse_single(#[case] input: &str, #[case] expected: Option<TraceParent>) {
        assert_eq!(parse_traceparent(&[input]), expected);
    }

    const VALID: &str = "00-12345678901234567890123456789012-1234567890123456-01";

    #[rstest]
    #[case::none(&[], None)]
    #[case::one(&[VALID], tp(0, 1))]
    // test.py: test_traceparent_duplicated
    #[case::two_different(
        &[
            "00-12345678901234567890123456789011-1234567890123456-01",
            "00-12345678901234567890123456789012-1234567890123456-01",
        ],
        None
    )]
    #[case::two_identical(&[VALID, VALID], None)]
    #[case::valid_and_empty(&[VALID, ""], None)]
    // an intermediary that comma-joined two traceparent lines into one value
    #[case::comma_joined(
        &["00-12345678901234567890123456789012-1234567890123456-01, 00-12345678901234567890123456789012-1234567890123456-01"],
        None
    )]
    fn parse_header_count(#[case] values: &[&str], #[case] expected: Option<TraceParent>) {
        assert_eq!(parse_traceparent(values), expected);
    }

    #[rstest]
    #[case::huge_future(format!("cc-12345678901234567890123456789012-1234567890123456-01-{}", "x".repeat(1 << 20)), tp(0xcc, 1))]
    #[case::huge_v00(format!("00-12345678901234567890123456789012-1234567890123456-01{}", "0".repeat(1 << 20)), None)]
    #[case::huge_garbage("é".repeat(1 << 19), None)]
    #[case::huge_ows(format!("{}{VALID}{}", " ".repeat(1 << 19), "\t".repeat(1 << 19)), tp(0, 1))]
    fn parse_huge(#[case] input: String, #[case] expected: Option<TraceParent>) {
        assert_eq!(parse_traceparent(&[&input]), expected);
    }

    #[rstest]
    #[case::sampled(TID, PID, FLAG_SAMPLED, VALID)]
    #[case::none(TID, PID, 0, "00-12345678901234567890123456789012-1234567890123456-00")]
    #[case::random(
        TID,
        PID,
        FLAG_RANDOM,
        "00-12345678901234567890123456789012-1234567890123456-02"
    )]
    #[case::both(TID, PID, FLAG_SAMPLED | FLAG_RANDOM, "00-12345678901234567890123456789012-1234567890123456-03")]
    // reserved bits are zeroed ("Vendors MUST set those to zero")
    #[case::reserved(
        TID,
        PID,
        0xff,
        "00-12345678901234567890123456789012-1234567890123456-03"
    )]
    #[case::reserved_only(
        TID,
        PID,
        0xfc,
        "00-12345678901234567890123456789012-1234567890123456-00"
    )]
    // leading zeros are kept so the fields stay fixed width
    #[case::small_ids(1, 1, 1, "00-00000000000000000000000000000001-0000000000000001-01")]
    #[case::lowercase(
        0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736,
        0x00f0_67aa_0ba9_02b7,
        1,
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    )]
    fn format(
        #[case] trace_id: u128,
        #[case] parent_id: u64,
        #[case] flags: u8,
        #[case] expected: &str,
    ) {
        let s = format_traceparent(trace_id, parent_id, flags);
        assert_eq!(s, expected);
        assert_eq!(s.len(), V00_LEN);
    }

    #[rstest]
    #[case::v00(VALID)]
    #[case::downgrade("cc-12345678901234567890123456789012-1234567890123456-ff-extra")]
    fn round_trip_downgrades_to_v00(#[case] input: &str) {
        let p = parse_traceparent(&[input]).expect("valid");
        let out = format_traceparent(p.trace_id, p.parent_id, p.flags);
        let again = parse_traceparent(&[&out]).expect("formatted output parses");
        assert_eq!(again.version, 0);
        assert_eq!(again.trace_id, p.trace_id);
        assert_eq!(again.parent_id, p.parent_id);
        assert_eq!(again.flags, p.flags & KNOWN_FLAGS);
    }
}
