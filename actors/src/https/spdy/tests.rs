use super::*;

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn h(pairs: &[(&str, &str)]) -> Headers {
    pairs
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

/// What kubectl sends for one forwarded connection, compressed as Go's
/// spdystream compresses (one zlib stream with the SPDY/3 dictionary, level 9,
/// a sync flush after each header block; made with Python's zlib): the error
/// stream's SYN_STREAM, the data stream's, the error stream's FIN, a PING and
/// five data bytes.
const KUBECTL: &str = "800300010000003d0000000100000000000078f9e3c6a7c202253a703a2b294a4dcc\
851625aca9a0808614cb45e01c6061606100a4398b20d198094ade8c0600000000ffff800300010000001a0000\
0003000000000000826a26ac0ad57850499508000000ffff0000000101000000800300060000000400000001000\
000030000000568656c6c6f";

#[test]
fn the_dictionary_is_spdy3s() {
    // Its Adler-32 is the dictionary id a SPDY/3 header stream names.
    let d = dictionary();
    assert_eq!(d.len(), 1423);
    let (mut a, mut b) = (1u32, 0u32);
    for &x in d {
        a = (a + u32::from(x)) % 65521;
        b = (b + a) % 65521;
    }
    assert_eq!((b << 16) | a, 0xe3c6_a7c2);
    assert_eq!(&hex(KUBECTL)[20..24], &0xe3c6_a7c2u32.to_be_bytes());
}

#[test]
fn decodes_kubectls_frames_fed_in_any_pieces() {
    let bytes = hex(KUBECTL);
    let want = vec![
        Frame::SynStream {
            stream: 1,
            associated: 0,
            priority: 0,
            fin: false,
            unidirectional: false,
            headers: h(&[
                ("streamtype", "error"),
                ("port", "8080"),
                ("requestid", "0"),
            ]),
        },
        Frame::SynStream {
            stream: 3,
            associated: 0,
            priority: 0,
            fin: false,
            unidirectional: false,
            headers: h(&[("port", "8080"), ("requestid", "0"), ("streamtype", "data")]),
        },
        Frame::Data {
            stream: 1,
            fin: true,
            data: vec![],
        },
        Frame::Ping(1),
        Frame::Data {
            stream: 3,
            fin: false,
            data: b"hello".to_vec(),
        },
    ];
    for piece in [1, 3, 7, 64, bytes.len()] {
        let mut d = Decoder::default();
        let mut got = Vec::new();
        for chunk in bytes.chunks(piece) {
            d.push(chunk);
            while let Some(f) = d.next_frame().unwrap() {
                got.push(f);
            }
        }
        assert_eq!(got, want, "pieces of {piece} bytes");
        assert_eq!(d.pending(), 0);
    }
}

#[test]
fn every_frame_round_trips_and_header_blocks_share_one_stream() {
    let frames = vec![
        Frame::SynStream {
            stream: 5,
            associated: 0,
            priority: 3,
            fin: false,
            unidirectional: true,
            headers: h(&[("streamtype", "data"), ("port", "80"), ("requestid", "7")]),
        },
        Frame::SynReply {
            stream: 5,
            fin: false,
            headers: vec![],
        },
        Frame::SynReply {
            stream: 7,
            fin: true,
            headers: h(&[("x", "a\0b")]),
        },
        Frame::Headers {
            stream: 7,
            fin: false,
            headers: h(&[("status", "200 OK")]),
        },
        Frame::RstStream {
            stream: 9,
            status: CANCEL,
        },
        Frame::Settings(vec![(1, 4, 100), (0, 7, 65536)]),
        Frame::Ping(2),
        Frame::GoAway {
            last_good: 9,
            status: 0,
        },
        Frame::WindowUpdate {
            stream: 5,
            delta: 1000,
        },
        Frame::Data {
            stream: 5,
            fin: true,
            data: vec![7; 70_000],
        },
    ];
    let mut e = Encoder::default();
    let mut d = Decoder::default();
    for f in &frames {
        d.push(&e.encode(f));
    }
    for f in &frames {
        assert_eq!(d.next_frame().unwrap().as_ref(), Some(f));
    }
    assert_eq!(d.next_frame().unwrap(), None);
}

#[test]
fn encodes_frames_as_the_spec_lays_them_out() {
    let mut e = Encoder::default();
    let cases: Vec<(Frame, &str)> = vec![
        (Frame::Ping(1), "800300060000000400000001"),
        (
            Frame::RstStream {
                stream: 3,
                status: CANCEL,
            },
            "80030003000000080000000300000005",
        ),
        (
            Frame::Data {
                stream: 3,
                fin: true,
                data: b"ok".to_vec(),
            },
            "00000003010000026f6b",
        ),
        (
            Frame::GoAway {
                last_good: 1,
                status: 0,
            },
            "80030007000000080000000100000000",
        ),
    ];
    for (f, want) in cases {
        let got: String = e.encode(&f).iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(got, want, "{f:?}");
    }
}

#[test]
fn a_bad_header_block_or_version_is_an_error() {
    let mut d = Decoder::default();
    // SYN_STREAM whose header block is not zlib.
    d.push(&hex("80030001000000100000000100000000000001020304050607"));
    assert!(matches!(d.next_frame(), Err(SpdyError::HeaderBlock(_))));
    let mut d = Decoder::default();
    d.push(&hex("800200060000000400000001"));
    assert_eq!(d.next_frame(), Err(SpdyError::Version(2)));
    let mut d = Decoder::default();
    d.push(&hex("800300060000000200"));
    assert_eq!(d.next_frame(), Ok(None), "waits for the whole frame");
    d.push(&[0]);
    assert_eq!(d.next_frame(), Err(SpdyError::Short { kind: 6, len: 2 }));
}

#[test]
fn unknown_control_frames_are_skipped() {
    let mut d = Decoder::default();
    d.push(&hex("8003000a00000002abcd"));
    d.push(&hex("80030006000000040000000b"));
    assert_eq!(d.next_frame(), Ok(Some(Frame::Ping(11))));
}

#[test]
fn port_forward_streams_pair_by_request_id() {
    let s = |t: &str, port: &str, id: Option<&str>| {
        let mut v = h(&[("streamtype", t), ("port", port)]);
        if let Some(id) = id {
            v.push(("requestid".into(), id.into()));
        }
        v
    };
    let mut p = Pairs::default();
    assert_eq!(p.add(1, &s("error", "8080", Some("0"))), Ok(None));
    assert_eq!(p.add(3, &s("error", "9090", Some("1"))), Ok(None));
    assert_eq!(
        p.add(5, &s("data", "9090", Some("1"))),
        Ok(Some(Forward {
            request_id: "1".into(),
            port: 9090,
            error: 3,
            data: 5
        }))
    );
    assert_eq!(
        p.add(7, &s("data", "8080", Some("0"))),
        Ok(Some(Forward {
            request_id: "0".into(),
            port: 8080,
            error: 1,
            data: 7
        }))
    );
    assert_eq!(p.waiting(), 0);
    // Data first works too; without a requestID streams pair two by two.
    assert_eq!(p.add(9, &s("data", "80", Some("2"))), Ok(None));
    assert_eq!(p.remove_stream(9), Some("2".into()));
    assert_eq!(p.add(11, &s("error", "80", None)), Ok(None));
    assert_eq!(
        p.add(13, &s("data", "80", None)),
        Ok(Some(Forward {
            request_id: "stream-11".into(),
            port: 80,
            error: 11,
            data: 13
        }))
    );
    let bad: Vec<(Headers, &str)> = vec![
        (h(&[("port", "80")]), "streamType header is required"),
        (h(&[("streamtype", "data")]), "port header is required"),
        (
            h(&[("streamtype", "x"), ("port", "80")]),
            "invalid stream type \"x\"",
        ),
        (
            h(&[("streamtype", "data"), ("port", "http")]),
            "unable to parse \"http\" as a port: invalid digit found in string",
        ),
        (
            h(&[("streamtype", "data"), ("port", "0")]),
            "port \"0\" must be > 0",
        ),
    ];
    for (headers, want) in bad {
        assert_eq!(p.add(21, &headers), Err(want.to_string()));
    }
    p.add(23, &s("error", "80", Some("9"))).unwrap();
    assert!(p.add(25, &s("error", "80", Some("9"))).is_err());
}
