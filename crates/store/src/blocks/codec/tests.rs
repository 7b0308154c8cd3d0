use super::*;

fn entry(i: u32) -> Entry<'static> {
    Entry {
        time_ms: 1_700_000_000_000 + i64::from(i % 7) * 3 - 5,
        client: if i.is_multiple_of(3) {
            "2001:db8::7".parse().unwrap()
        } else {
            IpAddr::V4(Ipv4Addr::new(10, 0, (i % 5) as u8, 9))
        },
        port: (40000 + i) as u16,
        transport: [
            Transport::Tcp,
            Transport::Udp,
            Transport::Dot,
            Transport::Doh,
        ][i as usize % 4],
        outcome: OUTCOMES[i as usize % OUTCOMES.len()],
        name: ["www.example.com", "xmr.pool.minergate.com", "a"][i as usize % 3],
        qtype: ["A", "AAAA", "TYPE65534"][i as usize % 3],
        feed: i.is_multiple_of(2).then_some("mining"),
        rule: i.is_multiple_of(2).then_some("minergate.com"),
        rcode: ["NOERROR", "NXDOMAIN"][i as usize % 2],
        answer: ["", "A 192.0.2.1, CNAME x.example."][i as usize % 2],
        latency_us: i * 1000,
        upstream: (!i.is_multiple_of(5)).then_some("127.0.0.1:53"),
        department: (i % 3 == 1).then_some("Physics"),
        snapshot: (i % 4 == 1).then_some(Snapshot {
            network: Some("10.0.0.0/16"),
            asset: ["PHY-0042", "LIB-7"].get(i as usize % 8 / 4).copied(),
            mac: None,
            kind: Some("workstation"),
            location: (i % 8 == 1).then_some("B12"),
            owner: Some("A. Person"),
            contact: None,
            account: (i % 8 == 5).then_some("alice"),
            hostname: (i % 8 == 1).then_some("dorm-pc"),
            source: (i % 8 == 5).then_some("kea+radius"),
            exempt: (i % 8 == 5).then_some("10.9.0.0/24"),
        }),
    }
}

fn sealed(rows: &[Entry<'_>]) -> Sealed {
    let mut enc = BlockEncoder::default();
    for e in rows {
        enc.push(e);
    }
    enc.seal().unwrap()
}

#[test]
fn rows_of_a_client_are_found_by_skipping_the_others() {
    let rows: Vec<Entry<'static>> = (0..300).map(entry).collect();
    let plain = sealed(&rows).data;
    let grouped = regroup(&plain).unwrap().unwrap();
    for data in [&plain, &grouped] {
        let block = Block::parse(data).unwrap();
        for (lo, hi) in [
            ("10.0.3.9", "10.0.3.9"),
            ("2001:db8::7", "2001:db8::7"),
            ("10.0.0.0", "10.0.2.255"),
            ("10.9.9.9", "10.9.9.9"),
            ("0.0.0.0", "10.0.0.9"),
            ("10.0.4.9", "ffff::"),
            ("::", "::1"),
        ] {
            let (lo, hi) = (ip_key(lo.parse().unwrap()), ip_key(hi.parse().unwrap()));
            let mut want: Vec<(u32, Entry<'_>)> = block
                .entries()
                .map(|r| r.unwrap())
                .filter(|(_, e)| (lo..=hi).contains(&ip_key(e.client)))
                .collect();
            let mut it = block.entries();
            let mut got = Vec::new();
            while let Some(row) = it.next_within(&lo, &hi) {
                got.push(row.unwrap());
            }
            want.sort_by_key(|&(i, _)| i);
            got.sort_by_key(|&(i, _)| i);
            assert_eq!(got, want, "grouped: {}", block.is_grouped());
        }
    }
}

#[test]
fn rows_of_a_name_are_found_by_skipping_the_others() {
    let rows: Vec<Entry<'static>> = (0..300).map(entry).collect();
    let plain = sealed(&rows).data;
    let grouped = regroup(&plain).unwrap().unwrap();
    for data in [&plain, &grouped] {
        let block = Block::parse(data).unwrap();
        for name in [
            "www.example.com",
            "a",
            "xmr.pool.minergate.com",
            "absent.example",
            "",
        ] {
            let want: Vec<(u32, Entry<'_>)> = block
                .entries()
                .map(|r| r.unwrap())
                .filter(|(_, e)| e.name == name)
                .collect();
            let mut it = block.entries();
            let mut got = Vec::new();
            while let Some(row) = it.next_named(name) {
                got.push(row.unwrap());
            }
            assert_eq!(got, want, "{name}, grouped: {}", block.is_grouped());
        }
    }
}

#[test]
fn a_grouped_block_keeps_every_row_and_its_index() {
    let rows: Vec<Entry<'static>> = (0..500).map(entry).collect();
    let plain = sealed(&rows);
    let grouped = regroup(&plain.data)
        .unwrap()
        .expect("a plain block regroups");
    let block = Block::parse(&grouped).unwrap();
    assert!(block.is_grouped());
    // Stored client by client: one run per client, IPv4 before IPv6, each by address.
    let stored: Vec<IpAddr> = block.entries().map(|r| r.unwrap().1.client).collect();
    let mut runs = stored.clone();
    runs.dedup();
    let mut sorted = runs.clone();
    sorted.sort_by_key(|c| (c.is_ipv6(), ip_key(*c)));
    sorted.dedup();
    assert_eq!(runs, sorted, "one run per client, in directory order");
    // The same rows under the same indices: a row id names the same row after grouping.
    let back = block.rows_as_written().unwrap();
    assert_eq!(back.len(), rows.len());
    for (i, (index, e)) in back.iter().enumerate() {
        assert_eq!((*index as usize, e), (i, &rows[i]));
    }
    assert!(regroup(&grouped).unwrap().is_none(), "grouped once");
}

#[test]
fn version_1_blocks_still_read() {
    // UDP rows only: they are written the same in every version (no stream byte).
    let rows: Vec<Entry<'static>> = (0..40)
        .map(|i| Entry {
            snapshot: None,
            transport: Transport::Udp,
            ..entry(i)
        })
        .collect();
    let mut enc = BlockEncoder::default();
    for e in &rows {
        enc.push(e);
    }
    let v2 = enc.seal().unwrap().data;
    // Without snapshots the seven snapshot dictionaries are empty: one zero byte each.
    assert_eq!(&v2[v2.len() - SNAPSHOT_FIELDS..], &[0; SNAPSHOT_FIELDS]);
    let mut v1 = v2[..v2.len() - SNAPSHOT_FIELDS].to_vec();
    v1[0] = VERSION_1;
    let block = Block::parse(&v1).expect("a version 1 block parses");
    let back: Vec<Entry<'_>> = block.entries().map(|r| r.unwrap().1).collect();
    assert_eq!(back, rows);
}

#[test]
fn version_2_3_and_4_blocks_still_read() {
    // Seven snapshot codes per row and seven snapshot dictionaries; a UDP row (no stream
    // byte), written the same in both.
    let mut enc = BlockEncoder::default();
    let row = Entry {
        snapshot: Some(Snapshot {
            asset: Some("PHY-0042"),
            owner: Some("A. Person"),
            ..Snapshot::default()
        }),
        transport: Transport::Udp,
        ..entry(1)
    };
    enc.push(&row);
    let current = enc.seal().unwrap().data;
    let block = Block::parse(&current).unwrap();
    let (_, back) = block.entries().next().unwrap().unwrap();
    assert_eq!(back, row);
    // The same row in an older version: drop the newer codes (all 0, the last bytes
    // before the name) and the newer (empty) dictionaries at the end.
    let older = |dropped: usize| {
        let name_at = current
            .windows(row.name.len())
            .position(|w| w == row.name.as_bytes())
            .unwrap()
            - 1;
        assert!(current[name_at - dropped..name_at].iter().all(|&b| b == 0));
        let mut old = [
            &current[..name_at - dropped],
            &current[name_at..current.len() - dropped],
        ]
        .concat();
        // events_len shrank (a one-byte varint after version, rows and base_ms).
        let events_len_at = 1 + 1 + {
            let mut n = 1;
            while current[1 + n] & 0x80 != 0 {
                n += 1;
            }
            n
        };
        old[events_len_at] -= dropped as u8;
        old
    };
    let mut v4 = older(SNAPSHOT_FIELDS - SNAPSHOT_FIELDS_V4);
    v4[0] = VERSION_4;
    let (_, old) = Block::parse(&v4)
        .unwrap()
        .entries()
        .next()
        .unwrap()
        .unwrap();
    assert_eq!(old, row, "version 4");
    let mut v2 = older(SNAPSHOT_FIELDS - SNAPSHOT_FIELDS_V2);
    for version in [VERSION_2, VERSION_3] {
        v2[0] = version;
        let block = Block::parse(&v2).expect("an older block parses");
        let (_, old) = block.entries().next().unwrap().unwrap();
        assert_eq!(old, row, "version {version}");
    }
}

#[test]
fn every_field_round_trips() {
    let mut enc = BlockEncoder::default();
    let rows: Vec<Entry<'static>> = (0..500).map(entry).collect();
    for e in &rows {
        enc.push(e);
    }
    let sealed = enc.seal().expect("rows");
    assert_eq!(sealed.rows, 500);
    assert_eq!(
        sealed.first_ms,
        rows.iter().map(|e| e.time_ms).min().unwrap()
    );
    assert_eq!(
        sealed.last_ms,
        rows.iter().map(|e| e.time_ms).max().unwrap()
    );
    let block = Block::parse(&sealed.data).expect("parses");
    let back: Vec<(u32, Entry<'_>)> = block.entries().collect::<Result<_, _>>().unwrap();
    assert_eq!(back.len(), 500);
    for (i, (index, e)) in back.iter().enumerate() {
        assert_eq!(*index as usize, i);
        assert_eq!(*e, rows[i]);
    }
    let counts = read_counts(&sealed.counts).unwrap();
    assert_eq!(counts.iter().sum::<u64>(), 500);
    let blocked = rows
        .iter()
        .filter(|e| e.outcome == Outcome::Blocked)
        .count();
    assert_eq!(
        counts[outcome_code(Outcome::Blocked) as usize],
        blocked as u64
    );
    assert!(blocked > 0);
}

#[test]
fn an_empty_encoder_seals_nothing() {
    assert!(BlockEncoder::default().seal().is_none());
}

#[test]
fn damaged_blocks_are_errors_never_panics() {
    let rows: Vec<Entry<'static>> = (0..50).map(entry).collect();
    let plain = sealed(&rows).data;
    damaged_copies_never_panic(&plain);
    damaged_copies_never_panic(&regroup(&plain).unwrap().unwrap());
    assert!(matches!(Block::parse(&[9]), Err(BlockError::Version(9))));
}

fn damaged_copies_never_panic(data: &[u8]) {
    let (lo, hi) = (
        ip_key("10.0.0.0".parse().unwrap()),
        ip_key("10.0.2.255".parse().unwrap()),
    );
    for cut in 0..data.len() {
        if let Ok(block) = Block::parse(&data[..cut]) {
            for row in block.entries() {
                let _ = row;
            }
        }
    }
    let mut flipped = data.to_vec();
    for i in 0..flipped.len() {
        flipped[i] ^= 0xff;
        if let Ok(block) = Block::parse(&flipped) {
            assert!(block.entries().count() <= block.rows() as usize);
            let mut it = block.entries();
            let mut n = 0;
            while it.next_within(&lo, &hi).is_some() {
                n += 1;
            }
            assert!(n <= block.rows() as usize);
            let mut it = block.entries();
            while it.next_named("a").is_some() {}
        }
        flipped[i] ^= 0xff;
    }
}
