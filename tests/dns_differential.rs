//! Differential test (issue 13): poolguard against a reference resolver, query by query.
//!
//! A real Unbound (the distribution's package, `module-config: "iterator"`: a non-validating
//! forwarder like poolguard) and poolguard forward to the same in-test authoritative server
//! (`tests/fixtures/diff.test.zone`, `other.test.zone`). Every query of a bounded cross product
//! (names × types × EDNS {none, 512, 1232, 4096} × {DO, CD, AD} × {UDP, TCP}, plus other
//! opcodes, zone transfers, EDNS version 1, a malformed EDNS option, CHAOS, special-use names
//! and RD=0) goes to both, and the answers must agree on rcode, header flags, OPT presence, EDNS
//! version and DO bit, and the three sections as sorted lists of records with the TTL left out;
//! poolguard must echo ID and question (letter case included). poolguard is asked each query twice
//! (the first is a cache miss for that name and type, the second may come from its packet
//! cache), Unbound too, and round n is compared with round n.
//!
//! What poolguard does differently on purpose is the table [`INTENDED`]: each entry says which
//! queries, what differs, why, and what poolguard must answer instead (that is checked too).
//! A difference that is a poolguard bug is never listed there: the test asserts the reference's
//! answer. All mismatches are collected and reported in one failure.

mod common;

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::HINFO;
use hickory_proto::rr::rdata::opt::EdnsOption;
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};

use common::unbound::Unbound;
use common::{FeedSpec, Proto, SINK_V4, SINK_V6, TestBed, Upstream, fixture};

/// How long one exchange may take before it counts as "no answer" (a mismatch, not a hang).
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(3);

// ---------------------------------------------------------------------------------------------
// The queries

/// Names and the types asked for each (fully qualified; see the zone files for what each is).
const NAMES: &[(&str, &[RecordType])] = {
    use RecordType::*;
    &[
        // Plain data of every common type, and NODATA (www has no MX, the apex no A).
        ("diff.test.", &[SOA, NS, MX, CAA, A]),
        ("www.diff.test.", &[A, AAAA, MX, TXT]),
        ("WwW.DiFf.TeSt.", &[A]),
        ("mail.diff.test.", &[A, AAAA]),
        ("txt.diff.test.", &[TXT]),
        ("_sip._udp.diff.test.", &[SRV]),
        ("host.diff.test.", &[HINFO]),
        ("www.diff.test.", &[Unknown(65280)]),
        // CNAME chains of one, two and four links; the CNAME itself; NODATA behind a CNAME.
        ("c1.diff.test.", &[A, AAAA, CNAME, TXT]),
        ("c2.diff.test.", &[A]),
        ("c4.diff.test.", &[A, AAAA]),
        ("tomail.diff.test.", &[A, MX]),
        // NXDOMAIN: plain, below a name that does not exist, at the end of CNAME chains.
        ("nope.diff.test.", &[A, TXT]),
        ("deep.nope.diff.test.", &[A]),
        ("dangling.diff.test.", &[A, CNAME]),
        ("dangling2.diff.test.", &[A]),
        // CNAME loops.
        ("loop1.diff.test.", &[A]),
        ("self.diff.test.", &[A]),
        // CNAMEs leaving the zone: to the other zone, and to a zone nobody serves.
        ("out.diff.test.", &[A]),
        ("outchain.diff.test.", &[A]),
        ("lame.diff.test.", &[A]),
        ("www.other.test.", &[A]),
        ("www.nozone.test.", &[A]),
        // Wildcards (RFC 4592) and an empty non-terminal.
        ("x.wild.diff.test.", &[A, TXT, AAAA]),
        ("a.b.wild.diff.test.", &[A]),
        ("real.wild.diff.test.", &[A, TXT]),
        ("wild.diff.test.", &[A]),
        ("b.ent.diff.test.", &[A]),
        ("ent.diff.test.", &[A]),
        ("a.b.ent.diff.test.", &[A]),
        // TXT answers on either side of 512 and 1,232 bytes (sizes in the zone file).
        ("t0490.diff.test.", &[TXT]),
        ("t0501.diff.test.", &[TXT]),
        ("t0512.diff.test.", &[TXT]),
        ("t0513.diff.test.", &[TXT]),
        ("t1200.diff.test.", &[TXT]),
        ("t1221.diff.test.", &[TXT]),
        ("t1222.diff.test.", &[TXT]),
        ("t1400.diff.test.", &[TXT]),
        // An answer that fits in 512 bytes with additional addresses that do not.
        ("bigmx.diff.test.", &[MX]),
        // Blocked: by name, through a CNAME, by address (intended differences).
        ("blocked.diff.test.", &[A, AAAA, TXT]),
        ("viablocked.diff.test.", &[A]),
        ("badip.diff.test.", &[A]),
        ("nxblocked.diff.test.", &[A, TXT]),
        ("nodatablocked.diff.test.", &[A]),
        ("refusedblocked.diff.test.", &[A]),
        // ANY (intended difference: RFC 8482).
        ("www.diff.test.", &[ANY]),
    ]
};

/// EDNS as the client sends it: none, or an OPT advertising this UDP size.
const EDNS_SIZES: [Option<u16>; 4] = [None, Some(512), Some(1232), Some(4096)];

/// One query sent to both resolvers.
#[derive(Clone, Copy, Debug)]
struct Case {
    qname: &'static str,
    qtype: RecordType,
    qclass: DNSClass,
    opcode: OpCode,
    rd: bool,
    /// The OPT record's UDP size, or no OPT record.
    edns: Option<u16>,
    /// EDNS version in the OPT record (only 0 is defined; 1 must get BADVERS).
    edns_version: u8,
    /// The OPT record carries an option whose length runs past the record's data.
    bad_option: bool,
    do_bit: bool,
    cd: bool,
    ad: bool,
    proto: Proto,
}

impl Case {
    /// A standard query: class IN, opcode QUERY, RD set, no EDNS, no other bits.
    fn new(qname: &'static str, qtype: RecordType) -> Self {
        Self {
            qname,
            qtype,
            qclass: DNSClass::IN,
            opcode: OpCode::Query,
            rd: true,
            edns: None,
            edns_version: 0,
            bad_option: false,
            do_bit: false,
            cd: false,
            ad: false,
            proto: Proto::Udp,
        }
    }

    fn label(&self) -> String {
        let mut s = format!("{:?} {} {}", self.proto, self.qname, self.qtype);
        if self.qclass != DNSClass::IN {
            write!(s, " class={}", self.qclass).unwrap_or(());
        }
        if self.opcode != OpCode::Query {
            write!(s, " opcode={:?}", self.opcode).unwrap_or(());
        }
        if !self.rd {
            s.push_str(" RD=0");
        }
        match self.edns {
            Some(size) => write!(s, " edns={size}").unwrap_or(()),
            None => s.push_str(" no-edns"),
        }
        if self.edns_version != 0 {
            write!(s, " edns-version={}", self.edns_version).unwrap_or(());
        }
        if self.bad_option {
            s.push_str(" +overrunning-option");
        }
        for (on, bit) in [(self.do_bit, "DO"), (self.cd, "CD"), (self.ad, "AD")] {
            if on {
                write!(s, " +{bit}").unwrap_or(());
            }
        }
        s
    }

    fn lower_name(&self) -> String {
        self.qname.to_ascii_lowercase()
    }

    /// The query without its OPT record (what the response must echo).
    fn message(&self, id: u16) -> Message {
        let mut m = Message::new(id, MessageType::Query, self.opcode);
        m.metadata.recursion_desired = self.rd;
        m.metadata.checking_disabled = self.cd;
        m.metadata.authentic_data = self.ad;
        let mut q = Query::query(Name::from_ascii(self.qname).expect("test name"), self.qtype);
        q.set_query_class(self.qclass);
        m.add_query(q);
        m
    }

    /// The query on the wire: [`Case::message`] plus an OPT record written by hand (RFC 6891
    /// §6.1.2), so the version and a malformed option can be sent as well.
    fn wire(&self, message: &Message) -> Vec<u8> {
        let mut bytes = message.to_vec().expect("encode query");
        let Some(size) = self.edns else {
            return bytes;
        };
        // ARCOUNT + 1.
        let arcount = u16::from_be_bytes([bytes[10], bytes[11]]) + 1;
        bytes[10..12].copy_from_slice(&arcount.to_be_bytes());
        let options: &[u8] = if self.bad_option {
            // Option 65001 claims 10 bytes of data; the record ends after its 4-byte header.
            &[0xfd, 0xe9, 0x00, 0x0a]
        } else {
            &[]
        };
        let ttl = (u32::from(self.edns_version) << 16) | if self.do_bit { 0x8000 } else { 0 };
        bytes.push(0); // root owner
        bytes.extend_from_slice(&u16::from(RecordType::OPT).to_be_bytes());
        bytes.extend_from_slice(&size.to_be_bytes());
        bytes.extend_from_slice(&ttl.to_be_bytes());
        bytes.extend_from_slice(&(options.len() as u16).to_be_bytes());
        bytes.extend_from_slice(options);
        bytes
    }
}

/// `t0490.diff.test.` and the like: the TXT records sized around 512 and 1,232 bytes.
fn is_sized_txt(qname: &str) -> bool {
    let b = qname.as_bytes();
    b.first() == Some(&b't') && b.get(1).is_some_and(u8::is_ascii_digit)
}

/// Every case over UDP and over TCP.
fn both_transports(cases: impl IntoIterator<Item = Case>) -> Vec<Case> {
    cases
        .into_iter()
        .flat_map(|c| [Proto::Udp, Proto::Tcp].map(|proto| Case { proto, ..c }))
        .collect()
}

/// The cross product: every name and type, with every EDNS size and each of the DO, CD and AD
/// bits alone (DO needs an OPT record), and the sized TXT names also with DO and CD together.
/// Bounded: about 40 names × types × 15 variants × 2 transports.
fn cases() -> Vec<Case> {
    let mut out = Vec::new();
    for (qname, types) in NAMES {
        for &qtype in *types {
            for edns in EDNS_SIZES {
                let mut bits = vec![(false, false, false), (false, true, false)];
                bits.push((false, false, true));
                if edns.is_some() {
                    bits.push((true, false, false));
                    if is_sized_txt(qname) {
                        bits.push((true, true, false));
                    }
                }
                for (do_bit, cd, ad) in bits {
                    out.push(Case {
                        edns,
                        do_bit,
                        cd,
                        ad,
                        ..Case::new(qname, qtype)
                    });
                }
            }
        }
    }
    out.extend(special_cases());
    both_transports(out)
}

/// Queries outside the standard shape, each without and with EDNS: other opcodes, zone
/// transfers, EDNS version 1 and a malformed option, CHAOS, special-use names, RD=0.
fn special_cases() -> Vec<Case> {
    use RecordType::*;
    let q = Case::new;
    let specials = [
        // Opcodes a forwarder does not implement (issue 13 point 6).
        Case {
            opcode: OpCode::Notify,
            rd: false,
            ..q("diff.test.", SOA)
        },
        Case {
            opcode: OpCode::Update,
            rd: false,
            ..q("diff.test.", SOA)
        },
        Case {
            opcode: OpCode::Status,
            ..q("diff.test.", SOA)
        },
        Case {
            opcode: OpCode::Unknown(3),
            ..q("diff.test.", SOA)
        },
        // Zone transfers: not proxied by either.
        q("diff.test.", AXFR),
        q("diff.test.", IXFR),
        Case {
            rd: false,
            ..q("diff.test.", AXFR)
        },
        Case {
            rd: false,
            ..q("diff.test.", IXFR)
        },
        // CHAOS: neither discloses a version (the reference runs with hide-version).
        Case {
            qclass: DNSClass::CH,
            ..q("version.bind.", TXT)
        },
        // Special-use names answered locally (RFC 6761).
        q("foo.invalid.", A),
        q("invalid.", SOA),
        q("invalid.", A),
        q("localhost.", SOA),
        q("localhost.", NS),
        q("invalid.", NS),
        q("foo.onion.", A),
        q("localhost.", A),
        q("localhost.", AAAA),
        q("localhost.", MX),
        q("x.localhost.", A),
        q("1.0.0.127.in-addr.arpa.", PTR),
        // No recursion desired.
        Case {
            rd: false,
            ..q("www.diff.test.", A)
        },
        Case {
            rd: false,
            ..q("nope.diff.test.", A)
        },
    ];
    let mut out = Vec::new();
    for case in specials {
        out.push(case);
        out.push(Case {
            edns: Some(1232),
            ..case
        });
    }
    // EDNS version 1 (BADVERS, RFC 6891 §6.1.3) and an option whose length overruns the OPT
    // record (issue 13 point 4).
    out.push(Case {
        edns: Some(1232),
        edns_version: 1,
        ..q("www.diff.test.", A)
    });
    out.push(Case {
        edns: Some(1232),
        bad_option: true,
        ..q("www.diff.test.", A)
    });
    out
}

// ---------------------------------------------------------------------------------------------
// What is compared

/// The parts of a response that must agree, in comparable form.
#[derive(Debug, Clone, PartialEq, Eq)]
struct View {
    /// Wire size, for the report only (never compared).
    size: usize,
    id_echoed: bool,
    question_echoed: bool,
    rcode: ResponseCode,
    aa: bool,
    tc: bool,
    rd: bool,
    ra: bool,
    ad: bool,
    cd: bool,
    /// `None` without an OPT record; else (DO bit, EDNS version, option codes except EDE).
    opt: Option<(bool, u8, Vec<u16>)>,
    /// The RFC 8914 INFO-CODE, if any (compared only through [`INTENDED`]).
    ede: Option<u16>,
    answer: Vec<String>,
    authority: Vec<String>,
    additional: Vec<String>,
}

/// A record as `name type class rdata`, owner lower-case, TTL left out.
fn record_text(r: &Record) -> String {
    format!(
        "{} {} {} {}",
        r.name.to_lowercase(),
        r.record_type(),
        r.dns_class,
        r.data
    )
}

/// The question as sent, letter case included (hickory's `Name` compares case-insensitively).
fn question(m: &Message) -> Vec<String> {
    m.queries
        .iter()
        .map(|q| {
            format!(
                "{} {} {}",
                q.name().to_ascii(),
                q.query_type(),
                q.query_class()
            )
        })
        .collect()
}

fn section(records: &[Record]) -> Vec<String> {
    let mut v: Vec<String> = records.iter().map(record_text).collect();
    v.sort();
    v
}

impl View {
    fn of(request: &Message, bytes: &[u8]) -> Result<Self, String> {
        let m = Message::from_vec(bytes).map_err(|e| format!("undecodable response: {e}"))?;
        let md = &m.metadata;
        let opt = m.edns.as_ref().map(|e| {
            let mut codes: Vec<u16> = e
                .options()
                .as_ref()
                .iter()
                .map(|(code, _)| u16::from(*code))
                .filter(|&c| c != 15)
                .collect();
            codes.sort_unstable();
            (e.flags().dnssec_ok, e.version(), codes)
        });
        let ede = m.edns.as_ref().and_then(|e| {
            e.options()
                .as_ref()
                .iter()
                .find_map(|(_, option)| match option {
                    EdnsOption::Unknown(15, data) if data.len() >= 2 => {
                        Some(u16::from_be_bytes([data[0], data[1]]))
                    }
                    _ => None,
                })
        });
        Ok(Self {
            size: bytes.len(),
            id_echoed: md.id == request.metadata.id,
            question_echoed: question(&m) == question(request),
            rcode: md.response_code,
            aa: md.authoritative,
            tc: md.truncation,
            rd: md.recursion_desired,
            ra: md.recursion_available,
            ad: md.authentic_data,
            cd: md.checking_disabled,
            opt,
            ede,
            answer: section(&m.answers),
            authority: section(&m.authorities),
            additional: section(&m.additionals),
        })
    }

    fn flags(&self) -> String {
        let mut s = String::new();
        for (on, f) in [
            (self.aa, "aa"),
            (self.tc, "tc"),
            (self.rd, "rd"),
            (self.ra, "ra"),
            (self.ad, "ad"),
            (self.cd, "cd"),
        ] {
            if on {
                if !s.is_empty() {
                    s.push(' ');
                }
                s.push_str(f);
            }
        }
        s
    }
}

/// The parts of a response an [`Intended`] difference may take out of the comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    /// The response code.
    Rcode,
    /// The RA flag.
    Ra,
    /// The RD flag.
    Rd,
    /// The fields of SOA records in the answer and authority sections (their owner and
    /// section are still compared).
    SoaRdata,
    /// The answer, authority and additional sections.
    Sections,
    /// NS records in the authority section (the rest of the sections is still compared).
    AuthorityNs,
}

/// Where the two answers differ (empty when they agree), as readable lines.
fn differences(reference: &View, ours: &View) -> Vec<String> {
    let mut out = Vec::new();
    if !ours.id_echoed {
        out.push("poolguard: ID not echoed".to_string());
    }
    if !ours.question_echoed {
        out.push("poolguard: question not echoed as sent".to_string());
    }
    if reference.rcode != ours.rcode {
        out.push(format!(
            "rcode: unbound {:?}, poolguard {:?}",
            reference.rcode, ours.rcode
        ));
    }
    if reference.flags() != ours.flags() {
        out.push(format!(
            "flags: unbound [{}], poolguard [{}]",
            reference.flags(),
            ours.flags()
        ));
    }
    if reference.opt != ours.opt {
        let show = |o: &Option<(bool, u8, Vec<u16>)>| match o {
            None => "no OPT".to_string(),
            Some((d, v, codes)) => format!("OPT do={} version={v} options={codes:?}", *d as u8),
        };
        out.push(format!(
            "OPT: unbound {}, poolguard {}",
            show(&reference.opt),
            show(&ours.opt)
        ));
    }
    for (what, r, o) in [
        ("answer", &reference.answer, &ours.answer),
        ("authority", &reference.authority, &ours.authority),
        ("additional", &reference.additional, &ours.additional),
    ] {
        if r != o {
            let only_r: Vec<&String> = r.iter().filter(|x| !o.contains(x)).collect();
            let only_o: Vec<&String> = o.iter().filter(|x| !r.contains(x)).collect();
            let mut line = format!("{what}:");
            if !only_r.is_empty() {
                write!(line, " only unbound {only_r:?}").unwrap_or(());
            }
            if !only_o.is_empty() {
                write!(line, " only poolguard {only_o:?}").unwrap_or(());
            }
            if only_r.is_empty() && only_o.is_empty() {
                write!(line, " same records, different counts {r:?} vs {o:?}").unwrap_or(());
            }
            out.push(line);
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Intended differences

/// A difference poolguard makes by design. `check` states what poolguard answers instead, so an
/// intended difference is still asserted, only against poolguard's own rule.
struct Intended {
    /// Which queries.
    applies: fn(&Case) -> bool,
    /// The query Unbound is asked instead, when poolguard answers this one as Unbound answers
    /// another (`None`: the same query).
    reference: Option<fn(Case) -> Case>,
    /// The parts left out of the comparison with Unbound; everything else must still agree.
    differs: &'static [Part],
    /// Why poolguard differs, with the reference.
    why: &'static str,
    /// poolguard's own answer for these queries: `Err` says what is wrong with it.
    check: fn(&Case, &View) -> Result<(), String>,
}

/// The action the differential test's feeds (see [`feeds`]) take on a name, if it is blocked.
fn block_action(name: &str) -> Option<&'static str> {
    match name {
        "blocked.diff.test." | "viablocked.diff.test." | "badip.diff.test." => Some("sinkhole"),
        "nxblocked.diff.test." => Some("nxdomain"),
        "nodatablocked.diff.test." => Some("nodata"),
        "refusedblocked.diff.test." => Some("refuse"),
        _ => None,
    }
}

fn is_blocked(name: &str) -> bool {
    block_action(name).is_some()
}

/// poolguard's block answer: the action's rcode and records (README, "blocked name"), the synthetic
/// SOA owned by the query name on negative answers (RFC 2308 §5), EDE 15 to EDNS clients.
fn check_block_answer(case: &Case, ours: &View) -> Result<(), String> {
    let name = case.lower_name();
    let action = block_action(&name).unwrap_or("none");
    let (rcode, answer) = match (action, case.qtype) {
        ("sinkhole", RecordType::A) => (
            ResponseCode::NoError,
            vec![format!("{name} A IN {SINK_V4}")],
        ),
        ("sinkhole", RecordType::AAAA) => (
            ResponseCode::NoError,
            vec![format!("{name} AAAA IN {SINK_V6}")],
        ),
        ("sinkhole" | "nodata", _) => (ResponseCode::NoError, vec![]),
        ("nxdomain", _) => (ResponseCode::NXDomain, vec![]),
        _ => (ResponseCode::Refused, vec![]),
    };
    if ours.rcode != rcode || ours.answer != answer {
        return Err(format!(
            "{action} answer {:?} {:?}, expected {rcode:?} {answer:?}",
            ours.rcode, ours.answer
        ));
    }
    let negative = answer.is_empty() && rcode != ResponseCode::Refused;
    let soa_here =
        ours.authority.len() == 1 && ours.authority[0].starts_with(&format!("{name} SOA "));
    if negative && !soa_here {
        return Err(format!(
            "{action} answer authority {:?}, expected one SOA owned by {name}",
            ours.authority
        ));
    }
    if case.edns.is_some() && ours.ede != Some(15) {
        return Err(format!("{action} answer EDE {:?}, expected 15", ours.ede));
    }
    Ok(())
}

/// Every difference poolguard makes on purpose. Besides these, two things are never compared:
/// TTLs (caches count them down differently) and the UDP size in the OPT record (each server
/// advertises its own, RFC 6891 §6.2.3). EDE options are compared only here: Unbound runs with
/// its default `ede: no`, poolguard sends EDE on blocks (15), stale answers (3) and upstream
/// failures (22, 23), RFC 8914.
const INTENDED: &[Intended] = &[
    Intended {
        reference: None,
        applies: |case| is_blocked(&case.lower_name()),
        differs: &[Part::Rcode, Part::Sections],
        why: "blocking is the point of a sinkhole: a listed name, a CNAME into one or an \
              address in a listed network gets the feed's action (sinkhole, nxdomain, nodata, \
              refuse) instead of the real data, with EDE 15 Blocked naming the feed \
              (RFC 8914 §4.16)",
        check: check_block_answer,
    },
    Intended {
        reference: None,
        applies: |case| case.qtype == RecordType::ANY && !is_blocked(&case.lower_name()),
        differs: &[Part::Sections],
        why: "ANY is answered with one synthetic HINFO \"RFC8482\" \"\" and never forwarded \
              (RFC 8482 §4.2): it is an amplification tool; Unbound forwards it",
        check: |case, ours| {
            let hinfo = Record::from_rdata(
                Name::from_ascii(case.qname).expect("test name"),
                3600,
                RData::HINFO(HINFO::new("RFC8482".to_string(), String::new())),
            );
            let want = vec![record_text(&hinfo)];
            if ours.answer != want || !ours.authority.is_empty() {
                return Err(format!("ANY answer {:?}, expected {want:?}", ours.answer));
            }
            Ok(())
        },
    },
    Intended {
        reference: None,
        applies: |case| {
            case.qname == "diff.test."
                && case.qtype == RecordType::SOA
                && case.opcode == OpCode::Query
        },
        differs: &[Part::AuthorityNs],
        why: "poolguard relays the upstream's sections as received, and hickory's \
              authoritative server adds the zone's NS RRset to the authority section of an \
              apex SOA answer; Unbound rebuilds answers from its cache and leaves it out. Both \
              are correct: the zone's NS RRset in the authority section of a positive answer \
              is optional data (authoritative servers differ on it too)",
        check: |_, ours| {
            let ns = ["diff.test. NS IN ns1.diff.test.".to_string()];
            if ours.authority.as_slice() != ns {
                return Err(format!("authority {:?}, expected {ns:?}", ours.authority));
            }
            Ok(())
        },
    },
    Intended {
        reference: None,
        applies: |case| case.opcode == OpCode::Notify,
        differs: &[Part::Rcode, Part::Ra],
        why: "a NOTIFY (RFC 1996) to a forwarder that has no zones to refresh gets NOTIMP, as \
              every opcode other than QUERY does (docs/DNS.md), and no RA: recursion is not \
              available for it (issue 13 point 6, ISC genreport `opcode`); Unbound answers \
              REFUSED with RA",
        check: |_, ours| {
            if ours.rcode != ResponseCode::NotImp || ours.ra {
                return Err(format!("NOTIFY got {:?} [{}]", ours.rcode, ours.flags()));
            }
            Ok(())
        },
    },
    Intended {
        reference: None,
        applies: |case| is_special_use(&case.lower_name()),
        differs: &[Part::SoaRdata],
        why: "special-use names (RFC 6761 §6.3 localhost, §6.4 invalid, RFC 7686 onion) are \
              answered by both without asking upstream, with AA and, when negative, an SOA \
              owned by the special zone's apex; the SOA's fields are each server's own \
              (Unbound: `localhost. nobody.invalid. 1 3600 1200 604800 10800`, poolguard: \
              `poolguard.invalid.` as MNAME, 3 h; docs/DNS.md)",
        check: |_, ours| {
            let soas = ours
                .authority
                .iter()
                .filter(|r| r.split(' ').nth(1) == Some("SOA"))
                .count();
            if ours.answer.is_empty() && soas != 1 {
                return Err(format!("negative answer with {soas} SOA records"));
            }
            Ok(())
        },
    },
    Intended {
        reference: None,
        applies: |case| case.lower_name().ends_with(".localhost."),
        differs: &[Part::Rcode, Part::Sections],
        why: "names below localhost are answered as localhost itself, loopback addresses \
              (RFC 6761 §6.3: \"localhost. and any names falling within .localhost.\"); \
              Unbound's built-in zone answers them NXDOMAIN",
        check: |case, ours| {
            let want = match case.qtype {
                RecordType::A => vec![format!("{} A IN 127.0.0.1", case.lower_name())],
                RecordType::AAAA => vec![format!("{} AAAA IN ::1", case.lower_name())],
                _ => vec![],
            };
            if ours.rcode != ResponseCode::NoError || ours.answer != want {
                return Err(format!(
                    "{:?} {:?}, expected {want:?}",
                    ours.rcode, ours.answer
                ));
            }
            Ok(())
        },
    },
    Intended {
        reference: Some(|case| Case { rd: true, ..case }),
        applies: |case| {
            !case.rd
                && case.opcode == OpCode::Query
                && !matches!(case.qtype, RecordType::AXFR | RecordType::IXFR)
        },
        differs: &[Part::Rd],
        why: "RD=0 gets the answer RD=1 gets, RD echoed (docs/DNS.md): forwarding is \
              poolguard's only service and a block must not depend on a header bit the client \
              controls, so it is compared with Unbound's answer to the same query with RD=1; \
              Unbound itself (access-control allow) refuses RD=0 for data from its cache, \
              against cache snooping",
        check: |_, ours| {
            if ours.rd {
                return Err("RD=1 in the answer to RD=0".to_string());
            }
            Ok(())
        },
    },
];

/// Compares one pair of answers, applying [`INTENDED`].
fn compare(case: &Case, reference: &View, ours: &View) -> Vec<String> {
    let mut skip: Vec<Part> = Vec::new();
    let mut out = Vec::new();
    for intended in INTENDED.iter().filter(|i| (i.applies)(case)) {
        skip.extend_from_slice(intended.differs);
        if let Err(e) = (intended.check)(case, ours) {
            out.push(format!(
                "intended difference not as designed: {e} (listed because: {})",
                intended.why
            ));
        }
    }
    // Take the listed parts out by making the copies agree on them.
    let mut ours = ours.clone();
    let mut reference = reference.clone();
    for part in skip {
        match part {
            Part::Rcode => ours.rcode = reference.rcode,
            Part::Ra => ours.ra = reference.ra,
            Part::Rd => ours.rd = reference.rd,
            Part::SoaRdata => {
                let sections = [
                    &mut ours.answer,
                    &mut ours.authority,
                    &mut reference.answer,
                    &mut reference.authority,
                ];
                for r in sections.into_iter().flat_map(|s| s.iter_mut()) {
                    if r.split(' ').nth(1) == Some("SOA") {
                        let owner = r.split(' ').next().unwrap_or_default().to_string();
                        *r = format!("{owner} SOA IN (fields not compared)");
                    }
                }
            }
            Part::Sections => {
                ours.answer.clone_from(&reference.answer);
                ours.authority.clone_from(&reference.authority);
                ours.additional.clone_from(&reference.additional);
            }
            Part::AuthorityNs => ours.authority.retain(|r| r.split(' ').nth(1) != Some("NS")),
        }
    }
    out.extend(differences(&reference, &ours));
    out
}

/// The query Unbound is asked for `case` (see [`Intended::reference`]).
fn reference_case(case: &Case) -> Case {
    INTENDED
        .iter()
        .filter(|i| (i.applies)(case))
        .find_map(|i| i.reference)
        .map_or(*case, |f| f(*case))
}

/// Names under the special-use zones both resolvers answer themselves.
fn is_special_use(name: &str) -> bool {
    ["localhost.", "invalid.", "onion.", "127.in-addr.arpa."]
        .iter()
        .any(|zone| name == *zone || name.ends_with(&format!(".{zone}")))
}

// ---------------------------------------------------------------------------------------------
// The reference resolver

/// Starts the reference Unbound (see `common::unbound`). Settings chosen to behave as poolguard
/// does where a choice exists: no validation (poolguard does not validate), no QNAME
/// minimisation, no prefetch or serve-expired, 1232 as EDNS size both ways, and
/// `minimal-responses: no`, because poolguard relays the upstream's additional records (the
/// addresses of MX and SRV targets) as it received them.
async fn start_unbound(upstream: SocketAddr) -> Unbound {
    let server = "  module-config: \"iterator\"
  local-zone: \"test.\" nodefault
  qname-minimisation: no
  minimal-responses: no
  prefetch: no
  serve-expired: no
  edns-buffer-size: 1232
  max-udp-size: 1232
  ratelimit: 0
  hide-identity: yes
  hide-version: yes
  ip-ratelimit: 0
";
    Unbound::start(upstream, server, "", &[], "diff.test.").await
}

/// One exchange from 127.0.0.1 that reports a failure instead of panicking.
async fn exchange(
    server: SocketAddr,
    proto: Proto,
    bytes: &[u8],
    timeout: Duration,
) -> Result<Vec<u8>, String> {
    let localhost = std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
    common::try_query_raw_from(localhost, server, proto, bytes, timeout).await
}

// ---------------------------------------------------------------------------------------------
// poolguard

/// Feeds for the intended "blocked" differences: a name, a CNAME target, an address, and one
/// name for each of the other actions.
fn feeds() -> Vec<FeedSpec> {
    vec![
        FeedSpec::new(
            "mining",
            "domains",
            Some("sinkhole"),
            &["blocked.diff.test"],
        ),
        FeedSpec::new("pool-ips", "ips", Some("sinkhole"), &["203.0.113.0/24"]),
        FeedSpec::new("nx", "domains", Some("nxdomain"), &["nxblocked.diff.test"]),
        FeedSpec::new(
            "empty",
            "domains",
            Some("nodata"),
            &["nodatablocked.diff.test"],
        ),
        FeedSpec::new(
            "refusing",
            "domains",
            Some("refuse"),
            &["refusedblocked.diff.test"],
        ),
    ]
}

fn upstream() -> Upstream {
    Upstream::serving(&[
        ("diff.test", fixture("diff.test.zone")),
        ("other.test", fixture("other.test.zone")),
    ])
}

/// Asks `server` and reduces the answer to a [`View`] (a failure is reported as text).
async fn ask(server: SocketAddr, case: &Case, id: u16) -> Result<View, String> {
    let request = case.message(id);
    let bytes = case.wire(&request);
    let raw = exchange(server, case.proto, &bytes, EXCHANGE_TIMEOUT).await?;
    View::of(&request, &raw)
}

fn show(v: &Result<View, String>) -> String {
    match v {
        Err(e) => format!("error: {e}"),
        Ok(v) => format!(
            "{:?} [{}] {} bytes, OPT {:?}, EDE {:?}\n        answer {:?}\n        authority {:?}\n        additional {:?}",
            v.rcode,
            v.flags(),
            v.size,
            v.opt,
            v.ede,
            v.answer,
            v.authority,
            v.additional
        ),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poolguard_answers_as_unbound_does_except_where_listed() {
    let upstream = upstream();
    let unbound = start_unbound(upstream.addr).await;
    // One worker, so the second asking of a query meets the cache the first one filled.
    let bed = TestBed::builder()
        .upstream(upstream)
        .feeds(feeds())
        .workers(1)
        .dns_option("rate_limit_qps", "0")
        .start()
        .await;

    let cases = cases();
    let mut mismatches: Vec<String> = Vec::new();
    // How many answers differ per question name and type, for the summary line.
    let mut per_question: std::collections::BTreeMap<String, usize> = Default::default();
    let mut id: u16 = 0x4000;
    for case in &cases {
        for round in ["cold", "warm"] {
            id = id.wrapping_add(1);
            let reference = ask(unbound.addr, &reference_case(case), id).await;
            id = id.wrapping_add(1);
            let ours = ask(bed.dns, case, id).await;
            let problems = match (&reference, &ours) {
                (Ok(r), Ok(o)) => compare(case, r, o),
                (Err(e), _) => vec![format!("unbound: {e}")],
                (_, Err(e)) => vec![format!("poolguard: {e}")],
            };
            if !problems.is_empty() {
                let mut text = format!("{} ({round})", case.label());
                for p in &problems {
                    write!(text, "\n    {p}").unwrap_or(());
                }
                write!(
                    text,
                    "\n    unbound:   {}\n    poolguard: {}",
                    show(&reference),
                    show(&ours)
                )
                .unwrap_or(());
                mismatches.push(text);
                *per_question
                    .entry(format!("{} {}", case.qname, case.qtype))
                    .or_default() += 1;
            }
        }
    }
    let total = cases.len() * 2;
    bed.shutdown().await;
    drop(unbound);
    let summary: Vec<String> = per_question
        .iter()
        .map(|(q, n)| format!("{q} ({n})"))
        .collect();
    assert!(
        mismatches.is_empty(),
        "{} of {total} answers differ from Unbound's, for: {}\n\n{}",
        mismatches.len(),
        summary.join(", "),
        mismatches.join("\n\n")
    );
}

/// The fixtures test what they claim: the sized TXT records are that many bytes (Unbound's TCP
/// answer without EDNS), and `bigmx` MX fits in 512 bytes over UDP only without part of its
/// additional addresses (no TC), while over TCP it carries all 32.
#[tokio::test]
async fn fixtures_have_the_sizes_they_claim() {
    let upstream = upstream();
    let unbound = start_unbound(upstream.addr).await;
    for (qname, size) in [
        ("t0490.diff.test.", 490),
        ("t0501.diff.test.", 501),
        ("t0512.diff.test.", 512),
        ("t0513.diff.test.", 513),
        ("t1200.diff.test.", 1200),
        ("t1221.diff.test.", 1221),
        ("t1222.diff.test.", 1222),
        ("t1400.diff.test.", 1400),
    ] {
        let case = Case {
            proto: Proto::Tcp,
            ..Case::new(qname, RecordType::TXT)
        };
        let view = ask(unbound.addr, &case, 7).await.expect("unbound answers");
        assert_eq!(view.size, size, "{qname}: {}", show(&Ok(view.clone())));
    }
    let mx = Case::new("bigmx.diff.test.", RecordType::MX);
    let full = ask(
        unbound.addr,
        &Case {
            proto: Proto::Tcp,
            ..mx
        },
        8,
    )
    .await
    .expect("unbound answers");
    assert_eq!(
        (full.answer.len(), full.additional.len()),
        (1, 32),
        "{}",
        show(&Ok(full))
    );
    let udp = ask(unbound.addr, &mx, 9).await.expect("unbound answers");
    assert!(
        !udp.tc && udp.answer.len() == 1 && udp.additional.len() < 32,
        "{}",
        show(&Ok(udp))
    );
    drop(unbound);
}
